"""Loading a 100,000-tile index from a gdaltindex vector, and submitting a 10,000-tile job through
the REST API, each against a baseline measured in the same run.

  load_tiles  `manage.py load_tiles index.gpkg` (every raster opened and checked, all rows written
              in one transaction), against the least any loader that checks its tiles must do:
              opening each raster and reading its size and georeferencing in a plain loop
              (timed over --baseline-sample tiles and scaled to all of them).
  submit      POST /api/v1/jobs/ with 10,000 tile ids to gunicorn, from request to answer, against
              the bare ORM work it entails: bulk-inserting 10,000 job tile rows.

The index is made of small GeoTIFFs (the size of a tile does not change what loading reads) and
a GeoPackage listing them as gdaltindex would.

    .venv/bin/python bench/submit.py [--tiles 100000] [--job-tiles 10000] [--database-url postgres://...]
"""

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import harness

SIDE = 32  # pixels per tile side
PIXEL = 2.0
ORIGIN = (500000.0, 6000000.0)


def _write_tiles(args):
    """Write tiles `start` .. `stop` - 1 of a `columns`-wide grid into `folder`."""
    from osgeo import gdal

    from jobs.raster.io import crs_wkt_from_epsg

    folder, start, stop, columns = args
    gdal.UseExceptions()
    wkt = crs_wkt_from_epsg(25832)
    driver = gdal.GetDriverByName("GTiff")
    for number in range(start, stop):
        row, col = divmod(number, columns)
        ds = driver.Create(f"{folder}/dem_{number + 1}.tif", SIDE, SIDE, 1, gdal.GDT_Float32)
        ds.SetGeoTransform((ORIGIN[0] + col * SIDE * PIXEL, PIXEL, 0.0, ORIGIN[1] - row * SIDE * PIXEL, 0.0, -PIXEL))
        ds.SetProjection(wkt)
        ds.GetRasterBand(1).Fill(100.0 + number % 7)
        ds = None


def make_index(folder, count):
    """`count` tiles in a square-ish grid, and index.gpkg listing them (location + footprint)."""
    from osgeo import ogr, osr

    columns = round(count ** 0.5)
    (folder / "tiles").mkdir()
    chunks = [(str(folder / "tiles"), start, min(start + 2000, count), columns) for start in range(0, count, 2000)]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_write_tiles, chunks))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(25832)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(folder / "index.gpkg"))
    layer = ds.CreateLayer("index", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("location", ogr.OFTString))
    layer.StartTransaction()
    for number in range(count):
        row, col = divmod(number, columns)
        x0, y0 = ORIGIN[0] + col * SIDE * PIXEL, ORIGIN[1] - row * SIDE * PIXEL
        x1, y1 = x0 + SIDE * PIXEL, y0 - SIDE * PIXEL
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("location", f"tiles/dem_{number + 1}.tif")
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"))
        layer.CreateFeature(feature)
    layer.CommitTransaction()
    ds = None
    return folder / "index.gpkg"


def baseline_read_seconds(folder, count, sample):
    """Seconds to open `sample` of the tiles and read their size and georeferencing, scaled to `count`,
    with the GDAL options that make this fastest (those jobsite uses too)."""
    from osgeo import gdal

    from jobs.raster.io import TILE_OPEN_OPTIONS
    from jobsite.gdalpolicy import thread_config

    gdal.UseExceptions()
    start = time.perf_counter()
    with thread_config(**TILE_OPEN_OPTIONS):
        for number in range(1, sample + 1):
            ds = gdal.Open(str(folder / "tiles" / f"dem_{number}.tif"))
            ds.GetGeoTransform(), ds.GetProjection(), ds.RasterXSize, ds.RasterYSize
    return (time.perf_counter() - start) * count / sample


def baseline_insert_seconds(owner, tile_keys):
    """The bare ORM work of a submit: one job row and a bulk insert of its tile rows, then removed."""
    from django.db import transaction

    from jobs.models import Job, JobTile

    start = time.perf_counter()
    with transaction.atomic():
        job = Job.objects.create(owner=owner, type="slope", params={})
        JobTile.objects.bulk_create([JobTile(job=job, tile_id=key) for key in tile_keys], batch_size=2000)
    elapsed = time.perf_counter() - start
    job.delete()
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=100_000)
    parser.add_argument("--job-tiles", type=int, default=10_000)
    parser.add_argument("--baseline-sample", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="submits to time (the best is reported)")
    harness.database_arguments(parser)
    args = parser.parse_args()

    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from jobs.models import Job, Tile

    start = time.perf_counter()
    index = make_index(work, args.tiles)
    print(f"made {args.tiles} tiles and {index.name} in {time.perf_counter() - start:.1f} s")

    baseline_load = baseline_read_seconds(work, args.tiles, min(args.baseline_sample, args.tiles))
    start = time.perf_counter()
    call_command("load_tiles", str(index), verbosity=0)
    load = time.perf_counter() - start
    assert Tile.objects.count() == args.tiles

    owner = User.objects.get_or_create(username="bench")[0]
    token = harness.api_token(owner)
    tiles = list(Tile.objects.order_by("number").values_list("id", "number")[:args.job_tiles])
    tile_ids = [number for _, number in tiles]
    baseline_submit = min(baseline_insert_seconds(owner, [key for key, _ in tiles]) for _ in range(args.repeat))
    submits = []
    with harness.web_server() as url:  # no cluster: the jobs stay queued
        for _ in range(args.repeat):
            start = time.perf_counter()
            job = harness.api_call(f"{url}/api/v1/jobs/", token, "POST", {"type": "slope", "tile_ids": tile_ids})
            submits.append(time.perf_counter() - start)
            assert job["tiles_total"] == len(tile_ids), job
            Job.objects.filter(pk=job["id"]).delete()
    submit = min(submits)

    print(f"load_tiles of {args.tiles} tiles from a vector index: {load:6.2f} s (target: at most 60 s)")
    print(f"  baseline, reading each raster's header in a loop: {baseline_load:6.2f} s "
          f"(from {min(args.baseline_sample, args.tiles)} tiles); ratio {load / baseline_load:.2f}")
    print(f"submit of a {len(tile_ids)}-tile job through the API: {submit:6.3f} s, best of {args.repeat} "
          f"({', '.join(f'{s:.3f}' for s in submits)}) (target: at most 1 s)")
    print(f"  baseline, bulk insert of its job tile rows: {baseline_submit:6.3f} s; ratio {submit / baseline_submit:.2f}")
    harness.record("submit", {"index_tiles": args.tiles, "load_s": round(load, 2), "load_baseline_s": round(baseline_load, 2),
                              "job_tiles": len(tile_ids), "submit_s": round(submit, 3),
                              "submit_baseline_s": round(baseline_submit, 3)})


if __name__ == "__main__":
    main()
