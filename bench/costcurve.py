"""The cost curve: hillshade jobs of 1, 10, 100, 1,000, 10,000 and 100,000 tiles of 64 x 64 through
the service, against the same raster work with no service, in one run.

The collection is loaded from a gdaltindex-style GeoPackage (`manage.py load_tiles index.gpkg`) of
as many tiles as the largest job. For each job size:
- the service: the job submitted through the REST API (gunicorn), run by a real `manage.py
  qcluster` with 2 workers and merged to a COG, timed from the submit's request until it is seen
  succeeded;
- the baseline: the same raster work in a multiprocessing.Pool(2): the tiles in grid rows, 64 at a
  time as the workers' batches of small tiles, each batch's adjacent tiles as blocks
  (jobs.raster.dem.process_block), then the same merge (jobs.raster.mosaic.merge_to_cog) in one
  process.
Each size runs --repeat times (fewer once its runs took --budget seconds), each baseline right
after its service run, and the medians are kept. The service's own overhead per tile is the median
of the runs' differences (service - baseline), divided by the tiles; the marginal overhead
first takes away the one-tile job's, which does not grow with the tiles. While each job runs, the
resident memory of every process of the cluster is sampled, and its peak (VmHWM) kept: the
merge's and the workers' peak RSS.

The figures are appended to bench/results.json, and bench/costcurve.png is drawn from the latest
run on each database found there.

    .venv/bin/python bench/costcurve.py [--sizes 1,10,100,1000,10000,100000] [--repeat 5] [--database-url postgres://...]
"""

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

import harness

SIDE = 64
PIXEL = 2.0
ORIGIN = (500000.0, 6000000.0)


def write_tiles(args):
    """Write tiles `start` .. `stop` - 1 of a `columns`-wide grid into `folder`: float32 elevations
    of one smooth relief over the whole area (a product of sines, tilted)."""
    import numpy as np
    from osgeo import gdal

    from jobs.raster.io import crs_wkt_from_epsg

    folder, start, stop, columns = args
    gdal.UseExceptions()
    wkt = crs_wkt_from_epsg(25832)
    driver = gdal.GetDriverByName("GTiff")
    ys, xs = np.mgrid[0:SIDE, 0:SIDE].astype("float32")
    for number in range(start, stop):
        row, col = divmod(number, columns)
        x, y = xs + col * SIDE, ys + row * SIDE
        ds = driver.Create(f"{folder}/dem_{number + 1}.tif", SIDE, SIDE, 1, gdal.GDT_Float32)
        ds.SetGeoTransform((ORIGIN[0] + col * SIDE * PIXEL, PIXEL, 0.0, ORIGIN[1] - row * SIDE * PIXEL, 0.0, -PIXEL))
        ds.SetProjection(wkt)
        ds.GetRasterBand(1).WriteArray(100 + 20 * np.sin(x / 37.0) * np.cos(y / 53.0) + 0.01 * x)
        ds = None


def make_collection(folder, count):
    """`count` tiles in a square-ish grid, indexed by `gdaltindex` into a GeoPackage, loaded as the
    collection "curve" by `manage.py load_tiles`."""
    from concurrent.futures import ProcessPoolExecutor

    from django.core.management import call_command

    columns = round(count ** 0.5)
    (folder / "tiles").mkdir(parents=True)
    chunks = [(str(folder / "tiles"), start, min(start + 2000, count), columns) for start in range(0, count, 2000)]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(write_tiles, chunks))
    # gdaltindex adds to an index that exists: the file names in batches, as xargs gives them.
    subprocess.run("ls tiles | sed 's|^|tiles/|' | xargs gdaltindex -f GPKG index.gpkg > /dev/null", shell=True, cwd=folder, check=True)
    call_command("load_tiles", str(folder / "index.gpkg"), collection="curve", verbosity=0)


