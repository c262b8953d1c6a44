"""Server-Sent Event streams of the caller's events: `GET /api/v1/events/` (all of the caller's
jobs and data files; staff: everybody's) and `GET /api/v1/jobs/{id}/events/` (one job's).

Each event is `id: N`, `event: TYPE` and `data: ` the webhook payload (`{"type", "timestamp",
"data"}`). A client that reconnects with `Last-Event-ID: N` (browsers' EventSource send it
themselves), or asks with `?after=N`, first gets every retained event after N (`after=0`: all
of them); without either a stream begins with the next event to happen, and its first line, an
`id:` alone, tells EventSource where that is.

Served through ASGI, a stream stays open and the process's feed (notifications.feed) hands it its
events as they commit, with a comment line every KEEPALIVE_SECONDS so that proxies keep it open
and a client that went away is noticed. Served through WSGI (gunicorn's sync workers, whose
processes must not be held by a connection that never ends) the answer is what is there now, and
the client reconnects after RECONNECT_MS: the same events, later.
"""

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from jobs.api.pagination import BIGGEST
from jobs.models import Job

from .feed import BATCH, FEED, Stream, sse
from .models import Event, EventType

KEEPALIVE_SECONDS = 15
RECONNECT_MS = 2000
_open = {}  # user id -> this process's open streams of that user


async def all_events(request):
    return await _answer(request, job_id=None)


async def job_events(request, pk):
    return await _answer(request, job_id=pk)


async def _answer(request, job_id):
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405,
                            headers={"Allow": "GET, HEAD"})
    live = isinstance(request, ASGIRequest)
    try:
        user, owner_id = await _in_thread(_caller, live)(request, job_id)
        after = _after(request)
    except exceptions.APIException as refusal:
        headers = {"WWW-Authenticate": "Token"} if refusal.status_code == 401 else {}
        return JsonResponse({"detail": str(refusal.detail)}, status=refusal.status_code, headers=headers)
    if request.method == "HEAD":
        return _event_stream(HttpResponse, "")
    if not live:
        return _event_stream(HttpResponse, await _in_thread(_at_once, live)(owner_id, job_id, after))
    if _open.get(user.pk, 0) >= settings.STREAMS_PER_USER:
        return JsonResponse({"detail": f"at most {settings.STREAMS_PER_USER} event streams at once per user; "
                                       "close one first"}, status=429)
    stream = Stream(asyncio.get_running_loop(), asyncio.Queue(), owner_id=owner_id, job_id=job_id)
    return _event_stream(StreamingHttpResponse, _messages(stream, user.pk, after))


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
    """The authenticated user, as the API knows them, and whose events they may see (None: all)."""
    drf_request = Request(request, authenticators=[auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES])
    user = drf_request.user
    if user is None or not user.is_authenticated:
        raise exceptions.NotAuthenticated()
    if not user.is_active:
        raise exceptions.AuthenticationFailed("User inactive or deleted.")
    if job_id is not None and (job_id > BIGGEST or not Job.objects.visible_to(user).filter(pk=job_id).exists()):
        raise exceptions.NotFound("No job matches the given query.")
    return user, None if user.is_staff else user.pk


def _at_once(owner_id, job_id, after):
    """What a stream served through WSGI answers: the events after `after` (from the newest without
    it) and the id to reconnect with."""
    if after is None:
        newest = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
        return f"retry: {RECONNECT_MS}\nid: {newest}\n\n"
    return f"retry: {RECONNECT_MS}\n\n" + "".join(message for _, message in _backlog(owner_id, job_id, after, None))


def _backlog(owner_id, job_id, after, upto):
    """The stream's events with ids in (after, upto], oldest first, at most BATCH."""
    if after is None:
        return []
    events = Event.objects.filter(id__gt=after).exclude(type=EventType.PING)
    if upto is not None:
        events = events.filter(id__lte=upto)
    if owner_id is not None:
        events = events.filter(owner_id=owner_id)
    if job_id is not None:
        events = events.filter(job_id=job_id)
    return [(event_id, sse(event_id, event_type, payload)) for event_id, event_type, payload
            in events.order_by("id").values_list("id", "type", "payload")[:BATCH]]


def _in_thread(function, live):
    """`function` in the request's thread; for a live stream, which lasts, without keeping the
    database connections it opened there."""
    if not live:
        return sync_to_async(function)

    def released(*args):
        try:
            return function(*args)
        finally:
            for connection in connections.all(initialized_only=True):
                connection.close()
    return sync_to_async(released)


async def _messages(stream, user_id, after):
    _open[user_id] = _open.get(user_id, 0) + 1
    try:
        horizon = await _in_thread(FEED.subscribe, True)(stream)
        yield f"retry: {RECONNECT_MS}\n" + (f"id: {horizon}\n\n" if after is None else "\n")
        while after is not None and after < horizon:
            backlog = await _in_thread(_backlog, True)(stream.owner_id, stream.job_id, after, horizon)
            if backlog:
                yield "".join(message for _, message in backlog)
            after = backlog[-1][0] if len(backlog) == BATCH else horizon
        while True:
            try:
                first = await asyncio.wait_for(stream.queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            messages = [first]
            while not stream.queue.empty():
                messages.append(stream.queue.get_nowait())
            if Stream.OVERFLOW in messages:  # too far behind: the client reconnects and reads the rest
                yield "".join(messages[:messages.index(Stream.OVERFLOW)])
                return
            yield "".join(messages)
    finally:
        FEED.unsubscribe(stream)
        _open[user_id] -= 1
        if not _open[user_id]:
            del _open[user_id]
