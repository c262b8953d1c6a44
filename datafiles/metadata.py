"""What a data file is and what is in it, read with GDAL/OGR (rasters, vectors) or Python's csv and
json (tables, text), and a preview picture of a raster. Knows nothing of Django: files in, plain
dicts out. These run on untrusted bytes, so the web and the cluster call them through
`datafiles.sandbox`, in a child process with limits.

`inspect(stored, limits)` either returns (kind, metadata) or raises Unreadable with a message
saying why, GDAL's own (with paths taken out) where GDAL refused the file. Text and tables are
read as streams: memory does not grow with the file.
"""

import codecs
import csv
import io
import json
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr

from jobsite import georef
from jobsite.jsonnesting import MAX_DEPTH, nesting_depth

from .formats import DEFAULT_LIMITS, Refused, Unreadable, check_raster_size, check_unpacked_size


KINDS = {
    "tif": "raster", "tiff": "raster",
    "gpkg": "vector", "geojson": "vector", "zip": "vector",
    "csv": "table",
    "txt": "text", "json": "text",  # a .json file holding GeoJSON is read as a vector
}
SAMPLE_BYTES = 64 * 1024  # what the CSV dialect is detected on
TABLE_PREVIEW_ROWS = 20
PREVIEW_CHARACTERS = 64 * 1024  # of a table's preview rows, at most
CHUNK = 1024 * 1024
DELIMITERS = ",;\t|"


def inspect(stored, limits=DEFAULT_LIMITS):
    if stored.extension == "json":
        try:
            return "vector", _vector(stored, limits)
        except Refused:
            raise
        except Unreadable:
            return "text", _json_text(stored)
    kind = KINDS[stored.extension]
    if kind == "raster":
        return kind, _raster(stored, limits)
    if kind == "vector":
        return kind, _vector(stored, limits)
    if kind == "table":
        return kind, _table(stored, limits)
    return kind, {**_text(stored), "color_table": color_table_answer(stored)}


def _crs(srs):
    if srs is None:
        return {"crs": None, "epsg": None}
    srs = georef.identified(srs)
    return {"crs": srs.GetName() or srs.ExportToWkt()[:200], "epsg": georef.epsg_code(srs)}


def _raster(stored, limits):
    ds = stored.open("raster")
    if ds.RasterCount == 0:
        raise Unreadable(f"GDAL found no raster bands in {stored.name}")
    check_raster_size(stored.name, ds.RasterXSize, ds.RasterYSize, ds.RasterCount, limits)
    with stored.reading():
        gt = ds.GetGeoTransform(can_return_null=True)
        wkt = ds.GetProjection()
        bands = [{"type": gdal.GetDataTypeName(band.DataType), "nodata": _nodata(band.GetNoDataValue())}
                 for band in (ds.GetRasterBand(i) for i in range(1, ds.RasterCount + 1))]
    bounds = finite(list(georef.bounds(gt, ds.RasterXSize, ds.RasterYSize))) if gt is not None else None
    return {
        "driver": ds.GetDriver().ShortName, "width": ds.RasterXSize, "height": ds.RasterYSize,
        "band_count": ds.RasterCount, "bands": bands, **_crs(osr.SpatialReference(wkt=wkt) if wkt else None),
        "geotransform": finite(list(gt)) if gt is not None else None, "bounds": bounds,
    }


def _nodata(value):
    """A band's nodata value for JSON: NaN and infinities as text ("nan", "inf", "-inf")."""
    return value if value is None or math.isfinite(value) else str(value)


def _vector(stored, limits):
    if stored.extension == "zip":
        check_unpacked_size(stored, limits)
    ds = stored.open("vector")
    count = ds.GetLayerCount()
    if count == 0:
        raise Unreadable(f"OGR found no vector layer in {stored.name}")
    if count > limits.max_layers:
        raise Refused(f"{stored.name} has {count:,} layers; the limit is {limits.max_layers:,}")
    own_stem = Path(stored.path).stem
    layers = []
    with stored.reading():
        for layer in (ds.GetLayer(i) for i in range(count)):
            defn = layer.GetLayerDefn()
            # Formats of one layer name it after the file, which here has a name of our own.
            name = Path(stored.name).stem if layer.GetName() == own_stem else shown(layer.GetName())
            if defn.GetFieldCount() > limits.max_fields:
                raise Refused(f"{stored.name}: layer {name[:60]!r} has {defn.GetFieldCount():,} fields; "
                              f"the limit is {limits.max_fields:,}")
            features = _count_features(layer, stored.name)
            extent = None
            if features and layer.GetGeomType() != ogr.wkbNone:
                minx, maxx, miny, maxy = layer.GetExtent()
                extent = finite([minx, miny, maxx, maxy])
            layers.append({
                "name": name, "geometry_type": ogr.GeometryTypeToName(layer.GetGeomType()),
                "feature_count": features,
                "fields": [{"name": shown(defn.GetFieldDefn(i).GetName()), "type": defn.GetFieldDefn(i).GetTypeName()}
                           for i in range(defn.GetFieldCount())],
                **_crs(layer.GetSpatialRef()), "extent": extent,
            })
    return {"driver": ds.GetDriver().ShortName, "layers": layers}


