"""Inbox folders: files that other systems deliver onto storage the service reads (rsync, sftp, a
camera pipeline, a nightly delivery) become their users' data files, checked as uploads are.

`settings.INBOXES` lists the folders: a folder of one user, or a folder of one sub-folder per user
name. A scan (`scan_inboxes`: the inbox watcher runs one as soon as a folder changes, see
datafiles.watch; the cluster's sweep one every minute; `manage.py scan_inboxes` one now) takes each
folder's complete files, as `settings.INBOX_COMPLETE` says:

- `rename`: every file whose name is not a temporary one (a leading dot, as rsync writes, or a
  suffix of TEMPORARY): the writer writes under such a name and renames the file when it is done;
- `marker`: NAME once NAME.done is there (the marker goes with it);
- `stable`: NAME once it has not changed for `settings.INBOX_STABLE_SECONDS`.

Each file is claimed by a rename into the folder's CLAIMED sub-folder, so that of two scans only
one takes it, and stored by datafiles.services.datafile_store with an upload's checks in full (a
file of the same name is replaced, unless a job reads it). Then it is removed, or moved to
`processed/` (`settings.INBOX_DONE`); a refused file moves to `rejected/`, with NAME.error.txt
beside it saying why. Only regular files with no other link are read, and opened without
following links: a symbolic link, a device, a pipe or a hard link to a file elsewhere is refused
unread. A claimed file that a scan left behind (its process died) goes back after
`settings.TASK_TIMEOUT`.

Other apps add inboxes of their own kind with `register` (jobs: folders of tiles for collections),
which take complete files in the same way (`take_complete`) and are scanned and watched with these.
"""

import logging
import os
import stat
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File

from jobsite.exceptions import Conflict, LimitExceeded, Rejected, TooLarge

from .services import datafile_store

CLAIMED, PROCESSED, REJECTED = ".jobsite-claimed", "processed", "rejected"
DEFERRED = "deferred"  # what a scan makes of a file it put back
TEMPORARY = (".part", ".partial", ".tmp", ".filepart", ".crdownload", "~")
MARKER = ".done"

logger = logging.getLogger(__name__)

_kinds = []  # (folders, scan) of the inboxes other apps register


def register(folders, scan):
    """Inboxes of another kind: `folders()` gives their paths (for the watcher), `scan(each_file)`
    takes their complete files, calling `each_file()` after each, and returns {"stored": n,
    "rejected": n}."""
    if (folders, scan) not in _kinds:
        _kinds.append((folders, scan))


def watched_folders():
    """The folders of every inbox, for the watcher (datafiles.watch)."""
    return [path for path, _ in settings.INBOXES] + [path for folders, _ in _kinds for path in folders()]


def scan_inboxes(each_file=None):
    """Take the complete files of every inbox folder (and of the inboxes other apps register),
    calling `each_file()` after each. Returns {"stored": n, "rejected": n}."""
    counts = _scan_user_inboxes(each_file)
    for _, scan in _kinds:
        for outcome, n in scan(each_file).items():
            counts[outcome] += n
    return counts


def _scan_user_inboxes(each_file):
    counts = {"stored": 0, "rejected": 0}
    users = get_user_model().objects
    for path, username in settings.INBOXES:
        folders = [(Path(path), username)] if username else [
            (entry, entry.name) for entry in _entries(Path(path)) if entry.is_dir() and not entry.is_symlink()]
        for folder, name in folders:
            owner = users.filter(username=name, is_active=True).first()
            if owner is None:
                logger.warning("inbox %s: there is no active user named %s; its files stay", folder, name)
                continue
            for outcome in take_complete(folder, lambda claimed, name, owner=owner, folder=folder: _ingest(
                    folder, claimed, name, owner)):
                if outcome in counts:
                    counts[outcome] += 1
                if each_file is not None:
                    each_file()
    return counts


def _entries(folder):
    try:
        return sorted(Path(entry.path) for entry in os.scandir(folder))
    except FileNotFoundError:
        return []


