"""Where things lie, as GeoJSON in WGS84 (RFC 7946) for maps: a collection's tiles, a job's tiles
with their status, and the towns. Coordinates are rounded to 7 decimals (about a centimetre)."""

import json

from django.db.models import Count, Max, Min
from osgeo import ogr, osr

from jobsite import georef

from ..models import JobTile, Tile, Town

WGS84 = georef.srs_from_epsg(4326).ExportToWkt()


def _rings(boxes, wkt):
    """The GeoJSON polygon of each (minx, miny, maxx, maxy) box in `wkt`, in one transformation."""
    corners = []
    for minx, miny, maxx, maxy in boxes:
        corners += [(minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy)]
    points = georef.transformed_points(corners, wkt, WGS84) if corners else []
    polygons = []
    for start in range(0, len(points), 4):
        ring = [[round(x, 7), round(y, 7)] for x, y in points[start:start + 4]]
        polygons.append({"type": "Polygon", "coordinates": [ring + [ring[0]]]})
    return polygons


def _collection(features):
    return {"type": "FeatureCollection", "features": features}


def collection_footprints(collection):
    """The collection's tiles: each a Feature with its tile number as id."""
    tiles = list(Tile.objects.filter(collection=collection).order_by("number")
                 .values_list("number", "minx", "miny", "maxx", "maxy"))
    if not tiles or not collection.crs_wkt:
        return _collection([])
    polygons = _rings([tile[1:] for tile in tiles], collection.crs_wkt)
    return _collection([{"type": "Feature", "id": number, "geometry": polygon, "properties": {"tile": number}}
                        for (number, *_), polygon in zip(tiles, polygons, strict=True)])


def job_footprints(job):
    """The job's tiles: each a Feature with its tile number as id, and its status, attempts and error."""
    tiles = list(JobTile.objects.filter(job=job).order_by("tile__number").values_list(
        "tile__number", "status", "attempts", "error", "tile__minx", "tile__miny", "tile__maxx", "tile__maxy"))
    wkt = job.collection.crs_wkt
    if not tiles or not wkt:
        return _collection([])
    polygons = _rings([tile[4:] for tile in tiles], wkt)
    return _collection([
        {"type": "Feature", "id": number, "geometry": polygon,
         "properties": {"tile": number, "status": status, "attempts": attempts, "error": error}}
        for (number, status, attempts, error, *_), polygon in zip(tiles, polygons, strict=True)])


def town_features(towns):
    """The towns' polygons, each a Feature with the town's id, and its name and tile count."""
    target = osr.SpatialReference(wkt=WGS84)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    features = []
    for town in towns:
        geometry = None
        if town.geometry_wkt and town.crs_wkt:
            shape = ogr.CreateGeometryFromWkt(town.geometry_wkt)
            if not shape.IsEmpty():
                source = osr.SpatialReference(wkt=town.crs_wkt)
                source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
                shape.Transform(osr.CoordinateTransformation(source, target))
                geometry = json.loads(shape.ExportToJson(["COORDINATE_PRECISION=7"]))
        features.append({"type": "Feature", "id": town.pk, "geometry": geometry,
                         "properties": {"name": town.name, "tiles": town.tile_count}})
    return _collection(features)


def towns_with_counts():
    return Town.objects.order_by("id").annotate(tile_count=Count("tiles"))


def result_extent(job, outputs):
    """{west, south, east, north} in WGS84 degrees of a job's results: the box of its raster outputs
    (their facts, jobs.services.maps), else of its tiles; empty for a job of no place (echo)."""
    boxes = [output["raster"]["bbox"] for output in outputs if "raster" in output]
    if not boxes:
        extent = JobTile.objects.filter(job=job).aggregate(minx=Min("tile__minx"), miny=Min("tile__miny"),
                                                           maxx=Max("tile__maxx"), maxy=Max("tile__maxy"))
        if extent["minx"] is None or not job.collection.crs_wkt:
            return {}
        boxes = [georef.lonlat_bounds((extent["minx"], extent["miny"], extent["maxx"], extent["maxy"]),
                                      job.collection.crs_wkt)]
    return {"west": min(b[0] for b in boxes), "south": min(b[1] for b in boxes),
            "east": max(b[2] for b in boxes), "north": max(b[3] for b in boxes)}