def _count_features(layer, name):
    """The features of a layer, counted by reading them (the count a file declares, as a
    GeoPackage does in gpkg_ogr_contents, may be anything)."""
    try:
        return sum(len(next(iter(batch.values()))) for batch in layer.GetArrowStreamAsNumPy(["INCLUDE_FID=YES"]))
    except RuntimeError as exc:
        raise Unreadable(f"{name}: a feature cannot be read ({exc})") from None


SHOWN = 200  # characters of a name or a value that metadata keeps


def shown(text):
    """A name or value from a file, as metadata keeps it: at most SHOWN characters."""
    return text if len(text) <= SHOWN else text[:SHOWN] + "…"


def finite(values):
    """Numbers as JSON can hold them: None in place of NaN and infinities."""
    return [value if value is None or math.isfinite(value) else None for value in values]


# Text: read in chunks, decoded incrementally.

def iter_text(path, name="the file"):
    """The file's text in chunks of about a megabyte; Unreadable where it is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as source:
        while True:
            chunk = source.read(CHUNK)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise Unreadable(f"{name} is not UTF-8 text: {exc.reason} at byte {source.tell() - len(chunk) + exc.start}") from None
            if text:
                yield text
            if not chunk:
                return


def _text(stored):
    count = characters = 0
    for line in lines(iter_text(stored.path, stored.name), stored.name):
        if "\x00" in line:
            raise Unreadable(f"{stored.name} is not text: it holds NUL bytes")
        count += 1
        characters += len(line)
    return {"lines": count, "characters": characters}


def _json_text(stored):
    """JSON that is no GeoJSON: often a single line, so lines are not limited here (its content is
    handed out as it is, never line by line)."""
    text = "".join(iter_text(stored.path, stored.name))
    found = {"lines": text.count("\n") + (1 if text and not text.endswith("\n") else 0), "characters": len(text)}
    if nesting_depth(text) > MAX_DEPTH:
        raise Unreadable(f"{stored.name}: JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unreadable(f"{stored.name} is not JSON: {exc}") from None
    return {**found, "json_type": type(value).__name__}


# Tables.

def detect_delimiter(sample):
    """The delimiter of a CSV sample: of , ; tab and |, the one that splits its lines into the
    same number of fields (more than one), the most fields winning; a comma otherwise. Each
    candidate is one pass of the csv module's parser over the sample, so time is linear in it."""
    complete = sample[: sample.rfind("\n") + 1] or sample
    best, best_fields = ",", 1
    for delimiter in DELIMITERS:
        try:
            counts = {len(row) for row in csv.reader(io.StringIO(complete), delimiter=delimiter) if row}
        except csv.Error:
            continue
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = delimiter, fields
    return best


MAX_LINE = 4 * 1024 * 1024  # characters in one line of a table


def read_rows(path, delimiter=None, name="the file"):
    """(delimiter, csv reader of the rows) of a CSV file, read as a stream; the delimiter is
    detected on the file's first SAMPLE_BYTES unless given."""
    if delimiter is None:
        with open(path, "rb") as source:
            sample = source.read(SAMPLE_BYTES).decode("utf-8", errors="ignore")
        delimiter = detect_delimiter(sample)
    return delimiter, csv.reader(lines(iter_text(path, name), name), delimiter=delimiter)


def lines(chunks, name):
    """The lines of a stream of text chunks, each with its newline; Unreadable for a line longer
    than MAX_LINE characters."""
    rest = ""
    for chunk in chunks:
        parts = (rest + chunk).split("\n")
        rest = parts.pop()
        if len(rest) > MAX_LINE or any(len(part) > MAX_LINE for part in parts):
            raise Unreadable(f"{name} has a line longer than {MAX_LINE:,} characters")
        for part in parts:
            yield part + "\n"
    if rest:
        yield rest


def _table(stored, limits):
    delimiter, rows = read_rows(stored.path, name=stored.name)
    try:
        columns = next(rows, None)
        if not columns or not any(columns):
            raise Unreadable(f"{stored.name} is not CSV: there is no header line")
        if len(columns) > limits.max_fields:
            raise Refused(f"{stored.name} has {len(columns):,} columns; the limit is {limits.max_fields:,}")
        columns = [shown(column) for column in columns]
        budget = PREVIEW_CHARACTERS
        preview, count = [], 0
        for row in rows:
            if not row:
                continue
            count += 1
            if len(row) != len(columns):
                raise Unreadable(f"{stored.name} is not CSV: line {rows.line_num} has {len(row)} fields, "
                                 f"the header has {len(columns)}")
            if len(preview) < TABLE_PREVIEW_ROWS and budget > 0:
                preview.append([shown(value) for value in row])
                budget -= sum(len(value) for value in preview[-1])
    except csv.Error as exc:
        raise Unreadable(f"{stored.name} is not CSV: {exc}") from None
    return {"columns": columns, "row_count": count, "preview": preview, "delimiter": delimiter}


# A preview picture of a raster.

