"""Settings from the environment: a bad value stops the program with a message naming it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name,value,message", [
    ("JOBSITE_BROKER_POLL_MS", "fast", "JOBSITE_BROKER_POLL_MS must be an integer, not 'fast'"),
    ("JOBSITE_BROKER_POLL_MS", "5", "JOBSITE_BROKER_POLL_MS must be at least 10, not 5"),
    ("JOBSITE_DATABASE_WAIT_SECONDS", "-1", "JOBSITE_DATABASE_WAIT_SECONDS must be at least 0, not -1"),
    ("JOBSITE_WEBHOOK_SENDER_STALL_SECONDS", "10", "JOBSITE_WEBHOOK_SENDER_STALL_SECONDS must be at least 11, not 10"),
    ("JOBSITE_OGC_HREF_HOSTS", "data.example.org,https://data.example.org",
     "JOBSITE_OGC_HREF_HOSTS: 'https://data.example.org' is not a host or host:port"),
    ("JOBSITE_OGC_HREF_HOSTS", "user@data.example.org", "JOBSITE_OGC_HREF_HOSTS: 'user@data.example.org' is not a"),
])
def test_a_bad_setting_stops_manage_py_naming_it(name, value, message):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", name: value}
    answer = subprocess.run([sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=60)
    assert answer.returncode != 0 and message in answer.stderr


def local_environment(var_dir, **settings):
    """A shell's environment with nothing of jobsite's set but where its local files go."""
    return {"PATH": os.environ["PATH"], "HOME": str(var_dir), "DJANGO_SETTINGS_MODULE": "jobsite.settings",
            "JOBSITE_VAR_DIR": str(var_dir), **settings}


def manage(env, *arguments):
    return subprocess.run([sys.executable, "manage.py", *arguments], cwd=BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("command", [["check"], ["demo_admin"], ["qcluster"], ["migrate", "--check"]])
def test_a_command_without_debug_or_a_secret_key_says_in_one_line_what_to_set(tmp_path, command):
    answer = manage(local_environment(tmp_path), *command)
    assert answer.returncode != 0 and "Traceback" not in answer.stderr
    [line] = answer.stderr.splitlines()
    assert line.startswith("jobsite: SECRET_KEY must be set when DEBUG is off: set SECRET_KEY, or DEBUG=1")
    assert f"{tmp_path / '.env'} (`make run` writes DEBUG=1 there" in line


def test_the_env_file_make_run_writes_serves_every_later_command_with_one_key(tmp_path):
    subprocess.run(["make", "-s", f"JOBSITE_VAR_DIR={tmp_path}", f"{tmp_path}/.env"], cwd=BASE_DIR, check=True,
                   timeout=60)
    assert "\nDEBUG=1\n" in (tmp_path / ".env").read_text()
    env = local_environment(tmp_path)
    assert manage(env, "check").returncode == 0
    show = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    first, second = manage(env, "shell", "--no-imports", "-c", show).stdout, manage(env, "shell", "--no-imports", "-c", show).stdout
    assert first == second == f"True {(tmp_path / 'secret-key').read_text().strip()}\n"


def test_make_run_keeps_an_env_file_that_exists(tmp_path):
    (tmp_path / ".env").write_text("DEBUG=1\nSECRET_KEY='my own key'\n")
    subprocess.run(["make", "-s", f"JOBSITE_VAR_DIR={tmp_path}", f"{tmp_path}/.env"], cwd=BASE_DIR, check=True,
                   timeout=60)
    assert (tmp_path / ".env").read_text() == "DEBUG=1\nSECRET_KEY='my own key'\n"
    show = "from django.conf import settings; print(settings.SECRET_KEY)"
    assert manage(local_environment(tmp_path), "shell", "--no-imports", "-c", show).stdout == "my own key\n"


def test_the_environment_wins_over_the_env_file(tmp_path):
    (tmp_path / ".env").write_text("# local\nDEBUG=1\n")
    answer = manage(local_environment(tmp_path, DEBUG="0"), "check")
    assert answer.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in answer.stderr


def test_a_line_of_the_env_file_that_is_not_a_setting_is_named(tmp_path):
    (tmp_path / ".env").write_text("DEBUG=1\nexport DEBUG\n")
    answer = manage(local_environment(tmp_path), "check")
    assert answer.returncode != 0 and "Traceback" not in answer.stderr
    assert answer.stderr == f"jobsite: {tmp_path / '.env'}, line 2: expected NAME=value, not 'export DEBUG'\n"


def test_the_web_tier_never_takes_debug_from_the_env_file(tmp_path):
    """var/.env serves manage.py commands; the WSGI application (gunicorn) reads the environment only."""
    (tmp_path / ".env").write_text("DEBUG=1\n")
    show = "from django.conf import settings; print(settings.DEBUG)"
    assert manage(local_environment(tmp_path), "shell", "--no-imports", "-c", show).stdout == "True\n"
    web = subprocess.run([sys.executable, "-c", f"from jobsite import wsgi; {show}"], cwd=BASE_DIR, capture_output=True,
                         text=True, timeout=120, env=local_environment(tmp_path, SECRET_KEY="web-tier-key"))
    assert web.returncode == 0 and web.stdout == "False\n", web.stderr
