"""Execute requests that wait for their job's results hold a web worker while they wait: at most
JOBSITE_OGC_SYNC_WAITS of them at once in one web process, and one per user. A request that
finds no place is answered at once with its job's status (201), as an asynchronous one is."""

import threading
from contextlib import contextmanager

from django.conf import settings

_lock = threading.Lock()
_waiting = {}  # user id -> this process's requests of that user waiting now


@contextmanager
def place(user_id):
    """Yields whether this request may wait."""
    with _lock:
        allowed = sum(_waiting.values()) < settings.OGC_SYNC_WAITS and not _waiting.get(user_id)
        if allowed:
            _waiting[user_id] = 1
    try:
        yield allowed
    finally:
        if allowed:
            with _lock:
                del _waiting[user_id]
