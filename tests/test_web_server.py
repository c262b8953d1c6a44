"""gunicorn with the project's gunicorn.conf.py, as the README tells to run the web tier."""

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from rest_framework.authtoken.models import Token

from jobs.models import Job

from .conftest import database_url, wait_for

BASE_DIR = Path(__file__).resolve().parent.parent


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid):
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _get(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_gunicorn_serves_the_api_with_the_projects_config(transactional_db, owner, tmp_path):
    job = Job.objects.create(type="slope", owner=owner, tiles_total=0)
    token = Token.objects.create(user=owner).key
    url = f"http://127.0.0.1:{_free_port()}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url(),
           "ALLOWED_HOSTS": "127.0.0.1"}
    env.pop("WEB_CONCURRENCY", None)
    with open(tmp_path / "gunicorn.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "jobsite.wsgi", "--bind", url[len("http://"):]],
                                  cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            def serving():
                assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
                try:
                    return _get(f"{url}/api/v1/health/")[0] in (200, 503)  # 503: no cluster runs
                except OSError:
                    return False

            wait_for(serving, timeout=30, message="gunicorn to serve")
            status, body = _get(f"{url}/api/v1/jobs/{job.pk}/", token)
            assert (status, body["id"], body["owner"]) == (200, job.pk, owner.username)
            assert _get(f"{url}/api/v1/jobs/{job.pk}/")[0] == 401
            # gunicorn.conf.py's two per CPU (gunicorn alone would start one)
            assert len(_children(server.pid)) == 2 * os.cpu_count()
        finally:
            server.terminate()
            server.wait(30)
    assert server.returncode == 0, (tmp_path / "gunicorn.log").read_text()


def test_gunicorn_refuses_a_web_concurrency_of_no_workers(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "WEB_CONCURRENCY": "0"}
    answer = subprocess.run([sys.executable, "-m", "gunicorn", "jobsite.wsgi", "--bind", f"127.0.0.1:{_free_port()}"],
                            cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=30)
    assert answer.returncode != 0 and "WEB_CONCURRENCY must be at least 1 worker, not 0" in answer.stderr
