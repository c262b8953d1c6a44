"""Loading collections of tiles, what a collection's grid is, and where its tiles lie relative to each
other. Each load checks everything first and writes all or nothing."""

import bisect
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from jobsite.exceptions import LoadError, id_list
from jobsite.georef import same_crs

from . import towns, vector
from .crosscollection import jobs_reading
from .models import Collection, Job, JobStatus, JobTile, Tile
from .raster.io import GridTile, IndexGrid, RasterError, read_info

TILE_ID = re.compile(r"(\d+)(?!.*\d)")  # the last number in a file name
RASTER_SUFFIXES = {".tif", ".tiff"}
# A tile's corner may sit this far (in pixels) off the index grid and still count as on it.
GRID_TOLERANCE = 1e-3
COLLECTION_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
LOAD_LOCK = 7_352_914  # the PostgreSQL advisory lock that loads of tiles take


def tile_paths(source):
    """The rasters of a directory of GeoTIFFs, or those listed by a gdaltindex vector file."""
    source = Path(source)
    if source.is_dir():
        paths = sorted(str(p) for p in source.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
        if not paths:
            raise LoadError(f"{source}: no GeoTIFF (.tif, .tiff) files in this directory")
        return paths
    if not source.exists():
        raise LoadError(f"{source}: no such file or directory")
    try:
        paths = vector.read_tile_index(source)
    except vector.VectorError as exc:
        raise LoadError(str(exc)) from None
    if not paths:
        raise LoadError(f"{source}: the tile index lists no rasters")
    return paths


def tile_id_of(path):
    match = TILE_ID.search(Path(path).stem)
    if not match:
        raise LoadError(f"{path}: no tile number in the file name")
    return int(match.group(1))


def _read_info(path):
    try:
        return read_info(path)
    except RasterError as exc:
        return exc


# A load of more tiles than this reads them in a process per CPU: decoding each GeoTIFF's CRS
# costs most of a millisecond, which a hundred thousand tiles turn into minutes.
PARALLEL_READ_FROM = 2000


def _read_infos(paths):
    """read_info of each path, in order (a RasterError in place of one that failed)."""
    workers = os.cpu_count() or 1
    if len(paths) < PARALLEL_READ_FROM or workers == 1:
        return map(_read_info, paths)
    # Forked children only read files; they never use the parent's database connections.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_read_info, paths, chunksize=256))


def read_tiles(paths, reference=None):
    """RasterInfo per tile id, checked: readable, unique ids, one CRS and one pixel size."""
    ids = {}
    for path in paths:
        check_name(path)
        tile_id = tile_id_of(path)
        if tile_id in ids:
            raise LoadError(f"{path}: tile number {tile_id} is also used by {ids[tile_id]}")
        ids[tile_id] = path
    infos = {}
    for tile_id, path, info in zip(ids, paths, _read_infos(paths), strict=True):
        if isinstance(info, RasterError):
            raise LoadError(f"{path}: {info}")
        check_reads(path, info.files)
        reference = reference or info
        if info.pixel_size != reference.pixel_size:
            raise LoadError(f"{path}: pixel size {info.pixel_size} differs from {reference.pixel_size} of {reference.path}")
        if info.bands != reference.bands:
            raise LoadError(f"{path}: {info.bands} bands differ from the {reference.bands} of {reference.path}")
        if info.dtype != reference.dtype or info.nodata != reference.nodata:
            raise LoadError(f"{path}: data type {info.dtype} / nodata {info.nodata} differ from "
                              f"{reference.dtype} / {reference.nodata} of {reference.path}")
        if info.crs_wkt != reference.crs_wkt and not same_crs(info.crs_wkt, reference.crs_wkt):
            raise LoadError(f"{path}: its CRS (EPSG:{info.epsg}) differs from that of {reference.path} (EPSG:{reference.epsg})")
        infos[tile_id] = info
    return infos


# GDAL's network file systems, whose file names go on with a URL or a bucket name.
REMOTE = re.compile(r"^/vsi(curl|s3|gs|az|adls|oss|swift|webhdfs)(_streaming)?/")


def check_reads(path, files):
    """A tile may read only files in its own folder (or below it), or files on a host that
    JOBSITE_GDAL_HTTP_HOSTS allows: a tile that is a VRT pointing elsewhere is refused."""
    folder = os.path.realpath(os.path.dirname(path)) if not REMOTE.match(str(path)) else None
    for name in files:
        remote = REMOTE.match(name)
        if remote:
            host = urlsplit(name[remote.end():]).hostname if remote.group(1) == "curl" else None
            if host is None or not _allowed_host(host):
                raise LoadError(f"{path}: reads {name}, on a host that JOBSITE_GDAL_HTTP_HOSTS does not list")
        elif name.startswith("/vsi") or folder is None or os.path.commonpath(
                [folder, os.path.realpath(name)]) != folder:
            raise LoadError(f"{path}: reads {name}, which is outside the tile's folder")


def check_name(path):
    """Before a tile is opened: a GDAL name other than a local path may only be /vsicurl/ on a
    host that JOBSITE_GDAL_HTTP_HOSTS lists (a name with options, /vsicurl?..., could set its own
    proxy and pass the network policy by)."""
    path = str(path)
    if not path.startswith("/vsi"):
        return
    remote = REMOTE.match(path)
    host = urlsplit(path[remote.end():]).hostname if remote and remote.group(1) == "curl" else None
    if host is None or not _allowed_host(host):
        raise LoadError(f"{path}: only local files, or /vsicurl/ on a host that JOBSITE_GDAL_HTTP_HOSTS lists, "
                        "can be tiles")


def _allowed_host(host):
    """Whether libcurl's no_proxy list, as gdalpolicy sets it, lets GDAL reach `host` ("*": all)."""
    host = host.lower()
    return any(allowed == "*" or host == allowed.lower().lstrip(".") or host.endswith("." + allowed.lower().lstrip("."))
               for allowed in settings.GDAL_HTTP_HOSTS)


def place_on_grid(tiles, pixel_size):
    """Set each tile's col/row, in pixels from the top left corner of all `tiles` together."""
    px, py = abs(pixel_size[0]), abs(pixel_size[1])
    left, top = min(t.minx for t in tiles), max(t.maxy for t in tiles)
    for tile in tiles:
        col, row = (tile.minx - left) / px, (top - tile.maxy) / py
        if abs(col - round(col)) > GRID_TOLERANCE or abs(row - round(row)) > GRID_TOLERANCE:
            raise LoadError(f"{tile.path}: the tile is not aligned with the pixel grid of the index "
                              f"(it starts {col:.3f} columns and {row:.3f} rows from the index corner)")
        tile.col, tile.row = round(col), round(row)


def _overlaps(tiles):
    """The first pair of tiles that cover the same pixels, if any."""
    cells = {}
    for tile in sorted(tiles, key=lambda t: (t.row, t.col)):
        for other in cells.get((tile.row, tile.col), []):
            return tile, other
        cells.setdefault((tile.row, tile.col), []).append(tile)
    return None


def load_tiles(source, replace=False, collection=None, title=None):
    """Load the tiles of `source` into a collection (the default collection without one; created
    if new). Returns (created, updated, deleted) counts. Other collections are never touched.

    Without `replace`, the tiles are added to those the collection has and a tile number that is
    already there is an error; with `replace`, the collection becomes exactly `source`. Tile
    numbers are unique across collections for now: a number another collection has is an error.
    """
    slug = check_collection_id(collection or settings.DEFAULT_COLLECTION)
    paths = tile_paths(source)
    with transaction.atomic():
        _lock_loads()  # what is read below stays true until the load commits
        return _load(slug, title, paths, replace)


def _lock_loads():
    """One load at a time, whatever the collection: tile numbers are unique across collections.
    On SQLite the IMMEDIATE transaction already holds the database's write lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOAD_LOCK])


def _load(slug, title, paths, replace):
    existing = {tile.number: tile for tile in Tile.objects.filter(collection_id=slug)}
    reference = None
    kept = [] if replace else list(existing.values())
    if kept:
        try:
            reference = read_info(kept[0].path)
        except RasterError as exc:
            raise LoadError(f"{kept[0].path} (tile {kept[0].number}, already loaded): {exc}") from None
    infos = read_tiles(paths, reference)
    if not replace:
        clash = sorted(set(infos) & set(existing))
        if clash:
            raise LoadError(f"tiles {', '.join(map(str, clash[:20]))} of collection {slug} are already loaded; "
                            "use --replace to reload the collection")
    tiles = []
    for tile_id, info in infos.items():
        minx, miny, maxx, maxy = info.bounds
        tiles.append(Tile(number=tile_id, collection_id=slug, path=os.path.realpath(info.path), minx=minx, miny=miny,
                          maxx=maxx, maxy=maxy, width=info.width, height=info.height, col=0, row=0))
    everything = tiles + kept
    first = reference or next(iter(infos.values()))
    place_on_grid(everything, first.pixel_size)
    clash = _overlaps(everything)
    if clash:
        raise LoadError(f"{clash[0].path}: tile {clash[0].number} starts at the same place as tile {clash[1].number}")

    removed = set(existing) - set(infos) if replace else set()
    record = _collection_for_load(slug, title)
    if replace and existing:
        readers = list(Job.objects.filter(pk__in=jobs_reading(slug), status__in=JobStatus.active())
                       .exclude(collection_id=slug).values_list("id", flat=True))
        if readers:
            raise LoadError(f"--replace would change collection {slug} under jobs {id_list(readers)}, which read it "
                            "and have not finished; wait for them or cancel them")
    if removed:
        used = sorted(JobTile.objects.filter(tile__collection_id=slug, tile__number__in=removed)
                      .values_list("job_id", flat=True).distinct())
        if used:
            tiles = sorted(JobTile.objects.filter(job_id__in=used, tile__collection_id=slug, tile__number__in=removed)
                           .values_list("tile__number", flat=True).distinct())
            raise LoadError(f"--replace would remove tiles {id_list(tiles)} of collection {slug}, which jobs "
                            f"{id_list(used)} have used; delete those jobs first, or load into a new collection "
                            "(--collection) and keep this one for them")
        Tile.objects.filter(collection_id=slug, number__in=removed).delete()
    Tile.objects.bulk_create(everything, batch_size=2000, update_conflicts=True, unique_fields=["collection", "number"],
                             update_fields=["path", "minx", "miny", "maxx", "maxy", "width", "height", "col", "row",
                                            "loaded"])
    _describe(record, first, everything)
    towns.assign_tiles(record)
    towns.refresh_statistics()
    updated = len(set(infos) & set(existing))
    return len(infos) - updated, updated, len(removed)


def check_collection_id(slug):
    if not isinstance(slug, str) or not COLLECTION_ID.fullmatch(slug):
        raise LoadError(f"{slug!r} is not a collection name: 1 to 64 lower-case letters, digits, - and _, "
                        "starting with a letter or digit")
    return slug


def _collection_for_load(slug, title):
    record, _ = Collection.objects.select_for_update().get_or_create(id=slug, defaults={"title": title or ""})
    if title is not None:
        record.title = title
    return record


def _describe(record, first, tiles):
    """Record on the collection what its tiles share, as load_tiles has just checked it."""
    px, py = first.pixel_size
    record.crs_wkt = first.crs_wkt
    record.pixel_width, record.pixel_height = abs(px), abs(py)
    record.minx, record.miny = min(t.minx for t in tiles), min(t.miny for t in tiles)
    record.maxx, record.maxy = max(t.maxx for t in tiles), max(t.maxy for t in tiles)
    record.origin_x, record.origin_y = record.minx, record.maxy
    record.data_type, record.band_count, record.nodata = first.dtype, first.bands, first.nodata
    record.bands = [{"band": band} for band in range(1, first.bands + 1)]
    record.tile_count = len(tiles)
    record.updated = timezone.now()
    record.save()


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
