"""The base of the raster work: errors, what a tile and the index grid are, reading a raster's
metadata and a window of the index grid, and writing rasters, JSON and CSV. The operations
(jobs.raster.dem, .mosaic, .zonal) are built on it.

Plain Python over paths and numbers; it knows nothing of Django, so it can be used and tested on
its own. Every file is written under a temporary name in its final directory and renamed into
place, so a reader never sees a half-written raster.

Tiles are placed on the index grid by integer pixel offsets (`GridTile.col`, `GridTile.row`): the
window a tile needs is assembled from the tiles that overlap it, with no floating point
georeferencing involved.
"""

import csv
import json
import os
import resource
import shutil
import threading
import uuid
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal, gdal_array

from jobsite.gdalpolicy import thread_config
from jobsite import georef

georef.use_exceptions()


class RasterError(Exception):
    """A raster could not be read, processed or written; the message is GDAL's own.

    `transient` is true for GDAL's file I/O errors (a read or write that failed half-way), which
    may pass on another try; a file that is missing or not a raster, or bad data, will not.
    """

    def __init__(self, message, transient=False):
        super().__init__(message)
        self.transient = transient


def gdal_error(exc, prefix=""):
    """A RasterError from the RuntimeError a GDAL call raised, with GDAL's error class."""
    message = str(exc)
    if prefix and prefix not in message:
        message = f"{prefix}: {message}"
    return RasterError(message, transient=gdal.GetLastErrorNo() == gdal.CPLE_FileIO)


class Cancelled(Exception):
    """The progress callback asked GDAL to stop."""


@dataclass(frozen=True)
class RasterInfo:
    path: str
    width: int
    height: int
    bands: int
    dtype: str
    nodata: float | None
    geotransform: tuple
    crs_wkt: str
    files: tuple = ()  # every file GDAL reads for it: itself, or for a VRT its sources too

    @property
    def epsg(self):
        """The EPSG code of the CRS, if it has one (looked up on demand: it is slow)."""
        return georef.epsg_of(self.crs_wkt)

    @property
    def pixel_size(self):
        return (self.geotransform[1], self.geotransform[5])

    @property
    def bounds(self):
        return georef.bounds(self.geotransform, self.width, self.height)


@dataclass(frozen=True)
class IndexGrid:
    """The whole tile index: its size in pixels, the CRS that all its tiles share, and the size of
    its largest tile (how far away a tile that overlaps a given window can start)."""

    width: int
    height: int
    crs_wkt: str
    max_tile_width: int
    max_tile_height: int
    geotransform: tuple | None = None  # of pixel (0, 0): its top left corner, and the pixel size
    collection: str | None = None  # the name the service knows it by


@dataclass(frozen=True)
class GridTile:
    """A tile file and its place on the index grid, in pixels from the index's top left corner."""

    path: str
    col: int
    row: int
    width: int
    height: int


# How tiles are opened. Opening a raster lists its directory to look for side-car files, which
# costs more than the open itself in a directory of thousands of tiles; instead GDAL looks for
# them one by one. A GeoTIFF's CRS is built from its GeoKeys alone, without also building it from
# the EPSG database to compare the two, which halves the cost of reading it (the same WKT).
TILE_OPEN_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "TRUE", "GTIFF_SRS_SOURCE": "GEOKEYS"}


def read_info(path):
    """Metadata of a north-up raster (its first band's data type and nodata); RasterError names the
    problem."""
    with thread_config(**TILE_OPEN_OPTIONS):  # GDAL reads the georeferencing when first asked
        try:
            ds = gdal.Open(str(path))
        except RuntimeError as exc:
            raise gdal_error(exc) from None
        gt = ds.GetGeoTransform(can_return_null=True)
        wkt = ds.GetProjection()
        files = files_read(ds)
        # Asked outside, the nodata value would have GDAL list the tile's folder for side-car files.
        band = ds.GetRasterBand(1)
        data_type, nodata = gdal.GetDataTypeName(band.DataType), band.GetNoDataValue()
    if gt is None:
        raise RasterError("has no georeferencing")
    if gt[2] != 0 or gt[4] != 0:
        raise RasterError("is rotated; only north-up rasters can be tiled")
    if not wkt:
        raise RasterError("has no coordinate reference system")
    return RasterInfo(
        path=str(path),
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        bands=ds.RasterCount,
        dtype=data_type,
        nodata=nodata,
        geotransform=tuple(gt),
        crs_wkt=wkt,
        files=files,
    )


