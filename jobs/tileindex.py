"""What a collection's grid is, and where its tiles lie relative to each other (loading them is
jobs.tileload)."""

import bisect
import re

from django.conf import settings
from django.db import connections
from django.db.models import F, Max, Q

from jobsite.exceptions import LoadError

from .models import Collection, Tile
from .raster.io import GridTile, IndexGrid, RasterError, read_info

COLLECTION_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_collection_id(slug):
    if not isinstance(slug, str) or not COLLECTION_ID.fullmatch(slug):
        raise LoadError(f"{slug!r} is not a collection name: 1 to 64 lower-case letters, digits, - and _, "
                        "starting with a letter or digit")
    return slug


def install_default_collection(using="default", apps=None, **kwargs):
    """django's post_migrate signal (after every migrate, and after a flush): the default
    collection exists, so that jobs and tiles that name none have one to belong to."""
    from django.apps import apps as installed

    try:
        model = (apps or installed).get_model("jobs", "Collection")
    except LookupError:  # migrated back before collections existed
        return
    if model._meta.db_table in connections[using].introspection.table_names():
        model.objects.using(using).get_or_create(id=settings.DEFAULT_COLLECTION,
                                                 defaults={"title": "Default collection"})


def collection_of(slug=None):
    """The collection named `slug` (the default collection without one); LoadError if unknown."""
    slug = slug or settings.DEFAULT_COLLECTION
    found = Collection.objects.filter(pk=slug).first()
    if found is None:
        raise LoadError(f"there is no collection {slug!r}; load its tiles first (manage.py load_tiles --collection)")
    return found


def index_grid(collection=None):
    """A collection's extent in pixels and its CRS, as the tile operations need them."""
    record = collection_of(collection)
    slug = record.pk
    extent = Tile.objects.filter(collection_id=slug).aggregate(
        right=Max(F("col") + F("width")), bottom=Max(F("row") + F("height")), widest=Max("width"),
        highest=Max("height"))
    geotransform = ((record.origin_x, record.pixel_width, 0.0, record.origin_y, 0.0, -record.pixel_height)
                    if record.pixel_width else None)
    return IndexGrid(extent["right"] or 0, extent["bottom"] or 0, index_crs_wkt(slug), extent["widest"] or 0,
                     extent["highest"] or 0, geotransform, slug)


def index_crs_wkt(collection=None):
    """The CRS all tiles of a collection share, as load_tiles stored it (read from its tiles, and
    stored, for tiles loaded before it did)."""
    record = collection_of(collection)
    if record.crs_wkt:
        return record.crs_wkt
    record.crs_wkt = _read_index_crs(record.pk)
    Collection.objects.filter(pk=record.pk).update(crs_wkt=record.crs_wkt)
    return record.crs_wkt


def _read_index_crs(slug, tries=10):
    """The CRS of the first tile that can be read, so that one broken tile does not stop the others."""
    problems = []
    for tile in Tile.objects.filter(collection_id=slug).order_by("number")[:tries]:
        try:
            return read_info(tile.path).crs_wkt
        except RasterError as exc:
            problems.append(f"{tile.path} (tile {tile.number}): {exc}")
    if not problems:
        raise LoadError(f"the tile index is empty: collection {slug} has no tiles; load tiles first (manage.py load_tiles)")
    raise LoadError(f"none of the first {len(problems)} tiles can be read: {'; '.join(problems)}")


# Grid geometry: where tiles lie relative to each other, for the halo of a tile.

def grid_tile(tile):
    """A Tile of the index as the raster code places it on the grid."""
    return GridTile(tile.path, tile.col, tile.row, tile.width, tile.height)


def neighbours(tiles, halo, grid):
    """{tile id: the tiles that overlap that tile grown by `halo` pixels, itself excluded}, for
    several tiles in one query: one index range per grid row of `tiles` (a batch of consecutive
    tiles spans one or two), bounded by the largest tile size."""
    found = {tile.pk: [] for tile in tiles}
    if halo <= 0 or not tiles:
        return found
    by_row = {}
    for tile in tiles:
        by_row.setdefault(tile.row, []).append(tile)
    windows = Q()
    for row, in_row in by_row.items():
        windows |= Q(col__gt=min(t.col for t in in_row) - grid.max_tile_width - halo,
                     col__lt=max(t.col + t.width for t in in_row) + halo,
                     row__gt=row - grid.max_tile_height - halo, row__lt=max(t.row + t.height for t in in_row) + halo)
    rows = {}
    in_collection = Tile.objects.filter(collection_id=tiles[0].collection_id)
    # Unordered: ordered by number (the tiles' default), SQLite reads the whole collection through
    # that index rather than the grid index's ranges of the windows.
    for other in in_collection.filter(windows).order_by().values_list("id", "path", "col", "row", "width", "height"):
        rows.setdefault(other[3], []).append(other)
    for in_row in rows.values():
        in_row.sort(key=lambda other: other[2])
    starts = {row_start: [other[2] for other in in_row] for row_start, in_row in rows.items()}
    for tile in tiles:
        top, bottom = tile.row - halo, tile.row + tile.height + halo
        left, right = tile.col - halo, tile.col + tile.width + halo
        found[tile.pk] = [
            GridTile(path, col, row, width, height)
            for row_start, in_row in rows.items() if row_start < bottom and row_start + grid.max_tile_height > top
            # the tiles of the row that start left of `right` and may reach past `left`, by bisection
            for pk, path, col, row, width, height in in_row[
                bisect.bisect_right(starts[row_start], left - grid.max_tile_width):
                bisect.bisect_left(starts[row_start], right)]
            if pk != tile.pk and col + width > left and row + height > top]
    return found
