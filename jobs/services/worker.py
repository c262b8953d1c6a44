"""The worker: what a cluster worker does with a runner's task (jobs.runners). It claims batches of
pending tiles under a lease, from the job the scheduler serves next, runs the job type's operation
on each, records the results, and hands each job on to finishing after its last tile.

`run_tiles` is the task's entry point; `claim_tiles` (jobs.services.claims) and `run_tile` are its
steps, public so that benchmarks and tests can drive one worker by hand.
"""

import logging
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from jobsite import media
from datafiles.formats import without_paths

from .. import lifecycle, runners, scheduling, storage, tileindex

from jobsite.exceptions import Rejected
from ..chains import is_chain
from ..models import Job, JobLog, JobStatus, JobTile, TileStatus
from ..raster import blocks
from ..raster.io import Cancelled, RasterError
from . import chainruns, claims, quotas, usage
from .claims import Claim, TileWatch, claim_next, has_pending
from .finish import job_finish_tiles
from .jobrun import JobRun
from .repair import return_lost_tiles

logger = logging.getLogger(__name__)


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
    so that it may be claimed again (see lifecycle._ended); one that a resume made pending meanwhile
    is work for the scheduler again."""
    mine = JobTile.objects.filter(pk=job_tile.pk, attempts=job_tile.attempts, lease_owner=job_tile.lease_owner).exclude(
        status=TileStatus.RUNNING)
    with transaction.atomic():
        if mine.filter(status=TileStatus.PENDING).update(lease_owner="", lease_expires=None):
            scheduling.mark_job_runnable(job_tile.job_id)
            transaction.on_commit(runners.wake)
        else:
            mine.update(lease_owner="", lease_expires=None)


def _record_and_claim(last, done, seconds, worker, batch_size, only_job=None):
    """Record the last batch's successes (of job `last`, a JobRun), count the `seconds` it took
    against its owner's share, and claim the next batch, in one transaction: one commit per batch.
    When the last batch's job has no tile left to claim, only record, and return it to be finished (after the commit, so that of two workers ending its last
    tiles at once, the later one sees both). On PostgreSQL it does not wait for the commit to reach
    the disk: a database crash may forget the last fraction of a second of tiles, which then run
    again; nothing is lost."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        if last is not None:
            _record_succeeded(last.job.pk, done)
            if not has_pending(last.job.pk):
                claim = Claim(finish=last.job.pk)
            else:
                claim = claim_next(worker, batch_size, only_job)
            # Last: the shares' and the ledger's rows are the last locked (see claims._room).
            scheduling.charge(last.job.owner_id, seconds)
            quotas.record(last.job.owner_id, cpu_seconds=sum(item.cpu_seconds or 0.0 for item in done))
            return claim
        return claim_next(worker, batch_size, only_job)


def run_tiles(*, worker, slot=None, token=None, only_job=None):
    """Claim and process batches of tiles, of whichever job the scheduler serves next, until none
    is left or the time budget is used. With a `slot` (a runner's task, see jobs.runners) it
    holds that slot meanwhile; without, it is a worker driven by hand (benchmarks, tests), for
    every job or for `only_job`.

    1. A batch is claimed with SELECT ... FOR UPDATE SKIP LOCKED and a conditional UPDATE, so two
       workers never take the same tile; as many at once as take about claims.BATCH_SECONDS to run.
    2. The results of a batch are recorded in the transaction that claims the next one.
    3. After a job's last tile, `job_finish_tiles` moves the job on (exactly one caller wins). Its
       merge runs here, once the slot has gone to a fresh task that carries on with the tiles.
    4. When the budget runs out, a fresh task takes over, so no task nears the cluster's timeout.
    """
    lease = runners.RunnerLease(slot, token, worker) if slot is not None else None
    if lease is not None and not _through_outage(lease.start):
        return
    deadline = time.monotonic() + settings.TILE_TASK_BUDGET
    runs = {}  # job id: JobRun

    def sizes(job_id):
        return runs[job_id].batch_size() if job_id in runs else claims.first_batch_size(job_id)

    last, done, seconds, worked = None, [], 0.0, False
    try:  # at least one batch, however little of the budget is left
        while not worked or (time.monotonic() < deadline and not (lease is not None and lease.lost)):
            claim = _through_outage(_record_and_claim, last, done, seconds, worker, sizes, only_job)
            last, done, seconds = None, [], 0.0
            if claim.finish is not None:
                if _finish(claim.finish, runs, lease):
                    return  # merged here; the slot went on to a fresh task
                continue
            if claim.job_id is None:
                if touched := _through_outage(return_lost_tiles):  # a worker died: take over its tiles now
                    for job_id in touched:
                        job_finish_tiles(job_id=job_id)  # the lost tile may have been the last, and failed for good
                    continue
                if lease is None:
                    return
                lease.release()  # then look once more: work that arrived meanwhile finds the slot free, or is seen here
                claim = _through_outage(_record_and_claim, None, [], 0.0, worker, sizes)
                if claim.job_id is None:
                    return
                lease.retake()  # if a fresh task has the slot, this one stops after the batch
            run = _job_run(runs, claim.job_id, claim.attempt)
            if run is None:
                for job_tile in claim.batch:
                    _let_go(job_tile)
                continue
            if not claim.batch:  # a job of no tiles to run: on to its end
                if _finish(run.job.pk, runs, lease):
                    return
                continue
            done, seconds = _run_batch(run, claim.batch, lease)
            last, worked = run, True
            if lease is not None:
                _through_outage(lease.keep)
    except BaseException:
        _give_back(worker, lease)
        raise
    # Out of time (or of the slot): record the last batch, hand the slot to a fresh task, and
    # finish the last batch's job if that was its last tile.
    if lease is not None:
        lease.hand_over()
    if last is not None:
        _through_outage(_record_and_charge, last, done, seconds)
        _finish(last.job.pk, runs, None)


