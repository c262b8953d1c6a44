"""Job workflows: submit, cancel, run tiles, merge.

Every status change is one conditional UPDATE (`filter(pk=..., status=FROM).update(status=TO)`)
whose row count says whether this caller won. Nothing reads a status, decides in Python and
writes it back, so repeated task deliveries and racing cancels do no harm.
"""

import logging
import shutil
import socket
import time
from datetime import timedelta
from itertools import takewhile

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone
from django_q.tasks import async_task

from datafiles import services as datafile_services
from datafiles.formats import Unreadable, without_paths
from datafiles.models import DataFile

from jobsite.gdalpolicy import thread_config

from . import storage, tileindex, vector
from .raster.io import Cancelled, GridTile, RasterError
from .exceptions import Conflict, LimitExceeded, Rejected, TooLarge, quoted
from .jobtypes import get_job_type, read_polygons
from .models import MAX_ID, InterimResults, Job, JobInput, JobLog, JobStatus, JobTile, Label, Tile, TileStatus, Town

logger = logging.getLogger(__name__)

MAX_LABELS = 20
MAX_LABEL_LENGTH = 64
MAX_WAIT_SECONDS = 30 * 24 * 3600
EXACTLY_ONE = {"tile_ids": "give exactly one of tile_ids and town_id", "town_id": "give exactly one of tile_ids and town_id"}


def job_log(job_id, message, level=JobLog.Level.INFO, tile_id=None):
    message = str(message)
    if len(message) > JobLog.MAX_MESSAGE:
        message = message[: JobLog.MAX_MESSAGE - 1] + "…"
    logger.log(logging.getLevelName(level.upper()), "job %s%s: %s", job_id, f" tile {tile_id}" if tile_id else "", message)
    return JobLog.objects.create(job_id=job_id, tile_id=tile_id, level=level, message=message)


# Submitting

def _clean_labels(labels):
    if labels is None:
        return []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise Rejected({"labels": "must be a list of strings"})
    clean = []
    for label in labels:
        label = label.strip()
        if not label or len(label) > MAX_LABEL_LENGTH or not label.isprintable():
            raise Rejected({"labels": f"{quoted(label)} is not a label: 1 to {MAX_LABEL_LENGTH} printable characters"})
        if label not in clean:
            clean.append(label)
    if len(clean) > MAX_LABELS:
        raise Rejected({"labels": f"at most {MAX_LABELS} labels, not {len(clean)}"})
    return clean


def _clean_tile_ids(tile_ids):
    if not isinstance(tile_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in tile_ids):
        raise Rejected({"tile_ids": "must be a list of integer tile ids"})
    if not tile_ids:
        raise Rejected({"tile_ids": "must not be empty"})
    seen, duplicates = set(), set()
    for tile_id in tile_ids:
        (duplicates if tile_id in seen else seen).add(tile_id)
    if duplicates:
        raise Rejected({"tile_ids": f"duplicate tile ids: {', '.join(map(str, sorted(duplicates)))}"})
    _check_tile_limit("tile_ids", len(tile_ids))
    known = set(Tile.objects.filter(id__in=[i for i in tile_ids if 0 <= i <= MAX_ID]).values_list("id", flat=True))
    unknown = [tile_id for tile_id in tile_ids if tile_id not in known]
    if unknown:
        shown = ", ".join(map(str, unknown[:50])) + (f" and {len(unknown) - 50} more" if len(unknown) > 50 else "")
        raise Rejected({"tile_ids": f"unknown tile ids: {shown}"})
    return sorted(tile_ids)


def _check_tile_limit(field, count):
    if count > settings.MAX_TILES_PER_JOB:
        raise Rejected({field: f"{count} tiles is more than the limit of {settings.MAX_TILES_PER_JOB} tiles per job"})


def _town_tile_ids(town_id):
    if not isinstance(town_id, int) or isinstance(town_id, bool):
        raise Rejected({"town_id": "must be an integer town id"})
    town = Town.objects.filter(pk=town_id).first() if 0 <= town_id <= MAX_ID else None
    if town is None:
        raise Rejected({"town_id": f"unknown town id: {town_id}"})
    tile_ids = sorted(town.tiles.values_list("id", flat=True))
    if not tile_ids:
        raise Rejected({"town_id": f"town {town_id} ({town.name}) has no tiles in the index"})
    _check_tile_limit("town_id", len(tile_ids))
    return town, tile_ids


