"""Raster work with GDAL: tile metadata, halo processing of one tile, and the merge to a COG.

Plain Python over paths and numbers; it knows nothing of Django, so it can be used and tested on
its own. Every file is written under a temporary name in its final directory and renamed into
place, so a reader never sees a half-written raster.

Tiles are placed on the index grid by integer pixel offsets (`GridTile.col`, `GridTile.row`): the
window a tile needs, halo included, is assembled from the tiles that overlap it, with no floating
point georeferencing involved, and clipped to the index extent, so the edge of the index behaves
exactly as the edge of one whole raster does.
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
from osgeo import gdal, gdal_array, ogr, osr

from jobsite.gdalpolicy import thread_config

gdal.UseExceptions()
ogr.UseExceptions()
osr.UseExceptions()


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
        return epsg_of(self.crs_wkt)

    @property
    def pixel_size(self):
        return (self.geotransform[1], self.geotransform[5])

    @property
    def bounds(self):
        return _bounds(self.geotransform, self.width, self.height)


def _bounds(geotransform, width, height):
    """(minx, miny, maxx, maxy) of a north-up raster, whichever way its pixel sizes point."""
    x0, px, _, y0, _, py = geotransform
    xs = (x0, x0 + px * width)
    ys = (y0, y0 + py * height)
    return (min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True)
class IndexGrid:
    """The whole tile index: its size in pixels, the CRS that all its tiles share, and the size of
    its largest tile (how far away a tile that overlaps a given window can start)."""

    width: int
    height: int
    crs_wkt: str
    max_tile_width: int
    max_tile_height: int


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
    """Metadata of a single-band, north-up raster; RasterError names the problem."""
    with thread_config(**TILE_OPEN_OPTIONS):  # GDAL reads the georeferencing when first asked
        try:
            ds = gdal.Open(str(path))
        except RuntimeError as exc:
            raise gdal_error(exc) from None
        gt = ds.GetGeoTransform(can_return_null=True)
        wkt = ds.GetProjection()
        files = files_read(ds)
    if gt is None:
        raise RasterError("has no georeferencing")
    if gt[2] != 0 or gt[4] != 0:
        raise RasterError("is rotated; only north-up rasters can be tiled")
    if not wkt:
        raise RasterError("has no coordinate reference system")
    band = ds.GetRasterBand(1)
    return RasterInfo(
        path=str(path),
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        bands=ds.RasterCount,
        dtype=gdal.GetDataTypeName(band.DataType),
        nodata=band.GetNoDataValue(),
        geotransform=tuple(gt),
        crs_wkt=wkt,
        files=files,
    )


def files_read(ds, depth=8):
    """Every file GDAL reads for `ds`: the files it lists and, for those that are VRTs in turn,
    theirs (GetFileList does not look inside a VRT's VRT sources), at most `depth` levels down."""
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


def epsg_of(wkt):
    srs = osr.SpatialReference(wkt=wkt)
    srs.AutoIdentifyEPSG()
    code = srs.GetAuthorityCode(None)
    return int(code) if code and code.isdigit() else None


def same_crs(wkt_a, wkt_b):
    return bool(osr.SpatialReference(wkt=wkt_a).IsSame(osr.SpatialReference(wkt=wkt_b)))


def _callback(progress, state):
    """A GDAL progress callback that stops the call when `progress(fraction)` returns False."""
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


def _raise_stopped(state, exc):
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


def read_window(tiles, col, row, width, height, fill, dtype):
    """The pixels of the index grid window (col, row, width, height), assembled from `tiles`."""
    window = np.full((height, width), fill, dtype=dtype)
    for tile in tiles:
        x0, y0 = max(col, tile.col), max(row, tile.row)
        x1 = min(col + width, tile.col + tile.width)
        y1 = min(row + height, tile.row + tile.height)
        if x0 >= x1 or y0 >= y1:
            continue
        try:
            ds = open_tile(tile.path)
            part = ds.GetRasterBand(1).ReadAsArray(x0 - tile.col, y0 - tile.row, x1 - x0, y1 - y0)
        except RuntimeError as exc:
            raise gdal_error(exc, tile.path) from None
        window[y0 - row : y1 - row, x0 - col : x1 - col] = part
    return window


def process_tile(*, tile, neighbours, grid, halo, processing, options, out_path, progress=None):
    """Run a `gdal.DEMProcessing` operation over one tile, reading `halo` pixels of its neighbours.

    1. The window is the tile grown by `halo` pixels on each side, clipped to the index `grid`.
    2. Its pixels are read from the tile and its neighbours into an in-memory raster that has the
       tile's georeferencing, shifted to the window.
    3. The operation runs on the window; the tile's own part of the result is written to
       `out_path` (via a temporary name), so neighbourhood operations see across tile edges.

    Returns the size in bytes of the written file. Raises Cancelled when `progress` returns False,
    RasterError with GDAL's message when GDAL fails; nothing is left at `out_path` in either case.
    """
    col0, row0 = max(0, tile.col - halo), max(0, tile.row - halo)
    col1 = min(grid.width, tile.col + tile.width + halo)
    row1 = min(grid.height, tile.row + tile.height + halo)
    # The operation and the write get the callback, so a cancel stops the tile in either.
    state = {}
    callback = _callback(progress, state)
    out_path = Path(out_path)
    try:
        with written_atomically(out_path) as tmp, thread_config(GDAL_NUM_THREADS="1", **TILE_OPEN_OPTIONS):
            try:
                ds = open_tile(tile.path)
                x0, px, _, y0, _, py = ds.GetGeoTransform()
                band = ds.GetRasterBand(1)
                nodata, data_type = band.GetNoDataValue(), band.DataType
            except RuntimeError as exc:
                raise gdal_error(exc, tile.path) from None
            dtype = gdal_array.GDALTypeCodeToNumericTypeCode(data_type)
            fill = nodata if nodata is not None else 0
            pixels = read_window([tile, *neighbours], col0, row0, col1 - col0, row1 - row0, fill, dtype)
            dx, dy = col0 - tile.col, row0 - tile.row
            # The CRS is the index's: reading it from each tile's GeoTIFF keys costs more than the
            # whole operation on a small tile.
            source = gdal_array.OpenArray(pixels)
            source.SetGeoTransform((x0 + dx * px, px, 0.0, y0 + dy * py, 0.0, py))
            source.SetProjection(grid.crs_wkt)
            if nodata is not None:
                source.GetRasterBand(1).SetNoDataValue(nodata)
            result = gdal.DEMProcessing("", source, processing, format="MEM", callback=callback, **options)
            if state.get("stopped"):
                _raise_stopped(state, None)
            own = result.ReadAsArray(-dx, -dy, tile.width, tile.height)
            _write_gtiff(tmp, own, (x0, px, 0.0, y0, 0.0, py), grid.crs_wkt, result.GetRasterBand(1).GetNoDataValue(),
                         _layout(tile.width, tile.height), callback)
            if state.get("stopped"):
                _raise_stopped(state, None)
    except (RuntimeError, RasterError) as exc:
        _raise_stopped(state, exc)
    return out_path.stat().st_size


def _layout(width, height):
    """Creation options of an interim tile: 256-pixel blocks, or strips for a tile smaller than
    one block (a single padded block would be mostly empty bytes)."""
    return ["TILED=YES"] if min(width, height) >= 256 else []


def _write_gtiff(path, array, geotransform, crs_wkt, nodata, creation_options, callback=None):
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


# GDAL's default GDAL_MAX_DATASET_POOL_SIZE: the files a VRT keeps open at once.
FLATTEN_FROM = 100


def merge_to_cog(tile_paths, out_path, thumbnail_path, thumbnail_size=512):
    """Mosaic tile outputs into a Cloud-Optimized GeoTIFF with overviews, and a PNG thumbnail.

    Both files appear at their names only once complete. Returns their sizes in bytes.
    """
    out_path, thumbnail_path = Path(out_path), Path(thumbnail_path)
    # BuildVRT would skip a missing file with a warning and leave a hole in the mosaic.
    missing = [str(p) for p in tile_paths if not Path(p).is_file()]
    if missing:
        raise RasterError(f"{len(missing)} tile outputs are missing: {', '.join(missing[:5])}"
                          + (" ..." if len(missing) > 5 else ""))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    vrt_name = f"/vsimem/merge-{uuid.uuid4().hex}.vrt"
    tmp_cog, tmp_png, tmp_flat = temporary_name(out_path), temporary_name(thumbnail_path), temporary_name(out_path)
    try:
        with thread_config(**TILE_OPEN_OPTIONS):
            source = gdal.BuildVRT(vrt_name, [str(p) for p in tile_paths])
            if len(tile_paths) > FLATTEN_FROM:
                # A VRT of more files than GDAL keeps open reopens them as the COG driver reads it,
                # once for the image and again for each overview: one plain GeoTIFF first is faster.
                source = gdal.Translate(str(tmp_flat), source, format="GTiff",
                                        creationOptions=["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "BIGTIFF=IF_SAFER"])
            gdal.Translate(
                str(tmp_cog), source, format="COG",
                creationOptions=["COMPRESS=DEFLATE", "PREDICTOR=YES", "OVERVIEWS=AUTO", "BLOCKSIZE=512",
                                 "NUM_THREADS=ALL_CPUS"],
            )
            source = None
        _write_thumbnail(tmp_cog, tmp_png, thumbnail_size)
        os.replace(tmp_cog, out_path)
        os.replace(tmp_png, thumbnail_path)
    except RuntimeError as exc:
        raise write_error(exc, tmp_cog) from None
    finally:
        gdal.Unlink(vrt_name) if gdal.VSIStatL(vrt_name) else None
        tmp_cog.unlink(missing_ok=True)
        tmp_png.unlink(missing_ok=True)
        tmp_flat.unlink(missing_ok=True)
    return out_path.stat().st_size, thumbnail_path.stat().st_size


def _write_thumbnail(src_path, png_path, size):
    """An 8-bit PNG at most `size` pixels wide and high; nodata becomes transparent."""
    ds = gdal.Open(str(src_path))
    band = ds.GetRasterBand(1)
    scale = size / max(ds.RasterXSize, ds.RasterYSize)
    width = max(1, round(ds.RasterXSize * min(1.0, scale)))
    height = max(1, round(ds.RasterYSize * min(1.0, scale)))
    options = {"format": "PNG", "width": width, "height": height, "resampleAlg": "average"}
    if band.DataType != gdal.GDT_Byte:
        low, high = band.ComputeRasterMinMax(True)
        options.update(outputType=gdal.GDT_Byte, scaleParams=[[low, high, 1, 255]], noData=0)
    with thread_config(GDAL_PAM_ENABLED="NO"):
        gdal.Translate(str(png_path), ds, **options)


def write_raster(path, array, geotransform, crs_wkt, nodata=None,
                 creation_options=("TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=3")):
    """Write a 2-D numpy array as a single-band GeoTIFF, atomically."""
    with written_atomically(path) as tmp:
        _write_gtiff(tmp, array, geotransform, crs_wkt, nodata, creation_options)


def crs_wkt_from_epsg(code):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(code)
    return srs.ExportToWkt()


def fractal_terrain(height, width, seed, octaves=7, persistence=0.5):
    """A float32 elevation model in metres made of `octaves` layers of smoothed value noise."""
    rng = np.random.default_rng(seed)
    terrain = np.zeros((height, width), dtype=np.float64)
    amplitude = 1.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        lattice = rng.random((cells + 1, cells + 1))
        ys, xs = np.linspace(0, cells, height, endpoint=False), np.linspace(0, cells, width, endpoint=False)
        yi, xi = ys.astype(int), xs.astype(int)
        fy, fx = _smoothstep(ys - yi)[:, None], _smoothstep(xs - xi)[None, :]
        top = lattice[yi][:, xi] * (1 - fx) + lattice[yi][:, xi + 1] * fx
        bottom = lattice[yi + 1][:, xi] * (1 - fx) + lattice[yi + 1][:, xi + 1] * fx
        terrain += amplitude * (top * (1 - fy) + bottom * fy)
        amplitude *= persistence
    terrain = (terrain - terrain.min()) / (terrain.max() - terrain.min())
    return (40.0 + 860.0 * terrain**1.6).astype(np.float32)


def _smoothstep(t):
    return t * t * (3 - 2 * t)


def polygon_mask(ds, wkb, crs_wkt):
    """A boolean array over `ds`'s grid: true where a pixel's centre lies inside the polygon `wkb`
    (WKB), given in `crs_wkt`, the raster's CRS (so that GDAL need not warn that it assumes so)."""
    mask_ds = gdal.GetDriverByName("MEM").Create("", ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Byte)
    mask_ds.SetGeoTransform(ds.GetGeoTransform())
    vector_ds = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = vector_ds.CreateLayer("polygon", srs=osr.SpatialReference(wkt=crs_wkt), geom_type=ogr.wkbUnknown)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkb(wkb))
    layer.CreateFeature(feature)
    gdal.RasterizeLayer(mask_ds, [1], layer, burn_values=[1])
    return mask_ds.ReadAsArray().astype(bool)


def _overlaps(bounds, other):
    return bounds[0] < other[2] and other[0] < bounds[2] and bounds[1] < other[3] and other[1] < bounds[3]


def _read_tile(tile_path):
    """(dataset, pixels, bounds, nodata) of one tile of the index: opened once and kept (see
    open_tile), its CRS not decoded (it is the index's), checked when it was loaded."""
    with thread_config(**TILE_OPEN_OPTIONS):
        try:
            ds = open_tile(str(tile_path))
            band = ds.GetRasterBand(1)
            pixels = band.ReadAsArray()
        except RuntimeError as exc:
            raise gdal_error(exc, str(tile_path)) from None
    return ds, pixels, _bounds(ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize), band.GetNoDataValue()


def _over(polygons, bounds, progress):
    """The polygons that overlap `bounds`, calling `progress(fraction)` before each and raising
    Cancelled when it returns False: a tile under many polygons keeps its lease and stops on cancel."""
    for number, polygon in enumerate(polygons):
        if progress is not None and not progress(number / len(polygons)):
            raise Cancelled("stopped by the progress callback")
        if _overlaps(bounds, polygon.bounds):
            yield polygon


def zonal_partial(tile_path, polygons, out_path, crs_wkt, progress=None):
    """Count, sum, sum of squares, min and max of the valid pixels of one tile under each polygon
    (pixel centre inside; polygons and tile in `crs_wkt`, the index's CRS), written as JSON to
    `out_path`: sums combine exactly across tiles."""
    ds, pixels, bounds, nodata = _read_tile(tile_path)
    pixels = pixels.astype(np.float64)
    valid = np.ones(pixels.shape, dtype=bool) if nodata is None else pixels != nodata
    partial = {}
    for polygon in _over(polygons, bounds, progress):
        values = pixels[polygon_mask(ds, polygon.wkb, crs_wkt) & valid]
        if values.size:
            partial[polygon.index] = [int(values.size), float(values.sum()), float((values * values).sum()),
                                      float(values.min()), float(values.max())]
    return write_json(out_path, partial)


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


def zonal_combine(partial_paths, polygons):
    """Per polygon: count, min, max, mean and (population) standard deviation over all tiles."""
    totals = {}
    for path in partial_paths:
        for index, (count, total, squares, low, high) in json.loads(Path(path).read_text()).items():
            t = totals.setdefault(int(index), [0, 0.0, 0.0, low, high])
            t[0] += count
            t[1] += total
            t[2] += squares
            t[3], t[4] = min(t[3], low), max(t[4], high)
    rows = []
    for polygon in polygons:
        count, total, squares, low, high = totals.get(polygon.index, [0, 0.0, 0.0, None, None])
        mean = total / count if count else None
        std = float(np.sqrt(max(squares / count - mean * mean, 0.0))) if count else None
        rows.append({"zone": polygon.index, **polygon.properties, "count": count, "min": low, "max": high,
                     "mean": mean, "std": std})
    return rows


def mask_tile(tile_path, polygons, out_path, crs_wkt, progress=None):
    """The tile with every pixel whose centre lies outside all `polygons` set to nodata; the
    output is in `crs_wkt`, the index's CRS."""
    ds, pixels, bounds, nodata = _read_tile(tile_path)
    if nodata is None:
        raise RasterError(f"{tile_path}: clipping needs a nodata value to mark what lies outside")
    inside = np.zeros(pixels.shape, dtype=bool)
    for polygon in _over(polygons, bounds, progress):
        inside |= polygon_mask(ds, polygon.wkb, crs_wkt)
    pixels[~inside] = nodata
    write_raster(out_path, pixels, ds.GetGeoTransform(), crs_wkt, nodata=nodata, creation_options=("TILED=YES",))
    return Path(out_path).stat().st_size