def _record_and_charge(run, done, seconds):
    with transaction.atomic():
        _record_succeeded(run.job.pk, done)
        scheduling.charge(run.job.owner_id, seconds)
        quotas.record(run.job.owner_id, cpu_seconds=sum(item.cpu_seconds or 0.0 for item in done))


def _finish(job_id, runs, lease):
    """job_finish_tiles for a job whose tiles this worker may have ended last, merging here; the
    merge's time counts against the owner's share. With a runner's `lease`, the slot goes to a
    fresh task first. Returns whether it merged."""
    run = runs.pop(job_id, None)
    started = time.monotonic()
    merged = job_finish_tiles(job_id=job_id, merge_here=True, before_merge=lease.hand_over if lease else None)
    if merged:  # its CPU seconds the merge records itself
        owner_id = run.job.owner_id if run else Job.objects.filter(pk=job_id).values_list("owner_id", flat=True).first()
        _through_outage(scheduling.charge, owner_id, time.monotonic() - started)
    return merged


def _give_back(worker, lease):
    """After an error the loop did not expect: the tiles this worker runs go back at once (their
    attempt counted, as a lost worker's) and the slot is free for a fresh task."""
    try:
        JobTile.objects.filter(status=TileStatus.RUNNING, lease_owner=worker).update(lease_expires=timezone.now())
        JobTile.objects.filter(lease_owner=worker).exclude(status=TileStatus.RUNNING).update(lease_owner="",
                                                                                             lease_expires=None)
        for job_id in return_lost_tiles():
            job_finish_tiles(job_id=job_id)
        if lease is not None:
            lease.release()
            runners.wake()
    except Exception:
        logger.exception("%s could not give back its tiles; their leases will run out", worker)


def _job_run(runs, job_id, attempt):
    """The JobRun of a job whose tiles this worker has claimed, at its current attempt (a resume
    may have changed its parameters and inputs); None if its input files are gone or its tiles
    unreadable, in which case the job has failed, saying why."""
    if job_id in runs and runs[job_id].job.attempt == attempt:
        return runs[job_id]
    job = _through_outage(Job.objects.filter(pk=job_id).first)
    if job is None:
        return None
    try:
        run = runs[job_id] = JobRun(job)
    except (Rejected, tileindex.LoadError) as exc:
        error = without_paths(str(exc))
        lifecycle.move_job(job_id, "fail", only_from=[JobStatus.RUNNING], error=error, message=f"failed: {error}",
                           level=JobLog.Level.ERROR)
        return None
    return run


def _run_batch(run, batch, lease):
    """Process a claimed batch, adjacent tiles as blocks where the job type can (see _blocks);
    returns the TileDone items of the tiles that succeeded, and the seconds the batch took."""
    job, kind = run.job, run.kind
    around = _through_outage(run.placed, batch)
    done = []
    started = time.monotonic()
    for block in _blocks(kind, batch):
        done += _process_block(job, block, kind, run.inputs, run.grid, around, lease)
    seconds = time.monotonic() - started
    run.measured(seconds, batch, len(done))
    return done, seconds


def _blocks(kind, batch):
    """The claimed tiles of a batch in blocks (jobs.raster.blocks) where the job type runs blocks:
    tiles claimed at the same attempt that together cover a rectangle. Otherwise a tile each."""
    if not kind.runs_blocks or len(batch) == 1:
        return [[job_tile] for job_tile in batch]
    by_place = {tileindex.grid_tile(job_tile.tile): job_tile for job_tile in batch}

    def group(job_tile):  # a chain's tiles of a block start at the same step
        return job_tile.attempts, job_tile.steps.get("start", 0)
    return [[by_place[place] for place in block] for key in {group(job_tile) for job_tile in batch}
            for block in blocks.blocks([place for place, t in by_place.items() if group(t) == key])]


