"""django-q2 entry points (named in jobs.queue): load by id, call the service."""

import logging
import os
import socket

from jobsite import media
from .services import finish, repair, worker

logger = logging.getLogger(__name__)


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


def run_tiles(job_id):
    worker.job_run_tiles(job_id=job_id, worker=worker_name())


def merge(job_id):
    finish.job_merge(job_id=job_id)


def sweep():
    repair.sweep()


def remove_files(relpaths):
    media.remove_files(relpaths)


def worker_spawned(sender, proc_name, **kwargs):
    """django-q2's post_spawn signal, in each new worker process."""
    try:
        repair.worker_started()
    except Exception:  # a failure here must not stop the worker from starting
        logger.exception("%s could not take back the tiles of lost workers", proc_name)
