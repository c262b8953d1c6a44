"""`make run`'s processes (`manage.py run`: the web server and one cluster) stop cleanly on Ctrl-C
and SIGTERM, and a restart keeps the admin's password."""

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children_of(pid):
    """The pids whose parent is `pid`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def groups_are_gone(pgids, timeout=10):
    """Whether every process of these groups ends within `timeout` (init reaps a killed worker soon after)."""
    deadline = time.monotonic() + timeout
    while any(group_exists(pgid) for pgid in pgids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def group_exists(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def local_site(tmp_path_factory):
    """make run's environment on a fresh SQLite file in a folder of its own, migrated."""
    var = tmp_path_factory.mktemp("run-var")
    env = {"PATH": os.environ["PATH"], "HOME": str(var), "DJANGO_SETTINGS_MODULE": "jobsite.settings",
           "JOBSITE_VAR_DIR": str(var), "DEBUG": "1", "JOBSITE_WORKERS": "2", "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=env, check=True,
                   capture_output=True, timeout=300)
    return env


def make_runs_last_command(env, port):
    """The command `make run` ends with (the one that starts the processes), as `make -n` prints it."""
    dry_run = subprocess.run(["make", "-n", "run", "HOST=127.0.0.1", f"PORT={port}"], cwd=BASE_DIR, env=env,
                             capture_output=True, text=True, check=True, timeout=60)
    return shlex.split(dry_run.stdout.replace("\\\n", " ").strip().splitlines()[-1])


class Run:
    """make run's last command in a process group of its own, as make runs it under a terminal
    (make starts a command without shell syntax directly, with no shell between)."""

    def __init__(self, env, folder, port):
        self.port = port
        self.out_path, self.err_path = folder / f"run-{port}.out", folder / f"run-{port}.err"
        command = make_runs_last_command(env, port)
        assert command[1:] == ["manage.py", "run", f"127.0.0.1:{port}"]
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=out, stderr=err, process_group=0)

    def stdout(self):
        return self.out_path.read_text(errors="replace")

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def wait_until_serving(self, timeout=90):
        """Until the web server answers and the cluster says it is running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"manage.py run ended: {self.stderr()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/accounts/login/", timeout=2) as answer:
                    if answer.status == 200 and "] running." in self.stderr():
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"manage.py run did not come up: {self.stderr()[-3000:]}")

    def kill(self):
        for pgid in [self.process.pid, *children_of(self.process.pid)]:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


@pytest.fixture
def start_run(local_site, tmp_path):
    started = []

    def start(port=None):
        run = Run(local_site, tmp_path, port or free_port())
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process.poll() is None:
            run.kill()


@pytest.mark.cluster
@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 0), (signal.SIGHUP, 0)])
def test_a_signal_to_make_runs_process_group_stops_the_web_server_and_the_cluster_once(start_run, signum, status):
    run = start_run()
    run.wait_until_serving()
    children = children_of(run.process.pid)
    assert len(children) == 2  # the web server and the cluster's main process

    os.killpg(run.process.pid, signum)  # what Ctrl-C at the terminal, or `kill -TERM -PGID`, does
    assert run.process.wait(timeout=60) == status
    err, out = run.stderr(), run.stdout()
    assert "Traceback" not in err and "Segmentation fault" not in err + out
    assert err.count(" stopping.") == 1 and err.count(" has stopped.") == 1  # the cluster stopped once
    assert out.count("jobsite: web server stopped") == 1 and out.count("jobsite: cluster stopped") == 1
    # Each child had a process group of its own; nothing of either is left, workers included.
    assert groups_are_gone(children)


@pytest.mark.cluster
def test_a_sigterm_that_make_passes_on_again_still_stops_both_cleanly(start_run):
    """make forwards a SIGTERM it gets to its child: the group's SIGTERM may arrive twice."""
    run = start_run()
    run.wait_until_serving()
    children = children_of(run.process.pid)
    os.killpg(run.process.pid, signal.SIGTERM)
    time.sleep(0.05)
    os.kill(run.process.pid, signal.SIGTERM)
    assert run.process.wait(timeout=60) == 0
    err, out = run.stderr(), run.stdout()
    assert "killing" not in out and "Traceback" not in err
    assert err.count(" stopping.") == 1 and err.count(" has stopped.") == 1
    assert groups_are_gone(children)


@pytest.mark.cluster
def test_a_second_ctrl_c_kills_both_at_once(start_run):
    run = start_run()
    run.wait_until_serving()
    children = children_of(run.process.pid)
    os.killpg(run.process.pid, signal.SIGINT)
    time.sleep(0.05)  # the cluster takes about half a second to stop its workers
    os.killpg(run.process.pid, signal.SIGINT)
    assert run.process.wait(timeout=30) == 130
    assert "jobsite: killing the web server and the cluster" in run.stdout()
    assert "Traceback" not in run.stderr()
    assert groups_are_gone(children)


@pytest.mark.cluster
def test_the_web_server_and_the_cluster_stop_when_make_runs_process_is_killed(start_run):
    run = start_run()
    run.wait_until_serving()
    children = children_of(run.process.pid)
    run.process.kill()  # SIGKILL: no handler runs; the kernel tells each child its parent died
    run.process.wait()
    assert groups_are_gone(children, timeout=30)
    assert "Traceback" not in run.stderr() and run.stderr().count(" has stopped.") == 1


@pytest.mark.cluster
def test_a_web_server_that_cannot_start_stops_the_cluster_too(start_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = start_run(taken.getsockname()[1])
        status = run.process.wait(timeout=90)
    assert status == 1
    assert "jobsite: web server ended by itself (exit status 3); stopping the rest" in run.stderr()  # uvicorn's
    assert "Traceback" not in run.stderr() and run.stdout().count("jobsite: cluster stopped") == 1


def test_a_restart_keeps_the_admin_password_and_reset_gives_a_new_one(db, capsys):
    call_command("demo_admin")
    created = capsys.readouterr().out.strip()
    assert created.startswith("created admin user: admin / ")
    password = created.rsplit(" / ", 1)[1]

    call_command("demo_admin")  # the next make run
    again = capsys.readouterr().out
    assert password not in again and "password unchanged; `manage.py demo_admin --reset` gives it a new one" in again
    assert authenticate(username="admin", password=password).is_staff

    call_command("demo_admin", "--reset")
    new_password = capsys.readouterr().out.strip().rsplit(" / ", 1)[1]
    assert new_password != password
    assert authenticate(username="admin", password=password) is None
    assert authenticate(username="admin", password=new_password).is_superuser


def test_a_child_that_does_not_stop_when_asked_is_killed_after_the_grace_time(monkeypatch, capfd):
    from jobs.management.commands import run as run_command

    monkeypatch.setattr(run_command, "STOP_GRACE", 0.5)
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
                                process_group=0, stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline().strip() == "ready"
    command = run_command.Command()
    command.children, command.stop_signal, command.stopping_since, command.killed = (
        {stubborn.pid: ("cluster", stubborn)}, signal.SIGTERM, None, False)
    command.started, command.deferred = {stubborn.pid: time.monotonic() - run_command.START_GRACE}, {}
    started = time.monotonic()
    command.terminate(stubborn)
    command.wait_for_children()
    assert stubborn.returncode == -signal.SIGKILL and 0.5 <= time.monotonic() - started < 5
    captured = capfd.readouterr()
    assert "jobsite: the cluster did not stop within 0.5 s; killing it" in captured.err
    assert "jobsite: cluster stopped" in captured.out