class PeakMemory:
    """The peak resident memory (VmHWM) of each process under `root`, sampled every `interval` s."""

    def __init__(self, root, interval=0.05):
        self.root, self.interval, self.peaks = root, interval, {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()

    def _sample(self):
        while not self.stopped.is_set():
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.peaks[pid] = max(self.peaks.get(pid, 0), int(line.split()[1]) * 1024)
            self.stopped.wait(self.interval)

    def _tree(self):
        pids, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                pass
        return pids

    def largest(self):
        return max(self.peaks.values(), default=0)


def baseline(tiles, work):
    """The same raster work and merge, with a process pool and no job server: the tiles in grid
    rows, 64 at a time as the workers' batches of small tiles, each batch's adjacent tiles in blocks."""
    from jobs import tileindex
    from jobs.jobtypes import JOB_TYPES
    from jobs.raster.mosaic import merge_to_cog
    from jobs.services.claims import MAX_BATCH
    from jobs.tileindex import neighbours
    from jobsite.gdalpolicy import thread_config

    start = time.perf_counter()
    grid = tileindex.index_grid("curve")
    kind = JOB_TYPES["hillshade"]
    options = kind.gdal_options(kind.clean_params({}), {})
    items = harness.block_items(tiles, neighbours(tiles, 1, grid), grid, kind.processing, options, work, MAX_BATCH)
    with multiprocessing.Pool(2) as pool:
        pool.map(harness.process_block, items, chunksize=max(1, min(8, len(items) // 8)))
    with thread_config(GDAL_NUM_THREADS="ALL_CPUS"):
        merge_to_cog([item[-1] for item in items], work / "out.tif", work / "out.png")
    return time.perf_counter() - start


def service(url, token, tile_ids, cluster_pid):
    start = time.perf_counter()
    with PeakMemory(cluster_pid) as memory:
        job = harness.api_call(f"{url}/api/v1/jobs/", token, "POST",
                               {"type": "hillshade", "tile_ids": tile_ids, "collection": "curve"})
        harness.wait_for_success(job["id"])
    return time.perf_counter() - start, memory.largest()


def plot(results_path, out_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in json.loads(results_path.read_text()) if e.get("bench") == "costcurve"]
    latest = {}
    for entry in entries:  # the latest run on each database
        run = latest.setdefault(entry["database"], {})
        if run and entry["run"] != next(iter(run.values()))["run"]:
            run.clear()
        run[entry["tiles"]] = entry
    figure, (walls, overheads) = plt.subplots(1, 2, figsize=(11, 4.2))
    for database, run in sorted(latest.items()):
        sizes = sorted(run)
        walls.loglog(sizes, [run[n]["service_s"] for n in sizes], "o-", label=f"service ({database})")
        walls.loglog(sizes, [run[n]["baseline_s"] for n in sizes], "x--", label=f"raster work alone ({database})")
        overheads.loglog(sizes, [run[n]["overhead_ms_per_tile"] for n in sizes], "o-", label=f"a tile ({database})")
        marginal = [n for n in sizes if (run[n].get("marginal_ms_per_tile") or 0) > 0]  # a log scale
        if marginal:
            overheads.loglog(marginal, [run[n]["marginal_ms_per_tile"] for n in marginal], "x--",
                             label=f"marginal ({database})")
    walls.set(xlabel="tiles of 64 x 64 in the job", ylabel="wall time, s", title="Hillshade job, 2 workers")
    overheads.set(xlabel="tiles of 64 x 64 in the job", ylabel="ms per tile",
                  title="The service's own overhead per tile")
    for axes in (walls, overheads):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(out_path, dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,100,1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each size at most; the medians are kept")
    parser.add_argument("--budget", type=float, default=60,
                        help="no further run of a size once its runs took this many seconds")
    harness.database_arguments(parser)
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})  # the one-tile job first: the marginal overheads need it

    os.environ["JOBSITE_MAX_TILES_PER_JOB"] = str(max(sizes))
    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User

    from jobs.models import Tile

    start = time.perf_counter()
    make_collection(work / "index", max(sizes))
    print(f"collection of {max(sizes)} tiles of {SIDE} x {SIDE} made and loaded in {time.perf_counter() - start:.0f} s")
    tiles = list(Tile.objects.filter(collection_id="curve").order_by("number"))
    token = harness.api_token(User.objects.get_or_create(username="bench")[0])
    run = time.strftime("%Y%m%dT%H%M%S")
    print(f"{'tiles':>7} {'runs':>4} {'service':>9} {'baseline':>9} {'overhead/tile':>14} {'marginal':>9} {'peak RSS':>9}")
    one_tile = None  # the one-tile job's overhead: the submit, the broker's wake-up, the job's start and end
    with harness.cluster() as cluster, harness.web_server() as url:
        service(url, token, [tiles[0].number], cluster.pid)  # warm-up
        for size in sizes:
            walls, bases, peak, spent = [], [], 0, 0.0
            while len(walls) < args.repeat and (not walls or spent < args.budget):
                wall, run_peak = service(url, token, [t.number for t in tiles[:size]], cluster.pid)
                folder = work / f"base-{size}-{len(walls)}"
                folder.mkdir()
                walls.append(wall)
                bases.append(baseline(tiles[:size], folder))
                shutil.rmtree(folder)
                peak, spent = max(peak, run_peak), spent + wall + bases[-1]
            wall, base = statistics.median(walls), statistics.median(bases)
            overhead = statistics.median(w - b for w, b in zip(walls, bases, strict=True)) / size * 1000
            if size == 1:
                one_tile = overhead
            marginal = None if one_tile is None or size == 1 else (overhead * size - one_tile) / (size - 1)
            print(f"{size:>7} {len(walls):>4} {wall:>8.2f}s {base:>8.2f}s {overhead:>11.2f} ms "
                  f"{'' if marginal is None else f'{marginal:.2f} ms':>9} {peak / 2**20:>6.0f} MiB")
            harness.record("costcurve", {"run": run, "tiles": size, "tile_size": SIDE, "runs": len(walls),
                                         "service_s": round(wall, 3), "baseline_s": round(base, 3),
                                         "overhead_ms_per_tile": round(overhead, 3),
                                         "marginal_ms_per_tile": None if marginal is None else round(marginal, 3),
                                         "peak_rss_mib": round(peak / 2**20, 1)})
    shutil.rmtree(work, ignore_errors=True)
    bench = Path(__file__).resolve().parent
    plot(bench / "results.json", bench / "costcurve.png")
    print(f"plot: {bench / 'costcurve.png'}")


if __name__ == "__main__":
    main()
