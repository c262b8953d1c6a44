"""What jobs used: per job, the sums of its tiles' successful work (CPU seconds, the bytes their
outputs take) and the largest peak memory; per user, the same per day and job type.

The figures come from the tiles' own records (jobs.services.worker measures each tile's work),
so they are those of the jobs that are kept: a deleted job's work is no longer counted.
"""

from datetime import timedelta

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
    """Per day (of the tile's end, UTC), user and job type over the last `days` days, newest first:
    tiles done, CPU seconds, bytes written and the largest peak memory; one user's, or everybody's."""
    since = timezone.now() - timedelta(days=days)
    tiles = JobTile.objects.filter(status=TileStatus.SUCCEEDED, finished__gte=since)
    if owner is not None:
        tiles = tiles.filter(job__owner=owner)
    rows = (tiles.annotate(day=TruncDate("finished")).values("day", "job__owner__username", "job__type")
            .annotate(tiles=Count("id"), cpu=Sum("cpu_seconds"), size=Sum("bytes_written"), peak=Max("peak_memory"))
            .order_by("-day", "job__owner__username", "job__type"))
    return [{"day": row["day"].isoformat(), "user": row["job__owner__username"], "type": row["job__type"],
             "tiles": row["tiles"], "cpu_seconds": round(row["cpu"] or 0.0, 3), "tile_bytes": row["size"] or 0,
             "peak_memory": row["peak"] or 0} for row in rows]
