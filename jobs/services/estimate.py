"""Estimates: what a submit would cost on this site, before it is made, writing nothing.

The costs per pixel come from this site's recent succeeded jobs of the same type (the last
RECENT_JOBS): the medians of the CPU seconds their tiles used and of the seconds their merges took
per megapixel, and of what their wall time held beyond those (picking up, batches, recording), and
the bytes of their outputs per pixel. A type never run here is priced with the DEFAULT_ figures
below, and the answer says so.

The wall time counts the share of the workers the job would get now: the scheduler gives each
user with work at the job's priority (or higher) an equal part of them (jobs.scheduling).
"""

import statistics

from django.db.models import F, Sum

from .. import runners
from ..models import Job, JobStatus, JobTile, Share, TileStatus
from . import quotas
from .submit import check_active_jobs, check_kept, plan_job
from jobsite.exceptions import LimitExceeded, TooLarge

RECENT_JOBS = 20
# For a type never run on this site: a plain GDAL raster operation's costs on one core.
DEFAULT_CPU_SECONDS_PER_MEGAPIXEL = 0.1
DEFAULT_MERGE_SECONDS_PER_MEGAPIXEL = 0.05
DEFAULT_OVERHEAD_SECONDS = 1.0
DEFAULT_OUTPUT_BYTES_PER_PIXEL = 4.0  # float32, before compression


def job_estimate(*, owner, **request):
    """What the submit `request` (job_submit's fields) would cost: tiles, pixels, worker seconds,
    wall seconds, output bytes, its place in the queue and whether the owner's limits allow it.
    Raises Rejected for a bad request, as the submit would."""
    plan = plan_job(owner=owner, **request)
    pixels = plan.pixels
    costs = type_costs(plan.kind.name)
    tiles = len(plan.tile_ids)
    worker_seconds = pixels / 1e6 * costs["cpu_seconds_per_megapixel"]
    merge_seconds = pixels / 1e6 * costs["merge_seconds_per_megapixel"]
    ahead = _jobs_ahead(plan.priority)
    workers = runners.wanted()
    competing = _users_with_work(plan.priority) - {owner.pk}
    parallel = max(1.0, min(tiles, workers / (len(competing) + 1)))
    wall = costs["overhead_seconds"] + worker_seconds / parallel + merge_seconds
    return {
        "type": plan.kind.name, "tiles": tiles, "pixels": pixels, "megapixels": round(pixels / 1e6, 2),
        "worker_seconds": round(worker_seconds + merge_seconds, 2), "wall_seconds": round(wall, 2),
        "output_bytes": round(pixels * costs["output_bytes_per_pixel"]),
        "queue": {"jobs_ahead": ahead, "users_sharing_workers": len(competing), "workers": workers},
        "waiting_for": [*plan.waiting_for, *(f"tile {number}" for number in plan.missing_tiles)],
        "waiting_for_tiles": plan.missing_tiles,
        "costs": costs,
        "allowed": _allowed(owner, pixels),
    }


def type_costs(job_type):
    """Costs per megapixel of a job type, from this site's last RECENT_JOBS succeeded jobs of it."""
    recent = list(Job.objects.filter(type=job_type, status=JobStatus.SUCCEEDED, started__isnull=False,
                                     merge_started__isnull=False).order_by("-finished")
                  .values_list("id", "created", "started", "merge_started", "finished", "outputs_size", "tiles_total")
                  [:RECENT_JOBS])
    per_job = {row["job_id"]: row for row in JobTile.objects.filter(
        job_id__in=[job[0] for job in recent], status=TileStatus.SUCCEEDED).values("job_id").annotate(
        cpu=Sum("cpu_seconds"), pixels=Sum(F("tile__width") * F("tile__height"))).order_by()}
    measured = [(job, per_job[job[0]]) for job in recent if per_job.get(job[0], {}).get("pixels")]
    if not measured:
        return {"measured_jobs": 0, "cpu_seconds_per_megapixel": DEFAULT_CPU_SECONDS_PER_MEGAPIXEL,
                "merge_seconds_per_megapixel": DEFAULT_MERGE_SECONDS_PER_MEGAPIXEL,
                "overhead_seconds": DEFAULT_OVERHEAD_SECONDS, "output_bytes_per_pixel": DEFAULT_OUTPUT_BYTES_PER_PIXEL}
    # Medians of each job's figures: a job that ran cold (a cluster's first, a cold disk) or beside
    # other work is one of many, and does not move the price of the next.
    workers = runners.wanted()
    cpu, merge, overheads = [], [], []
    for job, tiles in measured:
        megapixels = tiles["pixels"] / 1e6
        tile_cpu = tiles["cpu"] or 0.0
        merge_seconds = (job[4] - job[3]).total_seconds()
        cpu.append(tile_cpu / megapixels)
        merge.append(merge_seconds / megapixels)
        overheads.append(max(0.0, (job[4] - job[1]).total_seconds() - tile_cpu / max(1, min(workers, job[6]))
                             - merge_seconds))
    pixels = sum(tiles["pixels"] for _, tiles in measured)
    return {"measured_jobs": len(measured), "cpu_seconds_per_megapixel": round(statistics.median(cpu), 4),
            "merge_seconds_per_megapixel": round(statistics.median(merge), 4),
            "overhead_seconds": round(statistics.median(overheads), 3),
            "output_bytes_per_pixel": round(sum(job[5] for job, _ in measured) / pixels, 4)}


def _jobs_ahead(priority):
    """Jobs that the workers serve before or beside a new job of `priority`: queued or running,
    of that priority or higher."""
    return Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING], priority__gte=priority).count()


def _users_with_work(priority):
    return set(Share.objects.filter(runnable=True, priority__gte=priority).values_list("user_id", flat=True))


def _allowed(owner, pixels):
    """{"ok": whether the owner's limits and quotas allow this job now, "problems": what they refuse}."""
    problems = []
    for check in (check_active_jobs, check_kept, lambda owner: quotas.check_daily(owner.pk, pixels)):
        try:
            check(owner)
        except (LimitExceeded, TooLarge) as exc:
            problems.append(str(exc))
    return {"ok": not problems, "problems": problems}