def _process_block(job, block, kind, inputs, grid, around, lease=None):
    """Run the job's operation on a block of claimed tiles at once, into one file that they share,
    each recording its share of the bytes and of the CPU seconds. Returns their TileDone items. A
    block that fails runs again tile by tile, so that each failure is recorded with its own tile."""
    if len(block) == 1:
        return _one_by_one(job, block, kind, inputs, grid, around, lease)
    places = [tileindex.grid_tile(job_tile.tile) for job_tile in block]
    inside = set(places)
    neighbours = list(dict.fromkeys(other for job_tile in block for other in around[job_tile.tile_id]
                                    if other not in inside))
    first, attempt = block[0], block[0].attempts
    relpath = storage.block_output_relpath(job.id, first.tile.number, block[-1].tile.number, attempt, kind.tile_suffix)
    measure = usage.TileMeasure()
    chain = chainruns.options(job, kind, block) if is_chain(job) else {}
    try:
        size = kind.process_block(tiles=places, neighbours=neighbours, grid=grid, params=job.params, inputs=inputs,
                                  out_path=media.media_path(relpath), progress=TileWatch(block, lease), **chain)
    except Cancelled:
        chainruns.discard(chain)
        lifecycle.move_tiles(job.id, "stop", lifecycle.claimed_tiles([t.pk for t in block], attempt))
        for job_tile in block:
            lifecycle.job_log(job.id, "stopped: the tile is no longer running", tile_id=job_tile.tile_id)
            _let_go(job_tile)
        return []
    except Exception as exc:
        logger.info("job %s: a block of %s tiles failed (%s); its tiles run one by one", job.id, len(block), exc)
        chainruns.discard(chain)
        return _one_by_one(job, block, kind, inputs, grid, around, lease)
    if chain:
        _through_outage(chainruns.record, kind, block, chain)
    cpu_seconds, peak_memory = measure.done()
    count = len(block)
    return [lifecycle.TileDone(job_tile, relpath, size // count + (size % count if i == 0 else 0), cpu_seconds / count,
                               peak_memory) for i, job_tile in enumerate(block)]


def _one_by_one(job, job_tiles, kind, inputs, grid, around, lease):
    outputs = [(job_tile, _process_tile(job, job_tile, kind, inputs, grid, around[job_tile.tile_id], lease))
               for job_tile in job_tiles]
    return [lifecycle.TileDone(job_tile, *output) for job_tile, output in outputs if output is not None]


def run_tile(job, job_tile, kind, inputs, grid):
    """Process one claimed tile and record how it ended: succeeded, failed or canceled."""
    around = tileindex.neighbours([job_tile.tile], kind.tile_halo(job.params, grid), grid)[job_tile.tile_id]
    output = _process_tile(job, job_tile, kind, inputs, grid, around)
    if output is not None:
        _record_succeeded(job.id, [(job_tile, *output)])


def _process_tile(job, job_tile, kind, inputs, grid, around, lease=None):
    """Run the job's operation on one claimed tile. Returns (output relpath, size, CPU seconds, peak
    memory) when it succeeded; a failure or a cancel is recorded here, and returns None."""
    tile = job_tile.tile
    relpath = storage.tile_output_relpath(job.id, tile.number, job_tile.attempts, kind.tile_suffix)
    measure = usage.TileMeasure()
    chain = chainruns.options(job, kind, [job_tile]) if is_chain(job) else {}
    try:
        size = kind.process_tile(
            tile=tileindex.grid_tile(tile), neighbours=around, grid=grid, params=job.params, inputs=inputs,
            out_path=media.media_path(relpath), progress=TileWatch([job_tile], lease), **chain)
    except Cancelled:
        chainruns.discard(chain)
        lifecycle.move_tiles(job.id, "stop", lifecycle.claimed(job_tile.pk, job_tile.attempts))
        lifecycle.job_log(job.id, "stopped: the tile is no longer running", tile_id=tile.id)
        _let_go(job_tile)  # after the log line: a tile let go of has said all it will (see views.job_live)
        return None
    except Exception as exc:
        if chain:
            _through_outage(chainruns.record, kind, [job_tile], chain, exc)
        _tile_failed(job, job_tile, exc, lifecycle.claimed(job_tile.pk, job_tile.attempts))
        _let_go(job_tile)
        return None
    if chain:
        _through_outage(chainruns.record, kind, [job_tile], chain)
    return relpath, size, *measure.done()


def _record_succeeded(job_id, done):
    """Mark tiles succeeded with their outputs, [lifecycle.TileDone or a tuple of its fields], in one
    UPDATE that matches each tile only while it still runs under its claim: this worker, busy with
    these tiles, cannot have claimed them again, so a tile still running under its name is its own."""
    if not done:
        return
    recorded = lifecycle.tiles_succeeded(job_id, done, done[0][0].lease_owner)
    if recorded == len(done):
        return
    # Canceled (or taken over) while GDAL wrote its last lines: those outputs must not outlive that,
    # unless other tiles of the same block were recorded with the file.
    recorded = set(JobTile.objects.filter(pk__in=[item[0].pk for item in done], status=TileStatus.SUCCEEDED)
                   .values_list("pk", "output_path"))
    kept = {relpath for _, relpath in recorded}
    for job_tile, relpath, *_ in done:
        if (job_tile.pk, relpath) not in recorded:
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
