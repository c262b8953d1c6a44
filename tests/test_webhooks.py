"""Webhooks: the address rules, signed deliveries to a real local receiver, in order per job,
retried, disabled by 410, managed through the API and the admin."""

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import lifecycle
from jobs.models import Job
from jobs.services.submit import job_submit
from jobs.services.claims import claim_tiles
from jobs.services.worker import _record_succeeded
from jobsite import outbound
from jobsite.exceptions import Rejected
from notifications import delivery
from notifications.models import Attempt, Delivery, Event, Subscription

from .test_execution import run
from .webhook_receiver import Receiver


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_RETRY_SECONDS = [60, 60, 60]
    running = Receiver().start()
    yield running
    running.stop()


def subscribe(owner, url, events=()):
    return Subscription.objects.create(owner=owner, url=url, events=list(events), secret=outbound.new_secret())


def due_now():
    Delivery.objects.filter(status=Delivery.Status.PENDING).update(next_try=timezone.now())


@pytest.mark.parametrize("url,rule", [
    ("ftp://example.org/hook", "must be an http or https URL"),
    ("http:///hook", "must name a host"),
    ("http://user:secret@example.org/", "must not hold a user name or password"),
    ("http://exa mple.org/", "must not contain spaces"),
    ("http://127.0.0.1:8000/", "must not point to a loopback address (127.0.0.1)"),
    ("http://10.1.2.3/", "must not point to a private address (10.1.2.3)"),
    ("http://192.168.0.10/", "must not point to a private address"),
    ("http://169.254.169.254/latest/meta-data/", "must not point to a link-local address"),
    ("http://[::1]/", "must not point to a loopback address (::1)"),
    ("http://[::ffff:127.0.0.1]/", "must not point to a loopback address"),
    ("http://[::ffff:10.0.0.1]/", "must not point to a private address"),
    ("http://[2002:a00:1::]/", "must not point to a private address"),  # 6to4 of 10.0.0.1
    ("http://[64:ff9b::a9fe:a9fe]/", "must not point to a link-local address"),  # NAT64 of 169.254.169.254
    ("http://[fe80::1]/", "must not point to a link-local address"),
    ("http://224.0.0.1/", "must not point to a multicast address"),
    ("http://0.0.0.0/", "only public addresses are allowed"),
    ("http://100.64.0.1/", "only public addresses are allowed"),
    ("http://jobs.example.org/hook", "must not point to the service itself (jobs.example.org)"),
    ("http://jobs.example.org./hook", "must not point to the service itself (jobs.example.org)"),
    ("http://jobs.example.org\u3002/hook", "must not point to the service itself (jobs.example.org)"),
    ("https://api.internal.example.net/", "must not point to the service itself (api.internal.example.net)"),
    ("http://[64:ff9b:1::a00:1]/", "only public addresses are allowed"),
    ("http://[fec0::1]/", "only public addresses are allowed"),
])
def test_a_webhook_url_is_refused_naming_the_rule(settings, url, rule):
    settings.ALLOWED_HOSTS = ["jobs.example.org", ".internal.example.net", "localhost"]
    with pytest.raises(outbound.UnsafeURL) as refused:
        outbound.check_url_and_host(url)
    assert rule in str(refused.value)


