"""Where a hillshade job's wall time goes, and how the service compares with the machine's floor and
with a GIS user's one-liner, in one run.

Two workloads: 32 tiles of 1024 x 1024 float32 (large tiles: the raster work dominates) and 1,000
tiles of 64 x 64 (small tiles: the service's cost per tile dominates). For each, alternating, --repeat
times:
- the service: the job submitted through the REST API (gunicorn), its tiles run by a real
  `manage.py qcluster` with 2 workers and merged to a COG with a thumbnail, timed from the submit's
  request until the job is seen succeeded;
- the floor: the whole area read into memory, its hillshade computed in two halves on two threads
  (each half with the row of its neighbour that it needs), and one COG written with the service's
  creation options: the same work with no job server at all;
- the one-liner: `gdaldem hillshade` over a VRT of the tiles, then `gdal_translate -of COG` with the
  service's creation options, as two commands in one shell.
The medians are compared, and all three results are checked to be identical pixel for pixel.

Then the phases of one more service run, from the job's and its tiles' timestamps (submit, first
pickup, tile work, last tile to merge, merge), and the parts of the merge timed one by one on that
run's tile outputs (kept with interim_results "always"): the mosaic alone, with overviews, with
compression, the thumbnail and the statistics.

    .venv/bin/python bench/pipeline.py [--repeat 3] [--database-url postgres://...]
"""

import argparse
import shutil
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import harness

WORKLOADS = {"large": (8, 4, 1024, 100000), "small": (40, 25, 64, 200000)}  # columns, rows, tile size, first tile number
TARGETS = {"large": {"floor": 1.3, "one-liner": 0.8}, "small": {"one-liner": 0.7}}


