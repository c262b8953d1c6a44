"""The events of the database, read once per web process for all of its event streams.

One thread per process (started by the first stream) reads the events that committed since it
last looked and hands each, already written as a Server-Sent Event, to the streams that want it
(`Feed.subscribe`). On PostgreSQL it waits for the NOTIFY that recording an event sends
(delivered at the event's commit) on a connection of its own, and also looks every
FALLBACK_SECONDS in case one was missed; on SQLite it looks every POLL_SECONDS, while any stream
is open. However many streams are open, the database answers one query per wake-up.

Events are handed out in the order of their ids, with none left out. An id is taken when the event
is written and becomes visible at its commit, so a later id can commit first: an event behind a
missing id is held until that id commits, or for HOLD_SECONDS (its transaction rolled back, or
is slow: one that commits later still goes out, late, for LOOK_BACK_SECONDS). So a stream that
reconnects asking for the events after the last id it received misses nothing.
"""

import json
import logging
import threading
import time

from django.db import connection

logger = logging.getLogger(__name__)

CHANNEL = "jobsite_events"
POLL_SECONDS = 0.1
FALLBACK_SECONDS = 5.0
HOLD_SECONDS = 2.0
LOOK_BACK_SECONDS = 60.0
BATCH = 1000
QUEUE_LIMIT = 2000  # events waiting for one stream; beyond that it ends and its client reconnects


def notify_streams():
    """Inside the transaction that records an event: wake the feeds when it commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])


def sse(event_id, event_type, data):
    """One Server-Sent Event: its id, type and JSON data on one line."""
    return f"id: {event_id}\nevent: {event_type}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Stream:
    """What one client's stream wants (the events of one owner, or all; of one job, or all) and
    where its events wait to be sent: an asyncio queue of its event loop."""

    OVERFLOW = None  # put in place of an event when the queue is full: the stream ends

    def __init__(self, loop, queue, owner_id=None, job_id=None):
        self.loop, self.queue, self.owner_id, self.job_id = loop, queue, owner_id, job_id

    def wants(self, owner_id, job_id):
        return (self.owner_id is None or self.owner_id == owner_id) and (self.job_id is None or self.job_id == job_id)

    def put(self, messages):
        """In the stream's event loop: queue what it wants, or end it when too much waits."""
        if self.queue.qsize() + len(messages) > QUEUE_LIMIT:
            self.queue.put_nowait(self.OVERFLOW)
        else:
            for message in messages:
                self.queue.put_nowait(message)


class Feed:
    def __init__(self):
        self.lock = threading.Lock()
        self.woken = threading.Condition(self.lock)
        self.streams = set()
        self.horizon = None  # every event up to this id has been handed out (None: not reading)
        self.skipped = {}  # id -> when it was given up on
        self.missing_since = None
        self.thread = None

    def subscribe(self, stream):
        """Add a stream; the id after which it gets every event (what came before it reads itself)."""
        with self.lock:
            if self.horizon is None:
                self._start_reading()
            self.streams.add(stream)
            self.woken.notify()
            return self.horizon

    def unsubscribe(self, stream):
        with self.lock:
            self.streams.discard(stream)

    def _start_reading(self):
        """Begin at the newest event; ids below it not yet visible may still commit: look for them."""
        from .models import Event

        newest = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        seen = set(Event.objects.filter(id__gt=newest - 100, id__lte=newest).values_list("id", flat=True))
        now = time.monotonic()
        self.skipped = {i: now for i in range(max(newest - 99, 1), newest + 1) if i not in seen}
        self.horizon, self.missing_since = newest, None
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="jobsite event feed", daemon=True)
            self.thread.start()

    def _run(self):
        listener = None
        while True:
            try:
                with self.lock:
                    while not self.streams:
                        self.horizon = None
                        self.woken.wait()
                if connection.vendor == "postgresql":
                    listener = listener or self._listen()
                    self._wait_for_notify(listener)
                else:
                    time.sleep(POLL_SECONDS)
                self._read()
            except Exception:  # the database went away, say: try again, never end
                logger.exception("the event feed failed; trying again")
                connection.close()
                if listener is not None:
                    listener.close()
                    listener = None
                time.sleep(1)

    def _listen(self):
        import psycopg

        listener = psycopg.connect(**connection.get_connection_params(), autocommit=True)
        listener.execute(f"LISTEN {CHANNEL}")
        return listener

    def _wait_for_notify(self, listener):
        timeout = POLL_SECONDS if self.missing_since is not None else FALLBACK_SECONDS
        for _ in listener.notifies(timeout=timeout, stop_after=1):
            pass
        for _ in listener.notifies(timeout=0):  # the ones that came together with it
            pass

    def _read(self):
        from django.db.models import Q

        from .models import Event

        now = time.monotonic()
        self.skipped = {i: since for i, since in self.skipped.items() if now - since < LOOK_BACK_SECONDS}
        rows = list(Event.objects.filter(Q(id__gt=self.horizon) | Q(id__in=list(self.skipped)))
                    .order_by("id").values_list("id", "type", "owner_id", "job_id", "payload")[:BATCH])
        ready = []
        horizon = self.horizon
        for row in rows:
            event_id = row[0]
            if event_id <= horizon:  # one given up on, committed after all
                self.skipped.pop(event_id, None)
                logger.warning("event %s committed %.0f s after a later one; sent late", event_id, HOLD_SECONDS)
                ready.append(row)
                continue
            if event_id != horizon + 1:
                if self.missing_since is None:
                    self.missing_since = now
                if now - self.missing_since < HOLD_SECONDS:
                    break
                self.skipped.update({i: now for i in range(horizon + 1, event_id)})
            self.missing_since = None
            horizon = event_id
            ready.append(row)
        with self.lock:
            self.horizon = horizon
            self._hand_out(ready)

    def _hand_out(self, rows):
        """With the lock held: give each stream the events it wants, one call per event loop."""
        if not rows or not self.streams:
            return
        messages = [(owner_id, job_id, sse(event_id, event_type, payload))
                    for event_id, event_type, owner_id, job_id, payload in rows if event_type != "ping"]
        by_loop = {}
        for stream in self.streams:
            wanted = [message for owner_id, job_id, message in messages if stream.wants(owner_id, job_id)]
            if wanted:
                by_loop.setdefault(stream.loop, []).append((stream, wanted))
        for loop, deliveries in by_loop.items():
            try:
                loop.call_soon_threadsafe(_put_all, deliveries)
            except RuntimeError:  # that loop has closed: its streams are gone
                pass


def _put_all(deliveries):
    for stream, messages in deliveries:
        stream.put(messages)


FEED = Feed()
