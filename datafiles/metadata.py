"""What a data file is and what is in it, read with GDAL/OGR (rasters, vectors) or Python's csv and
json (tables, text). Knows nothing of Django: paths in, plain dicts out.

`inspect(path, extension)` either returns (kind, metadata) or raises Unreadable with a message
saying why, GDAL's own where GDAL refused the file.
"""

import csv
import json
import zipfile
from pathlib import Path

from osgeo import gdal, ogr, osr

gdal.UseExceptions()
ogr.UseExceptions()

KINDS = {
    "tif": "raster", "tiff": "raster",
    "gpkg": "vector", "geojson": "vector", "zip": "vector",
    "csv": "table",
    "txt": "text", "json": "text",  # a .json file holding GeoJSON is read as a vector
}
CSV_SNIFF_BYTES = 64 * 1024
TABLE_PREVIEW_ROWS = 20


class Unreadable(Exception):
    """The file is not what its extension says, or cannot be read."""


def inspect(path, extension):
    extension = extension.lower()
    if extension == "json":
        try:
            return "vector", _vector(gdal_path(path, extension))
        except Unreadable:
            return "text", _json_text(path)
    kind = KINDS[extension]
    if kind == "raster":
        return kind, _raster(path)
    if kind == "vector":
        return kind, _vector(gdal_path(path, extension))
    if kind == "table":
        return kind, _table(path)
    return kind, _text(path)


def gdal_path(path, extension):
    """The name GDAL opens the file by: a zipped shapefile is read inside the zip."""
    if extension.lower() != "zip":
        return str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            shapefiles = [n for n in archive.namelist() if n.lower().endswith(".shp") and not n.startswith("__MACOSX")]
    except zipfile.BadZipFile as exc:
        raise Unreadable(f"not a zip archive: {exc}") from None
    if len(shapefiles) != 1:
        raise Unreadable(f"a zip must hold exactly one shapefile (.shp), this one holds {len(shapefiles)}")
    return f"/vsizip/{path}/{shapefiles[0]}"


def _crs(srs):
    if srs is None:
        return {"crs": None, "epsg": None}
    srs = srs.Clone()
    srs.AutoIdentifyEPSG()
    code = srs.GetAuthorityCode(None)
    return {"crs": srs.GetName() or srs.ExportToWkt()[:200], "epsg": int(code) if code and code.isdigit() else None}


def _raster(path):
    try:
        ds = gdal.Open(str(path))
    except RuntimeError as exc:
        raise Unreadable(str(exc)) from None
    if ds is None or ds.RasterCount == 0:
        raise Unreadable("GDAL found no raster bands in it")
    gt = ds.GetGeoTransform(can_return_null=True)
    wkt = ds.GetProjection()
    bounds = None
    if gt is not None:
        xs = (gt[0], gt[0] + gt[1] * ds.RasterXSize + gt[2] * ds.RasterYSize)
        ys = (gt[3], gt[3] + gt[4] * ds.RasterXSize + gt[5] * ds.RasterYSize)
        bounds = [min(xs), min(ys), max(xs), max(ys)]
    bands = []
    for index in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(index)
        bands.append({"type": gdal.GetDataTypeName(band.DataType), "nodata": band.GetNoDataValue()})
    return {
        "driver": ds.GetDriver().ShortName, "width": ds.RasterXSize, "height": ds.RasterYSize,
        "band_count": ds.RasterCount, "bands": bands, **_crs(osr.SpatialReference(wkt=wkt) if wkt else None),
        "geotransform": list(gt) if gt is not None else None, "bounds": bounds,
    }


def _vector(name):
    try:
        ds = ogr.Open(name)
    except RuntimeError as exc:
        raise Unreadable(str(exc)) from None
    if ds is None or ds.GetLayerCount() == 0:
        raise Unreadable("OGR found no vector layer in it")
    layers = []
    for layer in ds:
        defn = layer.GetLayerDefn()
        extent = None
        if layer.GetFeatureCount() > 0 and layer.GetGeomType() != ogr.wkbNone:
            minx, maxx, miny, maxy = layer.GetExtent()
            extent = [minx, miny, maxx, maxy]
        layers.append({
            "name": layer.GetName(), "geometry_type": ogr.GeometryTypeToName(layer.GetGeomType()),
            "feature_count": layer.GetFeatureCount(),
            "fields": [{"name": defn.GetFieldDefn(i).GetName(), "type": defn.GetFieldDefn(i).GetTypeName()}
                       for i in range(defn.GetFieldCount())],
            **_crs(layer.GetSpatialRef()), "extent": extent,
        })
    return {"driver": ds.GetDriver().GetName(), "layers": layers}


def read_text(path):
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"not UTF-8 text: {exc}") from None


def _text(path):
    text = read_text(path)
    if "\x00" in text:
        raise Unreadable("not text: it holds NUL bytes")
    return {"lines": len(text.splitlines()), "characters": len(text)}


def _json_text(path):
    text = read_text(path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unreadable(f"not JSON: {exc}") from None
    return {"lines": len(text.splitlines()), "characters": len(text), "json_type": type(value).__name__}


def read_table(path):
    """(columns, rows) of a CSV file with a header line; Unreadable when it does not parse."""
    text = read_text(path)
    try:
        dialect = csv.Sniffer().sniff(text[:CSV_SNIFF_BYTES], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(text.splitlines(), dialect))
    except csv.Error as exc:
        raise Unreadable(f"not CSV: {exc}") from None
    if not rows or not any(rows[0]):
        raise Unreadable("not CSV: there is no header line")
    columns, body = rows[0], [row for row in rows[1:] if row]
    for number, row in enumerate(body, start=2):
        if len(row) != len(columns):
            raise Unreadable(f"not CSV: line {number} has {len(row)} fields, the header has {len(columns)}")
    return columns, body


def _table(path):
    columns, rows = read_table(path)
    return {"columns": columns, "row_count": len(rows), "preview": rows[:TABLE_PREVIEW_ROWS]}
