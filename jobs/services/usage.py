"""What jobs used: per job, the sums of its tiles' successful work (CPU seconds, the bytes they
wrote) and the largest peak memory; per user, the same per day of the jobs' end and job type.

The figures come from the tiles' own records (jobs.services.worker measures each tile's work, not
the merge's), so they are those of the jobs that are kept: a deleted job's work no longer counts.
"""

from datetime import datetime, time, timedelta, timezone as tz

from django.db.models import Count, Max, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..models import JobTile, TileStatus


def job_usage(job):
    """{cpu_seconds, peak_memory, tile_bytes, output_bytes} of a job: its tiles' successful work and its results."""
    found = (JobTile.objects.filter(job=job, status=TileStatus.SUCCEEDED)
             .aggregate(cpu=Sum("cpu_seconds"), peak=Max("peak_memory"), size=Sum("bytes_written")))
    return {"cpu_seconds": round(found["cpu"] or 0.0, 3), "peak_memory": found["peak"] or 0,
            "tile_bytes": found["size"] or 0, "output_bytes": job.outputs_size}


def daily_usage(*, owner=None, days=30):
    """Per day of the jobs' end (UTC; today and the `days` - 1 days before), user and job type, newest
    first: tiles done, CPU seconds, bytes written and the largest peak memory; one user's, or
    everybody's. Jobs are found by their end (an index), then their tiles by job."""
    since = datetime.combine(timezone.now().astimezone(tz.utc).date() - timedelta(days=days - 1), time(), tzinfo=tz.utc)
    tiles = JobTile.objects.filter(job__finished__gte=since, status=TileStatus.SUCCEEDED)
    if owner is not None:
        tiles = tiles.filter(job__owner=owner)
    rows = (tiles.annotate(day=TruncDate("job__finished", tzinfo=tz.utc))
            .values("day", "job__owner__username", "job__type")
            .annotate(tiles=Count("id"), cpu=Sum("cpu_seconds"), size=Sum("bytes_written"), peak=Max("peak_memory"))
            .order_by("-day", "job__owner__username", "job__type"))
    return [{"day": row["day"].isoformat(), "user": row["job__owner__username"], "type": row["job__type"],
             "tiles": row["tiles"], "cpu_seconds": round(row["cpu"] or 0.0, 3), "tile_bytes": row["size"] or 0,
             "peak_memory": row["peak"] or 0} for row in rows]