def job_submit(*, owner, job_type, tile_ids=None, town_id=None, params=None, labels=None, interim_results=None,
               inputs=None, wait_timeout=None):
    """Create a job and all its tiles in one transaction, then queue its work once committed.

    The tiles are `tile_ids`, or a town's (`town_id`), or, for types that read polygons, those the
    polygons overlap. `inputs` names the owner's data files the type reads; a job naming a file
    that has not been uploaded yet waits for it (at most `wait_timeout` seconds). Raises Rejected
    for any bad input, LimitExceeded or TooLarge at the owner's limits, writing nothing.
    """
    kind = get_job_type(job_type)
    problems = {}  # every check runs, so that one refusal names every bad field
    clean_params = _checked(problems, kind.clean_params, params)
    clean_labels = _checked(problems, _clean_labels, labels)
    interim_results = interim_results or settings.INTERIM_RESULTS_DEFAULT
    if interim_results not in InterimResults.values:
        problems["interim_results"] = f"must be one of {', '.join(InterimResults.values)}"
    files = _checked(problems, lambda: _input_files(owner, kind, kind.clean_inputs(inputs)))
    wait_seconds = _checked(problems, _clean_wait_timeout, wait_timeout)
    tiles_from_file = tile_ids is None and town_id is None and kind.tiles_from
    chosen = None if files is None and tiles_from_file else _checked(problems, _choose_tiles, kind, files, tile_ids,
                                                                     town_id)
    if problems:
        raise Rejected(problems)
    town, ids = chosen
    waiting_for = [name for name, datafile in files.values() if datafile is None]
    deadline = timezone.now() + timedelta(seconds=wait_seconds)

    with transaction.atomic():
        _check_active_jobs(owner)
        _check_kept(owner)
        job = Job.objects.create(type=kind.name, owner=owner, params=clean_params, town=town,
                                 status=JobStatus.WAITING if waiting_for else JobStatus.QUEUED, waiting_for=waiting_for,
                                 wait_deadline=deadline if waiting_for else None, interim_results=interim_results,
                                 tiles_total=len(ids))
        if clean_labels:
            Label.objects.bulk_create([Label(name=name) for name in clean_labels], ignore_conflicts=True)
            job.labels.set(Label.objects.filter(name__in=clean_labels))
        JobInput.objects.bulk_create([JobInput(job=job, name=name, file_name=file_name, datafile=datafile)
                                      for name, (file_name, datafile) in files.items()])
        JobTile.objects.bulk_create([JobTile(job=job, tile_id=tile_id) for tile_id in ids], batch_size=2000)
        where = f"town {town.id} ({town.name})" if town else "tiles " + _id_list(ids)
        job_log(job.id, f"{owner} submitted {kind.name} over {len(ids)} tiles of {where}"
                        + (f"; waiting for {', '.join(waiting_for)}" if waiting_for else ""))
        if not waiting_for:
            transaction.on_commit(lambda: queue_tile_tasks(job.id, len(ids)))
    return job


def _checked(problems, check, *args):
    """check(*args), or None when it is Rejected, its errors added to `problems`."""
    try:
        return check(*args)
    except Rejected as exc:
        for field, problem in exc.errors.items():
            if isinstance(problem, dict) and isinstance(problems.get(field), dict):
                problems[field] = {**problems[field], **problem}
            else:
                problems.setdefault(field, problem)
        return None


def _input_files(owner, kind, names):
    """{input: (file name, the owner's DataFile or None if not uploaded yet)}; Rejected for a file of
    the wrong kind."""
    found = {f.name: f for f in DataFile.objects.filter(owner=owner, name__in=names.values())}
    wanted = {i.name: i.kind for i in kind.inputs}
    errors = {name: problem for name, file_name in names.items() if file_name in found
              and (problem := _unfit_input(found[file_name], name, wanted[name]))}
    if errors:
        raise Rejected({"inputs": errors})
    return {name: (file_name, found.get(file_name)) for name, file_name in names.items()}


def _unfit_input(datafile, name, needed):
    """What makes `datafile` unfit as the input `name`, which needs a `needed` file, or None:
    another kind of file, or more polygons than MAX_ZONES (from the metadata read at upload)."""
    if datafile.kind != needed:
        return f"{datafile.name} is a {datafile.kind} file; {name} needs a {needed} file"
    layers = datafile.metadata.get("layers") or [{}]
    features = layers[0].get("feature_count") or 0
    if needed == "vector" and features > settings.MAX_ZONES:
        return f"{datafile.name} has {features:,} features; the limit is {settings.MAX_ZONES:,} (JOBSITE_MAX_ZONES)"
    return None


def _clean_wait_timeout(value):
    if value is None:
        return settings.WAIT_TIMEOUT_SECONDS
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WAIT_SECONDS:
        raise Rejected({"wait_timeout": f"must be a whole number of seconds from 1 to {MAX_WAIT_SECONDS}"})
    return value


def _choose_tiles(kind, files, tile_ids, town_id):
    if tile_ids is not None and town_id is not None:
        raise Rejected(EXACTLY_ONE)
    if town_id is not None:
        return _town_tile_ids(town_id)
    if tile_ids is not None:
        return None, _clean_tile_ids(tile_ids)
    if not kind.tiles_from:
        raise Rejected(EXACTLY_ONE)
    file_name, datafile = files[kind.tiles_from]
    if datafile is None:
        raise Rejected({"tile_ids": f"give tile_ids or town_id: the tiles cannot be chosen by {file_name}, "
                                    "which has not been uploaded yet"})
    try:
        polygons = read_polygons(datafile_services.stored_file(datafile), tileindex.index_crs_wkt())
    except (vector.VectorError, tileindex.LoadError, Unreadable) as exc:
        raise Rejected({"inputs": {kind.tiles_from: str(exc)}}) from None
    ids = tileindex.tiles_overlapping(polygons)
    if not ids:
        raise Rejected({"inputs": {kind.tiles_from: f"the polygons of {file_name} overlap no tile of the index"}})
    _check_tile_limit("tile_ids", len(ids))
    return None, ids


