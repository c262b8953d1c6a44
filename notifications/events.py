"""Events, recorded where the life cycle announces them, each with the deliveries it owes: to
the owner's subscriptions that want its type, and to the job's own webhooks (`update`,
`finished`).

A job's transitions are recorded inside their own transaction (jobs.lifecycle's
`job_changing`, with the job's row locked): an event commits with its transition or not at all,
and one job's events are numbered in the order its transitions happened. Progress and tile
failures come from `tiles_changed` once the tiles' transition has committed (a process that
dies in between loses one progress event, which the next one or the job's end make good), and
data files from `datafile_stored`. Receivers only write rows and never send anything: the
cluster delivers (notifications.delivery), and the web processes' feeds hand them to the event
streams (notifications.feed), woken at the commit on PostgreSQL.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import runners
from jobs.api.serializers import JobSerializer
from jobs.models import JOB_WEBHOOKS, Job, JobStatus, JobTile, TileStatus
from jobs.ogcapi.documents import callback_body

from .feed import notify_streams
from .models import Delivery, Event, EventType, Subscription


JOB_EVENTS = {"start": [EventType.JOB_STARTED], "succeed": [EventType.JOB_SUCCEEDED],
              "fail": [EventType.JOB_FAILED], "cancel": [EventType.JOB_CANCELED]}


def absolute(url):
    """A link as a receiver elsewhere can follow it; None (no such link) stays None."""
    return f"{settings.PUBLIC_URL.rstrip('/')}{url}" if url and url.startswith("/") else url


def job_data(job):
    """The job's REST representation, with absolute links where JOBSITE_PUBLIC_URL is set."""
    data = JobSerializer(job, context={}).data
    data["links"] = {name: absolute(link) if link else link for name, link in data["links"].items()}
    data["outputs"] = [{**output, "url": absolute(output["url"])} for output in data["outputs"]]
    return data


def envelope(event_type, data, when):
    """The payload of an event, in the Standard Webhooks shape."""
    return {"type": event_type, "timestamp": when.isoformat().replace("+00:00", "Z"), "data": data}


def on_job_changing(sender, job_id, old, new, transition, **kwargs):
    if transition == "submit":
        types = [EventType.JOB_CREATED] + ([EventType.JOB_WAITING] if new == JobStatus.WAITING else [])
    else:
        types = JOB_EVENTS.get(transition, [])
    if types:
        record_job_events(job_id, types)


def on_tiles_changed(sender, job_id, transition, count, counts, **kwargs):
    if transition == "fail":
        record_job_events(job_id, [EventType.TILE_FAILED], tiles=count)
    elif transition == "succeed":
        _maybe_progress(job_id, count)
    elif transition == "arrive":  # tiles it waited for: what it waits for now, shown at once (a
        # delivery of one tile at a time is no webhook each)
        record_job_events(job_id, [EventType.JOB_PROGRESS], for_webhooks=False)


# What this process knows of its jobs, so that most batches of tiles cost no query: a job's tile
# total, how often to count its succeeded tiles and the tiles this process recorded since it last
# counted them, and its newest progress event as (created, percent, for webhooks). Another process
# may have recorded a newer event, which is no more due than this one: a progress event is due only
# when the newest one is old enough or a 10 % step behind, and progress does not go back (after a
# resume, which recounts, it may for a while: a step is then announced up to
# JOBSITE_EVENT_PROGRESS_SECONDS late).
_known = {"totals": {}, "progress": {}}
KNOWN_JOBS = 1000
# Counting a job's succeeded tiles reads as many rows as have succeeded: counted at every batch, a
# job of 100,000 tiles would read 5e9 rows. A process counts when the newest progress event it
# knows is old enough, or once it has recorded 1/STEP_PARTS of the tiles divided by the workers:
# with every worker doing so, a 10 % step is seen at most 1/STEP_PARTS of the tiles after it (while
# the processes that record the job's tiles are no more than the workers counted when this process
# first saw the job; more make it later in proportion, and the job's end makes it good).
STEP_PARTS = 20


