"""Per-tile overhead of dispatch: tasks that claim tiles from our table against one task per tile.

Many tiny tiles (default 45 x 45 tiles of 64 x 64 pixels, slope with its one-pixel halo), so that
what the service spends per tile dominates. Two ways of dispatching the same job to a real
`qcluster` with 2 workers, in one run:
  claim     what jobsite does: one task per worker, each claiming batches of pending tiles from
            the JobTile table (SELECT ... FOR UPDATE SKIP LOCKED) until none are left;
  per-tile  one django-q2 task per tile, each claiming its own tile with a conditional UPDATE.
The baseline, in the same run: the raster work alone, the same tiles processed by a plain
multiprocessing.Pool(2) with no database in the loop (and, for scale, in one process), in the
blocks that the claim loop's workers run (64 tiles at a time in grid rows; `per-tile` runs each
tile on its own, so its figure includes what blocks save).
  queued    the claim loop again with --queued-jobs low-priority jobs of 50 other users queued
            (--queued-tiles tiles each: by default 1,000 jobs and 1,000,000 job tiles), which the
            scheduler passes over at every batch; its throughput against `claim` is the cost of
            choosing in tables that size (target: within 10 %).
Prints tiles/s of the tile phase (submit until the last tile is done), the per-tile overhead
against the pool (worker time per tile beyond the pool's), and the total with the merge.

    .venv/bin/python bench/dispatch.py [--side 45] [--tile-size 64] [--queued-jobs 1000] [--database-url postgres://...]
"""

import argparse
import multiprocessing
import time


def run_one_tile(job_id, tile_id):
    """The per-tile task: claim this one tile (by its number), process it, and finish the job if it
    was the last."""
    from jobs import lifecycle, tileindex
    from jobs.jobtypes import get_job_type
    from jobs.models import Job, JobTile
    from jobs.services.finish import job_finish_tiles
    from jobs.services.worker import run_tile

    lifecycle.move_job(job_id, "start")
    claimed = lifecycle.move_tiles(job_id, "claim", JobTile.objects.filter(job_id=job_id, tile__number=tile_id),
                                   lease_owner="per-tile")
    if not claimed:
        return
    job = Job.objects.get(pk=job_id)
    kind = get_job_type(job.type)
    job_tile = JobTile.objects.select_related("tile").get(job_id=job_id, tile__number=tile_id)
    run_tile(job, job_tile, kind, job.input_files(), tileindex.index_grid())
    job_finish_tiles(job_id=job_id)


def make_index(folder, side, size):
    from jobs.demo_terrain import fractal_terrain
    from jobs.raster.io import crs_wkt_from_epsg, write_raster
    from jobs.tileload import load_tiles

    dem = fractal_terrain(side * size, side * size, seed=2025)
    wkt = crs_wkt_from_epsg(25832)
    for row in range(side):
        for col in range(side):
            gt = (500000.0 + col * size * 2.0, 2.0, 0.0, 6000000.0 - row * size * 2.0, 0.0, -2.0)
            write_raster(folder / f"t_{row * 1000 + col + 1}.tif", dem[row * size:(row + 1) * size, col * size:(col + 1) * size],
                         gt, wkt, nodata=-9999.0, creation_options=("TILED=NO",))
    load_tiles(folder)


def _raster_work(tile_ids, work):
    """harness.process_block's items for the tiles, read from the database beforehand: the blocks
    the workers run, 64 tiles at a time in grid rows."""
    import harness

    from jobs import tileindex
    from jobs.jobtypes import JOB_TYPES
    from jobs.models import Tile
    from jobs.services.claims import MAX_BATCH
    from jobs.tileindex import neighbours

    kind = JOB_TYPES["slope"]
    options = kind.gdal_options(kind.clean_params({}))
    grid = tileindex.index_grid()
    tiles = list(Tile.objects.filter(number__in=tile_ids))
    return harness.block_items(tiles, neighbours(tiles, 1, grid), grid, "slope", options, work / "alone", MAX_BATCH)


def raster_alone_seconds(tile_ids, work, processes):
    """The raster work alone, with no database in the loop: in this process, or in a Pool."""
    from django.db import connection

    import harness

    items = _raster_work(tile_ids, work)
    connection.close()
    start = time.perf_counter()
    if processes == 1:
        for item in items:
            harness.process_block(item)
    else:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            pool.map(harness.process_block, items)
    return time.perf_counter() - start


def run(owner, tile_ids, mode, queued=()):
    from django_q.tasks import async_task

    import harness

    from jobs import runners
    from jobs.models import JobStatus
    from jobs.services.submit import job_submit

    wake = runners.wake
    if mode == "per-tile":
        runners.wake = lambda: None  # no runners: a task per tile instead
    try:
        start = time.perf_counter()
        job_id = job_submit(owner=owner, job_type="slope", tile_ids=tile_ids).pk
        if mode == "per-tile":
            for tile_id in tile_ids:
                async_task("bench.dispatch.run_one_tile", job_id, tile_id)
        harness.wait_until(job_id, [JobStatus.MERGING, *JobStatus.final()])
        tiles_done = time.perf_counter() - start
        cancel_queued(queued)
        harness.wait_for_success(job_id)
        return tiles_done, time.perf_counter() - start
    finally:
        runners.wake = wake