def jobs_start_waiting(*, owner_id=None):
    """Waiting jobs whose data files have all arrived are queued; a file of the wrong kind fails the
    job. For one owner's jobs (after an upload) or everybody's (the sweep)."""
    waiting = Job.objects.filter(status=JobStatus.WAITING)
    if owner_id is not None:
        waiting = waiting.filter(owner_id=owner_id)
    for job in waiting.prefetch_related("inputs"):
        with transaction.atomic():
            missing, wrong = _link_arrived_inputs(job)
            if wrong:
                _fail_with_pending(Job.objects.filter(pk=job.pk, status=JobStatus.WAITING), job.pk, "; ".join(wrong))
            elif missing:
                Job.objects.filter(pk=job.pk, status=JobStatus.WAITING).update(waiting_for=missing)
            elif Job.objects.filter(pk=job.pk, status=JobStatus.WAITING).update(status=JobStatus.QUEUED, waiting_for=[]):
                job_log(job.pk, "its data files have all arrived; queued")
                transaction.on_commit(lambda job=job: queue_tile_tasks(job.pk, job.tiles_total))


def _link_arrived_inputs(job):
    """Link each input of `job` that has no data file yet to the owner's file of its name, if that
    has arrived and fits. Returns (file names still missing, problems of files that arrived unfit)."""
    missing, wrong = [], []
    for job_input in job.inputs.all():
        if job_input.datafile_id is not None:
            continue
        datafile = DataFile.objects.filter(owner_id=job.owner_id, name=job_input.file_name).first()
        needed = next(i.kind for i in get_job_type(job.type).inputs if i.name == job_input.name)
        if datafile is None:
            missing.append(job_input.file_name)
        elif problem := _unfit_input(datafile, job_input.name, needed):
            wrong.append(f"{job_input.file_name} arrived, but {problem}")
        else:
            JobInput.objects.filter(pk=job_input.pk).update(datafile=datafile)
    return missing, wrong


def jobs_fail_overdue():
    """Waiting jobs past their deadline fail, naming what never arrived. The cluster calls this
    every second (jobs.broker), so a deadline fires within about a second of its time."""
    for job_id, names in Job.objects.filter(status=JobStatus.WAITING, wait_deadline__lt=timezone.now()).values_list(
            "id", "waiting_for"):
        error = f"waited in vain for {', '.join(names)}, which never arrived"
        overdue = Job.objects.filter(pk=job_id, status=JobStatus.WAITING, wait_deadline__lt=timezone.now())
        with transaction.atomic():
            _fail_with_pending(overdue, job_id, error)


def _fail_with_pending(still_unfinished, job_id, error):
    """Fail a job before its tiles ran, if `still_unfinished` (its conditional queryset) still finds
    it: it waits for nothing any more and its pending tiles are canceled. Inside the caller's
    transaction, so that no one sees a failed job with pending tiles."""
    if still_unfinished.update(status=JobStatus.FAILED, finished=timezone.now(), error=error, waiting_for=[]):
        skipped = JobTile.objects.filter(job_id=job_id, status=TileStatus.PENDING).update(status=TileStatus.CANCELED)
        job_log(job_id, f"failed: {error}; {skipped} pending tiles will not run", JobLog.Level.ERROR)


def _check_active_jobs(owner):
    """Refuse a new job to a user at the limit of active jobs. Locking the user's row makes
    concurrent submits of one user count one after the other."""
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    active = Job.objects.filter(owner=owner, status__in=JobStatus.active()).count()
    if active >= settings.MAX_ACTIVE_JOBS_PER_USER:
        raise LimitExceeded(f"you have {active} active jobs and the limit is {settings.MAX_ACTIVE_JOBS_PER_USER}; "
                            "wait for one to finish or cancel one")


def _check_kept(owner):
    """Refuse a new job to a user who keeps MAX_JOBS_PER_USER jobs (finished ones count until they
    are deleted: none is pruned behind their back) or whose jobs store their quota."""
    jobs, stored = storage.job_usage(owner)
    _check_job_storage(stored)
    if jobs >= settings.MAX_JOBS_PER_USER:
        raise LimitExceeded(f"you have {jobs} jobs and the limit is {settings.MAX_JOBS_PER_USER} jobs per user; "
                            "delete finished jobs to submit more")


def _check_job_storage(stored):
    if stored >= settings.JOB_STORAGE_QUOTA_BYTES:
        raise TooLarge(f"your jobs store {stored} bytes; your quota is {settings.JOB_STORAGE_QUOTA_BYTES} bytes; "
                       "delete finished jobs or their interim results")


