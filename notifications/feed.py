"""The events of the database, read once per web process for all of its event streams.

One thread per process (started by the first stream) reads the events that committed since it
last looked and hands each, already written as a Server-Sent Event, to the streams that want it
(`Feed.subscribe`). On PostgreSQL it waits for the NOTIFY that recording an event sends
(delivered at the event's commit) on a connection of its own, and also looks every
FALLBACK_SECONDS in case one was missed; on SQLite it looks every POLL_SECONDS. With no stream
open it reads nothing and listens to nothing.

Events are handed out in the order of their ids. An id is taken when the event is written and
becomes visible at its commit, so a later id can commit first: an event behind a missing id is
held until that id commits, or for HOLD_SECONDS (its transaction rolled back, or is slow). One
that commits later still goes out for LOOK_BACK_SECONDS, late and without an id, so that a
client's Last-Event-ID never goes back; a client that was away just then misses it.
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
KEEPALIVE_SECONDS = 15.0  # a comment line to every stream this often
KEEPALIVE = (None, ": keep-alive\n\n")
QUEUE_LIMIT = 2000  # events waiting for one stream; beyond that it ends and its client reconnects


def notify_streams():
    """Inside the transaction that records an event: wake the feeds when it commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])


def sse(event_id, event_type, data):
    """One Server-Sent Event: its id (none for a late one), type and JSON data on one line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event_type}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def first_missing(rows, after, now):
    """The id up to which events after `after` are all there or given up on, from `rows` of (id,
    created) in id order: a missing id is given up on once the event after it is HOLD_SECONDS old."""
    upto = after
    for event_id, created in rows:
        if event_id != upto + 1 and (now - created).total_seconds() < HOLD_SECONDS:
            break
        upto = event_id
    return upto


class Stream:
    """What one client's stream wants (the events of one owner, or all; of one job, or all) and
    where its events wait to be sent: an asyncio queue of its event loop, of (id, text)."""

    OVERFLOW = "overflow"  # put in place of events when the queue is full: the stream ends
    END = "end"  # the stream has lasted long enough: it ends, and its client reconnects

    def __init__(self, loop, queue, owner_id=None, job_id=None):
        self.loop, self.queue, self.owner_id, self.job_id = loop, queue, owner_id, job_id
        self.closed = False

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
        self.lock = threading.Lock()  # held only to change or copy what follows, never for a query
        self.woken = threading.Condition(self.lock)
        self.streams = set()
        self.horizon = None  # every event up to this id has been handed out (None: not reading)
        self.skipped = {}  # id -> when it was given up on
        self.missing_since = None
        self.thread = None
        self.kept_alive = time.monotonic()

    def subscribe(self, stream):
        """Add a stream; the id after which it gets every event (what came before it reads itself),
        or None if it closed meanwhile."""
        with self.lock:
            if self.horizon is not None and not stream.closed:
                self.streams.add(stream)
                return self.horizon
        start = self._starting_point()
        with self.lock:
            if stream.closed:
                return None
            if self.horizon is None:
                self.horizon, self.skipped = start
                self.missing_since = None
                if self.thread is None or not self.thread.is_alive():
                    self.thread = threading.Thread(target=self._run, name="jobsite event feed", daemon=True)
                    self.thread.start()
            self.streams.add(stream)
            self.woken.notify()
            return self.horizon

    def unsubscribe(self, stream):
        stream.closed = True
        with self.lock:
            self.streams.discard(stream)

    @staticmethod
    def _starting_point():
        """The newest event, and the ids below it not visible yet: they may still commit."""
        from .models import Event

        newest = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        seen = set(Event.objects.filter(id__gt=newest - 100, id__lte=newest).values_list("id", flat=True))
        now = time.monotonic()
        return newest, {i: now for i in range(max(newest - 99, 1), newest + 1) if i not in seen}

    def _run(self):
        listener = None
        while True:
            try:
                with self.lock:
                    idle = not self.streams
                if idle:
                    if listener is not None:  # a LISTEN nobody reads would hold up PostgreSQL's queue
                        listener.close()
                        listener = None
                    with self.lock:
                        while not self.streams:
                            self.horizon = None
                            self.woken.wait()
                if connection.vendor == "postgresql":
                    listener = listener or self._listen()
                    self._wait_for_notify(listener)
                else:
                    time.sleep(POLL_SECONDS)
                while self._read() == BATCH:
                    pass
            except Exception:  # the database went away, say: try again, never end
                logger.exception("the event feed failed; trying again")
                connection.close()
                if listener is not None:
                    listener.close()
                    listener = None
                time.sleep(1)
            finally:
                if time.monotonic() - self.kept_alive >= KEEPALIVE_SECONDS:
                    self.kept_alive = time.monotonic()
                    with self.lock:
                        streams = list(self.streams)
                    self._deliver({stream: [KEEPALIVE] for stream in streams})

    @staticmethod
    def _listen():
        import psycopg

        listener = psycopg.connect(**connection.get_connection_params(), autocommit=True,
                                   keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
        listener.execute(f"LISTEN {CHANNEL}")
        return listener

    def _wait_for_notify(self, listener):
        timeout = POLL_SECONDS if self.missing_since is not None else FALLBACK_SECONDS
        for _ in listener.notifies(timeout=timeout, stop_after=1):
            pass
        for _ in listener.notifies(timeout=0):  # the ones that came together with it
            pass

    def _read(self):
        """Hand out what committed since the last look; how many rows it read."""
        from django.db.models import Q
        from django.utils import timezone

        from .models import Event

        now = time.monotonic()
        self.skipped = {i: since for i, since in self.skipped.items() if now - since < LOOK_BACK_SECONDS}
        rows = list(Event.objects.filter(Q(id__gt=self.horizon) | Q(id__in=list(self.skipped)))
                    .order_by("id").values_list("id", "created", "type", "owner_id", "job_id", "payload")[:BATCH])
        late = [row for row in rows if row[0] <= self.horizon]
        fresh = [row for row in rows if row[0] > self.horizon]
        upto = first_missing([row[:2] for row in fresh], self.horizon, timezone.now())
        ready = [row for row in fresh if row[0] <= upto]
        if len(ready) < len(fresh) and self.missing_since is None:
            self.missing_since = now
        elif len(ready) == len(fresh):
            self.missing_since = None
        horizon = self.horizon
        for row in ready:  # the ids given up on
            self.skipped.update({i: now for i in range(horizon + 1, row[0])})
            horizon = row[0]
        for row in late:
            self.skipped.pop(row[0], None)
            logger.info("event %s committed after a later one had been sent; sent late", row[0])
        with self.lock:  # a stream subscribing from here on reads up to the new horizon itself
            self.horizon = horizon
            streams = list(self.streams)
        messages = [(owner_id, job_id, event_id, sse(event_id, event_type, payload))
                    for event_id, _, event_type, owner_id, job_id, payload in ready if event_type != "ping"]
        messages += [(owner_id, job_id, None, sse(None, event_type, payload))
                     for event_id, _, event_type, owner_id, job_id, payload in late if event_type != "ping"]
        self._deliver({stream: [(event_id, text) for owner_id, job_id, event_id, text in messages
                                if stream.wants(owner_id, job_id)] for stream in streams})
        return len(rows)

    @staticmethod
    def _deliver(wanted):
        """Give each stream its messages: one call into each event loop."""
        by_loop = {}
        for stream, messages in wanted.items():
            if messages:
                by_loop.setdefault(stream.loop, []).append((stream, messages))
        for loop, deliveries in by_loop.items():
            try:
                loop.call_soon_threadsafe(_put_all, deliveries)
            except RuntimeError:  # that loop has closed: its streams are gone
                pass


def _put_all(deliveries):
    for stream, messages in deliveries:
        stream.put(messages)


FEED = Feed()
