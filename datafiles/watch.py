"""The inbox watcher: a process of its own beside each cluster's workers (`manage.py
watch_inboxes`, which the cluster's guard loop keeps running, see jobsite.supervised) that stores a
file delivered to an inbox folder (datafiles.inbox) within a moment of its completion.

It scans the inboxes when it starts (files that arrived while it was down), whenever the platform
notifies a change in one of their folders (inotify, through the watchdog library; unless
JOBSITE_INBOX_NOTIFY is off), and every JOBSITE_INBOX_SCAN_SECONDS in any case: for storage whose changes are not notified (a network file
system written from another machine), for folders made after it started, and for files of the
`stable` mode coming of age. Several watchers (one per cluster) share the work: a file is claimed
by one.
"""

import logging
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from jobsite.supervised import SupervisedCommand, beat, started_supervised

from .inbox import CLAIMED, PROCESSED, REJECTED, scan_inboxes, watched_folders

logger = logging.getLogger(__name__)

WAKE_SECONDS = 0.2  # how often the loop beats and looks at its stop flag while nothing happens

# A scan may take a file's inspection (up to twice JOBSITE_DATAFILE_INSPECT_SECONDS) between beats.
keep_running = SupervisedCommand("watch_inboxes", "the inbox watcher",
                                 lambda: 2 * settings.DATAFILE_INSPECT_SECONDS + 60).keep_running


class _Changed(FileSystemEventHandler):
    """Sets `changed` on a change of an inbox folder, but for the scans' own moves."""

    def __init__(self, changed):
        self.changed = changed

    def on_any_event(self, event):
        own = (f"/{CLAIMED}/", f"/{PROCESSED}/", f"/{REJECTED}/")
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        if event.event_type == "opened" or all(any(part in path for part in own) for path in paths if path):
            return
        if event.event_type == "moved" and f"/{CLAIMED}/" in event.src_path:  # a file a scan put back
            return
        self.changed.set()


def run(stop):
    """Store what arrives until `stop` is set."""
    started_supervised()
    changed = threading.Event()
    observer = Observer()
    folders = watched_folders()
    for path in folders if settings.INBOX_NOTIFY else ():
        if Path(path).is_dir():
            observer.schedule(_Changed(changed), path, recursive=True)
        else:
            logger.warning("inbox %s is not a folder; it is scanned every %s s", path, settings.INBOX_SCAN_SECONDS)
    observer.start()
    logger.info("the inbox watcher watches %s inbox folder(s) (notifications %s) and scans them every %s s",
                len(folders), "on" if settings.INBOX_NOTIFY else "off", settings.INBOX_SCAN_SECONDS)
    try:
        next_scan = 0.0
        while not stop.is_set():
            beat()
            if changed.is_set() or time.monotonic() >= next_scan:
                changed.clear()
                next_scan = time.monotonic() + settings.INBOX_SCAN_SECONDS
                try:
                    close_old_connections()
                    scan_inboxes(each_file=beat)
                except Exception:  # the database went away, say: try again, never end
                    logger.exception("scanning the inboxes failed; trying again")
                    close_old_connections()
                    next_scan = time.monotonic() + 1
            changed.wait(WAKE_SECONDS)
    finally:
        observer.stop()
        observer.join()