def queue_low(jobs, tiles_each, users=50):
    """Queue `jobs` low-priority jobs of `users` other users, `tiles_each` pending tiles each, in
    bulk (as many submits would leave them): the scheduler passes them over while the measured
    job, of normal priority, has tiles, in tables of a million job tiles."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from jobs import scheduling
    from jobs.services.repair import refresh_planner_statistics
    from jobs.models import Job, JobStatus, JobTile, Priority, Tile

    tile_keys = list(Tile.objects.order_by("id").values_list("id", flat=True)[:tiles_each])
    owners = [User.objects.get_or_create(username=f"queued-{n}")[0] for n in range(users)]
    with transaction.atomic():
        created = Job.objects.bulk_create([
            Job(type="slope", owner=owners[n % users], status=JobStatus.QUEUED, priority=Priority.LOW,
                tiles_total=len(tile_keys)) for n in range(jobs)])
        for job in created:
            JobTile.objects.bulk_create([JobTile(job=job, tile_id=key) for key in tile_keys], batch_size=5000)
        for owner in owners:
            scheduling.mark_runnable(owner.pk, Priority.LOW)
    # The planner's statistics, as the sweep (SQLite) or autovacuum (PostgreSQL) refreshes them.
    if connection.vendor == "sqlite":
        refresh_planner_statistics()
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return [job.pk for job in created]


def cancel_queued(job_ids):
    from jobs.models import Job
    from jobs.services.control import job_cancel

    for job in Job.objects.filter(pk__in=job_ids, status__in=["queued", "running"]):
        job_cancel(job=job, by="the benchmark")


def main():
    import harness  # here, not at the top: the cluster imports this module as bench.dispatch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=45, help="tiles per side")
    parser.add_argument("--tile-size", type=int, default=64)
    parser.add_argument("--modes", default="claim,queued,per-tile")
    parser.add_argument("--queued-jobs", type=int, default=1000)
    parser.add_argument("--queued-tiles", type=int, default=1000, help="tiles of each queued job")
    harness.database_arguments(parser)
    args = parser.parse_args()

    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User
    from django.db import connection

    from jobs.models import Tile

    (work / "tiles").mkdir()
    make_index(work / "tiles", args.side, args.tile_size)
    tile_ids = list(Tile.objects.order_by("number").values_list("number", flat=True))
    owner, _ = User.objects.get_or_create(username="bench")
    n = len(tile_ids)
    solo = raster_alone_seconds(tile_ids, work, 1)
    pool = raster_alone_seconds(tile_ids, work, 2)
    print(f"{n} tiles of {args.tile_size} x {args.tile_size}, slope, 2 workers, {connection.vendor}")
    print(f"  raster work alone, one process:      {solo:6.2f} s = {n / solo:7.1f} tiles/s ({1000 * solo / n:.2f} ms per tile)")
    print(f"  raster work alone, Pool(2), baseline: {pool:6.2f} s = {n / pool:7.1f} tiles/s")
    results = {}
    with harness.cluster():
        run(owner, tile_ids[:4], "claim")  # warm-up
        for mode in args.modes.split(","):
            queued = queue_low(args.queued_jobs, args.queued_tiles) if mode == "queued" else ()
            tiles_phase, total = run(owner, tile_ids, "claim" if mode == "queued" else mode, queued)
            overhead_ms = 1000 * 2 * (tiles_phase - pool) / n  # worker time per tile beyond the pool's
            results[mode] = {"tiles_per_s": round(n / tiles_phase, 1), "overhead_ms": round(overhead_ms, 2),
                             "tiles_s": round(tiles_phase, 2), "total_s": round(total, 2),
                             "ratio_to_pool": round(tiles_phase / pool, 2)}
            print(f"  {mode:9s} tiles {tiles_phase:6.2f} s = {n / tiles_phase:7.1f} tiles/s, {tiles_phase / pool:5.2f} x the pool, "
                  f"overhead {overhead_ms:5.2f} ms per tile; with merge {total:6.2f} s")
    if {"claim", "queued"} <= results.keys():
        print(f"  claim with {args.queued_jobs} jobs ({args.queued_jobs * args.queued_tiles} tiles) queued / claim alone, "
              f"throughput: {results['queued']['tiles_per_s'] / results['claim']['tiles_per_s']:.2f} (target: at least 0.90)")
    if {"claim", "per-tile"} <= results.keys():
        print(f"  claim / per-tile throughput: {results['claim']['tiles_per_s'] / results['per-tile']['tiles_per_s']:.2f}")
    print("  target: at least 1,000 tiles/s with the claim loop on PostgreSQL")
    harness.record("dispatch", {"tiles": n, "tile_size": args.tile_size, "solo_s": round(solo, 2),
                                "pool_s": round(pool, 2), "pool_tiles_per_s": round(n / pool, 1), **results})


if __name__ == "__main__":
    main()