def files_read(ds, depth=8):
    """Every file GDAL reads for `ds`: the files it lists and, for those that are VRTs in turn,
    theirs (GetFileList does not look inside a VRT's VRT sources), at most `depth` levels down."""
    if ds.GetDriver().ShortName == "GTiff":
        # A GeoTIFF reads only itself and side-cars beside it (.ovr, .msk, .aux.xml), named after it
        # in its own folder; listing them costs a look-up per kind of side-car, which in a folder of
        # 100,000 freshly written tiles doubles the time of a load.
        return (ds.GetDescription(),)
    files, levels = list(ds.GetFileList() or ()), depth
    pending = [name for name in files[1:] if _is_vrt(name)]
    while pending:
        if depth == 0:
            raise RasterError(f"its VRT sources nest more than {levels} levels deep")
        depth -= 1
        found = []
        for name in pending:
            try:
                inner = gdal.OpenEx(name, gdal.OF_RASTER, allowed_drivers=["VRT"])
            except RuntimeError as exc:
                raise gdal_error(exc, name) from None
            found.extend(f for f in inner.GetFileList() or () if f not in files and f not in found)
        files.extend(found)
        pending = [name for name in found if _is_vrt(name)]
    return tuple(files)


def _is_vrt(name):
    driver = gdal.IdentifyDriver(name)
    return driver is not None and driver.ShortName == "VRT"


# Progress: a long GDAL call reports to `progress(fraction)` and stops when it returns False.

def progress_callback(progress, state):
    """A GDAL progress callback that stops the call when `progress(fraction)` returns False,
    noting in the dict `state` why it stopped (see raise_stopped)."""
    if progress is None:
        return None

    def callback(complete, message, data):
        try:
            if progress(complete):
                return 1
        except Exception as exc:  # an exception must not unwind through GDAL's C stack
            state["error"] = exc
        state["stopped"] = True
        return 0

    return callback


def raise_stopped(state, exc):
    """Raise what ended a GDAL call: the callback's own exception, Cancelled, or GDAL's error."""
    if state.get("error") is not None:
        raise state["error"]
    if state.get("stopped"):
        raise Cancelled("stopped by the progress callback")
    if isinstance(exc, RasterError):
        raise exc
    raise gdal_error(exc) from None


def temporary_name(path):
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")


@contextmanager
def written_atomically(path):
    """Yield a temporary name beside `path` (whose folder is created) to write to: it replaces
    `path` when the block succeeds and is removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _OpenTiles(threading.local):
    """Tiles this thread has opened lately, kept open: a tile is read by each of its neighbours'
    windows, and opening a GeoTIFF costs more than reading a halo strip from it. An entry is used
    only while the file's inode, size and modification time are those it was opened with."""

    size = 256

    def __init__(self):
        self.datasets = OrderedDict()

    def open(self, path):
        stat = os.stat(path)
        key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        entry = self.datasets.get(path)
        if entry is not None and entry[0] == key:
            self.datasets.move_to_end(path)
            return entry[1]
        ds = gdal.Open(path)
        self.datasets[path] = (key, ds)
        self.datasets.move_to_end(path)
        if len(self.datasets) > self.size:
            self.datasets.popitem(last=False)
        return ds


_open_tiles = _OpenTiles()


def open_tile(path):
    """A tile's dataset, opened once and kept (see _OpenTiles); RuntimeError if it cannot be."""
    try:
        return _open_tiles.open(path)
    except OSError as exc:
        raise RuntimeError(f"{path}: {exc.strerror}") from None


def read_window(tiles, col, row, width, height, fill, dtype, band=1):
    """The pixels of band `band` in the index grid window (col, row, width, height), assembled from `tiles`."""
    window = np.full((height, width), fill, dtype=dtype)
    for tile in tiles:
        x0, y0 = max(col, tile.col), max(row, tile.row)
        x1 = min(col + width, tile.col + tile.width)
        y1 = min(row + height, tile.row + tile.height)
        if x0 >= x1 or y0 >= y1:
            continue
        try:
            ds = open_tile(tile.path)
            part = ds.GetRasterBand(band).ReadAsArray(x0 - tile.col, y0 - tile.row, x1 - x0, y1 - y0)
        except RuntimeError as exc:
            raise gdal_error(exc, tile.path) from None
        window[y0 - row : y1 - row, x0 - col : x1 - col] = part
    return window


@dataclass(frozen=True)
class HaloWindow:
    """A tile grown by a halo, clipped to the index grid: its pixels, where they lie, and where the
    tile's own pixels start in them (`dx`, `dy`, zero or negative)."""

    pixels: np.ndarray
    geotransform: tuple  # of the window
    tile_geotransform: tuple
    nodata: float | None
    dx: int
    dy: int

    def own(self, array, tile):
        """The tile's part of an array of the window's size."""
        return array[-self.dy:-self.dy + tile.height, -self.dx:-self.dx + tile.width]


