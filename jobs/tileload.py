"""Loading collections of tiles: each load checks everything first and writes all or nothing; tiles
appended to a collection must lie on its grid."""

import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from jobsite.exceptions import LoadError, id_list
from jobsite.georef import same_crs

from . import towns, vector
from .crosscollection import jobs_reading
from .models import MAX_ID, Collection, Job, JobStatus, JobTile, Tile, TileStatus
from .raster.io import RasterError, read_info
from .tileindex import check_collection_id

TILE_ID = re.compile(r"(\d+)(?!.*\d)")  # the last number in a file name
RASTER_SUFFIXES = {".tif", ".tiff"}
# A tile's corner may sit this far (in pixels) off the index grid and still count as on it.
GRID_TOLERANCE = 1e-3
LOAD_LOCK = 7_352_914  # the PostgreSQL advisory lock that loads of tiles take
ASSIGN_ONLY_UP_TO = 5000  # tiles added: their towns are found alone; more, every tile's again

# Sent with `collection` (its id) once a load of tiles into it has committed.
tiles_loaded = Signal()


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
    if int(match.group(1)) > MAX_ID:
        raise LoadError(f"{path}: tile number {match.group(1)} is larger than {MAX_ID}, the largest a tile may have")
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


def load_tiles(source, replace=False, collection=None, title=None, append=False, replace_tiles=False):
    """Load the tiles of `source` into a collection (the default collection without one; created
    if new). Returns (created, updated, deleted) counts. Other collections are never touched.

    Without `replace`, the tiles are added to those the collection has, on its grid, and a tile
    number that is already there is an error unless `replace_tiles` (then that tile is loaded anew,
    if no unfinished job uses it); with `replace`, the collection becomes exactly `source`.
    `append` says that the collection must have tiles already. Once the load commits, jobs that
    wait for its tiles take them (the `tiles_loaded` signal).
    """
    if append and replace:
        raise LoadError("--append adds tiles to a collection and --replace makes it anew: give one of them")
    if replace_tiles and not append:
        raise LoadError("--replace-tiles replaces tiles a collection has: give it with --append")
    return load_paths(tile_paths(source), replace, collection, title, append, replace_tiles)


def load_paths(paths, replace=False, collection=None, title=None, append=False, replace_tiles=False):
    """load_tiles of the rasters `paths`."""
    slug = check_collection_id(collection or settings.DEFAULT_COLLECTION)
    with transaction.atomic():
        _lock_loads()  # what is read below stays true until the load commits
        if append and not Tile.objects.filter(collection_id=slug).exists():
            raise LoadError(f"collection {slug} has no tiles to append to; load its first tiles without --append")
        counts = _load(slug, title, paths, replace, replace_tiles)
        transaction.on_commit(lambda: tiles_loaded.send(sender=Collection, collection=slug), robust=True)
    return counts


def _lock_loads():
    """One load at a time, whatever the collection: tile numbers are unique across collections.
    On SQLite the IMMEDIATE transaction already holds the database's write lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOAD_LOCK])


def _load(slug, title, paths, replace, replace_tiles=False):
    existing = {tile.number: tile for tile in Tile.objects.filter(collection_id=slug)}
    places = {number: (tile.col, tile.row) for number, tile in existing.items()}
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
        if clash and not replace_tiles:
            raise LoadError(f"tiles {id_list(clash[:20])} of collection {slug} are already loaded; use --append "
                            "--replace-tiles to load them anew, or --replace to reload the collection")
        _check_unused(slug, clash)
        kept = [tile for tile in kept if tile.number not in infos]
    tiles = []
    for tile_id, info in infos.items():
        minx, miny, maxx, maxy = info.bounds
        tiles.append(Tile(number=tile_id, collection_id=slug, path=os.path.realpath(info.path), minx=minx, miny=miny,
                          maxx=maxx, maxy=maxy, width=info.width, height=info.height, col=0, row=0))
    everything = tiles + kept
    first = reference or next(iter(infos.values()))
    place_on_grid(everything, first.pixel_size)
    moved = any((tile.col, tile.row) != places[tile.number] for tile in kept)
    if moved and not replace:
        _check_origin_can_move(slug)
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
    # Tiles kept where they were need no writing: an append of one tile writes one row.
    Tile.objects.bulk_create(everything if moved or replace else tiles, batch_size=2000, update_conflicts=True, unique_fields=["collection", "number"],
                             update_fields=["path", "minx", "miny", "maxx", "maxy", "width", "height", "col", "row",
                                            "loaded"])
    _describe(record, first, everything)
    # The towns of the new tiles alone, where the others kept their places (and a few: the query
    # names them).
    towns.assign_tiles(record, only=None if moved or replace or len(infos) > ASSIGN_ONLY_UP_TO else list(
        Tile.objects.filter(collection_id=slug, number__in=list(infos)).values_list("id", flat=True)))
    towns.refresh_statistics()
    updated = len(set(infos) & set(existing))
    return len(infos) - updated, updated, len(removed)


def _check_unused(slug, numbers):
    """Tiles loaded anew (--replace-tiles) must not change under a job that has not finished."""
    if not numbers:
        return
    users = sorted(JobTile.objects.filter(tile__collection_id=slug, tile__number__in=numbers,
                                          job__status__in=JobStatus.active()).values_list("job_id", flat=True).distinct())
    if users:
        raise LoadError(f"tiles {id_list(numbers[:20])} of collection {slug} would change under jobs {id_list(users)}, "
                        "which use them and have not finished; wait for them or cancel them")


class Busy(LoadError):
    """A load that must wait for the work of the moment: it may succeed when tried again."""


def _check_origin_can_move(slug):
    """Tiles added left of or above a collection's tiles move its grid's origin, and so every tile's
    place on it: not while a tile over the collection (or read from it) is being worked on, whose
    worker placed it by the grid before. Workers read the grid again once the collection has
    changed (jobs.services.worker)."""
    running = set(JobTile.objects.filter(status=TileStatus.RUNNING).values_list("job_id", flat=True).distinct())
    working = sorted(set(Job.objects.filter(pk__in=running, collection_id=slug).values_list("id", flat=True))
                     | set(jobs_reading(slug, among=running)) if running else [])
    if working:
        raise Busy(f"the new tiles lie left of or above the tiles of collection {slug}, which moves the origin of its "
                   f"grid, and tiles of jobs {id_list(working)} are being worked on over it; try again once they are "
                   "done")


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
