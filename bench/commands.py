"""Declared command-line job types against the built-in in-process type and against the tool run
once on the whole raster, over 64 tiles of 512 x 512, in one run.

  built-in      the built-in slope type through the service (a real cluster, two workers).
  gdaldem       a declared type running `gdaldem slope` on every tile (with its halo), through the
                service: the same result, with a process started per tile.
  saga          the example saga-slope type (`saga_cmd ta_morphometry 0`), through the service.
  grass         the example grass-slope type (r.slope.aspect in a throw-away GRASS location per
                tile), through the service.
  whole         each tool once on the whole raster (a VRT of the tiles for gdaldem, the raster as a
                SAGA grid, converted beforehand, for saga_cmd, the raster as a GeoTIFF for the
                GRASS program), in one process.

Each is run --repeat times; the medians are compared (a tool's cost per process start shows as
the difference between a command type and the built-in one).

    .venv/bin/python bench/commands.py [--repeat 3] [--side 8] [--tile-size 512] [--database-url postgres://...]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import harness

GDALDEM_SLOPE = """\
job_types:
  - name: gdaldem-slope
    version: "1"
    halo: 1
    output: {data_type: Float32, nodata: -9999}
    command: [gdaldem, slope, "{input}", "{output}", -of, GTiff, -q]
"""


def timed_job(job_type, tile_ids, owner):
    from jobs.services.submit import job_submit

    start = time.perf_counter()
    job = job_submit(owner=owner, job_type=job_type, tile_ids=tile_ids)
    harness.wait_for_success(job.pk)
    return time.perf_counter() - start


def whole_tools(work):
    """Seconds of gdaldem slope over a VRT of the tiles, of saga_cmd slope over the raster as a
    SAGA grid, and of the example's GRASS program over it as a GeoTIFF (each converted before
    the clock starts)."""
    from osgeo import gdal

    from jobs.jobtypes import JOB_TYPES
    from jobs.raster.command import substitute

    vrt = work / "whole.vrt"
    gdal.BuildVRT(str(vrt), sorted(str(p) for p in (work / "tiles").glob("*.tif")))
    start = time.perf_counter()
    subprocess.run(["gdaldem", "slope", str(vrt), str(work / "whole-slope.tif"), "-q"], check=True)
    gdaldem = time.perf_counter() - start
    gdal.Translate(str(work / "whole.sdat"), str(vrt), format="SAGA")
    start = time.perf_counter()
    subprocess.run(["saga_cmd", "ta_morphometry", "0", "-ELEVATION", str(work / "whole.sdat"), "-SLOPE",
                    str(work / "slope.sdat"), "-METHOD", "6", "-UNIT_SLOPE", "1"], check=True, capture_output=True)
    saga = time.perf_counter() - start
    gdal.Translate(str(work / "whole-grass.tif"), str(vrt), format="GTiff")
    values = {"input": str(work / "whole-grass.tif"), "output": str(work / "grass-slope.tif"), "format": "degrees",
              "zscale": "1.0"}
    argv = [substitute(part, values) for part in JOB_TYPES["grass-slope"].tool.argv]
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=work, env={"PATH": os.defpath, "HOME": str(work)})
    return gdaldem, saga, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--side", type=int, default=8, help="tiles per side")
    parser.add_argument("--tile-size", type=int, default=512)
    harness.database_arguments(parser)
    args = parser.parse_args()

    declared = Path(tempfile.mkdtemp(prefix="jobsite-bench-types-")) / "gdaldem.yaml"
    declared.write_text(GDALDEM_SLOPE)
    os.environ["JOBSITE_JOB_TYPES_FILE"] = f"{harness.BASE_DIR / 'job-types.example.yaml'},{declared}"
    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User

    import pipeline
    from jobs.models import Tile

    (work / "tiles").mkdir()
    pipeline.make_index(work / "tiles", args.side, args.tile_size)
    tile_ids = list(Tile.objects.order_by("number").values_list("number", flat=True))
    owner = User.objects.get_or_create(username="bench")[0]
    types = {"built-in": "slope", "gdaldem": "gdaldem-slope", "saga": "saga-slope", "grass": "grass-slope"}
    times = {label: [] for label in types}
    with harness.cluster():
        for name in types.values():
            timed_job(name, tile_ids[:4], owner)  # warm-up: the workers have imported GDAL and Django
        for _ in range(args.repeat):
            for label, name in types.items():
                times[label].append(timed_job(name, tile_ids, owner))
    wholes = [whole_tools(work) for _ in range(args.repeat)]
    medians = {label: statistics.median(values) for label, values in times.items()}
    whole_gdaldem = statistics.median(w[0] for w in wholes)
    whole_saga = statistics.median(w[1] for w in wholes)
    whole_grass = statistics.median(w[2] for w in wholes)
    tiles = len(tile_ids)
    print(f"slope over {tiles} tiles of {args.tile_size} x {args.tile_size}, 2 workers, median of {args.repeat}")
    for label, seconds in medians.items():
        print(f"  {label:<10} through the service {seconds:6.2f} s")
    print(f"  gdaldem once on the whole raster  {whole_gdaldem:6.2f} s; saga_cmd once {whole_saga:6.2f} s; "
          f"the GRASS program once {whole_grass:6.2f} s")
    per_start = (medians["gdaldem"] - medians["built-in"]) / tiles * 2 * 1000
    print(f"  a gdaldem process per tile costs about {per_start:.0f} ms of a worker's time more than in-process")
    harness.record("commands", {
        "tiles": tiles, "tile_size": args.tile_size, "builtin_s": round(medians["built-in"], 3),
        "gdaldem_s": round(medians["gdaldem"], 3), "saga_s": round(medians["saga"], 3),
        "grass_s": round(medians["grass"], 3), "whole_gdaldem_s": round(whole_gdaldem, 3),
        "whole_saga_s": round(whole_saga, 3), "whole_grass_s": round(whole_grass, 3),
        "gdaldem_vs_builtin": round(medians["gdaldem"] / medians["built-in"], 3),
        "gdaldem_vs_whole": round(medians["gdaldem"] / whole_gdaldem, 3),
        "saga_vs_whole": round(medians["saga"] / whole_saga, 3),
        "grass_vs_whole": round(medians["grass"] / whole_grass, 3),
        "ms_per_process_start": round(per_start, 1),
    })
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(declared.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
