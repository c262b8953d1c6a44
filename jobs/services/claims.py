"""Claims: moving pending tiles to running under a worker's lease, from the job that the scheduler
(jobs.scheduling) serves next, in batches sized by how long the tiles take, and renewing the lease
while they run (TileWatch). The worker (jobs.services.worker) claims in the transaction that
records its last batch.
"""

import time
from datetime import timedelta
from itertools import takewhile
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from .. import lifecycle, scheduling
from ..models import Collection, Job, JobStatus, JobTile, Tile, TileStatus


# Tiles are claimed in batches worth about this much work (as measured on the tiles before), so
# that the database round trips of a claim and of recording the results are shared by many small
# tiles. A tile that takes longer than this is claimed on its own. Each tile of a batch counts an
# attempt when claimed: a worker killed in the middle of a batch costs every unfinished tile of it
# one attempt (and they come back one at a time), so batches are kept to a few hundredths of a
# second of work. On tiles of 1 ms (bench/dispatch.py) the service's own cost per tile is 0.51 ms
# with batches of 0.02 s, 0.35 ms with 0.05 s and 0.28 ms with 0.1 s. A batch is also how long a
# job that should run next may wait for a worker.
BATCH_SECONDS = 0.05
MAX_BATCH = 64

# The seconds a tile took in the last batch of each job type (name, version) over each collection
# that this process ran: a job seen first starts at that batch size, which its first batch
# corrects, instead of a tile at a time (a tile on its own, in its own file, costs more than in a
# block).
_seconds_per_tile = {}


def forget_speeds():
    """Drop what this process measured of job types (its next jobs start a tile at a time)."""
    _seconds_per_tile.clear()


def first_batch_size(job_id):
    """The size of the first batch of a job this worker has not run yet."""
    if not _seconds_per_tile:
        return 1
    return batch_size(_seconds_per_tile.get(Job.objects.filter(pk=job_id).values_list(
        "type", "type_version", "collection_id").first()))


def known_seconds_per_tile(key):
    """The seconds a tile took in this process's last batch of a job of `key` (type, version,
    collection); None if it has run none."""
    return _seconds_per_tile.get(key)


def remember_seconds_per_tile(key, seconds):
    _seconds_per_tile[key] = seconds


def batch_size(seconds_per_tile):
    """How many tiles to claim at once, of tiles that take `seconds_per_tile` (None: not known)."""
    if seconds_per_tile is None:
        return 1
    return max(1, min(MAX_BATCH, int(BATCH_SECONDS / max(seconds_per_tile, 1e-6))))


def lease_until():
    return timezone.now() + timedelta(seconds=settings.TILE_LEASE_SECONDS)


# The last tile this process claimed of each job (its JobTile id): its next claim looks above it
# first. Claimed in id order, a job's tiles below it are mostly claimed already, and a plan that
# walks the job's tiles from the first (PostgreSQL's, on statistics taken while they were pending,
# walks the primary key from the table's first row) would read every one of them at every batch,
# 75 ms a claim near the end of a 100,000-tile job. Tiles that came back to pending below it (a
# lost lease, a resume) are claimed once nothing is left above.
_claimed_through = {}
KNOWN_JOBS = 1000


def claim_tiles(job_id, worker, limit):
    """Move up to `limit` pending tiles of a running job to running, in id order (above this
    process's last claim of the job first); [] when none is left. A tile that has been tried
    before is claimed on its own, so that a tile that kills its worker charges no attempts to
    tiles claimed with it."""
    with transaction.atomic(savepoint=False):
        # SKIP LOCKED: two workers claiming at once take different tiles instead of queueing on the
        # same rows (SQLite has no row locks; its IMMEDIATE transactions run one at a time).
        # Conditions on the JobTile row only (see lifecycle.claimed). A job that ends skips its pending
        # tiles in the same transaction, so a pending tile always belongs to a job that may run.
        # The tiles are read apart: joined, PostgreSQL's planner may hash the whole tiles table.
        pending = (scheduling.claimable_tiles().select_for_update(skip_locked=True, of=("self",))
                   .filter(job_id=job_id).order_by("id"))
        after = _claimed_through.get(job_id)
        candidates = list(pending.filter(id__gt=after)[:limit]) if after is not None else []
        if not candidates:
            candidates = list(pending[:limit])
        if candidates and candidates[0].attempts:
            candidates = candidates[:1]
        else:
            candidates = list(takewhile(lambda job_tile: not job_tile.attempts, candidates))
        if not candidates:
            return []
        if len(_claimed_through) >= KNOWN_JOBS and job_id not in _claimed_through:
            _claimed_through.clear()
        _claimed_through[job_id] = max(after or 0, candidates[-1].pk)  # a tile that came back stays behind
        tiles = tiles_with_stamp([job_tile.tile_id for job_tile in candidates])
        for job_tile in candidates:
            job_tile.tile = tiles[job_tile.tile_id]
        now, until = timezone.now(), lease_until()
        lifecycle.move_tiles(job_id, "claim", JobTile.objects.filter(pk__in=[t.pk for t in candidates]),
                             started=now, lease_owner=worker, lease_expires=until)
    for job_tile in candidates:
        job_tile.status, job_tile.attempts, job_tile.started = TileStatus.RUNNING, job_tile.attempts + 1, now
        job_tile.lease_owner, job_tile.lease_expires = worker, until
    return candidates