def make_index(folder, columns, rows, size, first, collection):
    """columns x rows tiles of size x size float32 elevations: value noise at a quarter of the
    resolution, resampled bilinearly (fast to make, smooth like a real DEM)."""
    from osgeo import gdal, gdal_array

    from jobs.demo_terrain import fractal_terrain
    from jobs.raster.io import crs_wkt_from_epsg
    from jobs.tileload import load_tiles

    coarse = gdal_array.OpenArray(fractal_terrain(rows * size // 4, columns * size // 4, seed=2026))
    coarse.SetGeoTransform((500000.0, 4.0, 0.0, 6000000.0, 0.0, -4.0))
    coarse.SetProjection(crs_wkt_from_epsg(25832))
    dem = gdal.Translate("", coarse, format="MEM", width=columns * size, height=rows * size, resampleAlg="bilinear")
    folder.mkdir(parents=True)
    for row in range(rows):
        for col in range(columns):
            gdal.Translate(str(folder / f"dem_{first + row * 100 + col}.tif"), dem, srcWin=[col * size, row * size, size, size],
                           creationOptions=["TILED=YES"] if size >= 256 else [])
    load_tiles(folder, collection=collection)
    vrt = folder / "all.vrt"
    gdal.BuildVRT(str(vrt), sorted(str(p) for p in folder.glob("dem_*.tif")))
    return vrt


def cog_options(threads):
    from jobs.raster.mosaic import COG_OPTIONS

    return [*COG_OPTIONS, f"NUM_THREADS={threads}"]


def hillshade_options():
    from jobs.jobtypes import JOB_TYPES

    kind = JOB_TYPES["hillshade"]
    return kind.gdal_options(kind.clean_params({}), {})


def run_floor(vrt, out_path):
    """The whole area's hillshade in memory, in two halves on two threads, then one COG."""
    from osgeo import gdal, gdal_array

    options = hillshade_options()
    source = gdal.Open(str(vrt))
    width, height = source.RasterXSize, source.RasterYSize
    elevations = source.ReadAsArray()
    x0, px, _, y0, _, py = source.GetGeoTransform()
    nodata = source.GetRasterBand(1).GetNoDataValue()
    middle = height // 2

    def half(rows):
        first, last = max(0, rows[0] - 1), min(height, rows[1] + 1)  # one row of the other half as halo
        part = gdal_array.OpenArray(elevations[first:last])
        part.SetGeoTransform((x0, px, 0.0, y0 + first * py, 0.0, py))
        part.SetProjection(source.GetProjection())
        if nodata is not None:
            part.GetRasterBand(1).SetNoDataValue(nodata)
        shaded = gdal.DEMProcessing("", part, "hillshade", format="MEM", **options)
        return shaded.ReadAsArray(0, rows[0] - first, width, rows[1] - rows[0]), shaded.GetRasterBand(1).GetNoDataValue()

    with ThreadPoolExecutor(2) as pool:
        (top, shaded_nodata), (bottom, _) = pool.map(half, [(0, middle), (middle, height)])
    import numpy as np

    mosaic = gdal_array.OpenArray(np.vstack([top, bottom]))
    mosaic.SetGeoTransform(source.GetGeoTransform())
    mosaic.SetProjection(source.GetProjection())
    mosaic.GetRasterBand(1).SetNoDataValue(shaded_nodata)
    gdal.Translate(str(out_path), mosaic, format="COG", creationOptions=cog_options(2))
    return out_path


def run_one_liner(vrt, out_path):
    """gdaldem over a VRT of the tiles, then the COG, as a GIS user would type them."""
    options = hillshade_options()
    flat = out_path.with_suffix(".flat.tif")
    creation = " ".join(f"-co {option}" for option in cog_options("ALL_CPUS"))
    subprocess.run(
        f"gdaldem hillshade -q -alg {options['alg']} -z {options['zFactor']} -s {options['scale']} "
        f"-az {options['azimuth']} -alt {options['altitude']} -co TILED=YES {vrt} {flat} && "
        f"gdal_translate -q -of COG {creation} {flat} {out_path}",
        shell=True, check=True)
    flat.unlink()
    return out_path


def run_service(url, token, collection, tile_ids, interim="never"):
    from jobsite.media import media_path

    start = time.perf_counter()
    job = harness.api_call(f"{url}/api/v1/jobs/", token, "POST", {"type": "hillshade", "tile_ids": tile_ids,
                                                                   "collection": collection, "interim_results": interim})
    submitted = time.perf_counter() - start
    job = harness.wait_for_success(job["id"])
    return time.perf_counter() - start, submitted, job, media_path(job.outputs[0]["path"])


def phases(job, submitted):
    """Seconds of each phase of a service run, from the job's and its tiles' timestamps."""
    from django.db.models import Max, Min, Sum

    tiles = job.tiles.aggregate(first=Min("started"), last=Max("finished"), cpu=Sum("cpu_seconds"))
    return {
        "submit (request)": submitted,
        "created to first tile": (tiles["first"] - job.created).total_seconds(),
        "tile work (first start to last end)": (tiles["last"] - tiles["first"]).total_seconds(),
        "  CPU seconds of all tiles": tiles["cpu"],
        "last tile to merge start": (job.merge_started - tiles["last"]).total_seconds(),
        "merge (start to succeeded)": (job.finished - job.merge_started).total_seconds(),
    }


def merge_parts(tile_paths, work):
    """The merge's steps one by one on the same tile outputs: the copy into one plain GeoTIFF, then
    its COG without compression or overviews, with either, with both, its overviews computed on
    every core and the COG from them (as the service writes it), the thumbnail and the statistics."""
    from jobs.raster import mosaic
    from jobs.raster.maptiles import describe
    from jobsite.gdalpolicy import thread_config
    from osgeo import gdal

    timings = {}

    def timed(name, call):
        start = time.perf_counter()
        result = call()
        timings[name] = time.perf_counter() - start
        return result

    def cog(name, compressed, overviews):
        options = [o for o in cog_options("ALL_CPUS") if compressed or not o.startswith(("COMPRESS", "LEVEL", "PREDICTOR"))]
        options = [o for o in options if not o.startswith("OVERVIEWS")] + [f"OVERVIEWS={'AUTO' if overviews else 'NONE'}"]
        path = work / f"cog-{len(timings)}.tif"
        timed(name, lambda: gdal.Translate(str(path), flat, format="COG", creationOptions=options))
        return path

    with thread_config(GDAL_NUM_THREADS="ALL_CPUS"):
        flat = timed("tiles copied into one plain GeoTIFF", lambda: mosaic.flatten(tile_paths, work / "flat.tif"))
        cog("COG of it: no compression, no overviews", False, False)
        cog("  with overviews", False, True)
        cog("  with compression", True, False)
        result = cog("  with both, GDAL's overviews", True, True)
        levels = []
        source = timed("overviews computed on every core", lambda: mosaic.with_overviews(work / "flat.tif", levels))
        path = work / "service.tif"
        timed("COG with both, from those overviews, as the service writes it",
              lambda: gdal.Translate(str(path), source, format="COG", creationOptions=cog_options("ALL_CPUS")))
        source = None
        timed("thumbnail", lambda: mosaic._write_thumbnail(result, work / "thumbnail.png", 512))
        timed("statistics (describe)", lambda: describe(result))
    return timings


def compare(args, name, url, token, work):
    from osgeo import gdal

    from jobs.models import Tile

    columns, rows, size, first = WORKLOADS[name]
    vrt = make_index(work / name, columns, rows, size, first, name)
    tile_ids = list(Tile.objects.filter(collection_id=name).order_by("number").values_list("number", flat=True))
    run_service(url, token, name, tile_ids[:4])  # warm-up: the workers have imported GDAL and Django
    times = {"service": [], "floor": [], "one-liner": []}
    results = {}
    for i in range(args.repeat):
        wall, _, _, results["service"] = run_service(url, token, name, tile_ids)
        times["service"].append(wall)
        for label, run in (("floor", run_floor), ("one-liner", run_one_liner)):
            start = time.perf_counter()
            results[label] = run(vrt, work / f"{name}-{label}-{i}.tif")
            times[label].append(time.perf_counter() - start)
    reference = gdal.Open(str(results["service"])).ReadAsArray()
    same = all((gdal.Open(str(results[label])).ReadAsArray() == reference).all() for label in ("floor", "one-liner"))
    medians = {label: statistics.median(values) for label, values in times.items()}

    print(f"\nhillshade over {len(tile_ids)} tiles of {size} x {size} ({columns * size} x {rows * size} pixels), "
          f"2 workers, median of {args.repeat}")
    for label, values in times.items():
        print(f"  {label:<10} {medians[label]:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in values)})")
    ratios = {label: medians["service"] / medians[label] for label in ("floor", "one-liner")}
    for label, ratio in ratios.items():
        target = TARGETS[name].get(label)
        print(f"  service / {label:<10} {ratio:5.2f}" + (f"   (target: at most {target})" if target else ""))
    print(f"  identical pixels: {'yes' if same else 'NO'}")

    wall, submitted, job, _ = run_service(url, token, name, tile_ids, interim="always")
    print(f"  phases of one more run ({wall:.2f} s):")
    for phase, seconds in phases(job, submitted).items():
        print(f"    {phase:<40} {seconds:6.2f} s")
    from jobsite.media import media_path

    tile_paths = [media_path(p) for p in dict.fromkeys(  # the tiles of a block share its file
        job.tiles.order_by("tile__number").values_list("output_path", flat=True))]
    (work / f"{name}-parts").mkdir()
    print("  the merge's parts, on that run's tile outputs:")
    for part, seconds in merge_parts(tile_paths, work / f"{name}-parts").items():
        print(f"    {part:<58} {seconds:6.2f} s")
    harness.record("pipeline", {"workload": name, "tiles": len(tile_ids), "tile_size": size,
                                **{f"{label}_s": round(value, 3) for label, value in medians.items()},
                                **{f"service_per_{label}": round(value, 3) for label, value in ratios.items()},
                                "identical": bool(same)})
    return same


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), action="append",
                        help="run only this workload (may be given twice); default both")
    harness.database_arguments(parser)
    args = parser.parse_args()

    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User

    token = harness.api_token(User.objects.get_or_create(username="bench")[0])
    same = True
    with harness.cluster(), harness.web_server() as url:
        for name in args.workload or sorted(WORKLOADS):
            same = compare(args, name, url, token, work) and same
    shutil.rmtree(work, ignore_errors=True)
    if not same:
        raise SystemExit("the service, the floor and the one-liner produced different pixels")


if __name__ == "__main__":
    main()
