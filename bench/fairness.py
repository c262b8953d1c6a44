"""Fair scheduling on a real `qcluster` with 2 workers: small jobs stay fast while big jobs run.

Hillshade over tiles of --tile-size pixels (default 20 x 20 tiles of 768 x 768), one run:
  small alone     a 4-tile job on an idle cluster: the baseline of the next line;
  small in big    the same job submitted --into seconds into another user's 400-tile job;
                  target: at most 1.5 times its time alone plus 1 s;
  big             the 400-tile job's wall time alone and with the small and a high-priority job
                  overtaking it; target: it grows by no more than their work (per worker) plus 5 %;
  high priority   a staff user's high-priority job submitted into two users' running jobs: the
                  normal tiles claimed between its submit and its first tile (target: none, i.e.
                  within one batch) and the delay;
  three users     three users each submitting a 300-tile job at once: each one's worker time while
                  all three run, against equal shares (target: within 10 %).

Worker time is read from the tiles' claim and end times (a batch counts once).

    .venv/bin/python bench/fairness.py [--side 20] [--tile-size 768] [--database-url postgres://...]
"""

import argparse
import threading
import time


def make_index(folder, side, size):
    from jobs.demo_terrain import fractal_terrain
    from jobs.raster.io import crs_wkt_from_epsg, write_raster
    from jobs.tileload import load_tiles

    wkt = crs_wkt_from_epsg(25832)
    for row in range(side):
        for col in range(side):
            gt = (500000.0 + col * size * 2.0, 2.0, 0.0, 6000000.0 - row * size * 2.0, 0.0, -2.0)
            write_raster(folder / f"t_{row * 1000 + col + 1}.tif", fractal_terrain(size, size, seed=row * side + col),
                         gt, wkt, nodata=-9999.0, creation_options=("TILED=NO",))
    load_tiles(folder)


def submit(owner, tile_ids, priority=None):
    from jobs.services.submit import job_submit

    return job_submit(owner=owner, job_type="hillshade", tile_ids=tile_ids, priority=priority).pk


def timed(job_id):
    """(wall seconds from creation to the end, the job) once it has succeeded."""
    import harness

    job = harness.wait_for_success(job_id)
    return (job.finished - job.created).total_seconds(), job


def worker_seconds(job_ids, start=None, end=None):
    """{owner: worker seconds of their tiles (each batch once), within [start, end] if given}."""
    from jobs.models import JobTile

    batches = set(JobTile.objects.filter(job_id__in=job_ids, finished__isnull=False).values_list(
        "job__owner__username", "lease_owner", "started", "finished"))
    totals = {}
    for owner, _, began, ended in batches:
        began, ended = max(began, start) if start else began, min(ended, end) if end else ended
        totals[owner] = totals.get(owner, 0.0) + max(0.0, (ended - began).total_seconds())
    return totals


def merge_seconds(job):
    return (job.finished - job.merge_started).total_seconds()


def main():
    import harness

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=20, help="tiles per side (at least 20: 400 tiles)")
    parser.add_argument("--tile-size", type=int, default=768)
    parser.add_argument("--into", type=float, default=5.0, help="seconds into the big job to submit the small one")
    harness.database_arguments(parser)
    args = parser.parse_args()

    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from jobs.models import JobTile, Tile

    (work / "tiles").mkdir()
    make_index(work / "tiles", args.side, args.tile_size)
    ids = list(Tile.objects.order_by("number").values_list("number", flat=True))
    users = {name: User.objects.create_user(name) for name in ("big", "small", "ann", "bob", "cy")}
    users["staff"] = User.objects.create_user("staff", is_staff=True)
    print(f"hillshade, tiles of {args.tile_size} x {args.tile_size}, 2 workers, {connection.vendor}")
    figures = {"tile_size": args.tile_size}
    with harness.cluster():
        timed(submit(users["small"], ids[:4]))  # warm-up
        small_alone, _ = timed(submit(users["small"], ids[-4:]))
        big_alone, big_job = timed(submit(users["big"], ids[:400]))
        print(f"  small alone {small_alone:6.2f} s; big (400 tiles) alone {big_alone:6.2f} s, "
              f"{1000 * 2 * big_alone / 400:.1f} ms of worker time per tile")

        # The small job, and then a high-priority job, overtake the big one.
        big = submit(users["big"], ids[:400])
        time.sleep(min(args.into, big_alone / 3))
        small_in_big, small_job = timed(submit(users["small"], ids[-4:]))
        high = submit(users["staff"], ids[100:120], priority="high")
        submitted = timezone.now()
        high_time, high_job = timed(high)
        big_with, big_job = timed(big)
        first_high = JobTile.objects.filter(job_id=high).order_by("started").values_list("started", flat=True).first()
        normal_between = JobTile.objects.filter(job_id=big, started__gt=submitted, started__lt=first_high).count()
        overtaking = sum(worker_seconds([small_job.pk, high]).values()) + merge_seconds(small_job) + merge_seconds(high_job)
        allowed = big_alone + overtaking / 2 + 0.05 * big_alone
        print(f"  small in big {small_in_big:6.2f} s = {small_in_big / small_alone:.2f} x alone "
              f"(target at most {1.5 * small_alone + 1:.2f} s)")
        print(f"  big with both {big_with:6.2f} s: grew {big_with - big_alone:+.2f} s for {overtaking:.2f} s of their "
              f"work; target at most {allowed:.2f} s")
        print(f"  high priority: first tile {(first_high - submitted).total_seconds() * 1000:.0f} ms after submit, "
              f"{normal_between} normal tiles claimed in between (target 0); done in {high_time:.2f} s")

        # Three users at once.
        three = {}
        threads = [threading.Thread(target=lambda name=name: three.setdefault(name, submit(users[name], ids[:300])))
                   for name in ("ann", "bob", "cy")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        jobs = [timed(job_id)[1] for job_id in three.values()]
        # From the last start to the first one's last tile (its merge start).
        shares = worker_seconds(list(three.values()), max(job.started for job in jobs),
                                min(job.merge_started for job in jobs))
        fair = sum(shares.values()) / 3
        spread = max(abs(share - fair) / fair for share in shares.values())
        print("  three users, worker seconds while all three ran: "
              + ", ".join(f"{name} {seconds:.2f}" for name, seconds in sorted(shares.items()))
              + f"; at most {100 * spread:.1f} % from equal (target 10 %)")
    figures.update({
        "small_alone_s": round(small_alone, 2), "small_in_big_s": round(small_in_big, 2),
        "small_target_s": round(1.5 * small_alone + 1, 2), "big_alone_s": round(big_alone, 2),
        "big_with_s": round(big_with, 2), "big_allowed_s": round(allowed, 2),
        "high_first_tile_ms": round((first_high - submitted).total_seconds() * 1000), "normal_tiles_between": normal_between,
        "three_users_shares_s": {name: round(seconds, 2) for name, seconds in shares.items()},
        "three_users_spread": round(spread, 3),
    })
    harness.record("fairness", figures)


if __name__ == "__main__":
    main()
