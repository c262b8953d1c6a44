"""Towns: named areas on the ground, and which tiles of each collection their polygons overlap.

A town's polygon is stored in the CRS it was loaded in (that of the default collection, or, while
that has no tiles, of the first collection by name that has); its tiles are found in every collection, the polygon reprojected
into each collection's CRS with OGR, when the towns are loaded and whenever a collection is.
"""

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from jobsite.exceptions import LoadError

from . import vector
from .models import Collection, Tile, Town
from .raster.io import RasterError, read_info


def tiles_overlapping(polygons, collection=None):
    """Sorted keys of the tiles of a collection (the default one without it) whose footprint
    overlaps any of `polygons` (with .wkb and .bounds in the collection's CRS). One query reads the
    footprints under the polygons' extent into a grid of
    cells the size of the largest tile; each polygon then meets only the tiles of the cells its
    bounds cover, and the exact test runs only where its bounds do not settle it."""
    polygons = list(polygons)
    if not polygons:
        return []
    minx, miny = min(p.bounds[0] for p in polygons), min(p.bounds[1] for p in polygons)
    maxx, maxy = max(p.bounds[2] for p in polygons), max(p.bounds[3] for p in polygons)
    slug = collection or settings.DEFAULT_COLLECTION
    footprints = list(Tile.objects.filter(collection_id=slug, minx__lt=maxx, maxx__gt=minx, miny__lt=maxy, maxy__gt=miny)
                      .values_list("id", "minx", "miny", "maxx", "maxy"))
    if not footprints:
        return []
    size = max(max(t[3] - t[1], t[4] - t[2]) for t in footprints) or 1.0
    # The cells are counted from the footprints' corner and clipped to the cells they occupy, so
    # that a polygon a million times larger than the index still meets only the index's cells.
    minx, miny = min(t[1] for t in footprints), min(t[2] for t in footprints)
    last_x = int((max(t[3] for t in footprints) - minx) // size)
    last_y = int((max(t[4] for t in footprints) - miny) // size)

    def cells(bounds):
        x0, y0 = max(0, int((bounds[0] - minx) // size)), max(0, int((bounds[1] - miny) // size))
        x1, y1 = min(last_x, int((bounds[2] - minx) // size)), min(last_y, int((bounds[3] - miny) // size))
        return ((x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1))

    grid = {}
    for footprint in footprints:
        for cell in cells(footprint[1:]):
            grid.setdefault(cell, []).append(footprint)
    found = set()
    for polygon in polygons:
        pminx, pminy, pmaxx, pmaxy = polygon.bounds
        for cell in cells(polygon.bounds):
            for tile_id, tminx, tminy, tmaxx, tmaxy in grid.get(cell, ()):
                if tile_id in found or not (tminx < pmaxx and pminx < tmaxx and tminy < pmaxy and pminy < tmaxy):
                    continue
                inside = tminx <= pminx and pmaxx <= tmaxx and tminy <= pminy and pmaxy <= tmaxy
                if (inside and pminx < pmaxx and pminy < pmaxy) or vector.intersects_box(polygon.wkb, (tminx, tminy, tmaxx, tmaxy)):
                    found.add(tile_id)
    return sorted(found)


def load_towns(source, id_field, name_field):
    """Load the towns of a polygon file, each with the tiles its polygon overlaps in every collection.

    Returns (towns, towns without tiles). A town already loaded is replaced.
    """
    collections = _collections_with_tiles()
    if not collections:
        raise LoadError("the tile index is empty: no collection has tiles; load tiles first (manage.py load_tiles)")
    default = next((c for c in collections if c.pk == settings.DEFAULT_COLLECTION), collections[0])
    try:
        areas = vector.read_areas(source, id_field, name_field, default.crs_wkt)
    except vector.VectorError as exc:
        raise LoadError(str(exc)) from None
    if not areas:
        raise LoadError(f"{source}: no features")
    tiles_of = {area.id: [] for area in areas}
    for collection in collections:
        for area in areas:
            try:
                projected = _in_crs(area, default.crs_wkt, collection)
            except vector.VectorError as exc:
                raise LoadError(str(exc)) from None
            tiles_of[area.id] += tiles_overlapping([projected], collection.pk)
    with transaction.atomic():
        Town.objects.bulk_create([Town(id=a.id, name=a.name, geometry_wkt=a.wkt, crs_wkt=default.crs_wkt) for a in areas],
                                 update_conflicts=True, unique_fields=["id"],
                                 update_fields=["name", "geometry_wkt", "crs_wkt"])
        Town.tiles.through.objects.filter(town_id__in=tiles_of).delete()
        Town.tiles.through.objects.bulk_create(
            [Town.tiles.through(town_id=town_id, tile_id=tile_id) for town_id, ids in tiles_of.items() for tile_id in ids]
        )
        refresh_statistics()
    return areas, [a for a in areas if not tiles_of[a.id]]


def assign_tiles(collection, only=None):
    """Find the tiles of `collection` (just loaded) that each town overlaps, replacing what was
    found in it before; of the tiles of keys `only` (those a load added), or all. Inside the load's
    transaction."""
    towns = list(Town.objects.exclude(geometry_wkt="POLYGON EMPTY"))
    if not towns:
        return
    collection = _with_crs(collection)
    in_collection = Town.tiles.through.objects.filter(tile__collection=collection)
    if only is not None:
        in_collection = in_collection.filter(tile_id__in=only)
        only = set(only)
    in_collection.filter(town_id__in=[town.pk for town in towns]).delete()
    rows = []
    for town in towns:
        area = vector.Area(town.pk, town.name, town.geometry_wkt, vector.wkt_bounds(town.geometry_wkt))
        try:
            projected = _in_crs(area, town.crs_wkt or collection.crs_wkt, collection)
        except vector.VectorError as exc:
            raise LoadError(str(exc)) from None
        for tile_id in tiles_overlapping([projected], collection.pk):
            if only is None or tile_id in only:
                rows.append(Town.tiles.through(town_id=town.pk, tile_id=tile_id))
    Town.tiles.through.objects.bulk_create(rows, batch_size=2000)


def refresh_statistics():
    """Have the database count the tile and town rows again, as a load changes them by thousands.
    SQLite keeps no statistics until asked: without them it reads a town's tiles by walking the
    whole collection's index rather than the town's rows (10 ms instead of 0.3 ms at 100,000
    tiles). PostgreSQL would analyze by itself, later."""
    with connection.cursor() as cursor:
        for table in (Tile._meta.db_table, Town.tiles.through._meta.db_table):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")


def _collections_with_tiles():
    has_tiles = Tile.objects.filter(collection=OuterRef("pk"))
    return [_with_crs(collection) for collection in Collection.objects.filter(Exists(has_tiles)).order_by("id")]


def _with_crs(collection):
    """`collection`, its CRS read from its first readable tile (and stored) if it has none yet."""
    if not collection.crs_wkt:
        for path in collection.tiles.order_by("id").values_list("path", flat=True)[:10]:
            try:
                collection.crs_wkt = read_info(path).crs_wkt
            except RasterError:
                continue
            Collection.objects.filter(pk=collection.pk).update(crs_wkt=collection.crs_wkt)
            break
        else:
            raise LoadError(f"no tile of collection {collection.pk} can be read to learn its CRS")
    return collection


def _in_crs(area, area_crs, collection):
    """`area` in the CRS of `collection`."""
    if not area_crs or area_crs == collection.crs_wkt:
        return area
    return vector.reprojected(area, area_crs, collection.crs_wkt)
