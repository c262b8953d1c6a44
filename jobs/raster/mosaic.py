"""The merge of a raster job: its tile outputs mosaicked into one Cloud-Optimized GeoTIFF with
overviews, and a PNG thumbnail of it. Knows nothing of Django.
"""

import os
import uuid
from xml.etree import ElementTree
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from pathlib import Path

from osgeo import gdal

from jobsite.gdalpolicy import thread_config

from .io import TILE_OPEN_OPTIONS, RasterError, temporary_name, write_error


# How a merged result is written (with NUM_THREADS for the compression). DEFLATE is what every COG
# reader knows; its level 1 writes the 32-tile result of bench/pipeline.py in less than half the
# time of the default level 6, for files 9 % larger (byte) and 2 % larger (float32).
COG_OPTIONS = ("COMPRESS=DEFLATE", "LEVEL=1", "PREDICTOR=YES", "OVERVIEWS=AUTO", "BLOCKSIZE=512")
# The plain GeoTIFF the tiles are first copied into.
FLAT_OPTIONS = ("TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "BIGTIFF=IF_SAFER")
# The overview strips computed and not yet written, all threads together, take at most this much.
OVERVIEW_MEMORY_BYTES = 128 * 1024 * 1024
# Tiles that only a VRT mosaics go through a plain GeoTIFF from this many (GDAL's default
# GDAL_MAX_DATASET_POOL_SIZE: the files a VRT keeps open at once).
FLATTEN_VRT_FROM = 100


def merge_to_cog(tile_paths, out_path, thumbnail_path, thumbnail_size=512):
    """Mosaic tile outputs into a Cloud-Optimized GeoTIFF with overviews, and a PNG thumbnail.

    Both files appear at their names only once complete. Returns their sizes in bytes.
    """
    out_path, thumbnail_path = Path(out_path), Path(thumbnail_path)
    _check_present(tile_paths)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    vrt_name = f"/vsimem/merge-{uuid.uuid4().hex}.vrt"
    tmp_cog, tmp_png, tmp_flat = temporary_name(out_path), temporary_name(thumbnail_path), temporary_name(out_path)
    level_paths = []  # overviews computed for the COG driver (with_overviews)
    try:
        with thread_config(**TILE_OPEN_OPTIONS):
            # The COG driver reads its source once for the overviews and again for the image, in
            # windows across the tiles: from a VRT of the tiles, that costs more than copying them
            # into one plain GeoTIFF first (1.2 s against 0.3 s for 32 tiles of 1024 x 1024).
            source = flatten(tile_paths, tmp_flat) if len(tile_paths) > 1 else None
            if source is not None:
                source = None  # closed: its overviews are read from the file
                source = with_overviews(tmp_flat, level_paths) or gdal.Open(str(tmp_flat))
            else:
                source = gdal.BuildVRT(vrt_name, [str(p) for p in tile_paths])
                if len(tile_paths) > FLATTEN_VRT_FROM:
                    # A VRT of more files than GDAL keeps open reopens them as the COG driver reads
                    # it, once for the image and again for each overview.
                    source = gdal.Translate(str(tmp_flat), source, format="GTiff", creationOptions=list(FLAT_OPTIONS))
            gdal.Translate(
                str(tmp_cog), source, format="COG",
                creationOptions=[*COG_OPTIONS, "NUM_THREADS=ALL_CPUS"],
            )
            source = None
        _write_thumbnail(tmp_cog, tmp_png, thumbnail_size)
        os.replace(tmp_cog, out_path)
        os.replace(tmp_png, thumbnail_path)
    except RuntimeError as exc:
        # Raised below, without GDAL's traceback: its frames, and `source`, hold files open.
        error, source = write_error(exc, tmp_cog), None
    else:
        error = None
    finally:
        gdal.Unlink(vrt_name) if gdal.VSIStatL(vrt_name) else None
        tmp_cog.unlink(missing_ok=True)
        tmp_png.unlink(missing_ok=True)
        tmp_flat.unlink(missing_ok=True)
        for level_path in level_paths:
            level_path.unlink(missing_ok=True)
    if error is not None:
        raise error
    return out_path.stat().st_size, thumbnail_path.stat().st_size


def mosaic_to(tile_paths, out_path, driver="GTiff"):
    """Mosaic tile outputs into one raster of `driver` (a tiled GeoTIFF, or the format a tool
    reads, such as SAGA), for a tool that reads the whole area. Returns the mosaic's size
    (width, height) and geotransform."""
    _check_present(tile_paths)
    vrt_name = f"/vsimem/mosaic-{uuid.uuid4().hex}.vrt"
    options = ["TILED=YES", "BIGTIFF=IF_SAFER"] if driver == "GTiff" else []
    try:
        with thread_config(**TILE_OPEN_OPTIONS):
            source = gdal.BuildVRT(vrt_name, [str(p) for p in tile_paths])
            grid = (source.RasterXSize, source.RasterYSize), source.GetGeoTransform()
            gdal.Translate(str(out_path), source, format=driver, creationOptions=options)
            source = None
    except RuntimeError as exc:
        raise write_error(exc, out_path) from None
    finally:
        gdal.Unlink(vrt_name) if gdal.VSIStatL(vrt_name) else None
    return grid


def flatten(tile_paths, flat_path):
    """The tiles copied into one plain GeoTIFF at `flat_path`, one tile at a time, so that memory
    does not grow with their number (a VRT of 100,000 tiles holds 600 MB). Returns the open
    dataset, or None where only a VRT mosaics the tiles as GDAL would (see _layout)."""
    layout = _layout(tile_paths)
    if layout is None:
        return None
    (px, py, bands, data_type, nodata), colours, crs_wkt, (left, top), windows = layout
    width = max(col + w for col, _, w, _ in windows)
    height = max(row + h for _, row, _, h in windows)
    flat = gdal.GetDriverByName("GTiff").Create(str(flat_path), width, height, bands, data_type, list(FLAT_OPTIONS))
    flat.SetGeoTransform((left, px, 0.0, top, 0.0, py))
    flat.SetProjection(crs_wkt)
    for number, colour in enumerate(colours, start=1):
        flat.GetRasterBand(number).SetColorInterpretation(colour)
        if nodata[number - 1] is not None:
            flat.GetRasterBand(number).SetNoDataValue(nodata[number - 1])
    for path, (col, row, w, h) in zip(tile_paths, windows, strict=True):
        ds = gdal.Open(str(path))
        flat.WriteRaster(col, row, w, h, ds.ReadRaster(0, 0, w, h))
    flat.FlushCache()
    return flat


def cog_overview_sizes(width, height, block_size):
    """The sizes of the overview levels the COG driver makes (OVERVIEWS=AUTO, no count): each half
    the one before, rounded down, until one fits in a block."""
    sizes = []
    while width > block_size or height > block_size:
        width, height = max(1, width // 2), max(1, height // 2)
        sizes.append((width, height))
    return sizes


def with_overviews(flat_path, level_paths):
    """A VRT of the plain GeoTIFF at `flat_path` whose overviews are those the COG driver would
    compute, computed here for it to copy: GDAL computes them on one core. Each level is CUBIC
    from the one before, at half its size rounded down, written to a plain GeoTIFF whose path is
    appended to `level_paths` (for the caller to remove). None where GDAL would compute them
    otherwise: complex data, bands that differ in having a nodata value, or a side that stops
    shrinking at one pixel.

    A level whose source has twice its rows is computed in strips of rows on all cores, each read
    by a handle of its own with GDAL's CUBIC resampling, which reads beyond the strip's edges what
    its kernel needs: each strip is exactly that part of the whole level. A level of another size
    is computed whole, by GDAL."""
    flat = gdal.Open(str(flat_path))
    block_size = int(dict(option.split("=") for option in COG_OPTIONS)["BLOCKSIZE"])
    sizes = cog_overview_sizes(flat.RasterXSize, flat.RasterYSize, block_size)
    bands = [flat.GetRasterBand(number) for number in range(1, flat.RasterCount + 1)]
    nodata = [band.GetNoDataValue() for band in bands]
    shrinking = all(w < previous_w and h < previous_h for (w, h), (previous_w, previous_h)
                    in zip(sizes, [(flat.RasterXSize, flat.RasterYSize), *sizes], strict=False))
    if not sizes or gdal.DataTypeIsComplex(bands[0].DataType) or len({v is None for v in nodata}) > 1 or not shrinking:
        return None
    pixel_bytes = len(bands) * gdal.GetDataTypeSize(bands[0].DataType) // 8
    source_path = flat_path
    threads = len(os.sched_getaffinity(0))
    with ThreadPoolExecutor(threads) as pool:
        for width, height in sizes:
            level_path = temporary_name(flat_path)
            level_paths.append(level_path)
            level = gdal.GetDriverByName("GTiff").Create(str(level_path), width, height, len(bands), bands[0].DataType,
                                                         list(FLAT_OPTIONS))
            for number, value in enumerate(nodata, start=1):
                if value is not None:
                    level.GetRasterBand(number).SetNoDataValue(value)
            source = gdal.Open(str(source_path))
            if source.RasterYSize == 2 * height:
                # Four strips a thread, at most two a thread held at once, within OVERVIEW_MEMORY_BYTES.
                rows = max(1, min(OVERVIEW_MEMORY_BYTES // (2 * threads * width * pixel_bytes), -(-height // (4 * threads))))
                strips = [(first, min(rows, height - first)) for first in range(0, height, rows)]
                for wave in range(0, len(strips), 2 * threads):
                    batch = strips[wave:wave + 2 * threads]
                    computed = pool.map(_overview_strip, repeat(source_path), batch, repeat(width))
                    for (first, count), parts in zip(batch, computed, strict=True):
                        for number, part in enumerate(parts, start=1):
                            level.GetRasterBand(number).WriteRaster(0, first, width, count, part)
            else:
                for number in range(1, len(bands) + 1):
                    gdal.RegenerateOverview(source.GetRasterBand(number), level.GetRasterBand(number), "CUBIC")
            level = source = None  # written: the next level reads it
            source_path = level_path
    vrt = ElementTree.fromstring(gdal.BuildVRT("", [str(flat_path)]).GetMetadata("xml:VRT")[0])
    for number, band in enumerate(vrt.iter("VRTRasterBand"), start=1):
        _plain_source(band)
        for element in (*band.iter("NoDataValue"), *band.iter("NODATA")):  # in full: the XML rounds it
            element.text = repr(nodata[number - 1])
        for level_path in level_paths:
            overview = ElementTree.SubElement(band, "Overview")
            ElementTree.SubElement(overview, "SourceFilename", relativeToVRT="0").text = str(level_path)
            ElementTree.SubElement(overview, "SourceBand").text = str(number)
    return gdal.Open(ElementTree.tostring(vrt, encoding="unicode"))


def _plain_source(band):
    """Make the VRT band's one source, the whole plain GeoTIFF, a SimpleSource: BuildVRT gives a
    ComplexSource that leaves the source's nodata pixels unpainted, which here leaves the band's
    own nodata, the same value, and tests every pixel for it (a third of the COG's copy time)."""
    allowed = {"SourceFilename", "SourceBand", "SourceProperties", "SrcRect", "DstRect", "NODATA"}
    for source in band.findall("ComplexSource"):
        if {child.tag for child in source} <= allowed:
            source.tag = "SimpleSource"
            for element in source.findall("NODATA"):
                source.remove(element)


def _overview_strip(source_path, strip, width):
    """Rows `strip` (first, count) of the next overview level of each band of the raster at
    `source_path`, through a handle of this thread's own."""
    first, count = strip
    ds = gdal.Open(str(source_path))
    return [ds.GetRasterBand(number).ReadRaster(0, 2 * first, ds.RasterXSize, 2 * count, width, count,
                                                resample_alg=gdal.GRIORA_Cubic)
            for number in range(1, ds.RasterCount + 1)]


def _layout(tile_paths):
    """Where each tile goes in one plain GeoTIFF: ((pixel width, pixel height, bands, data type,
    nodata of each band), colour interpretations, CRS, (left, top), [(col, row, width, height)]),
    or None where a plain copy would not give what a VRT of them gives: tiles that differ in pixel
    size, bands, data type or nodata, are not north-up or not whole pixels apart, overlap (a VRT
    paints a later tile over an earlier one only where the later has data), or have an alpha band,
    a mask, a colour table, a scale or an offset (a VRT paints nothing where a tile is transparent,
    and keeps the rest)."""
    placed, first, grid = [], None, None
    for path in tile_paths:
        ds = gdal.Open(str(path))
        x0, px, rx, y0, ry, py = ds.GetGeoTransform()
        bands = [ds.GetRasterBand(b) for b in range(1, ds.RasterCount + 1)]
        plain = all(b.GetMaskFlags() in (gdal.GMF_ALL_VALID, gdal.GMF_NODATA) and b.GetColorTable() is None
                    and b.GetScale() in (None, 1.0) and b.GetOffset() in (None, 0.0) for b in bands)
        nodata = tuple(b.GetNoDataValue() for b in bands)
        kind = (px, py, len(bands), bands[0].DataType, tuple("nan" if v is not None and v != v else v for v in nodata))
        if not plain or rx or ry or px <= 0 or py >= 0 or (first is not None and kind != first):
            return None
        if first is None:
            first = kind
            grid = (px, py, len(bands), bands[0].DataType, nodata), [b.GetColorInterpretation() for b in bands], \
                ds.GetProjection()
        placed.append((x0, y0, ds.RasterXSize, ds.RasterYSize))
    px, py = first[0], first[1]
    left, top = min(p[0] for p in placed), max(p[1] for p in placed)
    windows = []
    for x0, y0, width, height in placed:
        col, row = (x0 - left) / px, (y0 - top) / py
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            return None
        windows.append((round(col), round(row), width, height))
    if _overlap(windows):
        return None
    return *grid, (left, top), windows


def _overlap(windows):
    """Whether any two of the (col, row, width, height) windows overlap: each is compared with
    those in the cells of a grid as large as the largest window that it touches."""
    size_x, size_y = max(w[2] for w in windows), max(w[3] for w in windows)
    cells = {}
    for window in windows:
        col, row, width, height = window
        touched = {(cx, cy) for cx in (col // size_x, (col + width - 1) // size_x)
                   for cy in (row // size_y, (row + height - 1) // size_y)}
        for cell in touched:
            for other in cells.get(cell, ()):
                if col < other[0] + other[2] and other[0] < col + width and row < other[1] + other[3] and other[1] < row + height:
                    return True
            cells.setdefault(cell, []).append(window)
    return False


def _check_present(tile_paths):
    """RasterError if a tile output is missing: BuildVRT would skip it with a warning and leave a
    hole in the mosaic."""
    missing = [str(p) for p in tile_paths if not Path(p).is_file()]
    if missing:
        raise RasterError(f"{len(missing)} tile outputs are missing: {', '.join(missing[:5])}"
                          + (" ..." if len(missing) > 5 else ""))


def _write_thumbnail(src_path, png_path, size):
    """An 8-bit PNG at most `size` pixels wide and high; nodata becomes transparent."""
    ds = gdal.Open(str(src_path))
    band = ds.GetRasterBand(1)
    scale = size / max(ds.RasterXSize, ds.RasterYSize)
    width = max(1, round(ds.RasterXSize * min(1.0, scale)))
    height = max(1, round(ds.RasterYSize * min(1.0, scale)))
    options = {"format": "PNG", "width": width, "height": height, "resampleAlg": "average"}
    if band.DataType != gdal.GDT_Byte:
        low, high = _value_range(band, width, height)
        options.update(outputType=gdal.GDT_Byte, scaleParams=[[low, high, 1, 255]], noData=0)
    with thread_config(GDAL_PAM_ENABLED="NO"):
        gdal.Translate(str(png_path), ds, **options)


def _value_range(band, width, height):
    """(low, high) of the band's valid pixels, approximate (from an overview); else exact from the
    level that a thumbnail of width x height reads (NaN as nodata spreads through the overviews'
    CUBIC resampling, and may leave no valid pixel at a coarse level). (0, 1) where that level has
    none: the thumbnail is transparent whatever the range."""
    try:
        return band.ComputeRasterMinMax(True)
    except RuntimeError:  # no valid pixel at the level sampled
        pass
    levels = [band.GetOverview(i) for i in range(band.GetOverviewCount())]
    read = min((level for level in levels if level.XSize >= width and level.YSize >= height),
               key=lambda level: level.XSize, default=band)
    try:
        return read.ComputeRasterMinMax(False)
    except RuntimeError:
        return 0.0, 1.0