def _maybe_progress(job_id, count):
    """A progress event at most every JOBSITE_EVENT_PROGRESS_SECONDS and at each 10 % of the tiles;
    owed to webhooks at most every JOBSITE_WEBHOOK_PROGRESS_SECONDS and at each 10 %. `count`
    tiles have just succeeded."""
    counting = _counting(job_id)
    total, every, recorded = counting
    if not total:
        return
    known = _known["progress"].get(job_id)
    counting[2] = recorded + count
    if known is not None and counting[2] < every and not _due(known, 0, settings.EVENT_PROGRESS_SECONDS):
        return
    counting[2] = 0
    percent = 100 * JobTile.objects.filter(job_id=job_id, status=TileStatus.SUCCEEDED).count() // total
    if known is not None and not _due(known, percent, settings.EVENT_PROGRESS_SECONDS):
        return
    progress = Event.objects.filter(job_id=job_id, type=EventType.JOB_PROGRESS).order_by("-id")
    last = progress.values_list("created", "payload__data__progress", "for_webhooks").first()
    if last is not None and not _due(last, percent, settings.EVENT_PROGRESS_SECONDS):
        _remember(job_id, last)
        return
    if last is not None and not last[2]:
        last = progress.filter(for_webhooks=True).values_list("created", "payload__data__progress").first()
    for_webhooks = last is None or _due(last, percent, settings.WEBHOOK_PROGRESS_SECONDS)
    record_job_events(job_id, [EventType.JOB_PROGRESS], for_webhooks=for_webhooks)
    _remember(job_id, (timezone.now(), percent, for_webhooks))


def _counting(job_id):
    """[the job's tiles, how many this process records between two counts of those succeeded, how
    many it has recorded since the last], kept in place."""
    totals = _known["totals"]
    if job_id not in totals:
        total = Job.objects.filter(pk=job_id).values_list("tiles_total", flat=True).first() or 0
        _bounded("totals")[job_id] = [total, max(1, total // (STEP_PARTS * runners.wanted())), 0]
    return totals[job_id]


def forget_jobs():
    """Drop what this process remembers of jobs."""
    for known in _known.values():
        known.clear()


def _bounded(name):
    """What this process knows of jobs under `name`, emptied when it knows of KNOWN_JOBS jobs."""
    known = _known[name]
    if len(known) >= KNOWN_JOBS:
        known.clear()
    return known


def _remember(job_id, last):
    _bounded("progress")[job_id] = last


def _due(last, percent, seconds):
    when, last_percent = last[:2]
    return timezone.now() - when >= timedelta(seconds=seconds) or percent // 10 > (last_percent or 0) // 10


def record_job_events(job_id, types, tiles=None, for_webhooks=True):
    """Record events of `types` about the job, each with the deliveries it owes (none unless
    `for_webhooks`), with the job's row locked, so that its events are numbered in the order they
    happened."""
    with transaction.atomic():
        job = Job.objects.for_api().select_related("owner").select_for_update(of=("self",), no_key=True).filter(pk=job_id).first()
        if job is None:
            return
        data = job_data(job)
        if tiles is not None:
            data = {**data, "tiles_newly_failed": tiles}
        subscriptions = list(Subscription.objects.filter(owner_id=job.owner_id, active=True)) if for_webhooks else []
        webhooks = job.webhooks.items() if for_webhooks else ()
        for event_type in types:
            now = timezone.now()
            event = Event.objects.create(type=event_type, owner_id=job.owner_id, job=job, created=now,
                                         payload=envelope(event_type, data, now), for_webhooks=for_webhooks)
            owed = [Delivery(event=event, subscription=sub, url=sub.url, order_key=f"s{sub.pk}:j{job.pk}")
                    for sub in subscriptions if sub.wants(event_type)]
            owed += [Delivery(event=event, url=url, secret=job.webhook_secret, order_key=f"j{job.pk}:{name}",
                              body=callback_body(name, job))
                     for name, url in webhooks if event_type in JOB_WEBHOOKS.get(name, ())]
            Delivery.objects.bulk_create(owed)
        notify_streams()


def on_datafile_stored(sender, datafile, created, **kwargs):
    from datafiles.api import DataFileSerializer

    data = DataFileSerializer(datafile, context={}).data
    data["links"] = {name: absolute(link) for name, link in data.get("links", {}).items()}
    subscriptions = [sub for sub in Subscription.objects.filter(owner_id=datafile.owner_id, active=True)
                     if sub.wants(EventType.DATAFILE_STORED)]
    with transaction.atomic():
        now = timezone.now()
        event = Event.objects.create(type=EventType.DATAFILE_STORED, owner_id=datafile.owner_id, created=now,
                                     payload=envelope(EventType.DATAFILE_STORED, data, now))
        Delivery.objects.bulk_create([Delivery(event=event, subscription=sub, url=sub.url,
                                               order_key=f"s{sub.pk}:datafiles") for sub in subscriptions])
        notify_streams()


def ping(subscription):
    """A test event sent to `subscription` alone; its delivery."""
    now = timezone.now()
    with transaction.atomic():
        event = Event.objects.create(type=EventType.PING, owner_id=subscription.owner_id, created=now,
                                     payload=envelope(EventType.PING, {"subscription": subscription.pk}, now))
        return Delivery.objects.create(event=event, subscription=subscription, url=subscription.url,
                                       order_key=f"s{subscription.pk}:ping")