def _id_list(ids, limit=20):
    ids = list(ids)
    return ", ".join(map(str, ids[:limit])) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def queue_tile_tasks(job_id, tiles):
    """Wake enough workers for the job. Each task claims pending tiles from our own table until none
    are left, so one broker message serves many tiles and a lost or repeated message is harmless."""
    for _ in range(max(1, min(settings.TASKS_PER_JOB, tiles))):
        async_task("jobs.tasks.run_tiles", job_id, task_name=f"job {job_id} tiles")


# Cancelling

def job_cancel(*, job, by=None):
    """Cancel a job that has not finished. Running GDAL calls notice within about a second."""
    with transaction.atomic():
        won = Job.objects.filter(pk=job.pk, status__in=JobStatus.active()).update(
            status=JobStatus.CANCELED, finished=timezone.now(), waiting_for=[])
        if not won:
            status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
            raise Conflict(f"job {job.pk} is already {status}; only waiting, queued, running or merging jobs can be canceled")
        now = timezone.now()
        skipped = JobTile.objects.filter(job=job, status=TileStatus.PENDING).update(status=TileStatus.CANCELED)
        # A stopping tile keeps its lease until its worker lets go of it (or the lease expires), so
        # that a resume cannot hand it to a second worker while the first still works on it.
        stopping = JobTile.objects.filter(job=job, status=TileStatus.RUNNING).update(status=TileStatus.CANCELED, finished=now)
        job_log(job.pk, f"canceled by {by or 'the system'}; {skipped} pending tiles will not run"
                        + (f", {stopping} running tiles are stopping" if stopping else ""))
        _ended(job.pk)
    job.refresh_from_db()
    return job


def _ended(job_id):
    """A job has just ended failed or canceled: with the `never` policy its interim results go now."""
    if Job.objects.filter(pk=job_id, interim_results=InterimResults.NEVER).exists():
        storage.drop_interim_results([job_id])


def job_resume(*, job, by=None, params=None):
    """Run a failed or canceled job again, keeping the tiles whose output is still on disk.

    1. `params` (optional) are changes to the job's parameters, checked like a new job's. An owner
       whose jobs store their quota is refused (TooLarge), before anything is written. Data files
       that arrived after the job stopped waiting for them are linked now; a file still missing or
       unfit is a Conflict.
    2. One conditional UPDATE moves the job from failed or canceled to queued: 409 otherwise,
       and for the loser of two concurrent resumes.
    3. If the parameters changed the result, every tile runs again. Otherwise succeeded tiles
       whose output exists with the size recorded when it was written are kept, the rest go back
       to pending. The merge then runs over all tiles.

    Returns (job, number of tiles that will run).
    """
    kind = get_job_type(job.type)
    new_params = job.params if params is None else kind.clean_params({**job.params, **_as_dict(params)})
    changes = {name: (job.params.get(name), value) for name, value in new_params.items() if job.params.get(name) != value}
    _check_job_storage(storage.job_usage(job.owner_id)[1])
    missing, wrong = _link_arrived_inputs(job)  # a job that waited in vain runs once its files are there
    if missing or wrong:
        raise Conflict(f"job {job.pk} cannot run yet: "
                       + "; ".join([*(f"{name} has not been uploaded" for name in missing), *wrong]))
    with transaction.atomic():
        won = Job.objects.filter(pk=job.pk, status__in=[JobStatus.FAILED, JobStatus.CANCELED]).update(
            status=JobStatus.QUEUED, attempt=F("attempt") + 1, params=new_params, error="", started=None,
            finished=None, outputs=[], outputs_size=0, interim_deleted=None)
        if not won:
            status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
            raise Conflict(f"job {job.pk} is {status}; only failed or canceled jobs can be resumed")
        storage.remove_files_on_commit(output["path"] for output in job.outputs)
        tiles = JobTile.objects.filter(job_id=job.pk)
        if changes:
            storage.drop_interim_results([job.pk])
            rerun = tiles
        else:
            _forget_lost_outputs(job.pk)
            rerun = tiles.exclude(status=TileStatus.SUCCEEDED)
        to_run = rerun.update(status=TileStatus.PENDING, error="", started=None, finished=None)
        kept = tiles.filter(status=TileStatus.SUCCEEDED).count()
        attempt = job.attempt + 1
        changed = "; ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changes.items())
        job_log(job.pk, f"resumed by {by or 'the system'} (attempt {attempt}): "
                        + (f"parameters changed ({changed}), every tile runs again" if changes
                           else f"{kept} tiles kept from before") + f"; {to_run} tiles to run")
        transaction.on_commit(lambda: queue_tile_tasks(job.pk, to_run))
    job.refresh_from_db()
    return job, to_run


def _as_dict(params):
    if not isinstance(params, dict):
        raise Rejected({"params": "must be an object of parameter names to values"})
    return params


