"""The dashboard's jobs page and the API's job list with 100,000 jobs in the database.

Jobs of several owners, types, statuses and labels, each with its tiles, are inserted in bulk.
Each page is requested through Django's test client as a staff user (who sees every job),
timed (median of --repeat) and its queries counted, at --baseline-jobs jobs and then at
--jobs jobs, in the same run: the ratio is the cost of volume. The API list is asked for pages of
10 and of 500 jobs, to show that the number of queries does not grow with the page size.
Target: at most 150 ms per page at 100,000 jobs.

    .venv/bin/python bench/dashboard.py [--jobs 100000] [--database-url postgres://...]
"""

import argparse
import statistics
import time
from datetime import timedelta

import harness

PAGES = [
    ("jobs page", "/"),
    ("jobs page, filtered", "/?status=failed&label=survey"),
    ("jobs page, page 200", "/?page=200"),
    ("API list, default page", "/api/v1/jobs/"),
    ("API list, 10 jobs", "/api/v1/jobs/?limit=10"),
    ("API list, 500 jobs", "/api/v1/jobs/?limit=500"),
    ("API list, filtered", "/api/v1/jobs/?status=failed&label=survey&limit=100"),
]


def add_jobs(count, tiles_per_job=4):
    """`count` more jobs in bulk: 10 owners, 3 types, all statuses, a label on every third job."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from jobs.models import Job, JobStatus, JobTile, Label, Tile, TileStatus

    owners = [User.objects.get_or_create(username=f"owner{n}")[0] for n in range(10)]
    labels = [Label.objects.get_or_create(name=name)[0] for name in ("survey", "flood", "2026")]
    tile_ids = list(Tile.objects.values_list("id", flat=True)[:tiles_per_job])  # keys, for the job tile rows
    statuses = [JobStatus.SUCCEEDED] * 6 + [JobStatus.FAILED, JobStatus.CANCELED, JobStatus.RUNNING, JobStatus.QUEUED]
    now = timezone.now()
    start = Job.objects.count()
    for first in range(0, count, 5000):
        jobs = []
        for n in range(first, min(first + 5000, count)):
            status = statuses[n % len(statuses)]
            created = now - timedelta(minutes=start + count - n)
            final = status in JobStatus.final()
            jobs.append(Job(owner=owners[n % 10], type=("hillshade", "slope", "aspect")[n % 3], status=status,
                            tiles_total=len(tile_ids), created=created, started=created + timedelta(seconds=5),
                            finished=created + timedelta(seconds=65) if final else None, params={},
                            error="1 of its tiles failed" if status == JobStatus.FAILED else ""))
        jobs = Job.objects.bulk_create(jobs)
        tile_status = {JobStatus.SUCCEEDED: TileStatus.SUCCEEDED, JobStatus.FAILED: TileStatus.FAILED}
        JobTile.objects.bulk_create([JobTile(job=job, tile_id=tile_id, status=tile_status.get(job.status, TileStatus.PENDING))
                                     for job in jobs for tile_id in tile_ids], batch_size=5000)
        Job.labels.through.objects.bulk_create([Job.labels.through(job_id=job.pk, label_id=labels[job.pk % 3].pk)
                                                for job in jobs if job.pk % 3 == 0], batch_size=5000)


def measure(client, path, repeat):
    """(median ms, queries) of GET `path`."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        client.get(path)
        times.append(1000 * (time.perf_counter() - start))
    with CaptureQueriesContext(connection) as queries:
        client.get(path)
    return statistics.median(times), len(queries)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--baseline-jobs", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=9)
    harness.database_arguments(parser)
    args = parser.parse_args()

    work = harness.configure(args.database_url)
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    import dispatch

    settings.ALLOWED_HOSTS = ["testserver"]
    (work / "tiles").mkdir()
    dispatch.make_index(work / "tiles", 2, 64)
    staff = User.objects.create_user("staff", is_staff=True)
    client = Client()
    client.force_login(staff)

    add_jobs(args.baseline_jobs)
    small = {label: measure(client, path, args.repeat) for label, path in PAGES}
    start = time.perf_counter()
    add_jobs(args.jobs - args.baseline_jobs)
    print(f"inserted {args.jobs - args.baseline_jobs} more jobs in {time.perf_counter() - start:.0f} s")
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    large = {label: measure(client, path, args.repeat) for label, path in PAGES}

    print(f"server time per page (median of {args.repeat}) and queries, {connection.vendor}:")
    print(f"  {'':24s} {args.baseline_jobs:>8} jobs {args.jobs:>8} jobs   ratio   queries")
    for label, _ in PAGES:
        (ms_small, q_small), (ms_large, q_large) = small[label], large[label]
        print(f"  {label:24s} {ms_small:10.1f} ms {ms_large:10.1f} ms {ms_large / ms_small:7.2f}   {q_small} / {q_large}")
    print("  target: at most 150 ms at volume; the same number of queries for 10 and 500 jobs")
    harness.record("dashboard", {"jobs": args.jobs, "baseline_jobs": args.baseline_jobs,
                                 "pages": {label: {"ms": round(large[label][0], 1), "queries": large[label][1],
                                                   "baseline_ms": round(small[label][0], 1)} for label, _ in PAGES}})


if __name__ == "__main__":
    main()
