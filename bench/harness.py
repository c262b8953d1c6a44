"""What the benchmarks share: a throw-away jobsite configuration, a real cluster, waiting for jobs."""

import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
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
    return work


@contextmanager
def cluster():
    """A real `manage.py qcluster` with this process's configuration, stopped on exit."""
    from django.db import connection

    connection.close()
    process = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=BASE_DIR, env=os.environ.copy(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(60)


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
