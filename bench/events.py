"""What recording events costs the tile loop: a job's bookkeeping with the notifications app's
receivers connected (as the service runs) against the same with them disconnected, in one run.

The job has about 2,000 tiles (the index of bench/dispatch.py). This process plays two workers'
database work, without the raster work: it claims a batch of pending tiles and records the
batch before as succeeded, in one transaction (jobs.services.worker._record_and_claim, the
claim loop's own step), until none are left. With the receivers, each recorded batch also counts
the job's tiles and looks up its last progress event, and records a new one at most every
JOBSITE_EVENT_PROGRESS_SECONDS and at each 10 %. Two batch sizes: 1 tile (tiles of 50 ms or more)
and 16 (tiles of about 3 ms).

Prints, for each, the milliseconds per batch with and without the receivers, their ratio, the
events recorded, and the cost per tile against bench/dispatch.py's figure of the service's own
cost per tile.

    .venv/bin/python bench/events.py [--side 45] [--repeat 3] [--database-url postgres://...]
"""

import argparse
import statistics
import time


def bookkeeping_seconds(owner, tile_ids, batch):
    """Submit a job of `tile_ids`, start it and run its claim-and-record steps `batch` tiles at a
    time until no tile is pending; (seconds of those steps, batches, progress events recorded)."""
    from jobs import lifecycle
    from jobs.models import Job, JobStatus
    from jobs.services.submit import job_submit
    from jobs.services.worker import _record_and_claim
    from notifications.models import Event, EventType

    job = job_submit(owner=owner, job_type="slope", tile_ids=tile_ids)  # its task waits: no cluster runs
    lifecycle.move_job(job.pk, "start")
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING
    done, batches = [], 0
    start = time.perf_counter()
    while True:
        claimed = _record_and_claim(job.pk, done, "bench", batch)
        if not claimed:
            break
        batches += 1
        done = [(job_tile, f"jobs/{job.pk}/tiles/{job_tile.tile_id}.tif", 1) for job_tile in claimed]
    seconds = time.perf_counter() - start
    events = Event.objects.filter(job_id=job.pk, type=EventType.JOB_PROGRESS).count()
    lifecycle.move_job(job.pk, "cancel", message="canceled: the benchmark is done with it")
    return seconds, batches, events


def main():
    import harness

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=45, help="tiles per side")
    parser.add_argument("--repeat", type=int, default=3)
    harness.database_arguments(parser)
    args = parser.parse_args()

    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User
    from django.db import connection

    from dispatch import make_index
    from jobs import lifecycle
    from jobs.models import JobTile, Tile
    from notifications import events

    (work / "tiles").mkdir()
    make_index(work / "tiles", args.side, 64)
    tile_ids = list(Tile.objects.order_by("number").values_list("number", flat=True))
    owner, _ = User.objects.get_or_create(username="bench")
    bookkeeping_seconds(owner, tile_ids[:32], 4)  # warm-up
    print(f"{len(tile_ids)} tiles, claim-and-record steps without the raster work, {connection.vendor}, "
          f"median of {args.repeat}")
    figures = {}
    for batch in (1, 16):
        runs = {"with": [], "without": []}
        for _ in range(args.repeat):
            for mode in ("without", "with"):
                if mode == "without":
                    lifecycle.tiles_changed.disconnect(sender=JobTile, dispatch_uid="notifications.tiles_changed")
                try:
                    runs[mode].append(bookkeeping_seconds(owner, tile_ids, batch))
                finally:
                    lifecycle.tiles_changed.connect(events.on_tiles_changed, sender=JobTile,
                                                    dispatch_uid="notifications.tiles_changed")
        with_s = statistics.median(seconds for seconds, _, _ in runs["with"])
        without_s = statistics.median(seconds for seconds, _, _ in runs["without"])
        batches = runs["with"][0][1]
        per_tile_ms = 1000 * (with_s - without_s) / len(tile_ids)
        figures[f"batch_{batch}"] = {"batches": batches, "with_s": round(with_s, 3), "without_s": round(without_s, 3),
                                     "ratio": round(with_s / without_s, 3), "events": runs["with"][0][2],
                                     "recording_ms_per_batch": round(1000 * (with_s - without_s) / batches, 3),
                                     "recording_ms_per_tile": round(per_tile_ms, 3)}
        print(f"  batches of {batch:2d}: {1000 * with_s / batches:6.2f} ms a batch with the receivers, "
              f"{1000 * without_s / batches:6.2f} ms without ({with_s / without_s:.2f} x); "
              f"{runs['with'][0][2]} progress events; recording costs {per_tile_ms:.3f} ms per tile")
    print("  for scale: bench/dispatch.py measures the service's own cost per tile (0.28-0.51 ms on tiles of 1 ms)")
    harness.record("events", {"tiles": len(tile_ids), "repeat": args.repeat, **figures})


if __name__ == "__main__":
    main()
