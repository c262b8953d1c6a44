"""What the benchmarks share: a throw-away jobsite configuration, a real cluster and web server,
waiting for jobs, and the results file."""

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))


def configure(database_url=None, workers=2):
    """Set up Django on a fresh SQLite file in a temporary folder, or on `database_url`, and migrate.

    Returns the temporary folder (media and the SQLite file live there).
    """
    work = Path(tempfile.mkdtemp(prefix="jobsite-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "jobsite.settings"
    os.environ.setdefault("SECRET_KEY", "jobsite-bench")
    os.environ["JOBSITE_VAR_DIR"] = str(work)
    os.environ["MEDIA_ROOT"] = str(work / "media")
    os.environ["JOBSITE_WORKERS"] = str(workers)
    os.environ["LOG_LEVEL"] = "WARNING"
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG is off: hashed static files
    return work


@contextmanager
def cluster(nice=0):
    """A real `manage.py qcluster` with this process's configuration (at the given niceness, as a
    service manager may run it), stopped on exit."""
    from django.db import connection

    connection.close()
    process = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=BASE_DIR, env=os.environ.copy(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=(lambda: os.nice(nice)) if nice else None)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(60)


@contextmanager
def web_server(workers=None, threads=None):
    """gunicorn serving jobsite on a free loopback port, with this process's configuration and
    gunicorn.conf.py, or the given workers and threads each; yields its base URL and stops it on
    exit."""
    from django.db import connection

    connection.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1"}
    command = [sys.executable, "-m", "gunicorn", "jobsite.wsgi", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    if workers:
        command += ["--workers", str(workers)]
    if threads:
        command += ["--threads", str(threads)]
    process = subprocess.Popen(
        command,
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=open(Path(os.environ["JOBSITE_VAR_DIR"]) / "gunicorn.log", "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v1/health/", timeout=1)
                break
            except OSError as exc:
                if getattr(exc, "code", None) == 503:  # serving; no cluster yet
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn did not start: {exc}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def asgi_server(workers=1, nice=0, **settings):
    """uvicorn serving jobsite.asgi on a free loopback port, as the README's Operations run the event
    streams, at the given niceness, with this process's configuration and extra environment
    `settings`; yields its base URL and stops it on exit."""
    from django.db import connection

    connection.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1", **settings}
    log = open(Path(os.environ["JOBSITE_VAR_DIR"]) / "uvicorn.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "jobsite.asgi:application", "--port", str(port), "--workers", str(workers),
         "--lifespan", "off", "--timeout-graceful-shutdown", "2", "--log-level", "warning", "--no-access-log"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=log, preexec_fn=(lambda: os.nice(nice)) if nice else None)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"uvicorn did not start: {exc}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def block_items(tiles, around, grid, processing, options, folder, batch=64):
    """process_block's items for Tile rows `tiles`, as the workers run small tiles: in grid rows,
    `batch` at a time, each batch's adjacent tiles in blocks. `around`: tileindex.neighbours."""
    from jobs.raster.blocks import blocks
    from jobs.tileindex import grid_tile

    tiles = sorted(tiles, key=lambda t: (t.row, t.col))
    items = []
    for first in range(0, len(tiles), batch):
        places = {grid_tile(t): t for t in tiles[first:first + batch]}
        for block in blocks(list(places)):
            inside = set(block)
            ring = list(dict.fromkeys(n for place in block for n in around[places[place].pk] if n not in inside))
            items.append((block, ring, grid, processing, options, folder / f"{places[block[0]].number}.tif"))
    return items


def process_block(item):
    """A block of tiles' raster work alone (jobs.raster.blocks), with no job server. `item` is
    (grid tiles of the block, its neighbours, index grid, processing, GDAL options, output path)."""
    from jobs.raster import dem

    tiles, neighbours, grid, processing, options, out_path = item
    return dem.process_block(tiles=tiles, neighbours=neighbours, grid=grid, halo=1, processing=processing,
                             options=options, out_path=out_path)


def api_token(user):
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=user)[0].key


def api_call(url, token, method="GET", body=None):
    """One JSON request to the API; returns the decoded answer."""
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def database_arguments(parser):
    parser.add_argument("--database-url", default=None,
                        help="run on this (PostgreSQL) database, which is migrated and filled; default: a fresh SQLite file")


def record(bench, figures):
    """Print the figures as one JSON line and append them to bench/results.json with when and where."""
    from django.db import connection

    entry = {"bench": bench, "database": connection.vendor, **figures,
             "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
             "cpus": os.cpu_count(), "commit": _commit()}
    print(json.dumps(entry))
    path = Path(__file__).resolve().parent / "results.json"
    results = json.loads(path.read_text()) if path.exists() else []
    results.append(entry)
    path.write_text(json.dumps(results, indent=1) + "\n")


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BASE_DIR, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def wait_until(job_id, statuses, poll=0.01):
    from jobs.models import Job

    while True:
        status = Job.objects.filter(pk=job_id).values_list("status", flat=True).get()
        if status in statuses:
            return status
        time.sleep(poll)


def wait_for_success(job_id):
    from jobs.models import Job, JobStatus

    wait_until(job_id, JobStatus.final())
    job = Job.objects.get(pk=job_id)
    if job.status != JobStatus.SUCCEEDED:
        raise SystemExit(f"job {job.pk} ended {job.status}: {job.error}")
    return job