def preview_png(stored, out_path, size=256):
    """Write a PNG at most `size` pixels wide and high of a raster (its first three bands, or its
    first). Pixels are read decimated, from overviews where the file has them: never the full
    resolution. Values are stretched to 1-255 per band; nodata becomes 0, transparent."""
    ds = stored.open("raster")
    scale = min(1.0, size / max(ds.RasterXSize, ds.RasterYSize))
    width, height = max(1, round(ds.RasterXSize * scale)), max(1, round(ds.RasterYSize * scale))
    numbers = [1, 2, 3] if ds.RasterCount >= 3 else [1]
    out = gdal.GetDriverByName("MEM").Create("", width, height, len(numbers), gdal.GDT_Byte)
    with stored.reading():
        for index, number in enumerate(numbers, start=1):
            band = ds.GetRasterBand(number)
            pixels = _decimated(band, width, height)
            out_band = out.GetRasterBand(index)
            out_band.WriteArray(_stretch(pixels, band.GetNoDataValue(), band.DataType == gdal.GDT_Byte))
            out_band.SetNoDataValue(0)
    gdal.GetDriverByName("PNG").CreateCopy(str(out_path), out)


# A preview reads at most about this many blocks of a raster that has no overviews.
PREVIEW_BLOCKS = 1024


def _decimated(band, width, height):
    """The band at `width` x `height` pixels, by nearest neighbour, read from its smallest
    overview that is at least that large (or the band itself). Where that read would touch more
    than PREVIEW_BLOCKS blocks, it is sampled instead: the preview is cut into cells, each filled
    from one block under it, so the cost is bounded whatever the raster's size and overviews."""
    nearest = gdal.GRIORA_NearestNeighbour
    band = _overview_for(band, width, height)
    block_x, block_y = band.GetBlockSize()
    columns, rows = min(width, -(-band.XSize // block_x)), min(height, -(-band.YSize // block_y))
    if columns * rows <= PREVIEW_BLOCKS:
        return band.ReadAsArray(buf_xsize=width, buf_ysize=height, resample_alg=nearest)
    cells = int(PREVIEW_BLOCKS ** 0.5)
    cells_x, cells_y = min(width, cells), min(height, cells)
    pixels = None
    for j in range(cells_y):
        y0, y1 = j * height // cells_y, (j + 1) * height // cells_y
        source_y = (j * band.YSize // cells_y) // block_y * block_y
        for i in range(cells_x):
            x0, x1 = i * width // cells_x, (i + 1) * width // cells_x
            source_x = (i * band.XSize // cells_x) // block_x * block_x
            part = band.ReadAsArray(source_x, source_y, min(block_x, band.XSize - source_x),
                                    min(block_y, band.YSize - source_y), buf_xsize=x1 - x0, buf_ysize=y1 - y0,
                                    resample_alg=nearest)
            if pixels is None:
                pixels = np.empty((height, width), dtype=part.dtype)
            pixels[y0:y1, x0:x1] = part
    return pixels


def _overview_for(band, width, height):
    overviews = [band.GetOverview(i) for i in range(band.GetOverviewCount())]
    large_enough = [o for o in overviews if o is not None and o.XSize >= width and o.YSize >= height]
    return min(large_enough, key=lambda o: o.XSize * o.YSize, default=band)


def _stretch(pixels, nodata, is_byte):
    valid = np.isfinite(pixels) if pixels.dtype.kind == "f" else np.ones(pixels.shape, dtype=bool)
    if nodata is not None:
        valid &= pixels != nodata
    if is_byte:
        return np.where(valid, pixels, 0).astype(np.uint8)
    out = np.zeros(pixels.shape, dtype=np.uint8)
    if valid.any():
        values = pixels[valid].astype(np.float64)
        low, high = values.min(), values.max()
        span = high - low or 1.0
        out[valid] = (1 + np.round((values - low) / span * 254)).astype(np.uint8)
    return out


# Colour tables: GDAL reads them only as gdaldem color-relief does.

def color_table_problem(stored):
    """Why gdaldem color-relief cannot read the text file `stored` as its colour table (GDAL's
    messages, paths taken out), or None. GDAL reports a table it cannot read only as an error
    message and goes on with no colours, so the messages are taken from standard error: call it
    only in a process of its own (the sandbox's child)."""
    source = gdal.GetDriverByName("MEM").Create("", 2, 1, 1, gdal.GDT_Float32)
    with _standard_error() as written:
        gdal.DEMProcessing("", source, "color-relief", format="MEM", colorFilename=stored.path)
    errors = [line.split(":", 1)[1].strip() for line in written if line.startswith("ERROR ")]
    return stored.scrub("; ".join(errors)) if errors else None


def color_table_answer(stored):
    """Whether GDAL reads the text file as a colour table, as metadata: {"readable": true} or
    {"readable": false, "problem": ...}."""
    problem = color_table_problem(stored)
    return {"readable": problem is None, **({"problem": problem} if problem else {})}


@contextmanager
def _standard_error():
    """The lines written to file descriptor 2 while in the block."""
    written = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield written
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            written.extend(capture.read(64 * 1024).decode("utf-8", "replace").splitlines())
