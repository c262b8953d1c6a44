"""Server-Sent Event streams of the caller's events: `GET /api/v1/events/` (all of the caller's
jobs and data files; staff: everybody's) and `GET /api/v1/jobs/{id}/events/` (one job's).

Each event is `id: N`, `event: TYPE` and `data: ` the webhook payload (`{"type", "timestamp",
"data"}`). A client that reconnects with `Last-Event-ID: N` (browsers' EventSource send it
themselves), or asks with `?after=N`, first gets every retained event after N (`after=0`: all
of them); without either a stream begins with the next event to happen. Its first lines say
where it begins (`id:` alone, which sets a client's last event id without an event).

Served through ASGI, a stream stays open and the process's feed (notifications.feed) hands it its
events as they commit, and a comment line every 15 s so that proxies keep it open. It ends after
MAX_SECONDS (or when the caller's token expires, if sooner), and the client reconnects: so a
revoked token, a deactivated user or a lost staff flag stops it soon. Served through WSGI
(gunicorn's sync workers, whose processes must not be held by a connection that never ends) the
answer is what is there now, and the client reconnects after RECONNECT_MS.
"""

import asyncio
import weakref
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from jobs.api.pagination import BIGGEST
from jobs.models import Job

from .feed import BATCH, FEED, Stream, first_missing, sse
from .models import Event, EventType

RECONNECT_MS = 2000
MAX_SECONDS = 600
DATABASE_SLOTS = 8  # a process's streams at once in the database: reconnecting crowds wait here
_open = {}  # user id -> this process's open streams of that user
_slots = {}  # event loop -> its semaphore of DATABASE_SLOTS


async def all_events(request):
    return await _answer(request, job_id=None)


async def job_events(request, pk):
    return await _answer(request, job_id=pk)


async def _answer(request, job_id):
    live = isinstance(request, ASGIRequest)
    try:
        user, owner_id, seconds = await _in_thread(_caller, live)(request, job_id)
        if request.method not in ("GET", "HEAD"):
            raise exceptions.MethodNotAllowed(request.method)
        after = _after(request)
    except exceptions.APIException as refusal:
        headers = {"WWW-Authenticate": "Token"} if refusal.status_code == 401 else {}
        if refusal.status_code == 405:
            headers["Allow"] = "GET, HEAD"
        return JsonResponse({"detail": str(refusal.detail)}, status=refusal.status_code, headers=headers)
    if request.method == "HEAD":
        return _event_stream(HttpResponse, "")
    if not live:
        return _event_stream(HttpResponse, await _in_thread(_at_once, live)(owner_id, job_id, after))
    if _open.get(user.pk, 0) >= settings.STREAMS_PER_USER:
        return JsonResponse({"detail": f"at most {settings.STREAMS_PER_USER} event streams at once per user; "
                                       "close one first"}, status=429)
    slot = _Slot(user.pk)
    stream = Stream(asyncio.get_running_loop(), asyncio.Queue(), owner_id=owner_id, job_id=job_id)
    response = _event_stream(StreamingHttpResponse, _messages(stream, slot, after, seconds))
    weakref.finalize(response, slot.release)  # also when it never started (a client gone at once)
    return response


class _Slot:
    """One of a user's open streams, given back once."""

    def __init__(self, user_id):
        self.user_id = user_id
        _open[user_id] = _open.get(user_id, 0) + 1

    def release(self):
        if self.user_id is not None:
            _open[self.user_id] -= 1
            if not _open[self.user_id]:
                del _open[self.user_id]
            self.user_id = None


