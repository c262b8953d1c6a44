"""Event streams (Server-Sent Events): who may read which, resuming by Last-Event-ID, served at once
through WSGI and live through uvicorn, with events handed out in the order of their ids."""

import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from jobs.models import Job
from notifications import events as recording
from notifications.models import Event, EventType

from .conftest import wait_for
from .sse_client import EventStream


def parse(body):
    """The events of an answer, as (id, type), and the last `id:` it gives."""
    found, last_id, fields = [], None, {}
    for line in body.decode().split("\n"):
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
            continue
        if "id" in fields:
            last_id = int(fields["id"])
        if "data" in fields:
            found.append((int(fields["id"]), fields["event"]))
        fields = {}
    return found, last_id


def make_job(owner):
    return Job.objects.create(type="slope", owner=owner, tiles_total=0)


def record(job, *types):
    recording.record_job_events(job.pk, list(types))
    return list(Event.objects.filter(job=job).order_by("id").values_list("id", flat=True))[-len(types):]


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/jobs/1/events/"])
def test_a_stream_without_credentials_is_a_401(db, client, path):
    answer = client.get(path)
    assert answer.status_code == 401 and answer["WWW-Authenticate"] == "Token"
    assert answer.json() == {"detail": "Authentication credentials were not provided."}


def test_another_users_job_stream_is_a_404_and_staff_may_read_it(db, owner, other, staff, client_for):
    job = make_job(owner)
    assert client_for(other).get(f"/api/v1/jobs/{job.pk}/events/").status_code == 404
    assert client_for(other).get("/api/v1/jobs/9223372036854775808/events/").status_code == 404
    assert client_for(staff).get(f"/api/v1/jobs/{job.pk}/events/").status_code == 200


def test_a_stream_served_at_once_gives_the_callers_events_after_the_last_id(db, owner, other, staff, client_for):
    mine, theirs = make_job(owner), make_job(other)
    first = record(mine, EventType.JOB_STARTED)[0]
    record(theirs, EventType.JOB_STARTED)
    later = record(mine, EventType.JOB_PROGRESS, EventType.JOB_SUCCEEDED)
    backdate()
    answer = client_for(owner).get("/api/v1/events/", HTTP_LAST_EVENT_ID=str(first))
    assert answer.status_code == 200 and answer["Content-Type"] == "text/event-stream"
    assert answer["Cache-Control"] == "no-cache" and answer.content.startswith(b"retry: 2000\n")
    assert parse(answer.content)[0] == [(later[0], "job.progress"), (later[1], "job.succeeded")]
    # ?after= is the same for clients that cannot set a header; a job's stream is that job's alone
    assert parse(client_for(owner).get(f"/api/v1/jobs/{mine.pk}/events/?after=0").content)[0] == [
        (first, "job.started"), (later[0], "job.progress"), (later[1], "job.succeeded")]
    # staff read everybody's
    assert len(parse(client_for(staff).get("/api/v1/events/?after=0").content)[0]) == 4


def backdate():
    """Events older than the hold: ids missing below them (rolled back) are given up on."""
    Event.objects.update(created=timezone.now() - timedelta(seconds=10))


def test_a_stream_without_a_last_id_begins_after_the_newest_event(db, owner, client_for):
    job = make_job(owner)
    newest = record(job, EventType.JOB_STARTED)[0]
    backdate()
    events, last_id = parse(client_for(owner).get(f"/api/v1/jobs/{job.pk}/events/").content)
    assert (events, last_id) == ([], newest)
    # and an answer after an id moves the client past the events that are not its own
    other_job = make_job(User.objects.create_user("third"))
    newer = record(other_job, EventType.JOB_STARTED)[0]
    backdate()
    assert parse(client_for(owner).get(f"/api/v1/events/?after={newest}").content) == ([], newer)


def test_pings_are_not_in_streams(db, owner, client_for):
    from notifications.models import Subscription

    subscription = Subscription.objects.create(owner=owner, url="https://example.org/hook", secret="whsec_x")
    recording.ping(subscription)
    backdate()
    assert parse(client_for(owner).get("/api/v1/events/?after=0").content)[0] == []


@pytest.mark.parametrize("header,value,field", [
    ("HTTP_LAST_EVENT_ID", "x", "Last-Event-ID"), ("HTTP_LAST_EVENT_ID", "-1", "Last-Event-ID"),
    ("HTTP_LAST_EVENT_ID", "99999999999999999999", "Last-Event-ID"), ("QUERY_STRING", "after=1.5", "after")])
def test_a_bad_last_event_id_is_a_400_naming_it(db, owner, client_for, header, value, field):
    answer = client_for(owner).get("/api/v1/events/", **{header: value})
    assert answer.status_code == 400
    assert answer.json()["detail"] == f"{field}: an event id, a whole number from 0 to 9223372036854775807"


