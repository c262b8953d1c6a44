"""A hillshade job, then a slope job, over 64 tiles of 1024 x 1024 through jobsite, against a plain
multiprocessing.Pool doing the same work, in one run.

The service path: each job submitted through the REST API (gunicorn), its tiles run by a real
`manage.py qcluster` with 2 workers, merged to a COG with a thumbnail; timed from the first submit
until the second job has succeeded.
The baseline: multiprocessing.Pool(2) running the same halo operation (jobs.raster.dem.process_tile)
on the same tiles, then the same merge in the parent process, for each job type in turn.
Both are run --repeat times, alternating, and the medians compared. The results of both are
checked to be identical pixel for pixel.

    .venv/bin/python bench/pipeline.py [--repeat 3] [--side 8] [--tile-size 1024] [--database-url postgres://...]
"""

import argparse
import multiprocessing
import shutil
import statistics
import time

import harness

TYPES = ("hillshade", "slope")


def make_index(folder, side, size):
    """side x side tiles of size x size float32 elevations: value noise at a quarter of the
    resolution, resampled bilinearly (fast to make, smooth like a real DEM)."""
    from osgeo import gdal, gdal_array

    from jobs.demo_terrain import fractal_terrain
    from jobs.raster.io import crs_wkt_from_epsg
    from jobs.tileindex import load_tiles

    coarse = gdal_array.OpenArray(fractal_terrain(side * size // 4, side * size // 4, seed=2026))
    coarse.SetGeoTransform((500000.0, 4.0, 0.0, 6000000.0, 0.0, -4.0))
    coarse.SetProjection(crs_wkt_from_epsg(25832))
    dem = gdal.Translate("", coarse, format="MEM", width=side * size, height=side * size, resampleAlg="bilinear")
    for row in range(side):
        for col in range(side):
            gdal.Translate(str(folder / f"dem_{row * 100 + col + 1}.tif"), dem, srcWin=[col * size, row * size, size, size],
                           creationOptions=["TILED=YES"])
    load_tiles(folder)


def run_pool(tiles, out_dir):
    """The baseline: the same per-tile work and merge, with a process pool and no job server."""
    from jobs import tileindex
    from jobs.tileindex import grid_tile, neighbours
    from jobs.jobtypes import JOB_TYPES
    from jobs.raster.mosaic import merge_to_cog
    from jobsite.gdalpolicy import thread_config

    grid = tileindex.index_grid()
    around = neighbours(tiles, 1, grid)
    results = []
    with multiprocessing.Pool(2) as pool:
        for name in TYPES:
            kind = JOB_TYPES[name]
            options = kind.gdal_options(kind.clean_params({}), {})
            work = [(grid_tile(t), around[t.pk], grid, kind.processing, options,
                     out_dir / name / f"{t.id}.tif") for t in tiles]
            pool.map(harness.process_tile, work, chunksize=1)
            with thread_config(GDAL_NUM_THREADS="ALL_CPUS"):
                merge_to_cog([w[-1] for w in work], out_dir / f"{name}.tif", out_dir / f"{name}.png")
            results.append(out_dir / f"{name}.tif")
    return results


def run_service(url, token, tile_ids):
    from jobsite.media import media_path

    results = []
    for name in TYPES:
        job = harness.api_call(f"{url}/api/v1/jobs/", token, "POST", {"type": name, "tile_ids": tile_ids})
        results.append(media_path(harness.wait_for_success(job["id"]).outputs[0]["path"]))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--side", type=int, default=8, help="tiles per side")
    parser.add_argument("--tile-size", type=int, default=1024)
    harness.database_arguments(parser)
    args = parser.parse_args()

    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User
    from osgeo import gdal

    from jobs.models import Tile

    (work / "tiles").mkdir()
    make_index(work / "tiles", args.side, args.tile_size)
    tiles = list(Tile.objects.order_by("number"))
    tile_ids = [t.number for t in tiles]
    token = harness.api_token(User.objects.get_or_create(username="bench")[0])

    service_times, pool_times = [], []
    with harness.cluster(), harness.web_server() as url:
        run_service(url, token, tile_ids[:4])  # warm-up: the workers have imported GDAL and Django
        for i in range(args.repeat):
            start = time.perf_counter()
            service_results = run_service(url, token, tile_ids)
            service_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            pool_results = run_pool(tiles, work / f"pool-{i}")
            pool_times.append(time.perf_counter() - start)
    same = all((gdal.Open(str(a)).ReadAsArray() == gdal.Open(str(b)).ReadAsArray()).all()
               for a, b in zip(service_results, pool_results, strict=True))

    service, pool = statistics.median(service_times), statistics.median(pool_times)
    print(f"{' then '.join(TYPES)} over {len(tiles)} tiles of {args.tile_size} x {args.tile_size}, 2 workers, "
          f"median of {args.repeat}")
    print(f"  jobsite service        {service:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in service_times)})")
    print(f"  multiprocessing.Pool   {pool:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in pool_times)})")
    print(f"  ratio service / pool   {service / pool:6.2f}   (target: at most 1.10)")
    print(f"  identical pixels       {'yes' if same else 'NO'}")
    harness.record("pipeline", {"tiles": len(tiles), "tile_size": args.tile_size, "service_s": round(service, 3),
                                "pool_s": round(pool, 3), "ratio": round(service / pool, 3), "identical": bool(same)})
    shutil.rmtree(work, ignore_errors=True)
    if not same:
        raise SystemExit("the service and the pool produced different pixels")


if __name__ == "__main__":
    main()