def _forget_lost_outputs(job_id):
    """Succeeded tiles whose output is gone or not the size recorded when it was written lose
    their succeeded status, so that they run again."""
    lost = []
    for pk, relpath, size in JobTile.objects.filter(job_id=job_id, status=TileStatus.SUCCEEDED).values_list(
            "pk", "output_path", "output_size").iterator():
        try:
            intact = bool(relpath) and storage.media_path(relpath).stat().st_size == size
        except OSError:
            intact = False
        if not intact:
            lost.append(pk)
    for start in range(0, len(lost), storage.CHUNK):
        JobTile.objects.filter(pk__in=lost[start:start + storage.CHUNK]).update(
            status=TileStatus.PENDING, output_path="", output_size=None)


def job_delete(*, job):
    """Delete a finished job with its tiles and logs, and its files once the deletion is committed."""
    job_id = job.pk
    with transaction.atomic():
        finished = Job.objects.select_for_update().filter(pk=job_id, status__in=JobStatus.final()).first()
        if finished is None:
            status = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
            raise Conflict(f"job {job_id} is {status}; cancel it first, only finished jobs can be deleted")
        finished.delete()
        transaction.on_commit(lambda: shutil.rmtree(storage.job_dir(job_id), ignore_errors=True))


# Running tiles (inside cluster workers)

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
            return bool(_mine(self.job_tile_id, self.attempt).update(lease_expires=_lease_end()))
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


def _mine(job_tile_id, attempt):
    """The tile, if it is still running under this claim. Every condition is on the JobTile row
    itself: a join would become a subquery that PostgreSQL does not re-check against a row that a
    concurrent transaction has just changed."""
    return JobTile.objects.filter(pk=job_tile_id, status=TileStatus.RUNNING, attempts=attempt)


def _let_go(job_tile):
    """Give up this worker's lease on a tile it no longer runs (canceled, failed, or taken from it),
    so that it may be claimed again (see job_cancel)."""
    JobTile.objects.filter(pk=job_tile.pk, attempts=job_tile.attempts, lease_owner=job_tile.lease_owner).exclude(
        status=TileStatus.RUNNING).update(lease_owner="", lease_expires=None)


def _lease_end():
    return timezone.now() + timedelta(seconds=settings.TILE_LEASE_SECONDS)


def _claim_tiles(job_id, worker, limit):
    """Move up to `limit` pending tiles of a running job to running, in id order; [] when none is
    left. A tile that has been tried before is claimed on its own, so that a tile that kills its
    worker charges no attempts to tiles claimed with it."""
    with transaction.atomic(savepoint=False):
        # SKIP LOCKED: two workers claiming at once take different tiles instead of queueing on the
        # same rows (SQLite has no row locks; its IMMEDIATE transactions run one at a time).
        # Conditions on the JobTile row only (see _mine). Cancel turns pending tiles to canceled in
        # the same transaction as the job, so a pending tile always belongs to a job that may run.
        free = Q(lease_expires__isnull=True) | Q(lease_expires__lt=timezone.now())  # see job_cancel
        candidates = list(JobTile.objects.select_related("tile").select_for_update(skip_locked=True, of=("self",))
                          .filter(free, job_id=job_id, status=TileStatus.PENDING).order_by("id")[:limit])
        if candidates and candidates[0].attempts:
            candidates = candidates[:1]
        else:
            candidates = list(takewhile(lambda job_tile: not job_tile.attempts, candidates))
        if not candidates:
            return []
        now, lease_end = timezone.now(), _lease_end()
        JobTile.objects.filter(pk__in=[t.pk for t in candidates], status=TileStatus.PENDING).update(
            status=TileStatus.RUNNING, attempts=F("attempts") + 1, started=now, finished=None, error="",
            lease_owner=worker, lease_expires=lease_end,
        )
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
        return _claim_tiles(job_id, worker, limit)


def grid_tile(tile):
    return GridTile(tile.path, tile.col, tile.row, tile.width, tile.height)


