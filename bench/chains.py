"""A chain of three steps against the same three steps as separate jobs, in one run.

64 tiles of 1024 x 1024 float32 elevations (8 x 8), two workers, a real `manage.py qcluster` and
the REST API (gunicorn). Alternating, --repeat times:
- the chain: one job whose steps are slope, hillshade of the slope, and a colour relief of that,
  run tile by tile in one pass with one merge;
- three jobs: slope over the tiles; its result cut into the same 64 tiles and loaded as a
  collection, which is what a user has to do to run a job over it; hillshade over that collection;
  cut and loaded again; the colour relief over that. Three merges and two loads.
The medians are compared, the parts of the three jobs are shown, and both results are checked to
be identical pixel for pixel.

    .venv/bin/python bench/chains.py [--repeat 3] [--database-url postgres://...]
"""

import argparse
import shutil
import statistics
import time

import harness
from pipeline import make_index

COLUMNS, ROWS, SIZE, FIRST = 8, 8, 1024, 400000
RAMP = "0 0 0 255\n100 0 255 0\n200 255 255 0\n255 255 0 0\nnv 0 0 0\n"
STEPS = [{"type": "slope", "params": {"units": "percent"}}, {"type": "hillshade"},
         {"type": "color-relief", "inputs": {"color_table": "ramp.txt"}}]


def run_job(url, token, body):
    """Submit a job through the API and wait for it; returns (seconds, the job)."""
    start = time.perf_counter()
    job = harness.api_call(f"{url}/api/v1/jobs/", token, "POST", body)
    job = harness.wait_for_success(job["id"])
    return time.perf_counter() - start, job


def cut_and_load(job, folder, first, collection):
    """The job's result cut into the tiles of the original grid and loaded as a collection."""
    from osgeo import gdal

    from jobs.tileload import load_tiles
    from jobsite.media import media_path

    folder.mkdir(parents=True)
    result = gdal.Open(str(media_path(job.outputs[0]["path"])))
    for row in range(ROWS):
        for col in range(COLUMNS):
            gdal.Translate(str(folder / f"dem_{first + row * 100 + col}.tif"), result,
                           srcWin=[col * SIZE, row * SIZE, SIZE, SIZE], creationOptions=["TILED=YES"])
    load_tiles(folder, collection=collection)


def separate_jobs(url, token, tile_ids, work, run):
    """The three steps as three jobs, each over the collection the one before was loaded as."""
    parts, collection, ids = {}, "chainbench", tile_ids
    for number, step in enumerate(STEPS):
        seconds, job = run_job(url, token, {**step, "tile_ids": ids, "collection": collection})
        parts[f"job {number + 1} ({step['type']})"] = seconds
        if number < len(STEPS) - 1:
            start = time.perf_counter()
            first = FIRST + (run * len(STEPS) + number + 1) * 10000
            collection = f"step{number + 1}-{run}"
            cut_and_load(job, work / collection, first, collection)
            ids = [first + row * 100 + col for row in range(ROWS) for col in range(COLUMNS)]
            parts[f"cut and load {number + 1}"] = time.perf_counter() - start
    return sum(parts.values()), parts, job


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    harness.database_arguments(parser)
    args = parser.parse_args()

    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile
    from osgeo import gdal

    from datafiles.services import datafile_store
    from jobs.models import Tile
    from jobsite.media import media_path

    user = User.objects.get_or_create(username="bench")[0]
    token = harness.api_token(user)
    datafile_store(owner=user, upload=SimpleUploadedFile("ramp.txt", RAMP.encode()))
    make_index(work / "tiles", COLUMNS, ROWS, SIZE, FIRST, "chainbench")
    tile_ids = list(Tile.objects.filter(collection_id="chainbench").order_by("number").values_list("number", flat=True))
    chain_times, separate_times, all_parts = [], [], []
    with harness.cluster(), harness.web_server() as url:
        run_job(url, token, {"steps": STEPS, "tile_ids": tile_ids[:4], "collection": "chainbench"})  # warm-up
        for run in range(args.repeat):
            seconds, chain = run_job(url, token, {"steps": STEPS, "tile_ids": tile_ids, "collection": "chainbench"})
            chain_times.append(seconds)
            seconds, parts, last = separate_jobs(url, token, tile_ids, work, run)
            separate_times.append(seconds)
            all_parts.append(parts)
    chain_pixels = gdal.Open(str(media_path(chain.outputs[0]["path"]))).ReadAsArray()
    same = bool((chain_pixels == gdal.Open(str(media_path(last.outputs[0]["path"]))).ReadAsArray()).all())
    chain_s, separate_s = statistics.median(chain_times), statistics.median(separate_times)

    print(f"\nslope, hillshade, colour relief over {COLUMNS * ROWS} tiles of {SIZE} x {SIZE}, 2 workers, "
          f"median of {args.repeat}")
    print(f"  chain          {chain_s:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in chain_times)})")
    print(f"  three jobs     {separate_s:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in separate_times)})")
    for part in all_parts[0]:
        print(f"    {part:<24} {statistics.median(p[part] for p in all_parts):6.2f} s")
    print(f"  chain / three jobs   {chain_s / separate_s:5.2f}")
    print(f"  identical pixels: {'yes' if same else 'NO'}")
    harness.record("chains", {"tiles": COLUMNS * ROWS, "tile_size": SIZE, "steps": len(STEPS),
                              "chain_s": round(chain_s, 3), "three_jobs_s": round(separate_s, 3),
                              "chain_per_three_jobs": round(chain_s / separate_s, 3), "identical": same})
    shutil.rmtree(work, ignore_errors=True)
    if not same:
        raise SystemExit("the chain and the three jobs produced different pixels")


if __name__ == "__main__":
    main()
