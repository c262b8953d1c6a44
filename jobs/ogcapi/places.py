"""Requests that hold a web worker for a while take a place first: at most so many at once on the
site, and one per user. A request that finds no place does without (answers at once).

- `sync_waits`: execute requests waiting for their job's results (JOBSITE_OGC_SYNC_WAITS); one
  that finds no place is answered with its job's status (201), as an asynchronous one is.
- `fetches`: execute requests fetching a file of a listed host (JOBSITE_OGC_HREF_FETCHES); one
  that finds no place is a 429.

The places are keys in the cache that every web process shares (Redis, JOBSITE_CACHE_URL); with
the local in-memory cache they count within one process only. Each expires after HOLD_SECONDS, so
that a process killed while it holds one gives it back.
"""

from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache

HOLD_SECONDS = 150  # longer than any request may run (the web server's time-out is 120 s)


class Places:
    def __init__(self, setting):
        self.setting = setting  # the name of the setting that says how many

    @contextmanager
    def place(self, user_id):
        """Yields whether this request has a place."""
        taken = self._take(user_id)
        try:
            yield bool(taken)
        finally:
            cache.delete_many(taken)

    def _take(self, user_id):
        """The keys of the user's place and of a free place on the site; none if either is taken."""
        mine = f"jobsite:place:{self.setting}:user:{user_id}"
        if not getattr(settings, self.setting) or not cache.add(mine, 1, HOLD_SECONDS):
            return []
        for number in range(getattr(settings, self.setting)):
            site = f"jobsite:place:{self.setting}:{number}"
            if cache.add(site, user_id, HOLD_SECONDS):
                return [mine, site]
        cache.delete(mine)
        return []


sync_waits = Places("OGC_SYNC_WAITS")
fetches = Places("OGC_HREF_FETCHES")