def tiles_with_stamp(keys):
    """{key: Tile} of the tiles `keys`, each with the `grid_stamp` of its collection read in the same
    statement, so that a worker knows whether the grid it holds is the one these places are on."""
    return {tile.pk: tile for tile in Tile.objects.filter(pk__in=keys).annotate(grid_stamp=F("collection__updated"))}


def grid_stamp(collection_id):
    """What changes when a load changes the collection's grid or tiles (its `updated`)."""
    return Collection.objects.filter(pk=collection_id).values_list("updated", flat=True).first()


def has_pending(job_id):
    """Whether any tile of the job is pending: looked for in id order above this process's last
    claim of the job first, where the next tiles to claim are. Asked without that bound, after every
    batch, PostgreSQL's planner (its statistics a few batches old) scanned the table until it met a
    pending tile: 19 ms a batch near the end of a 100,000-tile job."""
    pending = JobTile.objects.filter(job_id=job_id, status=TileStatus.PENDING)
    after = _claimed_through.get(job_id)
    if after is not None and pending.filter(id__gt=after).order_by("id").values_list("id", flat=True).first():
        return True
    return pending.exists()


def forget_claims():
    """Drop what this process remembers of its claims (its next claims look from each job's first tile)."""
    _claimed_through.clear()


class Claim(NamedTuple):
    """What a worker is to do next: run `batch` (claimed tiles of `job_id`, at its `attempt`;
    possibly none for a job of no tiles that it has just started), or, with `finish`, finish that
    job first."""

    job_id: int | None = None
    batch: list = []
    finish: int | None = None
    attempt: int | None = None


def claim_next(worker, batch_size, only_job=None):
    """Claim a batch of the job that the scheduler serves next (or of `only_job`): up to
    `batch_size(job_id)` of its tiles (fewer at its owner's limit of running tiles). A queued job
    is started here; one of no tiles to run is returned with an empty batch. Claim() when nothing
    can run."""
    if only_job is not None:
        found = Job.objects.filter(pk=only_job, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).values_list(
            "status", "attempt").first()
        jobs = [] if found is None else [(only_job, *found, None, None)]
    else:
        jobs = scheduling.candidates()
    with transaction.atomic(savepoint=False):
        for job_id, status, attempt, owner_id, limit in jobs:
            size = batch_size(job_id)
            if limit is not None:
                size = min(size, _room(owner_id, limit))
                if size <= 0:
                    continue
            if status == JobStatus.QUEUED:
                lifecycle.move_job(job_id, "start", message=f"running on {worker}")
            batch = claim_tiles(job_id, worker, size)
            if batch:  # the job's attempt read again under the tiles' locks: a resume may have just changed it
                return Claim(job_id, batch, attempt=Job.objects.filter(pk=job_id).values_list("attempt", flat=True).first())
            if status == JobStatus.QUEUED:
                return Claim(job_id, [], attempt=attempt)
    return Claim()


def _room(owner_id, limit):
    """Tiles the user may still start: counted with the user's row locked, so that workers claiming
    for one user at once count one after the other (the order of locks: user, job, tiles, shares)."""
    get_user_model().objects.select_for_update(no_key=True).filter(pk=owner_id).first()
    return limit - JobTile.objects.filter(status=TileStatus.RUNNING, job__owner_id=owner_id).count()


class Watch:
    """A progress callback that asks the database at most every `interval` seconds (`due`)."""

    def __init__(self, interval):
        self.interval, self.checked = interval, time.monotonic()

    def due(self):
        now = time.monotonic()
        if now - self.checked < self.interval:
            return False
        self.checked = now
        return True


class TileWatch(Watch):
    """The progress callback of a running tile, or of a block's tiles (claimed at one attempt). At
    most every `interval` seconds it renews their leases with one conditional UPDATE; when that
    finds no row (the tiles were canceled with their job, or their leases were given to another
    worker) it tells GDAL to stop. A block whose tiles are only partly taken goes on: its tiles
    still claimed are recorded, the others are let go of (see worker._record_succeeded)."""

    def __init__(self, job_tiles, lease=None, interval=0.5):
        super().__init__(interval)
        self.job_tile_ids, self.attempt = [t.pk for t in job_tiles], job_tiles[0].attempts
        self.lease = lease  # the runner's slot, held as long as the tile runs

    def __call__(self, fraction):
        if not self.due():
            return True
        try:
            if self.lease is not None:
                self.lease.keep()
            return bool(lifecycle.renew_leases(self.job_tile_ids, self.attempt, lease_until()))
        except (OperationalError, InterfaceError):  # the database is away (a restart): keep working
            connection.close()
            return True