def neighbours(tiles, halo, grid):
    """{tile id: the tiles that overlap that tile grown by `halo` pixels, itself excluded}, for
    several tiles in one query: one index range per grid row of `tiles` (a batch of consecutive
    tiles spans one or two), bounded by the largest tile size."""
    found = {tile.pk: [] for tile in tiles}
    if halo <= 0 or not tiles:
        return found
    by_row = {}
    for tile in tiles:
        by_row.setdefault(tile.row, []).append(tile)
    windows = Q()
    for row, in_row in by_row.items():
        windows |= Q(col__gt=min(t.col for t in in_row) - grid.max_tile_width - halo,
                     col__lt=max(t.col + t.width for t in in_row) + halo,
                     row__gt=row - grid.max_tile_height - halo, row__lt=max(t.row + t.height for t in in_row) + halo)
    rows = {}
    for other in Tile.objects.filter(windows).values_list("id", "path", "col", "row", "width", "height"):
        rows.setdefault(other[3], []).append(other)
    for tile in tiles:
        top, bottom = tile.row - halo, tile.row + tile.height + halo
        left, right = tile.col - halo, tile.col + tile.width + halo
        found[tile.pk] = [GridTile(path, col, row, width, height)
                          for row_start, in_row in rows.items() if row_start < bottom and row_start + grid.max_tile_height > top
                          for pk, path, col, row, width, height in in_row
                          if pk != tile.pk and col < right and col + width > left and row + height > top]
    return found


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
    if _through_outage(Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update, status=JobStatus.RUNNING,
                       started=timezone.now()):
        job_log(job_id, f"running on {worker}")
    job = _through_outage(Job.objects.filter(pk=job_id).first)
    if job is None or job.status != JobStatus.RUNNING:
        return
    kind = get_job_type(job.type)
    try:
        inputs = job_input_paths(job)
        grid = tileindex.index_grid()
    except (Rejected, tileindex.LoadError) as exc:
        with transaction.atomic():
            _fail_with_pending(Job.objects.filter(pk=job_id, status=JobStatus.RUNNING), job_id, without_paths(str(exc)))
        return
    deadline = time.monotonic() + settings.TILE_TASK_BUDGET
    seconds_per_tile = None  # measured as the tiles run
    done = []
    while True:
        limit = 1 if seconds_per_tile is None else max(1, min(MAX_BATCH, int(BATCH_SECONDS / seconds_per_tile)))
        batch = _through_outage(_record_and_claim, job_id, done, worker, limit)
        if not batch and _through_outage(return_lost_tiles, job_id):  # a worker died: take over its tiles now
            batch = _through_outage(_claim_tiles, job_id, worker, limit)
        if not batch:
            break
        around = _through_outage(neighbours, [job_tile.tile for job_tile in batch], kind.halo, grid)
        done = []
        started = time.monotonic()
        for job_tile in batch:
            output = _process_tile(job, job_tile, kind, inputs, grid, around[job_tile.tile_id])
            if output is not None:
                done.append((job_tile, *output))
        seconds_per_tile = (time.monotonic() - started) / len(batch)
        if time.monotonic() > deadline:
            _through_outage(_record_succeeded, job.id, done)
            async_task("jobs.tasks.run_tiles", job_id, task_name=f"job {job_id} tiles")
            return
    job_finish_tiles(job_id=job_id, merge_here=True)


def job_input_paths(job):
    """{input name: the data file as GDAL must open it (a StoredFile)} of the job's data files;
    Rejected if one is gone."""
    paths = {}
    for job_input in job.inputs.select_related("datafile"):
        if job_input.datafile is None:
            raise Rejected({"inputs": {job_input.name: f"the data file {job_input.file_name} is gone"}})
        paths[job_input.name] = datafile_services.stored_file(job_input.datafile)
    return paths


def run_tile(job, job_tile, kind, inputs, grid):
    """Process one claimed tile and record how it ended: succeeded, failed or canceled."""
    around = neighbours([job_tile.tile], kind.halo, grid)[job_tile.tile_id]
    output = _process_tile(job, job_tile, kind, inputs, grid, around)
    if output is not None:
        _record_succeeded(job.id, [(job_tile, *output)])


def _process_tile(job, job_tile, kind, inputs, grid, around):
    """Run the job's operation on one claimed tile. Returns (output relpath, size) when it
    succeeded; a failure or a cancel is recorded here, and returns None."""
    tile = job_tile.tile
    relpath = storage.tile_output_relpath(job.id, tile.id, job_tile.attempts, kind.tile_suffix)
    try:
        size = kind.process_tile(
            tile=grid_tile(tile), neighbours=around, grid=grid, params=job.params, inputs=inputs,
            out_path=storage.media_path(relpath), progress=TileWatch(job_tile),
        )
    except Cancelled:
        _mine(job_tile.pk, job_tile.attempts).update(status=TileStatus.CANCELED, finished=timezone.now(),
                                                     lease_expires=None)
        _let_go(job_tile)
        job_log(job.id, "stopped: the tile is no longer running", tile_id=tile.id)
        return None
    except Exception as exc:
        _tile_failed(job, job_tile, exc, _mine(job_tile.pk, job_tile.attempts))
        _let_go(job_tile)
        return None
    return relpath, size


