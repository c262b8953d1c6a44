"""The job list's query (OGC API - Processes, job-list class): `type`, `processID`, `status`,
`datetime`, `minDuration`, `maxDuration`, `limit`, `offset`, and jobsite's `label`. A bad value is a
400 naming the parameter."""

from datetime import datetime, timedelta

from django.db.models import DurationField, ExpressionWrapper, F
from django.db.models.functions import Coalesce, Now

from ..models import Job
from .documents import JOBSITE_STATUSES
from .problems import invalid

LIMIT = (10, 1, 10000)  # default, least, most


def jobs_asked_for(request):
    """(the caller's jobs as asked for, newest first; limit; offset)."""
    query = request.GET
    jobs = Job.objects.visible_to(request.user).with_counts()
    types = _values(query, "type")
    if types and types != ["process"]:
        raise invalid("type", "every job here is of type process")
    process_ids = _values(query, "processID")
    if process_ids:
        jobs = jobs.filter(type__in=process_ids)
    statuses = _values(query, "status")
    if statuses:
        unknown = [value for value in statuses if value not in JOBSITE_STATUSES]
        if unknown:
            raise invalid("status", f"{unknown[0]!r} is not a status; the statuses are "
                                    f"{', '.join(sorted(JOBSITE_STATUSES))}")
        jobs = jobs.filter(status__in=[ours for value in statuses for ours in JOBSITE_STATUSES[value]])
    labels = _values(query, "label")
    if len(labels) > Job.MAX_LABELS:
        raise invalid("label", f"at most {Job.MAX_LABELS} labels, which a job must all have")
    for label in labels:
        jobs = jobs.filter(labels__name=label)
    if "datetime" in query:
        jobs = _in_interval(jobs, query["datetime"])
    durations = {name: _seconds(query, name) for name in ("minDuration", "maxDuration")}
    if any(value is not None for value in durations.values()):
        ran = ExpressionWrapper(Coalesce(F("finished"), Now()) - F("started"), output_field=DurationField())
        jobs = jobs.filter(started__isnull=False).annotate(ran=ran)
        if durations["minDuration"] is not None:
            jobs = jobs.filter(ran__gte=timedelta(seconds=durations["minDuration"]))
        if durations["maxDuration"] is not None:
            jobs = jobs.filter(ran__lte=timedelta(seconds=durations["maxDuration"]))
    limit = whole_number(query, "limit", *LIMIT)
    offset = whole_number(query, "offset", 0, 0, 10**9)
    return jobs.order_by("-created", "-id").distinct() if labels else jobs.order_by("-created", "-id"), limit, offset


def _values(query, name):
    """A parameter's values, repeated or comma-separated."""
    return [value for given in query.getlist(name) for value in given.split(",") if value]


def whole_number(query, name, default, least, most):
    value = query.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or not least <= int(value) <= most:
        raise invalid(name, f"must be a whole number from {least} to {most}")
    return int(value)


def _seconds(query, name):
    value = query.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > 10**9:
        raise invalid(name, "must be a whole number of seconds")
    return int(value)


def _in_interval(jobs, value):
    """Jobs created at an instant or within an interval (RFC 3339; `..` or nothing for an open end)."""
    if "/" not in value:
        return jobs.filter(created=_instant(value))
    start, _, end = value.partition("/")
    if start in ("", ".."):
        start = None
    if end in ("", ".."):
        end = None
    if start is None and end is None:
        raise invalid("datetime", "an interval needs at least one end")
    if start is not None:
        jobs = jobs.filter(created__gte=_instant(start))
    if end is not None:
        jobs = jobs.filter(created__lte=_instant(end))
    return jobs


def _instant(text):
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise invalid("datetime", f"{text[:60]!r} is not an RFC 3339 date-time") from None
    if when.tzinfo is None:
        raise invalid("datetime", f"{text[:60]!r} has no time zone (end it with Z or an offset)")
    return when
