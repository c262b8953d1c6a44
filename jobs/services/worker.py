"""The worker: what a cluster worker does with a `run_tiles` task. It claims pending tiles of a
job in batches under a lease, runs the job type's operation on each, records the results, and hands
the job on to finishing after its last tile.

`job_run_tiles` is the task's entry point; `claim_tiles` and `run_tile` are its steps, public so
that benchmarks and tests can drive one worker by hand.
"""

import logging
import resource
import time
from datetime import timedelta
from itertools import takewhile
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from jobsite import media
from datafiles.formats import without_paths

from .. import lifecycle, queue, storage, tileindex

from jobsite.exceptions import Rejected
from ..jobtypes import get_job_type
from ..models import Job, JobLog, JobStatus, JobTile, TileStatus
from ..raster.io import Cancelled, RasterError
from .finish import job_finish_tiles
from .repair import return_lost_tiles

logger = logging.getLogger(__name__)


class TileWatch:
    """The progress callback of a running tile. At most every `interval` seconds it renews the
    tile's lease with one conditional UPDATE; when that finds no row (the tile was canceled with
    its job, or its lease was given to another worker) it tells GDAL to stop."""

    def __init__(self, job_tile, interval=0.5):
        self.job_tile_id, self.attempt, self.interval = job_tile.pk, job_tile.attempts, interval
        self.checked = time.monotonic()

    def __call__(self, fraction):
        now = time.monotonic()
        if now - self.checked < self.interval:
            return True
        self.checked = now
        try:
            return bool(lifecycle.claimed(self.job_tile_id, self.attempt).update(lease_expires=_lease_end()))
        except (OperationalError, InterfaceError):  # the database is away (a restart): keep working
            connection.close()
            return True