def _record_succeeded(job_id, done):
    """Mark tiles succeeded with their outputs, [(job tile, relpath, size)], in one UPDATE that
    matches each tile only while it still runs under its claim: this worker, busy with these
    tiles, cannot have claimed them again, so a tile still running under its name is its own."""
    if not done:
        return
    # UPDATE ... FROM (VALUES ...), which both databases speak: the ORM would compile a CASE per
    # column and tile, and that costs more than the database's work for a batch of small tiles.
    table = connection.ops.quote_name(JobTile._meta.db_table)
    values = ", ".join(["(%s, %s, %s)"] * len(done))
    params = [TileStatus.SUCCEEDED, connection.ops.adapt_datetimefield_value(timezone.now())]
    params += [value for job_tile, relpath, size in done for value in (job_tile.pk, relpath, size)]
    params += [TileStatus.RUNNING, done[0][0].lease_owner]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = %s, finished = %s, lease_expires = NULL, output_path = v.column2, "
            f"output_size = v.column3 FROM (VALUES {values}) AS v "
            f"WHERE {table}.id = v.column1 AND {table}.status = %s AND {table}.lease_owner = %s", params)
        recorded = cursor.rowcount
    if recorded == len(done):
        return
    # Canceled (or taken over) while GDAL wrote its last lines: those outputs must not outlive that.
    kept = set(JobTile.objects.filter(pk__in=[job_tile.pk for job_tile, _, _ in done], status=TileStatus.SUCCEEDED)
               .values_list("output_path", flat=True))
    for job_tile, relpath, _ in done:
        if relpath not in kept:
            storage.media_path(relpath).unlink(missing_ok=True)
            _let_go(job_tile)
            job_log(job_id, "finished after the tile had stopped running; its output was discarded",
                    tile_id=job_tile.tile_id)


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
        logger.exception("job %s tile %s failed", job.id, tile_id)
    else:
        logger.warning("job %s tile %s: %s", job.id, tile_id, exc)  # with the paths, for the operator
    message = without_paths(str(exc) or type(exc).__name__)
    if may_pass(exc) and attempt < limit:
        if mine.update(status=TileStatus.PENDING, error=message[:2000], lease_expires=None, lease_owner=""):
            job_log(job.id, f"attempt {attempt} of {limit} failed, will try again: {message}",
                    level=JobLog.Level.WARNING, tile_id=tile_id)
        return
    if may_pass(exc):
        message = f"failed {attempt} times, the last time: {message}"
    if mine.update(status=TileStatus.FAILED, finished=timezone.now(), error=message[:2000], lease_expires=None):
        job_log(job.id, f"failed: {message}", level=JobLog.Level.ERROR, tile_id=tile_id)


