"""Choosing a town's tiles in a 100,000-tile collection, against a baseline measured in the same run.

  stored      what a submit with town_id does: the town's tiles in the job's collection, read from
              the town-tile rows that load_tiles and load_towns keep (median over the towns).
  computed    what load_towns and load_tiles do per town and collection: the tiles whose footprint
              overlaps the town's polygon, reprojected into the collection's CRS with OGR and
              matched through the footprint grid of jobs.towns (median over the towns).
  baseline    the same answer with no index: every footprint of the collection read and tested
              against the polygon's box, then the candidates against the polygon (OGR).

The collection's tile rows are written directly (their files are never opened here); the towns
are polygons in WGS84, so that each one is reprojected into the collection's UTM CRS.

    .venv/bin/python bench/towns.py [--tiles 100000] [--towns 200] [--database-url postgres://...]
"""

import argparse
import json
import math
import random
import statistics
import time

import harness

SIDE = 1000.0  # metres per tile side
ORIGIN = (300000.0, 6100000.0)
EPSG = 25832


def make_collection(count):
    """Collection `big` of `count` tiles of SIDE metres in a square-ish grid, rows only."""
    from jobs import towns
    from jobs.models import Collection, Tile
    from jobs.raster.io import crs_wkt_from_epsg

    columns = math.ceil(count ** 0.5)
    rows = math.ceil(count / columns)
    big = Collection.objects.create(
        id="big", crs_wkt=crs_wkt_from_epsg(EPSG), pixel_width=2.0, pixel_height=2.0, origin_x=ORIGIN[0],
        origin_y=ORIGIN[1], data_type="Float32", band_count=1, minx=ORIGIN[0], maxy=ORIGIN[1],
        maxx=ORIGIN[0] + columns * SIDE, miny=ORIGIN[1] - rows * SIDE, tile_count=count)
    tiles = []
    for number in range(count):
        row, col = divmod(number, columns)
        minx, maxy = ORIGIN[0] + col * SIDE, ORIGIN[1] - row * SIDE
        tiles.append(Tile(collection=big, number=number + 1, path=f"/nowhere/dem_{number + 1}.tif", minx=minx,
                          miny=maxy - SIDE, maxx=minx + SIDE, maxy=maxy, width=500, height=500, col=col * 500,
                          row=row * 500))
    Tile.objects.bulk_create(tiles, batch_size=5000)
    towns.refresh_statistics()  # as load_tiles does
    return big


def write_towns(path, big, count, seed=15):
    """`count` irregular 12-sided towns of 2 to 8 km across inside the collection, as WGS84 GeoJSON."""
    from osgeo import ogr, osr

    utm, wgs84 = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(EPSG)
    wgs84.ImportFromEPSG(4326)
    for srs in (utm, wgs84):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    to_wgs84 = osr.CoordinateTransformation(utm, wgs84)
    chance = random.Random(seed)
    features = []
    for town in range(1, count + 1):
        cx = chance.uniform(big.minx + 10_000, big.maxx - 10_000)
        cy = chance.uniform(big.miny + 10_000, big.maxy - 10_000)
        radius = chance.uniform(1000, 4000)
        ring = [(cx + radius * chance.uniform(0.6, 1) * math.cos(a * math.pi / 6),
                 cy + radius * chance.uniform(0.6, 1) * math.sin(a * math.pi / 6)) for a in range(12)]
        polygon = ogr.CreateGeometryFromWkt("POLYGON((" + ",".join(f"{x} {y}" for x, y in ring + ring[:1]) + "))")
        polygon.Transform(to_wgs84)
        features.append({"type": "Feature", "properties": {"id": town, "name": f"Town {town}"},
                         "geometry": json.loads(polygon.ExportToJson())})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def naive_tiles(wkt, slug):
    """The tiles of the collection that the polygon overlaps, found with no index at all."""
    from osgeo import ogr

    from jobs.models import Tile

    polygon = ogr.CreateGeometryFromWkt(wkt)
    pminx, pmaxx, pminy, pmaxy = polygon.GetEnvelope()
    found = []
    for key, minx, miny, maxx, maxy in Tile.objects.filter(collection_id=slug).values_list(
            "id", "minx", "miny", "maxx", "maxy").iterator(chunk_size=10_000):
        if minx < pmaxx and pminx < maxx and miny < pmaxy and pminy < maxy:
            box = ogr.CreateGeometryFromWkt(f"POLYGON(({minx} {miny},{maxx} {miny},{maxx} {maxy},{minx} {maxy},{minx} {miny}))")
            if polygon.Intersects(box):
                found.append(key)
    return sorted(found)


def median_ms(call, items):
    times = []
    for item in items:
        start = time.perf_counter()
        call(item)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=100_000)
    parser.add_argument("--towns", type=int, default=200)
    parser.add_argument("--baseline-towns", type=int, default=10, help="towns the naive scan is timed on")
    harness.database_arguments(parser)
    args = parser.parse_args()

    work = harness.configure(args.database_url)
    from django.core.management import call_command

    from jobs import towns, vector
    from jobs.models import Town
    from jobs.services import tilechoice

    start = time.perf_counter()
    big = make_collection(args.tiles)
    print(f"wrote {args.tiles} tile rows in {time.perf_counter() - start:.1f} s")
    path = write_towns(work / "towns.geojson", big, args.towns)
    start = time.perf_counter()
    call_command("load_towns", str(path), "--id-field", "id", "--name-field", "name", verbosity=0)
    load_towns = time.perf_counter() - start

    loaded = list(Town.objects.order_by("id"))
    stored_ms, stored_max = median_ms(lambda town: tilechoice._town_tile_ids(town.pk, big), loaded)

    def computed(town):
        area = vector.Area(town.pk, town.name, town.geometry_wkt, vector.wkt_bounds(town.geometry_wkt))
        return towns.tiles_overlapping([towns._in_crs(area, town.crs_wkt, big)], big.pk)

    computed_ms, computed_max = median_ms(computed, loaded)
    sample = loaded[:args.baseline_towns]
    for town in sample:  # the indexed answer is the naive one
        area = vector.Area(town.pk, town.name, town.geometry_wkt, vector.wkt_bounds(town.geometry_wkt))
        projected = towns._in_crs(area, town.crs_wkt, big)
        assert computed(town) == naive_tiles(projected.wkt, big.pk) == sorted(
            town.tiles.filter(collection=big).values_list("id", flat=True))
    baseline_ms, _ = median_ms(lambda town: naive_tiles(towns._in_crs(vector.Area(
        town.pk, town.name, town.geometry_wkt, vector.wkt_bounds(town.geometry_wkt)), town.crs_wkt, big).wkt, big.pk),
        sample)
    tiles_per_town = statistics.median(len(computed(town)) for town in loaded)
    harness.record("towns", {
        "tiles": args.tiles, "towns": args.towns, "median_tiles_per_town": tiles_per_town,
        "load_towns_s": round(load_towns, 2),
        "stored_median_ms": round(stored_ms, 2), "stored_max_ms": round(stored_max, 2),
        "computed_median_ms": round(computed_ms, 2), "computed_max_ms": round(computed_max, 2),
        "baseline_median_ms": round(baseline_ms, 1),
        "computed_vs_baseline": round(computed_ms / baseline_ms, 4),
    })


if __name__ == "__main__":
    main()
