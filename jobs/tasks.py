"""django-q2 entry points: load by id, call the service."""

import os
import socket

from . import services, storage


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


def run_tiles(job_id):
    services.job_run_tiles(job_id=job_id, worker=worker_name())


def merge(job_id):
    services.job_merge(job_id=job_id)


def sweep():
    services.sweep()


def remove_files(relpaths):
    storage.remove_files(relpaths)