def _dead_here(worker):
    """Whether `worker` ("host:pid") is a process of this host that no longer runs. A reused pid
    errs on the safe side: the tile then waits for its lease to expire."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
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
        lost = _mine(pk, attempt).filter(lease_owner=worker)
        if attempt < settings.TILE_MAX_ATTEMPTS:
            if lost.update(status=TileStatus.PENDING, lease_owner="", lease_expires=None,
                           error=f"worker {worker} stopped answering"):
                job_log(job, f"worker {worker} stopped answering during attempt {attempt} of "
                             f"{settings.TILE_MAX_ATTEMPTS}; the tile will run again", JobLog.Level.WARNING, tile_id)
                touched.add(job)
        else:
            error = (f"its worker stopped answering on each of {attempt} attempts (killed, or still working "
                     f"after the task timeout of {settings.TASK_TIMEOUT} s)")
            if lost.update(status=TileStatus.FAILED, finished=timezone.now(), lease_expires=None, error=error):
                job_log(job, f"failed: {error}", JobLog.Level.ERROR, tile_id)
                touched.add(job)
    return touched


def sweep():
    """The periodic repair, so that no job stays running or waiting forever:

    0. waiting jobs whose files are all there start; those past their wait deadline fail;
    1. tiles of dead workers go back to pending (or fail past the attempt limit);
    2. running jobs with nothing left to run move on (their last finisher died before it could);
    3. jobs with pending tiles that no worker has touched for STALE_WAKEUP_SECONDS, or just got
       tiles back, are woken again (a broker message may have been lost);
    4. merges that outlived the task timeout are queued again.
    """
    now = timezone.now()
    jobs_start_waiting()  # in case the process that stored a file died before it could wake them
    jobs_fail_overdue()
    touched = return_lost_tiles()
    unfinished = JobTile.objects.filter(job=OuterRef("pk"), status__in=[TileStatus.PENDING, TileStatus.RUNNING])
    for job_id in Job.objects.filter(status=JobStatus.RUNNING).exclude(Exists(unfinished)).values_list("id", flat=True):
        job_finish_tiles(job_id=job_id)
    wake_stalled_jobs(untouched_for=settings.STALE_WAKEUP_SECONDS, also=touched)
    merge_deadline = now - timedelta(seconds=settings.TASK_TIMEOUT)
    for job_id in Job.objects.filter(status=JobStatus.MERGING, updated__lt=merge_deadline).values_list("id", flat=True):
        if Job.objects.filter(pk=job_id, status=JobStatus.MERGING, updated__lt=merge_deadline).update(updated=now):
            job_log(job_id, "the merge did not finish in time; it runs again", JobLog.Level.WARNING)
            async_task("jobs.tasks.merge", job_id, task_name=f"job {job_id} merge")


def wake_stalled_jobs(*, untouched_for, also=()):
    """Queue tasks again for queued or running jobs with pending tiles and none running that no
    worker has touched for `untouched_for` seconds (their broker messages may be lost), and for the
    jobs in `also`. Extra tasks are harmless: they find no tile to claim."""
    now = timezone.now()
    stale = now - timedelta(seconds=untouched_for)
    waiting = (Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
               .annotate(pending=Count("tiles", filter=Q(tiles__status=TileStatus.PENDING)),
                         running=Count("tiles", filter=Q(tiles__status=TileStatus.RUNNING)))
               .filter(pending__gt=0).filter(Q(pk__in=list(also)) | Q(running=0, updated__lte=stale)))
    for job_id, pending in waiting.values_list("id", "pending"):
        Job.objects.filter(pk=job_id).update(updated=now)  # woken at most once per period
        queue_tile_tasks(job_id, pending)


def worker_started():
    """A worker process has started, perhaps in place of one that died or that the cluster killed
    past the task timeout: take back at once the tiles of this host's workers that are gone, and
    wake their jobs (no task of theirs is left to carry on)."""
    _take_back_lost_tiles(untouched_for=settings.STALE_WAKEUP_SECONDS)


def _take_back_lost_tiles(untouched_for):
    touched = return_lost_tiles()
    for job_id in touched:
        job_finish_tiles(job_id=job_id)  # the lost tile may have been the last, and failed for good
    wake_stalled_jobs(untouched_for=untouched_for, also=touched)


def cluster_started():
    """A cluster has just started (its first heartbeat): tasks held by a cluster that died or
    stopped taking tasks will not come back before the broker's retry, so wake the jobs that
    nothing works on now, and take back the tiles of workers of this host that are gone."""
    _take_back_lost_tiles(untouched_for=0)


def job_finish_tiles(*, job_id, merge_here=False):
    """Once no tile is pending or running: merge if all succeeded, else fail naming the failed tiles.
    With `merge_here` (a tile task that did the last tile) the merge runs in this process at once,
    else as a task of its own."""
    unfinished = JobTile.objects.filter(job=OuterRef("pk"), status__in=[TileStatus.PENDING, TileStatus.RUNNING])
    failed_tiles = JobTile.objects.filter(job=OuterRef("pk"), status=TileStatus.FAILED)
    done = Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).exclude(Exists(unfinished))
    if done.exclude(Exists(failed_tiles)).update(status=JobStatus.MERGING):
        job_log(job_id, "all tiles done; merging")
        if merge_here:
            job_merge(job_id=job_id)
        else:
            async_task("jobs.tasks.merge", job_id, task_name=f"job {job_id} merge")
        return
    failed = list(JobTile.objects.filter(job_id=job_id, status=TileStatus.FAILED).order_by("tile_id").values_list("tile_id", flat=True))
    if not failed:
        return
    error = f"{len(failed)} of its tiles failed: {_id_list(failed)}"
    if done.filter(Exists(failed_tiles)).update(status=JobStatus.FAILED, finished=timezone.now(), error=error):
        job_log(job_id, f"failed: {error}", level=JobLog.Level.ERROR)
        _ended(job_id)


def job_merge(*, job_id):
    """Merge the tile results of a merging job into its outputs (a COG and a thumbnail for rasters)."""
    job = Job.objects.filter(pk=job_id, status=JobStatus.MERGING).first()
    if job is None:
        return
    kind = get_job_type(job.type)
    relpaths = list(job.tiles.filter(status=TileStatus.SUCCEEDED).order_by("tile_id").values_list("output_path", flat=True))
    out_dir = storage.media_path(storage.output_relpath(job.id, ""))
    started = time.monotonic()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with thread_config(GDAL_NUM_THREADS="ALL_CPUS"):
            written, results = kind.merge(tile_paths=[storage.media_path(p) for p in relpaths], out_dir=out_dir,
                                          params=job.params, inputs=job_input_paths(job),
                                          crs_wkt=tileindex.index_crs_wkt())
    except (RasterError, OSError, Rejected, tileindex.LoadError) as exc:
        logger.warning("job %s merge: %s", job_id, exc)  # with the paths, for the operator
        error = f"merge failed: {without_paths(str(exc))}"
        with transaction.atomic():
            if Job.objects.filter(pk=job_id, status=JobStatus.MERGING).update(
                    status=JobStatus.FAILED, finished=timezone.now(), error=error):
                job_log(job_id, error, level=JobLog.Level.ERROR)
                _ended(job_id)
        return
    outputs = [{"name": name, "path": storage.output_relpath(job.id, name), "content_type": content_type,
                "size": (out_dir / name).stat().st_size} for name, content_type in written]
    size = sum(output["size"] for output in outputs)
    with transaction.atomic():
        won = Job.objects.filter(pk=job_id, status=JobStatus.MERGING).update(
            status=JobStatus.SUCCEEDED, finished=timezone.now(), outputs=outputs, outputs_size=size, results=results,
            error="")
        if not won:
            storage.remove_files([output["path"] for output in outputs])
            return
        job_log(job_id, f"succeeded: merged {len(relpaths)} tiles into {', '.join(o['name'] for o in outputs)} "
                        f"({size} bytes) in {time.monotonic() - started:.1f} s")
        if job.interim_results != InterimResults.ALWAYS:
            storage.drop_interim_results([job_id])
        transaction.on_commit(lambda: storage.remove_leftovers(job_id))
