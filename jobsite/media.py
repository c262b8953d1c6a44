"""Files under MEDIA_ROOT, by their path relative to it, and removing them only once the
transaction that forgot them has committed. Shared by the jobs and the data files."""

from pathlib import Path

from django.conf import settings
from django.db import transaction


def media_path(relpath):
    return Path(settings.MEDIA_ROOT) / relpath


def remove_files(relpaths):
    for relpath in relpaths:
        media_path(relpath).unlink(missing_ok=True)


def remove_files_on_commit(relpaths):
    relpaths = list(relpaths)
    if relpaths:
        transaction.on_commit(lambda: remove_files(relpaths))
