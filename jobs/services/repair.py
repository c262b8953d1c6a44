"""Repair: what keeps a job from staying running or waiting forever when processes die, broker
messages are lost or deadlines pass. Tiles of dead workers go back to pending, stalled jobs are
sent runners, waiting jobs past their deadline fail, overdue merges run again.

`sweep` is the periodic task; `worker_started` and `cluster_started` run when a worker process or
a cluster starts; `jobs_fail_overdue` runs every second in the cluster's guard loop.
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from datafiles import inbox
from jobsite.exceptions import id_list

from .. import lifecycle, queue, runners, scheduling
from ..raster import toolprocess
from ..models import Job, JobLog, JobStatus, JobTile, Share, TileStatus
from . import latetiles
from .finish import job_finish_tiles
from .waiting import jobs_start_waiting


def jobs_fail_overdue():
    """Jobs past their wait deadline that still wait for data files or tiles fail, naming what never
    arrived. The cluster calls this every second (jobs.broker), so a deadline fires within about a
    second of its time."""
    waits = Q(status=JobStatus.WAITING) | Q(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]) & ~Q(waiting_for_tiles=[])
    for job_id, names, numbers, collection in Job.objects.filter(waits, wait_deadline__lt=timezone.now()).values_list(
            "id", "waiting_for", "waiting_for_tiles", "collection_id"):
        never = [", ".join(names)] if names else []
        if numbers:
            never.append(f"tiles {id_list(numbers)} of collection {collection}")
        if not never:  # all arrived just now: queued by their arrival, or by the sweep
            continue
        error = f"waited in vain for {' and '.join(never)}, which never arrived"
        lifecycle.move_job(job_id, "fail", only_from=[JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING],
                           where=waits & Q(wait_deadline__lt=timezone.now()),
                           error=error, message=f"failed: {error}", level=JobLog.Level.ERROR)


def _dead_here(worker):
    """Whether `worker` ("host:pid") is a process of this host that no longer runs. A reused pid
    errs on the safe side: the tile then waits for its lease to expire."""
    host, _, pid = worker.rpartition(":")
    if host != settings.HOST_NAME or not pid.isdigit():
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # killed, not yet reaped
    except FileNotFoundError:
        return True
    except OSError:
        return False


def return_lost_tiles(job_id=None):
    """Tiles whose worker died, seen by an expired lease or, on this host, by its process being gone:
    back to pending while attempts are left, failed past the limit. For one job, or all.
    Returns the ids of the jobs touched."""
    running = JobTile.objects.filter(status=TileStatus.RUNNING)
    if job_id is not None:
        running = running.filter(job_id=job_id)
    now = timezone.now()
    touched = set()
    for pk, job, tile_id, attempt, worker, expires in running.values_list(
            "pk", "job_id", "tile_id", "attempts", "lease_owner", "lease_expires"):
        if not ((expires is not None and expires < now) or _dead_here(worker)):
            continue
        lost = lifecycle.claimed(pk, attempt).filter(lease_owner=worker)
        if attempt < settings.TILE_MAX_ATTEMPTS:
            if lifecycle.move_tiles(job, "retry", lost, error=f"worker {worker} stopped answering"):
                lifecycle.job_log(job, f"worker {worker} stopped answering during attempt {attempt} of "
                             f"{settings.TILE_MAX_ATTEMPTS}; the tile will run again", JobLog.Level.WARNING, tile_id)
                touched.add(job)
        else:
            error = (f"its worker stopped answering on each of {attempt} attempts (killed, or still working "
                     f"after the task timeout of {settings.TASK_TIMEOUT} s)")
            if lifecycle.move_tiles(job, "fail", lost, error=error):
                lifecycle.job_log(job, f"failed: {error}", JobLog.Level.ERROR, tile_id)
                touched.add(job)
    return touched


def sweep():
    """The periodic repair, so that no job stays running or waiting forever:

    0. the inbox folders' complete files are stored (datafiles.inbox); waiting jobs whose files
       are all there start; those past their wait deadline fail;
    1. tiles of dead workers go back to pending (or fail past the attempt limit);
    2. running jobs with nothing left to run move on (their last finisher died before it could);
    3. runners are sent to free slots while there is work (a slot whose task was lost is free again
       once its lease runs out);
    4. merges that outlived the task timeout are queued again;
    5. command-line tools whose worker died are ended, on the machine this sweep runs on.
    """
    now = timezone.now()
    inbox.scan_inboxes()  # files delivered to the inbox folders become data files, and wake their jobs
    jobs_start_waiting()  # in case the process that stored a file died before it could wake them
    latetiles.take_arrived_tiles()  # or the process that loaded tiles
    jobs_fail_overdue()
    runners.free_slots_of(_dead_here)
    return_lost_tiles()
    unfinished = JobTile.objects.filter(job=OuterRef("pk"), status__in=[TileStatus.WAITING, TileStatus.PENDING,
                                                                       TileStatus.RUNNING])
    for job_id in Job.objects.filter(status=JobStatus.RUNNING).exclude(Exists(unfinished)).values_list("id", flat=True):
        job_finish_tiles(job_id=job_id)
    wake_runners()
    overdue = Q(merge_started__isnull=True) | Q(merge_started__lt=now - timedelta(seconds=settings.TASK_TIMEOUT))
    for job_id in Job.objects.filter(overdue, status=JobStatus.MERGING).values_list("id", flat=True):
        if lifecycle.move_job(job_id, "merge_again", where=overdue, message="the merge did not finish in time; it runs again",
                              level=JobLog.Level.WARNING):
            queue.enqueue_merge(job_id)
    toolprocess.sweep_orphans()
    refresh_planner_statistics()


def refresh_planner_statistics():
    """On SQLite, the query planner's statistics, sampled (a few ms): without them it takes an equality
    on a column for a rare value, and may walk the tiles' status index (a million pending tiles) to
    claim twenty tiles it knows by id. PostgreSQL's autovacuum keeps its own."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA analysis_limit=1000")
            for model in (JobTile, Job, Share):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def wake_runners():
    """Send runners to the free slots while there is work (jobs.runners); a slot whose task was lost
    is free again once its lease runs out. A job with work to do whose owner's share the scheduler
    cleared (a pending tile whose stopping worker died holding it, free once its lease ran out) is
    made runnable again first. Returns how many runners were sent."""
    work = Q(status=JobStatus.QUEUED) | Exists(scheduling.claimable_tiles().filter(job=OuterRef("pk")))
    shares = set(Job.objects.filter(work, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
                 .values_list("owner_id", "priority").distinct())
    shares -= set(Share.objects.filter(runnable=True).values_list("user_id", "priority"))
    for owner_id, priority in shares:
        scheduling.mark_runnable(owner_id, priority)
    if not Share.objects.filter(runnable=True).exists():
        return 0
    return runners.wake()


def reclaim_expired_leases():
    """Every second, from each cluster's guard loop (jobs.broker): tiles whose lease ran out (their
    host died, or stopped answering) go back to pending at once, not at the next sweep, and runners
    are sent for them. One indexed query while there are none."""
    if not JobTile.objects.filter(status=TileStatus.RUNNING, lease_expires__lt=timezone.now()).exists():
        return
    touched = return_lost_tiles()
    for job_id in touched:
        job_finish_tiles(job_id=job_id)  # the lost tile may have been the last, and failed for good
    if touched:
        wake_runners()


def worker_started():
    """A worker process has started, perhaps in place of one that died or that the cluster killed
    past the task timeout: take back at once the runner slots and the tiles of this host's workers
    that are gone, and send runners for them."""
    _take_back_lost_work(unstarted=False)


def _take_back_lost_work(unstarted):
    runners.free_slots_of(_dead_here, unstarted=unstarted)
    touched = return_lost_tiles()
    for job_id in touched:
        job_finish_tiles(job_id=job_id)  # the lost tile may have been the last, and failed for good
    wake_runners()


def cluster_started():
    """A cluster has just started (its first heartbeat): tasks held by a cluster that died or
    stopped taking tasks will not come back before the broker's retry, so the runner slots not yet
    started are sent again (a stale message that arrives later finds its token gone), and the
    slots and tiles of workers of this host that are gone are taken back. A worker stores the
    files delivered to the inbox folders while no cluster ran."""
    _take_back_lost_work(unstarted=True)
    if inbox.watched_folders():
        queue.enqueue_inbox_scan()
