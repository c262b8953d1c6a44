"""django-q2 entry points (named in jobs.queue): load by id, call the service."""

import logging
import os

from django.conf import settings

from datafiles import inbox
from jobsite import media
from .services import finish, repair, worker

logger = logging.getLogger(__name__)


def worker_name():
    return f"{settings.HOST_NAME}:{os.getpid()}"


def run_tiles(slot, token=None):
    if token is None:  # a message of the release before runners named a job: send runners instead
        repair.wake_runners()
        return
    worker.run_tiles(worker=worker_name(), slot=slot, token=token)


def merge(job_id):
    finish.job_merge(job_id=job_id)


def sweep():
    repair.sweep()


def scan_inboxes():
    inbox.scan_inboxes()


def remove_files(relpaths):
    media.remove_files(relpaths)


def worker_spawned(sender, proc_name, **kwargs):
    """django-q2's post_spawn signal, in each new worker process."""
    try:
        repair.worker_started()
    except Exception:  # a failure here must not stop the worker from starting
        logger.exception("%s could not take back the tiles of lost workers", proc_name)
