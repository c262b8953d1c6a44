"""Where things lie, as GeoJSON in WGS84 (RFC 7946) for maps: a collection's tiles, a job's tiles
with their status, and the towns. Coordinates are rounded to 7 decimals (about a centimetre)."""

import json
import math

from django.db.models import Count, Max, Min
from osgeo import ogr, osr

from jobsite import georef
from jobsite.exceptions import Rejected, quoted

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


def parse_bbox(raw):
    """(west, south, east, north) in WGS84 degrees from "W,S,E,N"; Rejected naming `bbox` otherwise."""
    try:
        bbox = tuple(float(v) for v in raw.split(","))
    except ValueError:
        bbox = ()
    if len(bbox) != 4 or not all(math.isfinite(v) for v in bbox) or not (
            -180 <= bbox[0] <= bbox[2] <= 180 and -90 <= bbox[1] <= bbox[3] <= 90):
        raise Rejected({"bbox": f"must be west,south,east,north in degrees, west not east of east and south "
                                f"not north of north, not {quoted(raw)}"})
    return bbox


# The most Features a footprints answer holds; `truncated` says when there were more (ask for a bbox).
MAX_FEATURES = 5000


def collection_footprints(collection, bbox=None):
    """The collection's tiles (those meeting `bbox`, west, south, east, north in WGS84, if given):
    each a Feature with its tile number as id, at most MAX_FEATURES of them."""
    if not collection.crs_wkt:
        return _collection([])
    tiles = Tile.objects.filter(collection=collection)
    if bbox is not None and collection.bounds is not None:
        # The bbox clipped to the collection's own area first: a box much larger than a projection's
        # area of use (the whole world) does not transform into it as a box.
        try:
            west, south, east, north = georef.lonlat_bounds(collection.bounds, collection.crs_wkt)
        except RuntimeError:  # a CRS with no way to WGS84: no place on a web map
            return _collection([])
        clipped = (max(bbox[0], west), max(bbox[1], south), min(bbox[2], east), min(bbox[3], north))
        if clipped[0] > clipped[2] or clipped[1] > clipped[3]:
            return {**_collection([]), "truncated": False}
        if clipped != (west, south, east, north):
            try:
                minx, miny, maxx, maxy = georef.edge_bounds(clipped, WGS84, collection.crs_wkt)
            except RuntimeError:
                return _collection([])
            tiles = tiles.filter(minx__lt=maxx, maxx__gt=minx, miny__lt=maxy, maxy__gt=miny)
    tiles = list(tiles.order_by("number").values_list("number", "minx", "miny", "maxx", "maxy")[:MAX_FEATURES + 1])
    found = _collection([{"type": "Feature", "id": number, "geometry": polygon, "properties": {"tile": number}}
                         for (number, *_), polygon in zip(tiles[:MAX_FEATURES], _polygons(tiles[:MAX_FEATURES], 1,
                                                                                            collection.crs_wkt),
                                                          strict=True)])
    found["truncated"] = len(tiles) > MAX_FEATURES
    return found


def _polygons(rows, start, wkt):
    try:
        return _rings([row[start:start + 4] for row in rows], wkt)
    except RuntimeError:  # a CRS with no way to WGS84 (a local grid)
        return [None] * len(rows)


def job_footprints(job, tile=None):
    """The job's tiles (or the one numbered `tile`): each a Feature with its tile number as id, and its
    status, attempts and error."""
    rows = JobTile.objects.filter(job=job)
    if tile is not None:
        rows = rows.filter(tile__number=tile)
    tiles = list(rows.order_by("tile__number").values_list(
        "tile__number", "status", "attempts", "error", "tile__minx", "tile__miny", "tile__maxx", "tile__maxy"))
    wkt = job.collection.crs_wkt
    if not tiles or not wkt:
        return _collection([])
    polygons = _polygons(tiles, 4, wkt)
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
        try:
            boxes = [georef.lonlat_bounds((extent["minx"], extent["miny"], extent["maxx"], extent["maxy"]),
                                          job.collection.crs_wkt)]
        except RuntimeError:  # a CRS with no way to WGS84 (a local grid): no place on Earth's maps
            return {}
    return {"west": min(b[0] for b in boxes), "south": min(b[1] for b in boxes),
            "east": max(b[2] for b in boxes), "north": max(b[3] for b in boxes)}