def fake_dns(monkeypatch, answers):
    """The resolver's answers for some names (DNS is a service jobsite does not own); a list of
    answers for a name is given out in turn."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        address = answers[host].pop(0) if isinstance(answers[host], list) else answers[host]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(outbound.socket, "getaddrinfo", getaddrinfo)


def test_a_host_name_that_resolves_to_a_private_address_is_refused(monkeypatch, settings):
    fake_dns(monkeypatch, {"intranet.example.org": "10.9.8.7", "v6.example.org": "fd00::1"})
    with pytest.raises(outbound.UnsafeURL, match=r"private address \(intranet.example.org, which resolves to 10.9.8.7\)"):
        outbound.check_url_and_host("https://intranet.example.org/hook")
    with pytest.raises(outbound.UnsafeURL, match="private address"):
        outbound.check_url_and_host("https://v6.example.org/hook")


def test_a_name_that_resolves_elsewhere_at_send_time_is_refused_then(monkeypatch, receiver):
    """DNS rebinding: public when checked at submit, loopback when sent."""
    fake_dns(monkeypatch, {"rebind.example.org": ["93.184.216.34", "127.0.0.1"]})
    outbound.check_url_and_host("http://rebind.example.org/hook")
    with pytest.raises(outbound.UnsafeURL, match="loopback address"):
        outbound.post(f"http://rebind.example.org:{receiver.server.server_address[1]}/hook", b"{}", {}, 2)
    assert receiver.received == []


def test_the_request_goes_to_the_checked_address_under_the_url_s_host_name(monkeypatch, receiver, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["receiver.test"]
    fake_dns(monkeypatch, {"receiver.test": ["127.0.0.1"]})  # one answer: a second look-up would fail
    port = receiver.server.server_address[1]
    receiver.answers = [302]
    answer = outbound.post(f"http://receiver.test:{port}/hook?x=1", b'{"a": 1}', {"content-type": "application/json"}, 2)
    assert (answer.status, answer.head) == (302, b"answer 302")  # a redirect is an answer, not followed
    (got,) = receiver.received
    assert got.headers["Host"] == f"receiver.test:{port}" and got.path == "/hook?x=1" and got.body == b'{"a": 1}'


def test_a_jobs_own_webhooks_get_its_events_in_order_and_signed(transactional_db, index, owner, receiver, media):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids,
                     webhooks={"update": f"{receiver.url}/update", "finished": f"{receiver.url}/finished"})
    assert job.webhook_secret.startswith("whsec_")
    run(job)
    delivery.deliver(seconds=20)
    updates, finished = receiver.types("/update"), receiver.types("/finished")
    assert updates[0] == "job.started" and "job.progress" in updates and set(updates) <= {"job.started", "job.progress"}
    assert finished == ["job.succeeded"]
    for path in ("/update", "/finished"):  # to each destination in the order they happened
        ids = [int(r.headers["webhook-id"].removeprefix("msg_")) for r in receiver.received if r.path == path]
        assert ids == sorted(ids)
    (end,) = [r.verify(job.webhook_secret) for r in receiver.received if r.path == "/finished"]
    assert end["data"]["id"] == job.pk and end["data"]["status"] == "succeeded"
    assert end["data"]["outputs"][0]["name"] == "slope.tif" and "webhook_secret" not in end["data"]
    for got in receiver.received:
        got.verify(job.webhook_secret)
    assert not Delivery.objects.exclude(status=Delivery.Status.DELIVERED).exists()


def test_a_failing_receiver_is_tried_again_and_what_follows_waits_for_it(transactional_db, index, owner, receiver,
                                                                         media):
    subscription = subscribe(owner, f"{receiver.url}/all")
    receiver.answers = [500, 302]
    run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2]))
    delivery.deliver(seconds=5)
    assert receiver.types() == ["job.created"]  # the rest waits behind it
    first = Delivery.objects.order_by("id").first()
    assert (first.status, first.tries, first.last_status_code) == (Delivery.Status.PENDING, 1, 500)
    attempt = Attempt.objects.get(delivery=first)
    assert attempt.answer == "answer 500" and attempt.next_try > timezone.now() + timedelta(seconds=50)
    due_now()
    delivery.deliver(seconds=5)
    assert receiver.types() == ["job.created", "job.created"]  # 302: not followed, tried again
    due_now()
    delivery.deliver(seconds=10)
    types = receiver.types()
    assert types[:4] == ["job.created"] * 3 + ["job.started"] and types[-1] == "job.succeeded"
    assert len({r.headers["webhook-id"] for r in receiver.received[:3]}) == 1  # one message, three tries
    for got in receiver.received:
        got.verify(subscription.secret)
    assert [a.number for a in Attempt.objects.filter(delivery=first)] == [1, 2, 3]


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_try(transactional_db, owner, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    receiver.delay = 2
    from notifications.events import ping

    sent = ping(subscribe(owner, receiver.url))
    delivery.deliver(seconds=5)
    sent.refresh_from_db()
    assert sent.status == Delivery.Status.PENDING and sent.tries == 1
    assert sent.last_error == "TimeoutError: no whole answer within 1 s"
    assert Attempt.objects.get(delivery=sent).seconds < 1.5


def test_the_last_try_fails_the_delivery(transactional_db, owner, receiver, settings):
    settings.WEBHOOK_RETRY_SECONDS = [1]
    receiver.answers = [500, 500]
    from notifications.events import ping

    sent = ping(subscribe(owner, receiver.url))
    delivery.deliver(seconds=5)
    due_now()
    delivery.deliver(seconds=5)
    sent.refresh_from_db()
    assert (sent.status, sent.tries, sent.last_error) == (Delivery.Status.FAILED, 2, "the receiver answered 500")


def test_410_disables_the_subscription_and_drops_what_it_is_owed(transactional_db, index, owner, receiver, media):
    subscription = subscribe(owner, receiver.url, events=["job.created", "job.succeeded"])
    receiver.answers = [410]
    run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    delivery.deliver(seconds=5)
    subscription.refresh_from_db()
    assert not subscription.active and "410 Gone" in subscription.disabled_reason
    assert receiver.types() == ["job.created"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.CANCELED}
    events = Event.objects.count()
    run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    assert Event.objects.count() > events  # recorded, and owed to nobody while it is disabled
    assert not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()


def test_a_job_with_bad_webhooks_is_refused_naming_each_and_nothing_is_written(index, owner, settings):
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1],
                   webhooks={"update": "http://10.0.0.1/hook", "done": "https://example.org/", "finished": "file:///x"})
    assert refused.value.errors == {
        "webhooks.update": "must not point to a private address (10.0.0.1); only public addresses are allowed",
        "webhooks.done": "unknown webhook; the webhooks are update, finished, successUri, inProgressUri, failedUri",
        "webhooks.finished": "must be an http or https URL"}
    assert not Job.objects.exists()


def test_the_api_manages_subscriptions_and_shows_the_secret_once(transactional_db, owner, other, client_for,
                                                                 receiver):
    api = client_for(owner)
    refused = api.post("/api/v1/webhooks/", {"url": "http://169.254.169.254/", "events": ["job.lost"]}, format="json")
    assert refused.status_code == 400
    assert "link-local address" in str(refused.json()) and "job.lost" in str(refused.json())
    created = api.post("/api/v1/webhooks/", {"url": receiver.url, "events": ["job.succeeded", "job.failed"]},
                       format="json")
    assert created.status_code == 201, created.json()
    secret, sub_id = created.json()["secret"], created.json()["id"]
    assert secret.startswith("whsec_")
    shown = api.get(f"/api/v1/webhooks/{sub_id}/").json()
    assert "secret" not in shown and shown["events"] == ["job.failed", "job.succeeded"]
    assert "secret" not in str(api.get("/api/v1/webhooks/").json())
    assert client_for(other).get(f"/api/v1/webhooks/{sub_id}/").status_code == 404
    assert client_for(other).post(f"/api/v1/webhooks/{sub_id}/test/").status_code == 404
    tested = api.post(f"/api/v1/webhooks/{sub_id}/test/")
    assert tested.status_code == 202 and tested.json()["event"] == "ping"
    delivery.deliver(seconds=5)
    (got,) = receiver.received
    assert got.verify(secret)["data"] == {"subscription": sub_id}
    (listed,) = api.get(f"/api/v1/webhooks/{sub_id}/deliveries/").json()
    assert listed["status"] == "delivered" and listed["attempts"][0]["status_code"] == 200
    assert api.patch(f"/api/v1/webhooks/{sub_id}/", {"active": False}, format="json").json()["active"] is False
    assert api.delete(f"/api/v1/webhooks/{sub_id}/").status_code == 204
    assert not Subscription.objects.exists()


def test_the_admin_sends_a_delivery_again(transactional_db, owner, admin_client, receiver):
    from notifications.events import ping

    sent = ping(subscribe(owner, receiver.url))
    delivery.deliver(seconds=5)
    listed = admin_client.get("/admin/notifications/delivery/?status__exact=delivered")
    assert listed.status_code == 200 and receiver.url in listed.content.decode()
    assert "whsec_" not in admin_client.get(f"/admin/notifications/delivery/{sent.pk}/change/").content.decode()
    admin_client.post("/admin/notifications/delivery/", {"action": "send_again", "_selected_action": [sent.pk]})
    sent.refresh_from_db()
    assert sent.status == Delivery.Status.PENDING
    delivery.deliver(seconds=5)
    assert len(receiver.received) == 2 and receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]


def test_old_deliveries_and_events_are_pruned(transactional_db, owner, receiver, settings):
    from notifications.events import ping

    old, kept = ping(subscribe(owner, receiver.url)), ping(subscribe(owner, receiver.url))
    delivery.deliver(seconds=5)
    pending = ping(subscribe(owner, "https://example.org/hook"))
    long_ago = timezone.now() - timedelta(days=settings.WEBHOOK_RETENTION_DAYS + 1)
    Delivery.objects.filter(pk__in=[old.pk, pending.pk]).update(created=long_ago)
    Event.objects.filter(pk__in=[old.event_id, pending.event_id]).update(created=long_ago)
    delivery.prune()
    assert set(Delivery.objects.values_list("pk", flat=True)) == {kept.pk, pending.pk}
    assert set(Event.objects.values_list("pk", flat=True)) == {kept.event_id, pending.event_id}


def test_pruning_goes_in_parts_and_says_after_each(db, owner, settings, monkeypatch):
    from notifications.events import ping

    monkeypatch.setattr(delivery, "PRUNE_PART", 2)
    subscription = subscribe(owner, "https://example.org/hook")
    owed = [ping(subscription) for _ in range(5)]
    long_ago = timezone.now() - timedelta(days=settings.WEBHOOK_RETENTION_DAYS + 1)
    Delivery.objects.update(created=long_ago, status=Delivery.Status.DELIVERED)
    Event.objects.update(created=long_ago)
    parts = []
    delivery.prune(each_part=lambda: parts.append((Delivery.objects.count(), Event.objects.count())))
    assert parts == [(3, 5), (1, 5), (0, 5), (0, 3), (0, 1), (0, 0)] and len(owed) == 5


def test_progress_is_recorded_at_each_tenth_of_the_tiles_and_not_between(index, owner, media, settings,
                                                                        django_capture_on_commit_callbacks):
    settings.EVENT_PROGRESS_SECONDS = settings.WEBHOOK_PROGRESS_SECONDS = 3600
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids)
    lifecycle.move_job(job.pk, "start")
    for _ in index.ids:  # one tile at a time, as a worker records tiles that take long
        [tile] = claim_tiles(job.pk, "worker-1", 1)
        with django_capture_on_commit_callbacks(execute=True):
            _record_succeeded(job.pk, [(tile, f"jobs/{job.pk}/tiles/{tile.pk}.tif", 1)])
    progress = Event.objects.filter(job=job, type="job.progress").order_by("id")
    # 12 tiles: 58 % is in the same tenth as 50 %, and 100 % is shown as 99 until the result exists.
    assert [event.payload["data"]["progress"] for event in progress] == [8, 16, 25, 33, 41, 50, 66, 75, 83, 91, 99]
    assert all(event.for_webhooks for event in progress)


def test_a_large_job_counts_its_succeeded_tiles_once_per_share_of_its_tiles_not_at_every_batch(
        index, owner, media, settings, monkeypatch, django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from notifications import events

    # 12 tiles, 2 workers and 2 parts: a process counts after every 3 tiles it records (a site's
    # job of 100,000 tiles, after every 2,500), and a step is seen at most half the tiles late.
    monkeypatch.setattr(events, "STEP_PARTS", 2)
    settings.WORKERS = 2
    settings.EVENT_PROGRESS_SECONDS = settings.WEBHOOK_PROGRESS_SECONDS = 3600
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids)
    lifecycle.move_job(job.pk, "start")
    with CaptureQueriesContext(connection) as queries:
        for _ in index.ids:
            [tile] = claim_tiles(job.pk, "worker-1", 1)
            with django_capture_on_commit_callbacks(execute=True):
                _record_succeeded(job.pk, [(tile, f"jobs/{job.pk}/tiles/{tile.pk}.tif", 1)])
    counts = [q for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(*)") and "succeeded" in q["sql"]]
    progress = Event.objects.filter(job=job, type="job.progress").order_by("id")
    # Counted at the 1st tile (nothing known yet), then after the 4th, 7th and 10th.
    assert [event.payload["data"]["progress"] for event in progress] == [8, 33, 58, 83]
    assert len(counts) == 4


@pytest.mark.parametrize("name, content, has_content", [
    ("zones.geojson", b'{"type": "FeatureCollection", "features": []}', False),
    ("ramp.txt", b"0 0 0 0\n1000 255 255 255\n", True),
])
def test_a_stored_data_file_is_an_event_with_its_links(transactional_db, owner, client_for, settings, name, content,
                                                       has_content):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.PUBLIC_URL = "https://jobs.example.org"
    subscribe(owner, "https://hooks.example.org/in", events=["datafile.stored"])
    answer = client_for(owner).post("/api/v1/datafiles/", {"file": SimpleUploadedFile(name, content)}, format="multipart")
    assert answer.status_code == 201, answer.content
    event = Event.objects.get(type="datafile.stored", owner=owner)
    links = event.payload["data"]["links"]
    assert links["self"] == f"https://jobs.example.org/api/v1/datafiles/{name}/"
    assert (links["content"] is not None) == has_content  # only tables and text have content
    assert Delivery.objects.filter(event=event).count() == 1
