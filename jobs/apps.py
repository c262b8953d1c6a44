import sys
from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        from django_q.signals import post_spawn

        from datafiles import inbox
        from datafiles.signals import datafile_in_use, datafile_stored
        from jobsite import gdalpolicy

        from . import broker, queue, runners, tasks, tileinbox, tileindex, tileload
        from .services import latetiles, repair
        from .services.waiting import jobs_reading, start_jobs_waiting_for

        gdalpolicy.configure(allowed_hosts=settings.GDAL_HTTP_HOSTS, timeout=settings.GDAL_HTTP_TIMEOUT,
                             connect_timeout=settings.GDAL_HTTP_CONNECT_TIMEOUT, cache_mb=settings.GDAL_CACHE_MB)
        _install_declared_job_types()
        post_spawn.connect(tasks.worker_spawned, dispatch_uid="jobs.worker_spawned")
        broker.every_second(runners.resend_unstarted)
        broker.every_second(repair.reclaim_expired_leases)
        inbox.register(tileinbox.tile_inbox_folders, tileinbox.scan_tile_inboxes)
        if settings.INBOXES or settings.TILE_INBOXES:
            from datafiles import watch

            broker.every_second(watch.keep_running)  # the inbox watcher, a process beside the workers
        post_migrate.connect(queue.install_schedules, sender=self, dispatch_uid="jobs.install_schedules")
        post_migrate.connect(tileindex.install_default_collection, sender=self,
                             dispatch_uid="jobs.install_default_collection")
        datafile_stored.connect(start_jobs_waiting_for, dispatch_uid="jobs.start_jobs_waiting_for")
        datafile_in_use.connect(jobs_reading, dispatch_uid="jobs.jobs_reading")
        tileload.tiles_loaded.connect(latetiles.start_jobs_waiting_for_tiles, dispatch_uid="jobs.jobs_waiting_for_tiles")


def _install_declared_job_types():
    """The job types of JOBSITE_JOB_TYPES_FILE join the built-in ones. A bad file stops the process
    (web server, cluster, any command) before it serves anything, with the file's problems and no
    traceback. Exit status 4 is gunicorn's "the app failed to load", on which it stops instead of
    starting workers again, and runserver's reloader restarts only on 3."""
    from .declared import DeclarationError
    from .jobtypes import install_declared

    try:
        install_declared(settings.JOB_TYPES_FILES, settings.TOOL_PATH, settings.PYTHON_JOB_TYPES,
                         max_time_limit=tool_time_limit())
    except DeclarationError as exc:
        if _checking_or_maintaining():
            sys.stderr.write(f"jobsite: warning: the job type files cannot be loaded, so none is:\n{exc}\n")
            return
        sys.stderr.write(f"jobsite: the job type files cannot be loaded:\n{exc}\n")
        raise SystemExit(4) from None


def tool_time_limit():
    """The longest time limit a declared tool may have: its tile's task must end before the
    cluster's timeout kills the worker (and leaves the tool behind)."""
    return max(1, settings.TASK_TIMEOUT - settings.TILE_TASK_BUDGET - 30)


# manage.py commands that must run while the job type files are broken: the checker itself, and
# the database's upkeep. Every other process (web server, cluster, the rest) stops.
MAINTENANCE_COMMANDS = {"check_job_types", "migrate", "showmigrations", "makemigrations", "check_cluster"}


def _checking_or_maintaining():
    return Path(sys.argv[0]).name == "manage.py" and len(sys.argv) > 1 and sys.argv[1] in MAINTENANCE_COMMANDS