def test_only_get_and_head(db, owner, client_for):
    assert client_for(owner).post("/api/v1/events/").status_code == 405
    assert client_for(owner).head("/api/v1/events/").status_code == 200


# Live, through uvicorn.

@pytest.mark.cluster
def test_a_live_stream_gets_events_as_they_commit_and_resumes_by_last_event_id(asgi_server, owner, other):
    url = asgi_server()
    token = Token.objects.create(user=owner).key
    job = make_job(owner)
    with EventStream(f"{url}/api/v1/jobs/{job.pk}/events/", token) as stream:
        assert stream.status == 200
        started = record(job, EventType.JOB_STARTED)[0]
        record(make_job(other), EventType.JOB_STARTED)  # not this job's
        progress = record(job, EventType.JOB_PROGRESS)[0]
        got = stream.events(2)
        assert [(i, t) for i, t, _ in got] == [(started, "job.started"), (progress, "job.progress")]
        assert got[0][2]["data"]["id"] == job.pk and got[0][2]["type"] == "job.started"
    missed = record(job, EventType.JOB_PROGRESS, EventType.JOB_SUCCEEDED)  # while nobody listens
    with EventStream(f"{url}/api/v1/jobs/{job.pk}/events/", token, last_event_id=progress) as again:
        assert [i for i, _, _ in again.events(2)] == missed
        live = record(job, EventType.JOB_STARTED)[0]
        assert [i for i, _, _ in again.events(1)] == [live]
    with EventStream(f"{url}/api/v1/jobs/{job.pk}/events/", Token.objects.create(user=other).key) as theirs:
        assert theirs.status == 404


@pytest.mark.cluster
def test_streams_per_user_are_limited_and_a_closed_one_frees_its_place(asgi_server, owner):
    url = asgi_server(JOBSITE_STREAMS_PER_USER="2")
    token = Token.objects.create(user=owner).key
    first, second = EventStream(f"{url}/api/v1/events/", token), EventStream(f"{url}/api/v1/events/", token)
    with EventStream(f"{url}/api/v1/events/", token) as third:
        assert third.status == 429
    first.close()
    second.close()

    def opens():
        with EventStream(f"{url}/api/v1/events/", token) as again:
            return again.status == 200
    wait_for(opens, timeout=10, interval=0.2, message="a place to be free")


@pytest.mark.cluster
def test_a_stream_ends_when_its_token_expires(asgi_server, owner):
    url = asgi_server(JOBSITE_TOKEN_TTL_SECONDS="3")
    token = Token.objects.create(user=owner).key
    with EventStream(f"{url}/api/v1/events/", token) as stream:
        start = time.monotonic()
        with pytest.raises(AssertionError, match="the stream ended"):
            stream.events(1, timeout=30)
        assert time.monotonic() - start < 10


@pytest.mark.cluster
def test_an_event_that_commits_after_a_later_one_still_comes_first(asgi_server, owner, client_for):
    """On PostgreSQL an id is taken at insert: the event of a slower transaction may commit after a
    later id's. Streams hold the later one until it comes, live and served at once. (SQLite has
    one writer at a time: there an event that rolled back is never seen, and the next one comes.)"""
    url = asgi_server()
    token = Token.objects.create(user=owner).key
    slow_job, quick_job = make_job(owner), make_job(owner)
    before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    with EventStream(f"{url}/api/v1/events/", token) as stream:
        if connection.vendor == "postgresql":
            inserted, go_on, ids = threading.Event(), threading.Event(), []

            def slow():
                with transaction.atomic():
                    ids.extend(record(slow_job, EventType.JOB_STARTED))
                    inserted.set()
                    go_on.wait(10)
                connection.close()

            thread = threading.Thread(target=slow)
            thread.start()
            inserted.wait(10)
            later = record(quick_job, EventType.JOB_STARTED)[0]
            assert later > ids[0]
            # served at once, the answer stops before the id that has not committed
            assert parse(client_for(owner).get(f"/api/v1/events/?after={before}").content) == ([], before)
            go_on.set()
            thread.join()
            assert [i for i, _, _ in stream.events(2)] == [ids[0], later]
            assert parse(client_for(owner).get(f"/api/v1/events/?after={before}").content) == (
                [(ids[0], "job.started"), (later, "job.started")], later)
        else:
            try:
                with transaction.atomic():
                    record(slow_job, EventType.JOB_STARTED)
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            later = record(quick_job, EventType.JOB_PROGRESS)[0]
            assert [i for i, _, _ in stream.events(1)] == [later]
