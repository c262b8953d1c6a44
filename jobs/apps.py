import sys

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        from django_q.signals import post_spawn

        from datafiles.signals import datafile_in_use, datafile_stored
        from jobsite import gdalpolicy

        from . import queue, tasks, tileindex
        from .services.submit import jobs_reading, start_jobs_waiting_for

        gdalpolicy.configure(allowed_hosts=settings.GDAL_HTTP_HOSTS, timeout=settings.GDAL_HTTP_TIMEOUT,
                             connect_timeout=settings.GDAL_HTTP_CONNECT_TIMEOUT)
        _install_declared_job_types()
        post_spawn.connect(tasks.worker_spawned, dispatch_uid="jobs.worker_spawned")
        post_migrate.connect(queue.install_schedules, sender=self, dispatch_uid="jobs.install_schedules")
        post_migrate.connect(tileindex.install_default_collection, sender=self,
                             dispatch_uid="jobs.install_default_collection")
        datafile_stored.connect(start_jobs_waiting_for, dispatch_uid="jobs.start_jobs_waiting_for")
        datafile_in_use.connect(jobs_reading, dispatch_uid="jobs.jobs_reading")


def _install_declared_job_types():
    """The job types of JOBSITE_JOB_TYPES_FILE join the built-in ones. A bad file stops the process
    (web server, cluster, any command) before it serves anything, with the file's problems and no
    traceback. Exit status 4 is gunicorn's "the app failed to load", on which it stops instead of
    starting workers again, and runserver's reloader restarts only on 3."""
    from .declared import DeclarationError
    from .jobtypes import install_declared

    try:
        install_declared(settings.JOB_TYPES_FILES, settings.TOOL_PATH, settings.PYTHON_JOB_TYPES)
    except DeclarationError as exc:
        sys.stderr.write(f"jobsite: the job type files cannot be loaded:\n{exc}\n")
        raise SystemExit(4) from None