def _event_stream(response_class, content):
    # X-Accel-Buffering: nginx passes each event on at once.
    return response_class(content, content_type="text/event-stream",
                          headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _after(request):
    """The id after which the client wants events: Last-Event-ID, else ?after=, else None."""
    name, value = "Last-Event-ID", request.headers.get("Last-Event-ID")
    if value is None:
        name, value = "after", request.GET.get("after")
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or int(value) > BIGGEST:
        raise exceptions.ParseError(f"{name}: an event id, a whole number from 0 to {BIGGEST}")
    return int(value)


def _caller(request, job_id):
    """The authenticated user, as the API knows them, whose events they may see (None: all), and
    how long a stream of theirs may last."""
    drf_request = Request(request, authenticators=[auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
    user = drf_request.user
    if user is None or not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    if not user.is_active:
        raise exceptions.AuthenticationFailed("User inactive or deleted.")
    if job_id is not None and (job_id > BIGGEST or not Job.objects.visible_to(user).filter(pk=job_id).exists()):
        raise exceptions.NotFound("No job matches the given query.")
    seconds = MAX_SECONDS
    token_created = getattr(drf_request.auth, "created", None)
    if token_created is not None and settings.TOKEN_TTL_SECONDS:
        expires = token_created + timedelta(seconds=settings.TOKEN_TTL_SECONDS)
        seconds = max(1, min(seconds, (expires - timezone.now()).total_seconds()))
    return user, None if user.is_staff else user.pk, seconds


def _matching(owner_id, job_id):
    events = Event.objects.exclude(type=EventType.PING)
    if owner_id is not None:
        events = events.filter(owner_id=owner_id)
    if job_id is not None:
        events = events.filter(job_id=job_id)
    return events


def _at_once(owner_id, job_id, after):
    """What a stream served through WSGI answers: the caller's events after `after` up to the
    first id that may still commit, and that id to reconnect with (from the newest without
    `after`)."""
    newest = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    start = max(newest - 100, 0) if after is None else after
    ids = Event.objects.filter(id__gt=start).order_by("id").values_list("id", "created")[:BATCH]
    upto = first_missing(ids, start, timezone.now())
    messages = [] if after is None else _backlog(owner_id, job_id, after, upto)
    return f"retry: {RECONNECT_MS}\n" + "".join(text for _, text in messages) + f"id: {upto}\n\n"


def _backlog(owner_id, job_id, after, upto):
    """The stream's events with ids in (after, upto], oldest first, at most BATCH."""
    events = _matching(owner_id, job_id).filter(id__gt=after, id__lte=upto).order_by("id")
    return [(event_id, sse(event_id, event_type, payload))
            for event_id, event_type, payload in events.values_list("id", "type", "payload")[:BATCH]]


def _in_thread(function, live):
    """`function` in the request's thread; for a live stream, which lasts, without keeping the
    database connections it opened there, and with at most DATABASE_SLOTS of them at once."""
    if not live:
        return sync_to_async(function)

    def released(*args):
        try:
            return function(*args)
        finally:
            for connection in connections.all(initialized_only=True):
                connection.close()

    async def call(*args):
        slots = _slots.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(DATABASE_SLOTS))
        async with slots:
            return await sync_to_async(released)(*args)
    return call


async def _messages(stream, slot, after, seconds):
    ending = stream.loop.call_later(seconds, stream.queue.put_nowait, Stream.END)
    try:
        horizon = await _in_thread(FEED.subscribe, True)(stream)
        if horizon is None:
            return
        last = horizon if after is None else after
        yield f"retry: {RECONNECT_MS}\nid: {last}\n\n"
        while last < horizon:
            backlog = await _in_thread(_backlog, True)(stream.owner_id, stream.job_id, last, horizon)
            if backlog:
                yield "".join(text for _, text in backlog)
            last = backlog[-1][0] if len(backlog) == BATCH else horizon
        while True:
            waiting = [await stream.queue.get()]
            while not stream.queue.empty():
                waiting.append(stream.queue.get_nowait())
            out = []
            for message in waiting:
                if message in (Stream.OVERFLOW, Stream.END):  # the client reconnects and reads the rest
                    if out:
                        yield "".join(out)
                    return
                event_id, text = message
                if event_id is not None:
                    if event_id <= last:  # had it already (another process's feed was behind, say)
                        continue
                    last = event_id
                out.append(text)
            if out:
                yield "".join(out)
    finally:
        ending.cancel()
        FEED.unsubscribe(stream)
        slot.release()
