"""Zonal work over the tiles of the index: which pixels lie inside a polygon (`polygon_mask`),
statistics per polygon summed tile by tile and combined at the merge (`zonal_partial`,
`zonal_combine`), and a tile with what lies outside the polygons set to nodata (`mask_tile`).
A pixel counts as inside a polygon when its centre does. Knows nothing of Django.
"""

import json
from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr

from jobsite import georef
from jobsite.gdalpolicy import thread_config

from .io import TILE_OPEN_OPTIONS, Cancelled, RasterError, gdal_error, open_tile, write_json, write_raster


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


def _read_tile(tile_path, band=1):
    """(dataset, pixels of `band`, bounds, nodata) of one tile of the index: opened once and kept (see
    open_tile), its CRS not decoded (it is the index's), checked when it was loaded."""
    with thread_config(**TILE_OPEN_OPTIONS):
        try:
            ds = open_tile(str(tile_path))
            source = ds.GetRasterBand(band)
            pixels = source.ReadAsArray()
        except RuntimeError as exc:
            raise gdal_error(exc, str(tile_path)) from None
    return ds, pixels, georef.bounds(ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize), source.GetNoDataValue()


def _over(polygons, bounds, progress):
    """The polygons that overlap `bounds`, calling `progress(fraction)` before each and raising
    Cancelled when it returns False: a tile under many polygons keeps its lease and stops on cancel."""
    for number, polygon in enumerate(polygons):
        if progress is not None and not progress(number / len(polygons)):
            raise Cancelled("stopped by the progress callback")
        if _overlaps(bounds, polygon.bounds):
            yield polygon


def zonal_partial(tile_path, polygons, out_path, crs_wkt, progress=None, band=1):
    """Count, sum, sum of squares, min and max of the valid pixels of one tile under each polygon
    (pixel centre inside; polygons and tile in `crs_wkt`, the index's CRS), written as JSON to
    `out_path`: sums combine exactly across tiles. Reads band `band`."""
    ds, pixels, bounds, nodata = _read_tile(tile_path, band)
    pixels = pixels.astype(np.float64)
    valid = np.ones(pixels.shape, dtype=bool) if nodata is None else pixels != nodata
    partial = {}
    for polygon in _over(polygons, bounds, progress):
        values = pixels[polygon_mask(ds, polygon.wkb, crs_wkt) & valid]
        if values.size:
            partial[polygon.index] = [int(values.size), float(values.sum()), float((values * values).sum()),
                                      float(values.min()), float(values.max())]
    return write_json(out_path, partial)


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


def mask_tile(tile_path, polygons, out_path, crs_wkt, progress=None, band=1):
    """Band `band` of the tile with every pixel whose centre lies outside all `polygons` set to
    nodata; the output is in `crs_wkt`, the index's CRS."""
    ds, pixels, bounds, nodata = _read_tile(tile_path, band)
    if nodata is None:
        raise RasterError(f"{tile_path}: clipping needs a nodata value to mark what lies outside")
    inside = np.zeros(pixels.shape, dtype=bool)
    for polygon in _over(polygons, bounds, progress):
        inside |= polygon_mask(ds, polygon.wkb, crs_wkt)
    pixels[~inside] = nodata
    write_raster(out_path, pixels, ds.GetGeoTransform(), crs_wkt, nodata=nodata, creation_options=("TILED=YES",))
    return Path(out_path).stat().st_size
