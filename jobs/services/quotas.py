"""Quotas: what each user may process and keep, by the site's settings or their own User limits,
and what they have used, from a daily ledger (DailyUsage) that outlives the jobs.

- pixels per day (UTC): a submit or resume counts the pixels it will process, and is refused (429)
  if that would go over;
- CPU seconds per day: tiles and merges count theirs as they are done; a submit is refused once
  the day's are used up;
- job storage (outputs and interim results, 413) and the limits of jobs (jobs.services.submit).

A refusal names the quota, the usage and when it resets (QuotaExceeded, with Retry-After).
"""

from datetime import datetime, time, timedelta, timezone as tz

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from jobsite.exceptions import QuotaExceeded
from ..models import DailyUsage, UserLimits


def today():
    return timezone.now().astimezone(tz.utc).date()


def resets():
    """When today's quotas start afresh: the next midnight, UTC."""
    return datetime.combine(today() + timedelta(days=1), time(), tzinfo=tz.utc)


def limits_of(user_id):
    """{pixels_per_day, cpu_seconds_per_day, job_storage_bytes, max_running_tiles}: the user's own
    where set, else the site's; None for no limit."""
    own = UserLimits.objects.filter(user_id=user_id).values(
        "pixels_per_day", "cpu_seconds_per_day", "job_storage_bytes", "max_running_tiles").first() or {}
    site = {"pixels_per_day": settings.PIXELS_PER_DAY or None, "cpu_seconds_per_day": settings.CPU_SECONDS_PER_DAY or None,
            "job_storage_bytes": settings.JOB_STORAGE_QUOTA_BYTES,
            "max_running_tiles": settings.MAX_RUNNING_TILES_PER_USER or None}
    return {name: own.get(name) if own.get(name) is not None else value for name, value in site.items()}


def used_today(user_id):
    """{jobs, pixels, cpu_seconds} of the user's jobs today (UTC)."""
    row = DailyUsage.objects.filter(user_id=user_id, day=today()).values("jobs", "pixels", "cpu_seconds").first()
    return row or {"jobs": 0, "pixels": 0, "cpu_seconds": 0.0}


def check_daily(user_id, pixels):
    """Refuse (QuotaExceeded) work of `pixels` pixels that would go over the user's pixels per day,
    or any work once their CPU seconds of the day are used up."""
    limits = limits_of(user_id)
    if limits["pixels_per_day"] is None and limits["cpu_seconds_per_day"] is None:
        return
    used, when = used_today(user_id), resets().isoformat().replace("+00:00", "Z")
    limit = limits["pixels_per_day"]
    if limit is not None and used["pixels"] + pixels > limit:
        raise QuotaExceeded(
            f"this job has {pixels:,} pixels to process, and your jobs have processed {used['pixels']:,} of your "
            f"{limit:,} pixels today (UTC); the quota resets at {when}",
            {"name": "pixels_per_day", "limit": limit, "used": used["pixels"], "requested": pixels, "resets": when})
    limit = limits["cpu_seconds_per_day"]
    if limit is not None and used["cpu_seconds"] >= limit:
        raise QuotaExceeded(
            f"your jobs have used {used['cpu_seconds']:,.0f} of your {limit:,.0f} CPU seconds today (UTC); "
            f"the quota resets at {when}",
            {"name": "cpu_seconds_per_day", "limit": limit, "used": round(used["cpu_seconds"], 3), "requested": None,
             "resets": when})


def record(user_id, *, jobs=0, pixels=0, cpu_seconds=0.0):
    """Add to the user's usage of today, in the caller's transaction."""
    if not (jobs or pixels or cpu_seconds):
        return
    day = today()
    changes = {"jobs": F("jobs") + jobs, "pixels": F("pixels") + pixels, "cpu_seconds": F("cpu_seconds") + cpu_seconds}
    if not DailyUsage.objects.filter(user_id=user_id, day=day).update(**changes):
        DailyUsage.objects.bulk_create([DailyUsage(user_id=user_id, day=day)], ignore_conflicts=True)
        DailyUsage.objects.filter(user_id=user_id, day=day).update(**changes)


def quotas_of(user, *, active_jobs, jobs_kept, job_bytes, data_bytes, running_tiles):
    """What GET /api/v1/quotas/ answers: each limit with its usage, and when the daily ones reset."""
    limits, used = limits_of(user.pk), used_today(user.pk)
    return {
        "day": today().isoformat(), "resets": resets().isoformat().replace("+00:00", "Z"),
        "pixels_per_day": {"limit": limits["pixels_per_day"], "used": used["pixels"]},
        "cpu_seconds_per_day": {"limit": limits["cpu_seconds_per_day"], "used": round(used["cpu_seconds"], 3)},
        "jobs_today": used["jobs"],
        "job_storage_bytes": {"limit": limits["job_storage_bytes"], "used": job_bytes},
        "data_storage_bytes": {"limit": settings.DATAFILE_QUOTA_BYTES, "used": data_bytes},
        "active_jobs": {"limit": settings.MAX_ACTIVE_JOBS_PER_USER, "used": active_jobs},
        "jobs": {"limit": settings.MAX_JOBS_PER_USER, "used": jobs_kept},
        "running_tiles": {"limit": limits["max_running_tiles"], "used": running_tiles},
    }
