"""Tiles that arrive later: jobs that name tiles their collection does not have yet wait for them
(`wait_for_tiles`), and take each as it is loaded.

A job that waits for tiles keeps their numbers in `waiting_for_tiles`; its JobTile rows are those
of the tiles that are there. With `start` all_arrived it stays waiting until the last has arrived.
With as_available it is queued at once, and each tile runs as soon as the pixels its halo reads
are all there: a tile whose halo reaches where no tile of the collection lies yet (where a tile
the job waits for may arrive) waits (TileStatus.WAITING) until that place is filled or the job
waits for no more tiles, so that the result is the one of the whole area. The merge waits for the
last tile (jobs.services.finish).

`take_arrived_tiles` runs after a load of tiles commits (the `tiles_loaded` signal) and in the
sweep; jobs.services.repair fails the jobs past their deadline, naming the tiles that never came.
"""

from django.db import transaction
from django.utils import timezone

from jobsite.exceptions import Rejected, id_list

from .. import lifecycle, runners, scheduling, tileindex
from ..chains import job_type_of
from ..models import MAX_ID, Job, JobStatus, JobTile, Start, Tile, TileStatus


def clean_wait_for_tiles(wait_for_tiles, start, town_id):
    """(whether the job may wait for tiles, its Start), or Rejected naming the field."""
    if wait_for_tiles is None:
        wait_for_tiles = False
    if not isinstance(wait_for_tiles, bool):
        raise Rejected({"wait_for_tiles": "must be true or false"})
    if start is None:
        start = Start.ALL_ARRIVED
    if start not in Start.values:
        raise Rejected({"start": f"must be one of {', '.join(Start.values)}"})
    if wait_for_tiles and town_id is not None:
        raise Rejected({"wait_for_tiles": "waits for tile ids that are not loaded yet: give tile_ids, not town_id"})
    return wait_for_tiles, start


def missing_numbers(tile_ids, known):
    """The tile ids of a request that its collection lacks (which a job may wait for), checked to be
    tile numbers; Rejected otherwise."""
    missing = [tile_id for tile_id in tile_ids if tile_id not in known]
    bad = [tile_id for tile_id in missing if not 0 <= tile_id <= MAX_ID]
    if bad:
        raise Rejected({"tile_ids": f"not tile numbers (0 to {MAX_ID}): {id_list(bad[:20])}"})
    return missing


def pixels_of_missing(collection_id, count):
    """What `count` tiles not loaded yet are priced at: the collection's largest tile each."""
    grid = tileindex.index_grid(collection_id)
    return count * grid.max_tile_width * grid.max_tile_height


def tiles_to_hold(kind, params, collection_id, keys):
    """Of the tiles `keys` of a job that starts as its tiles arrive, those whose halo reaches pixels
    that no tile of the collection covers yet: a tile it waits for may arrive there."""
    if not keys:
        return []
    grid = tileindex.index_grid(collection_id)
    halo = kind.tile_halo(params, grid)
    tiles = list(Tile.objects.filter(pk__in=keys))
    around = tileindex.neighbours(tiles, halo, grid)
    return [tile.pk for tile in tiles if _uncovered(tile, around[tile.pk], halo)]


def _uncovered(tile, neighbours, halo):
    """Whether the tile grown by `halo` has pixels that neither it nor its neighbours cover (the
    tiles of a collection never overlap)."""
    left, top = tile.col - halo, tile.row - halo
    right, bottom = tile.col + tile.width + halo, tile.row + tile.height + halo
    covered = tile.width * tile.height
    for other in neighbours:
        width = min(right, other.col + other.width) - max(left, other.col)
        height = min(bottom, other.row + other.height) - max(top, other.row)
        covered += max(0, width) * max(0, height)
    return covered < (right - left) * (bottom - top)


def take_arrived_tiles(collection_id=None):
    """Active jobs (of one collection, or all) that wait for tiles take those that have arrived; a
    waiting job that waits for nothing more is queued, and an as_available job's tiles whose
    neighbours are there now may run. Returns the ids of the jobs that took tiles."""
    jobs = Job.objects.filter(status__in=[JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING]).exclude(
        waiting_for_tiles=[])
    if collection_id is not None:
        jobs = jobs.filter(collection_id=collection_id)
    took = []
    for job_id in jobs.values_list("id", flat=True):
        with transaction.atomic():
            if _take(job_id):
                took.append(job_id)
    return took


def _take(job_id):
    job = (Job.objects.select_for_update(no_key=True)
           .filter(pk=job_id, status__in=[JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING]).first())
    if job is None or not job.waiting_for_tiles:
        return False
    arrived = dict(Tile.objects.filter(collection_id=job.collection_id, number__in=job.waiting_for_tiles)
                   .values_list("number", "id"))
    if not arrived:
        return False
    still = [number for number in job.waiting_for_tiles if number not in arrived]
    as_available = job.start == Start.AS_AVAILABLE
    # Those of an as_available job wait until the release below has looked at their neighbours.
    JobTile.objects.add_pending(job.pk, [arrived[number] for number in sorted(arrived)],
                                status=TileStatus.WAITING if as_available and still else TileStatus.PENDING)
    Job.objects.filter(pk=job.pk).update(waiting_for_tiles=still, **({} if job.status == JobStatus.WAITING
                                                                    else {"woken": timezone.now()}))
    lifecycle.tiles_arrived(job.pk, len(arrived))
    released = 0
    if as_available:  # its tiles that waited for neighbours: those whose neighbours are all there now
        waiting = JobTile.objects.filter(job_id=job.pk, status=TileStatus.WAITING)
        if still:
            hold = tiles_to_hold(job_type_of(job), job.params, job.collection_id, list(waiting.values_list("tile_id", flat=True)))
            waiting = waiting.exclude(tile_id__in=hold)
        released = lifecycle.move_tiles(job.pk, "release", waiting)
    lifecycle.job_log(job.pk, f"tiles {id_list(sorted(arrived))} arrived"
                      + (f"; {released} tiles whose neighbours are all there now may run" if released else "")
                      + (f"; waiting for tiles {id_list(still)}" if still else "; all its tiles are there"))
    # Its data files as linked now (jobs.services.waiting links them, and queues a job whose tiles
    # are all there): not `waiting_for`, which an upload that committed meanwhile may have left stale.
    files_missing = job.inputs.filter(datafile__isnull=True).exists()
    if job.status == JobStatus.WAITING and not still and not files_missing:
        if lifecycle.move_job(job.pk, "queue", message="its tiles have all arrived; queued"):
            scheduling.mark_job_runnable(job.pk)
            transaction.on_commit(runners.wake)
    elif job.status != JobStatus.WAITING:
        scheduling.mark_job_runnable(job.pk)
        transaction.on_commit(runners.wake)
    return True


def start_jobs_waiting_for_tiles(sender, collection, **kwargs):
    """The `tiles_loaded` signal: jobs that wait for tiles of the collection may take them now."""
    take_arrived_tiles(collection)
