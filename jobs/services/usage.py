"""What jobs use: each tile's work, measured in its worker process (TileMeasure); per job, the
sums of its tiles' successful work (CPU seconds, the bytes they wrote) and the largest peak
memory; per user, the same per day of the jobs' end and job type.

The figures come from the tiles' own records (not the merge's), so they are those of the jobs that
are kept: a deleted job's work no longer counts.
"""

import resource
from datetime import datetime, time, timedelta, timezone as tz
from pathlib import Path

from django.db.models import Count, Max, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..models import JobTile, TileStatus

PROC_STATUS, PROC_CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


class TileMeasure:
    """What one tile's work uses in this worker process, from its start to `done()`: (CPU seconds,
    peak memory in bytes or None)."""

    def __init__(self):
        self.cpu = _cpu_seconds()
        _reset_peak_memory()

    def done(self):
        return round(_cpu_seconds() - self.cpu, 6), _peak_memory()


def _cpu_seconds():
    """CPU time of this process (all its threads: GDAL's too) and of its tool processes that have ended."""
    own, tools = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + tools.ru_utime + tools.ru_stime


def _reset_peak_memory():
    """Start this process's peak resident memory afresh (Linux: VmHWM), so that a tile's figure is its own."""
    try:
        PROC_CLEAR_REFS.write_text("5")
    except OSError:
        pass


def _peak_memory():
    """Bytes: the peak resident memory of this process since _reset_peak_memory; None where the
    system does not say."""
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


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