def take_complete(folder, ingest):
    """Claim each complete file of `folder` and yield what `ingest(claimed path, name)` makes of it
    ("stored" or "rejected"); `ingest` moves the claimed file on (see `finish` and `refuse`), or
    puts it back for a later scan (`put_back`: DEFERRED)."""
    _return_stale_claims(folder)
    entries = _entries(folder)
    names = {entry.name for entry in entries}
    for entry in entries:
        if entry.name in (CLAIMED, PROCESSED, REJECTED) or (entry.is_dir() and not entry.is_symlink()):
            continue
        if not _complete(entry, names):
            continue
        claimed = folder / CLAIMED / f"{time.time_ns()}-{os.getpid()}-{entry.name}"
        claimed.parent.mkdir(exist_ok=True)
        try:
            os.rename(entry, claimed)
        except FileNotFoundError:  # another scan took it
            continue
        outcome = ingest(claimed, entry.name)
        if outcome != DEFERRED and settings.INBOX_COMPLETE == "marker":  # a file put back keeps its marker
            (folder / (entry.name + MARKER)).unlink(missing_ok=True)
        yield outcome


def _complete(entry, names):
    name = entry.name
    if name.startswith(".") or name.endswith(TEMPORARY):
        return False
    if settings.INBOX_COMPLETE == "marker":
        return not name.endswith(MARKER) and name + MARKER in names
    if settings.INBOX_COMPLETE == "stable":
        try:
            return time.time() - entry.lstat().st_mtime >= settings.INBOX_STABLE_SECONDS
        except FileNotFoundError:
            return False
    return True


def _ingest(folder, claimed, name, owner):
    """Store the claimed file as `owner`'s data file `name`; "stored" or "rejected"."""
    try:
        with opened(claimed) as upload:
            datafile_store(owner=owner, upload=upload, name=name, replace=True)
    except (Rejected, Conflict, TooLarge, LimitExceeded, NotAFile) as exc:
        reason = "; ".join(f"{field}: {problem}" for field, problem in exc.errors.items()) \
            if isinstance(exc, Rejected) else str(exc)
        return refuse(folder, claimed, name, reason)
    return finish(folder, claimed, name, f"stored as {owner.username}'s data file")


def refuse(folder, claimed, name, reason):
    """Move a claimed file that was refused to `rejected/`, with the reason beside it: "rejected"."""
    _move(claimed, folder / REJECTED, name, reason)
    logger.info("inbox %s: %s refused: %s", folder, name, reason)
    return "rejected"


def put_back(folder, claimed, name):
    """Return a claimed file to its inbox, for a later scan to try again (it could not be taken just
    now): DEFERRED. The watcher does not scan again for this move (datafiles.watch): the next
    periodic scan tries it."""
    if not os.path.lexists(folder / name):
        os.rename(claimed, folder / name)
    return DEFERRED


def finish(folder, claimed, name, what):
    """Remove a claimed file that was taken, or move it to `processed/` (settings.INBOX_DONE):
    "stored"."""
    if settings.INBOX_DONE == "processed":
        _move(claimed, folder / PROCESSED, name)
    else:
        claimed.unlink(missing_ok=True)
    logger.info("inbox %s: %s %s", folder, name, what)
    return "stored"


class NotAFile(Exception):
    pass


class opened:
    """The claimed file as an upload; NotAFile, before it is opened, if it is not a regular file
    of one link, and opened without following a link (and checked to be the same file)."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        info = os.lstat(self.path)
        if stat.S_ISLNK(info.st_mode):
            raise NotAFile("it is a symbolic link; only regular files are read")
        if not stat.S_ISREG(info.st_mode):
            raise NotAFile("it is not a regular file (a device, a pipe or a socket); only regular files are read")
        if info.st_nlink != 1:
            raise NotAFile("it has other hard links; only a file of its own is read")
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise NotAFile(f"it could not be opened: {exc.strerror}") from None
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):  # swapped meanwhile
            os.close(fd)
            raise NotAFile("it changed while it was being opened")
        self.upload = File(os.fdopen(fd, "rb"))
        self.upload.size = opened.st_size
        return self.upload

    def __exit__(self, *exc):
        self.upload.close()


def _move(path, folder, name, reason=None):
    """Move `path` into `folder` as `name` (with a time stamp if that is taken), with the reason
    beside it, written first: whoever sees the file there finds why."""
    folder.mkdir(exist_ok=True)
    target = folder / name
    if os.path.lexists(target):
        target = folder / f"{name}.{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9}"
    if reason is not None:
        (folder / f"{target.name}.error.txt").write_text(reason + "\n")
    os.rename(path, target)


def _return_stale_claims(folder):
    """Put back the files a scan claimed and never finished (its process died)."""
    for claimed in _entries(folder / CLAIMED):
        try:
            if time.time() - claimed.lstat().st_ctime > settings.TASK_TIMEOUT:
                name = claimed.name.split("-", 2)[-1]
                if not os.path.lexists(folder / name):
                    os.rename(claimed, folder / name)
        except FileNotFoundError:
            continue
