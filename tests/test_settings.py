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
])
def test_a_bad_setting_stops_manage_py_naming_it(name, value, message):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", name: value}
    answer = subprocess.run([sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=60)
    assert answer.returncode != 0 and message in answer.stderr