def _through_outage(call, *args, **kwargs):
    """`call(*args, **kwargs)`, made again on a fresh connection while the database does not
    answer (a restart, a failover), for up to DATABASE_WAIT_SECONDS. Only for calls that can be
    repeated: conditional UPDATEs, reads, and transactions that roll back whole."""
    deadline = time.monotonic() + settings.DATABASE_WAIT_SECONDS
    while True:
        try:
            return call(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            if connection.in_atomic_block or time.monotonic() > deadline:
                raise
            logger.warning("database unavailable, trying again: %s", exc)
            connection.close()
            time.sleep(1)


def _let_go(job_tile):
    """Give up this worker's lease on a tile it no longer runs (canceled, failed, or taken from it),
    so that it may be claimed again (see lifecycle._ended)."""
    JobTile.objects.filter(pk=job_tile.pk, attempts=job_tile.attempts, lease_owner=job_tile.lease_owner).exclude(
        status=TileStatus.RUNNING).update(lease_owner="", lease_expires=None)


def _lease_end():
    return timezone.now() + timedelta(seconds=settings.TILE_LEASE_SECONDS)


def claim_tiles(job_id, worker, limit):
    """Move up to `limit` pending tiles of a running job to running, in id order; [] when none is
    left. A tile that has been tried before is claimed on its own, so that a tile that kills its
    worker charges no attempts to tiles claimed with it."""
    with transaction.atomic(savepoint=False):
        # SKIP LOCKED: two workers claiming at once take different tiles instead of queueing on the
        # same rows (SQLite has no row locks; its IMMEDIATE transactions run one at a time).
        # Conditions on the JobTile row only (see lifecycle.claimed). A job that ends skips its pending
        # tiles in the same transaction, so a pending tile always belongs to a job that may run.
        free = Q(lease_expires__isnull=True) | Q(lease_expires__lt=timezone.now())  # see lifecycle._ended
        candidates = list(JobTile.objects.select_related("tile").select_for_update(skip_locked=True, of=("self",))
                          .filter(free, job_id=job_id, status=TileStatus.PENDING).order_by("id")[:limit])
        if candidates and candidates[0].attempts:
            candidates = candidates[:1]
        else:
            candidates = list(takewhile(lambda job_tile: not job_tile.attempts, candidates))
        if not candidates:
            return []
        now, lease_end = timezone.now(), _lease_end()
        lifecycle.move_tiles(job_id, "claim", JobTile.objects.filter(pk__in=[t.pk for t in candidates]),
                             started=now, lease_owner=worker, lease_expires=lease_end)
    for job_tile in candidates:
        job_tile.status, job_tile.attempts, job_tile.started = TileStatus.RUNNING, job_tile.attempts + 1, now
        job_tile.lease_owner, job_tile.lease_expires = worker, lease_end
    return candidates


def _record_and_claim(job_id, done, worker, limit):
    """Record the last batch's successes and claim the next batch, in one transaction: one commit
    per batch. On PostgreSQL it does not wait for the commit to reach the disk: a database crash
    may forget the last fraction of a second of tiles, which then run again; nothing is lost."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        _record_succeeded(job_id, done)
        return claim_tiles(job_id, worker, limit)


# Tiles are claimed in batches worth about this much work (as measured on the tiles before), so
# that the database round trips of a claim and of recording the results are shared by many small
# tiles. A tile that takes longer than this is claimed on its own. Each tile of a batch counts an
# attempt when claimed: a worker killed in the middle of a batch costs every unfinished tile of it
# one attempt (and they come back one at a time), so batches are kept to a few hundredths of a
# second of work. On tiles of 1 ms (bench/dispatch.py) the service's own cost per tile is 0.51 ms
# with batches of 0.02 s, 0.35 ms with 0.05 s and 0.28 ms with 0.1 s.
BATCH_SECONDS = 0.05
MAX_BATCH = 64


def job_run_tiles(*, job_id, worker):
    """Claim and process pending tiles of the job until none are left or the task's time budget is used.

    1. The first task to arrive moves the job from queued to running.
    2. Tiles are claimed with SELECT ... FOR UPDATE SKIP LOCKED and a conditional UPDATE, so two
       workers never take the same tile; as many at once as take about BATCH_SECONDS to run.
    3. The results of a batch are recorded in the transaction that claims the next one.
    4. When the budget runs out, a fresh task takes over, so no task nears the cluster's timeout.
    5. After the last tile, `job_finish_tiles` moves the job on (exactly one caller wins).
    """
    _through_outage(lifecycle.move_job, job_id, "start", message=f"running on {worker}")
    job = _through_outage(Job.objects.filter(pk=job_id).first)
    if job is None or job.status != JobStatus.RUNNING:
        return
    kind = get_job_type(job.type)
    try:
        inputs = job.input_files()
        grid = tileindex.index_grid(job.collection_id) if kind.uses_tiles else None
    except (Rejected, tileindex.LoadError) as exc:
        error = without_paths(str(exc))
        lifecycle.move_job(job_id, "fail", only_from=[JobStatus.RUNNING], error=error, message=f"failed: {error}",
                           level=JobLog.Level.ERROR)
        return
    deadline = time.monotonic() + settings.TILE_TASK_BUDGET
    seconds_per_tile = None  # measured as the tiles run
    done = []
    while True:
        limit = 1 if seconds_per_tile is None else max(1, min(MAX_BATCH, int(BATCH_SECONDS / seconds_per_tile)))
        batch = _through_outage(_record_and_claim, job_id, done, worker, limit)
        if not batch and _through_outage(return_lost_tiles, job_id):  # a worker died: take over its tiles now
            batch = _through_outage(claim_tiles, job_id, worker, limit)
        if not batch:
            break
        around = _through_outage(tileindex.neighbours, [job_tile.tile for job_tile in batch],
                                 kind.tile_halo(job.params, grid), grid)
        done = []
        started = time.monotonic()
        for job_tile in batch:
            output = _process_tile(job, job_tile, kind, inputs, grid, around[job_tile.tile_id])
            if output is not None:
                done.append((job_tile, *output))
        seconds_per_tile = (time.monotonic() - started) / len(batch)
        if time.monotonic() > deadline:
            _through_outage(_record_succeeded, job.id, done)
            queue.enqueue_tiles(job_id, 1)
            return
    job_finish_tiles(job_id=job_id, merge_here=True)


def run_tile(job, job_tile, kind, inputs, grid):
    """Process one claimed tile and record how it ended: succeeded, failed or canceled."""
    around = tileindex.neighbours([job_tile.tile], kind.tile_halo(job.params, grid), grid)[job_tile.tile_id]
    output = _process_tile(job, job_tile, kind, inputs, grid, around)
    if output is not None:
        _record_succeeded(job.id, [(job_tile, *output)])


def _process_tile(job, job_tile, kind, inputs, grid, around):
    """Run the job's operation on one claimed tile. Returns (output relpath, size, CPU seconds, peak
    memory) when it succeeded; a failure or a cancel is recorded here, and returns None."""
    tile = job_tile.tile
    relpath = storage.tile_output_relpath(job.id, tile.number, job_tile.attempts, kind.tile_suffix)
    before = _cpu_seconds()
    _reset_peak_memory()
    try:
        size = kind.process_tile(
            tile=tileindex.grid_tile(tile), neighbours=around, grid=grid, params=job.params, inputs=inputs,
            out_path=media.media_path(relpath), progress=TileWatch(job_tile),
        )
    except Cancelled:
        lifecycle.move_tiles(job.id, "stop", lifecycle.claimed(job_tile.pk, job_tile.attempts))
        lifecycle.job_log(job.id, "stopped: the tile is no longer running", tile_id=tile.id)
        _let_go(job_tile)  # after the log line: a tile let go of has said all it will (see views.job_live)
        return None
    except Exception as exc:
        _tile_failed(job, job_tile, exc, lifecycle.claimed(job_tile.pk, job_tile.attempts))
        _let_go(job_tile)
        return None
    return relpath, size, round(_cpu_seconds() - before, 6), _peak_memory()


PROC_STATUS, PROC_CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


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


def _record_succeeded(job_id, done):
    """Mark tiles succeeded with their outputs, [lifecycle.TileDone or a tuple of its fields], in one
    UPDATE that matches each tile only while it still runs under its claim: this worker, busy with
    these tiles, cannot have claimed them again, so a tile still running under its name is its own."""
    if not done:
        return
    recorded = lifecycle.tiles_succeeded(job_id, done, done[0][0].lease_owner)
    if recorded == len(done):
        return
    # Canceled (or taken over) while GDAL wrote its last lines: those outputs must not outlive that.
    kept = set(JobTile.objects.filter(pk__in=[item[0].pk for item in done], status=TileStatus.SUCCEEDED)
               .values_list("output_path", flat=True))
    for job_tile, relpath, *_ in done:
        if relpath not in kept:
            media.media_path(relpath).unlink(missing_ok=True)
            lifecycle.job_log(job_id, "finished after the tile had stopped running; its output was discarded",
                              tile_id=job_tile.tile_id)
            _let_go(job_tile)


def may_pass(exc):
    """Whether trying again may succeed: I/O errors and lost database connections may pass; bad
    data, a missing or unreadable tile and bugs will not."""
    if isinstance(exc, RasterError):
        return exc.transient
    return isinstance(exc, (OSError, OperationalError, InterfaceError))


def _tile_failed(job, job_tile, exc, mine):
    """Back to pending for another try if the error may pass and attempts are left, else failed."""
    tile_id, attempt, limit = job_tile.tile_id, job_tile.attempts, settings.TILE_MAX_ATTEMPTS
    if not isinstance(exc, (RasterError, OSError)):
        logger.exception("job %s tile %s failed", job.id, job_tile.tile.number)
    else:
        logger.warning("job %s tile %s: %s", job.id, job_tile.tile.number, exc)  # with the paths, for the operator
    message = without_paths(str(exc) or type(exc).__name__)
    if may_pass(exc) and attempt < limit:
        if lifecycle.move_tiles(job.id, "retry", mine, error=message[:2000]):
            lifecycle.job_log(job.id, f"attempt {attempt} of {limit} failed, will try again: {message}",
                    level=JobLog.Level.WARNING, tile_id=tile_id)
        return
    if may_pass(exc):
        message = f"failed {attempt} times, the last time: {message}"
    if lifecycle.move_tiles(job.id, "fail", mine, error=message[:2000]):
        lifecycle.job_log(job.id, f"failed: {message}", level=JobLog.Level.ERROR, tile_id=tile_id)
