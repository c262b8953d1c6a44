"""Map tiles of a job's result served by gunicorn, against the same tiles rendered by GDAL alone in
this process, measured in the same run.

A succeeded job's output is a float32 COG of --size pixels a side (with overviews, as merges write
them). 1,000 tile requests (--requests) go one after another to the web server, spread over every
zoom from the one where the COG fills a tile to one past its full resolution, each zoom's tiles
taken in turn over the COG; a first pass warms the file and the server.

  served      one request: the job looked up, the tile warped from the COG's overviews with GDAL,
              coloured and encoded as PNG, answered with its ETag (p50, p99, max)
  alone       the same tiles, warped, coloured and encoded in this process with no server: the floor
  revalidated the same requests with If-None-Match: 304 without rendering

    .venv/bin/python bench/maptiles.py [--size 8192] [--requests 1000] [--database-url postgres://...]
"""

import argparse
import http.client
import statistics
import time
from urllib.parse import urlsplit

import harness


def make_job(work, size):
    """A succeeded slope job whose output is a COG of `size` x `size` float32 pixels."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from jobs.demo_terrain import fractal_terrain
    from jobs.models import Job, JobStatus
    from jobs.raster import mosaic
    from jobs.raster.io import crs_wkt_from_epsg, write_raster
    from jobs.services import maps
    from jobsite import media

    owner = User.objects.create_user("bench")
    job = Job.objects.create(owner=owner, type="slope", status=JobStatus.QUEUED)
    relpath = f"jobs/{job.pk}/out/slope.tif"
    out = media.media_path(relpath)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = work / "part.tif"
    write_raster(part, fractal_terrain(size, size, 7), (400000.0, 1.0, 0.0, 5700000.0, 0.0, -1.0),
                 crs_wkt_from_epsg(25832), nodata=-9999.0)
    mosaic.merge_to_cog([part], out, out.with_name("thumbnail.png"))
    output = maps.described({"name": "slope.tif", "path": relpath, "content_type": "image/tiff",
                             "size": out.stat().st_size})
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, outputs=[output], started=now, finished=now)
    return Job.objects.get(pk=job.pk), owner


def tile_addresses(facts, count):
    """`count` (z, x, y) over every zoom from minzoom to maxzoom + 1, each zoom's tiles over the COG in turn."""
    import mercantile

    west, south, east, north = facts["bbox"]
    zooms = list(range(facts["minzoom"], facts["maxzoom"] + 2))
    by_zoom = {z: list(mercantile.tiles(west, south, east, north, [z])) for z in zooms}
    addresses = []
    for i in range(count):
        tiles = by_zoom[zooms[i % len(zooms)]]
        tile = tiles[(i // len(zooms) * 7919) % len(tiles)]  # a stride through the zoom's tiles
        addresses.append((tile.z, tile.x, tile.y))
    return addresses


def figures(seconds):
    ordered = sorted(seconds)
    return {"p50_ms": round(1000 * statistics.median(ordered), 2),
            "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2), "max_ms": round(1000 * ordered[-1], 2)}


def served(url, token, paths, etags=None):
    """Seconds of each request over one kept-alive connection, and the ETags answered."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    times, answered = [], []
    for i, path in enumerate(paths):
        headers = {"Authorization": f"Token {token}"}
        if etags:
            headers["If-None-Match"] = etags[i]
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        answer.read()
        times.append(time.perf_counter() - started)
        if answer.status not in (200, 204, 304):
            raise SystemExit(f"{path}: {answer.status}")
        answered.append(answer.getheader("ETag"))
    connection.close()
    return times, answered


def alone(job, output, addresses):
    from jobs.services import maps

    raster = maps.output_raster(job, output)
    times = []
    for z, x, y in addresses:
        started = time.perf_counter()
        maps.tile_image(raster, z, x, y, "png")
        times.append(time.perf_counter() - started)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192, help="pixels a side of the COG (8192)")
    parser.add_argument("--requests", type=int, default=1000)
    harness.database_arguments(parser)
    args = parser.parse_args()
    work = harness.configure(args.database_url)
    job, owner = make_job(work, args.size)
    token = harness.api_token(owner)
    output = job.outputs[0]
    addresses = tile_addresses(output["raster"], args.requests)
    paths = [f"/api/v1/jobs/{job.pk}/outputs/slope.tif/tiles/{z}/{x}/{y}.png" for z, x, y in addresses]
    with harness.web_server() as url:
        served(url, token, paths)  # warm: the file in the page cache, the datasets open in the workers
        served_times, etags = served(url, token, paths)
        revalidated, _ = served(url, token, paths, etags)
    alone(job, output, addresses)  # warm this process too
    alone_times = alone(job, output, addresses)
    result = {"size": args.size, "requests": len(paths), "zooms": sorted({a[0] for a in addresses}),
              "served": figures(served_times), "alone": figures(alone_times), "revalidated": figures(revalidated)}
    result["ratio_p99"] = round(result["served"]["p99_ms"] / result["alone"]["p99_ms"], 2)
    harness.record("maptiles", result)


if __name__ == "__main__":
    main()