def read_with_halo(tile, neighbours, grid, halo, band=1):
    """Band `band` of `tile` grown by `halo` pixels of its `neighbours` on each side, clipped to
    the index `grid` (so the edge of the index is the edge of one raster). Call it inside
    thread_config(**TILE_OPEN_OPTIONS); RasterError names a tile that cannot be read."""
    return read_area(tile, [tile, *neighbours], grid, halo, band)


def read_area(area, sources, grid, halo, band=1, reference=None):
    """Like read_with_halo, for an `area` of the grid that `sources` cover, with the tiles around
    it: a tile, or a block of tiles (jobs.raster.blocks) whose path is that of its top left tile.
    The raster of `reference` (a GridTile; the area's path without it) gives the georeferencing,
    data type and nodata: sources that are not the collection's tiles, such as a chain's interim
    results, are read that way."""
    reference = reference or area
    col0, row0 = max(0, area.col - halo), max(0, area.row - halo)
    col1 = min(grid.width, area.col + area.width + halo)
    row1 = min(grid.height, area.row + area.height + halo)
    try:
        ds = open_tile(reference.path)
        x0, px, _, y0, _, py = ds.GetGeoTransform()
        source = ds.GetRasterBand(band)
        nodata, data_type = source.GetNoDataValue(), source.DataType
    except RuntimeError as exc:
        raise gdal_error(exc, reference.path) from None
    x0, y0 = x0 + (area.col - reference.col) * px, y0 + (area.row - reference.row) * py
    dtype = gdal_array.GDALTypeCodeToNumericTypeCode(data_type)
    pixels = read_window(sources, col0, row0, col1 - col0, row1 - row0, nodata if nodata is not None else 0, dtype, band)
    dx, dy = col0 - area.col, row0 - area.row
    return HaloWindow(pixels, (x0 + dx * px, px, 0.0, y0 + dy * py, 0.0, py), (x0, px, 0.0, y0, 0.0, py), nodata,
                      dx, dy)


def write_gtiff(path, array, geotransform, crs_wkt, nodata, creation_options, callback=None):
    """Write a 2-D array (one band) or a 3-D array (bands first) as a GeoTIFF at `path`, with
    `nodata` on every band; a failed write raises RasterError."""
    bands = array if array.ndim == 3 else array[np.newaxis]
    data_type = gdal_array.NumericTypeCodeToGDALTypeCode(array.dtype)
    try:
        ds = gdal.GetDriverByName("GTiff").Create(str(path), bands.shape[2], bands.shape[1], bands.shape[0], data_type,
                                                  list(creation_options))
        ds.SetGeoTransform(tuple(geotransform))
        ds.SetProjection(crs_wkt)
        for number, pixels in enumerate(bands, start=1):
            band = ds.GetRasterBand(number)
            if nodata is not None:
                band.SetNoDataValue(nodata)
            band.WriteArray(pixels, callback=callback)
        ds.FlushCache()
        ds = band = None
    except RuntimeError as exc:
        raise write_error(exc, path, "write failed") from None


def tile_layout(width, height):
    """Creation options of a tile output: 256-pixel blocks, or strips for a tile smaller than one
    block (a single padded block would be mostly empty bytes)."""
    return ["TILED=YES"] if min(width, height) >= 256 else []


def write_error(exc, path, prefix=""):
    """A RasterError for a GDAL call that wrote to `path`, saying what GDAL's message does not:
    whether the disk is full or the process may write no larger files."""
    reasons = []
    free = shutil.disk_usage(Path(path).parent).free
    if free < 16 * 1024 * 1024:
        reasons.append(f"{free} bytes are free on the disk")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        reasons.append(f"files may not grow beyond {limit} bytes here, by ulimit -f")
    error = gdal_error(exc, prefix)
    return RasterError(f"{error}{' (' + '; '.join(reasons) + ')' if reasons else ''}", transient=error.transient)


def write_raster(path, array, geotransform, crs_wkt, nodata=None,
                 creation_options=("TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=3")):
    """Write a 2-D numpy array as a single-band GeoTIFF, atomically."""
    with written_atomically(path) as tmp:
        write_gtiff(tmp, array, geotransform, crs_wkt, nodata, creation_options)


def crs_wkt_from_epsg(code):
    """The WKT of EPSG:`code`, as rasters are written with it."""
    return georef.srs_from_epsg(code).ExportToWkt()


def write_json(path, value):
    """`value` as a JSON file, atomically; returns its size in bytes."""
    with written_atomically(path) as tmp:
        tmp.write_text(json.dumps(value))
    return Path(path).stat().st_size


def write_csv(path, rows):
    """Rows (dicts with the same keys) as a CSV file with a header line, atomically."""
    with written_atomically(path) as tmp, open(tmp, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["zone"])
        writer.writeheader()
        writer.writerows(rows)
    return Path(path).stat().st_size
