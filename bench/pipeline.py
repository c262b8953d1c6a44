"""The demo town's hillshade through jobsite against a plain multiprocessing.Pool, in one run.

The service path: job_submit, a real `manage.py qcluster` with 2 workers claiming the tiles, and
the merge task writing the COG and thumbnail; timed from submit until the job has succeeded.
The baseline: multiprocessing.Pool(2) running the same halo operation (jobs.raster.process_tile)
on the same tiles, then the same merge in the parent process.
Both are run --repeat times, alternating, and the medians compared. Both results are checked to
be identical pixel for pixel.

    .venv/bin/python bench/pipeline.py [--repeat 5] [--town 11850] [--database-url postgres://...]

Without --database-url it works on a fresh SQLite file in a temporary folder; with one, on that
database (which it migrates and fills with the demo data; use a database of its own).
"""

import argparse
import json
import multiprocessing
import shutil
import statistics
import time

import harness


def _pool_tile(args):
    from jobs import raster

    tile, neighbours, width, height, kind_processing, options, out_path = args
    return raster.process_tile(tile=tile, neighbours=neighbours, index_width=width, index_height=height, halo=1,
                               processing=kind_processing, options=options, out_path=out_path)


def run_pool(town_id, out_dir):
    """The baseline: the same per-tile work and merge, with a process pool and no job server."""
    from jobs import raster, services
    from jobs.jobtypes import JOB_TYPES
    from jobs.models import Town

    kind = JOB_TYPES["hillshade"]
    options = kind.gdal_options(kind.clean_params({}))
    width, height = services.index_extent()
    tiles = list(Town.objects.get(pk=town_id).tiles.order_by("id"))
    work = [(services.grid_tile(t), services.neighbours(t, kind.halo), width, height, kind.processing, options,
             out_dir / "tiles" / f"{t.id}.tif") for t in tiles]
    with multiprocessing.Pool(2) as pool:
        pool.map(_pool_tile, work, chunksize=1)
    with raster.thread_config(GDAL_NUM_THREADS="ALL_CPUS"):
        raster.merge_to_cog([w[-1] for w in work], out_dir / "hillshade.tif", out_dir / "thumbnail.png")
    return out_dir / "hillshade.tif"


def run_service(owner, town_id):
    from jobs import services, storage

    job = services.job_submit(owner=owner, job_type="hillshade", town_id=town_id, interim_results="always")
    return storage.media_path(harness.wait_for_success(job.pk).outputs[0]["path"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--town", type=int, default=11850)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from osgeo import gdal

    from jobs.models import Town

    call_command("demo_data", dir=str(harness.BASE_DIR / "var" / "demo"), verbosity=0)
    owner, _ = User.objects.get_or_create(username="bench")
    town = Town.objects.get(pk=args.town)
    tiles = town.tiles.count()

    with harness.cluster():
        run_service(owner, args.town)  # warm-up: the cluster is up and its workers have imported GDAL
        service_times, pool_times = [], []
        for i in range(args.repeat):
            start = time.perf_counter()
            service_result = run_service(owner, args.town)
            service_times.append(time.perf_counter() - start)
            out_dir = work / f"pool-{i}"
            start = time.perf_counter()
            pool_result = run_pool(args.town, out_dir)
            pool_times.append(time.perf_counter() - start)
        same = (gdal.Open(str(service_result)).ReadAsArray() == gdal.Open(str(pool_result)).ReadAsArray()).all()

    service, pool = statistics.median(service_times), statistics.median(pool_times)
    database = connection.vendor
    print(f"hillshade of town {args.town} ({tiles} tiles of "
          f"{town.tiles.first().width} x {town.tiles.first().height}), 2 workers, {database}, median of {args.repeat}")
    print(f"  jobsite service        {service:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in service_times)})")
    print(f"  multiprocessing.Pool   {pool:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in pool_times)})")
    print(f"  ratio service / pool   {service / pool:6.2f}")
    print(f"  identical pixels       {'yes' if same else 'NO'}")
    print(json.dumps({"bench": "pipeline", "database": database, "tiles": tiles, "service_s": round(service, 3),
                      "pool_s": round(pool, 3), "ratio": round(service / pool, 3), "identical": bool(same)}))
    shutil.rmtree(work, ignore_errors=True)
    if not same:
        raise SystemExit("the service and the pool produced different pixels")


if __name__ == "__main__":
    main()
