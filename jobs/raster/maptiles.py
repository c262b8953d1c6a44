"""Map tiles of rasters in the WebMercatorQuad tile matrix set (OGC 17-083r4; the grid of web
maps, EPSG:3857), read with GDAL's own warper from a raster's overviews, and the facts of a
result raster that maps and catalogues show: its footprint, grid and band statistics.

A tile is read by warping the raster to the tile's bounds at 256 x 256 pixels. GDAL chooses the
overview level that matches the tile's resolution (warping's OVERVIEW_LEVEL=AUTO), so a tile of a
Cloud-Optimized GeoTIFF reads only a few of its blocks at any zoom. Knows nothing of Django.
"""

import math
import uuid
from dataclasses import dataclass

import mercantile
import numpy as np
from osgeo import gdal

from jobsite import georef
from jobsite.gdalpolicy import thread_config

from .io import TILE_OPEN_OPTIONS, RasterError, gdal_error

TILE_SIZE = 256
MAX_ZOOM = 24
WEB_MERCATOR = georef.srs_from_epsg(3857).ExportToWkt()
# The pixel size of the WebMercatorQuad's one tile at zoom 0, in metres (the equator's length
# over 256).
ZOOM0_RESOLUTION = mercantile.CE / TILE_SIZE
RESAMPLING = ("nearest", "bilinear", "cubic", "average")


class TileAddressError(ValueError):
    """A z/x/y that is not a tile of the WebMercatorQuad; `field` names the part that is wrong."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


def tile_bounds(z, x, y):
    """(minx, miny, maxx, maxy) in EPSG:3857 metres of tile z/x/y; TileAddressError if there is no
    such tile."""
    if not 0 <= z <= MAX_ZOOM:
        raise TileAddressError("z", f"zoom {z} is outside 0 to {MAX_ZOOM}")
    for field, value in (("x", x), ("y", y)):
        if not 0 <= value < 2 ** z:
            raise TileAddressError(field, f"{field} {value} is outside 0 to {2 ** z - 1} at zoom {z}")
    box = mercantile.xy_bounds(x, y, z)
    return (box.left, box.bottom, box.right, box.top)


@dataclass(frozen=True)
class TileData:
    """The pixels of one map tile: `bands` (count, 256, 256) in the raster's data type, and
    `alpha` (256, 256) of 8 bits: 0 outside the raster and where it has no data, else its own alpha
    band's value where it has one (255 without)."""

    bands: np.ndarray
    alpha: np.ndarray

    @property
    def valid(self):
        return self.alpha > 0


def open_raster(path):
    """A GeoTIFF (the only format results are written in) opened read-only, without GDAL's side files
    (statistics computed on it are not written beside it); RasterError if it is anything else."""
    try:
        with thread_config(GDAL_PAM_ENABLED="NO"):
            return gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_READONLY, allowed_drivers=["GTiff"])
    except RuntimeError as exc:
        raise gdal_error(exc) from None


class TileSource:
    """A raster opened for map tiles, with what every tile of it needs computed once: its box in
    EPSG:3857, the resolution GDAL's warper would suggest for it there, and its overviews opened
    as datasets of their own as tiles ask for them.

    A tile is GDAL's warp of the raster with the warper's own choice of overview (gdalwarp
    -ovr AUTO); the choice is made here as the warper makes it, and the overview is read directly,
    which spares the warper its search and its wrapper of the overview at every tile (two thirds of
    a tile's time). Not thread-safe: one per thread (GDAL datasets are not)."""

    def __init__(self, path):
        self.path = str(path)
        self.ds = open_raster(path)
        if not self.ds.GetProjection():
            raise RasterError("the raster has no coordinate reference system")
        try:
            self.bounds = mercator_bounds(self.ds)
            suggested = gdal.Warp("", self.ds, format="VRT", dstSRS=WEB_MERCATOR)
        except RuntimeError as exc:  # a CRS with no way to Web Mercator
            raise gdal_error(exc) from None
        self.suggested_resolution = suggested.GetGeoTransform()[1]
        band = self.ds.GetRasterBand(1)
        self.overview_widths = [band.GetOverview(i).XSize for i in range(band.GetOverviewCount())]
        self._overviews = {}

    def overview_for(self, resolution):
        """The overview level (None: the full resolution) that the warper chooses for an output of
        `resolution` metres a pixel (GDAL's gdalwarp_lib, OVERVIEW_LEVEL=AUTO)."""
        target = resolution / self.suggested_resolution
        if not self.overview_widths or target <= 1.0:
            return None
        width = self.ds.RasterXSize
        level = -1
        while level < len(self.overview_widths) - 1:
            ratio = 1.0 if level < 0 else width / self.overview_widths[level]
            following = width / self.overview_widths[level + 1]
            if ratio < target < following or abs(ratio - target) < 0.1:
                break
            level += 1
        return level if level >= 0 else None

    def dataset(self, level):
        if level is None:
            return self.ds
        if level not in self._overviews:
            try:
                with thread_config(GDAL_PAM_ENABLED="NO"):
                    self._overviews[level] = gdal.OpenEx(self.path, gdal.OF_RASTER | gdal.OF_READONLY,
                                                         allowed_drivers=["GTiff"], open_options=[f"OVERVIEW_LEVEL={level}"])
            except RuntimeError as exc:
                raise gdal_error(exc) from None
        return self._overviews[level]


def read_tile(source, z, x, y, resampling="bilinear", size=TILE_SIZE):
    """The pixels of tile z/x/y of the TileSource `source`, or None where the tile lies outside it."""
    box = tile_bounds(z, x, y)
    minx, miny, maxx, maxy = source.bounds
    if not (box[0] < maxx and box[2] > minx and box[1] < maxy and box[3] > miny):
        return None
    ds = source.dataset(source.overview_for((box[2] - box[0]) / size))
    try:
        with thread_config(GDAL_PAM_ENABLED="NO"):
            out = gdal.Warp("", ds, format="MEM", outputBounds=box, dstSRS=WEB_MERCATOR, width=size, height=size,
                            resampleAlg=resampling, dstAlpha=True, overviewLevel="NONE")
    except RuntimeError as exc:
        raise gdal_error(exc) from None
    # The warp's alpha band is last; a raster's own alpha band (colour interpretation Alpha) is
    # taken into it rather than warped as data.
    pixels = out.ReadAsArray().reshape(out.RasterCount, size, size)
    if out.RasterCount < 2:  # the raster's only band is an alpha band: nothing to show
        return None
    return TileData(bands=pixels[:-1], alpha=np.clip(np.nan_to_num(pixels[-1]), 0, 255).astype(np.uint8))


def mercator_bounds(ds):
    """(minx, miny, maxx, maxy) of the raster in EPSG:3857 metres: the box of its edges, densified."""
    box = georef.bounds(ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize)
    return georef.edge_bounds(box, ds.GetProjection(), WEB_MERCATOR)


def native_resolution(ds):
    """The size of one of the raster's pixels in EPSG:3857 metres, about its middle (the finer axis)."""
    minx, miny, maxx, maxy = mercator_bounds(ds)
    return min((maxx - minx) / ds.RasterXSize, (maxy - miny) / ds.RasterYSize)


def value_at(ds, lon, lat):
    """The raster's values at the point (lon, lat) in WGS84 degrees: a list with one value per band
    (None where it has no data), or None where the point lies outside the raster."""
    px, py = _pixel_of(ds, lon, lat)
    if px is None:
        return None
    values = []
    for index in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(index)
        value = band.ReadAsArray(px, py, 1, 1)[0, 0].item()
        nodata = band.GetNoDataValue()
        missing = (nodata is not None and (value == nodata or (math.isnan(nodata) and math.isnan(value))))
        values.append(None if missing or (isinstance(value, float) and not math.isfinite(value)) else value)
    return values


def _pixel_of(ds, lon, lat):
    wkt = ds.GetProjection()
    try:
        (x, y), = georef.transformed_points([(lon, lat)], georef.srs_from_epsg(4326).ExportToWkt(), wkt)
    except RuntimeError:  # outside the domain of the raster's projection
        return None, None
    inverse = gdal.InvGeoTransform(ds.GetGeoTransform())
    px, py = gdal.ApplyGeoTransform(inverse, x, y)
    if not (math.isfinite(px) and math.isfinite(py)):
        return None, None
    px, py = math.floor(px), math.floor(py)
    if not (0 <= px < ds.RasterXSize and 0 <= py < ds.RasterYSize):
        return None, None
    return px, py


def zoom_range(ds):
    """(minzoom, maxzoom) at which the raster is worth showing: from the zoom where it fills about
    one tile to the one of its own resolution (a tile pixel no larger than a raster pixel)."""
    minx, miny, maxx, maxy = mercator_bounds(ds)
    width = max(maxx - minx, maxy - miny, 1e-6)
    resolution = native_resolution(ds)
    maxzoom = min(MAX_ZOOM, max(0, math.ceil(math.log2(ZOOM0_RESOLUTION / resolution))))
    minzoom = min(maxzoom, max(0, math.floor(math.log2(mercantile.CE / width))))
    return minzoom, maxzoom


def describe(path):
    """The facts of a result raster that maps and catalogues show: its CRS (EPSG code and WKT), its
    grid (shape and geotransform), its extent in WGS84 (bbox and footprint polygon), the zooms at
    which it is shown, and each band's data type, nodata and statistics (from the overviews:
    approximate for large rasters, as a map's colour range needs)."""
    try:
        return _describe(path)
    except RuntimeError as exc:  # PROJ's: a CRS with no way to WGS84 or Web Mercator
        raise gdal_error(exc) from None


def _describe(path):
    with thread_config(GDAL_PAM_ENABLED="NO"):  # the statistics are not written beside the file
        ds = open_raster(path)
        try:
            wkt = ds.GetProjection()
            geotransform = ds.GetGeoTransform()
            box = georef.bounds(geotransform, ds.RasterXSize, ds.RasterYSize)
            bands = [_band_facts(ds.GetRasterBand(index)) for index in range(1, ds.RasterCount + 1)]
            minzoom, maxzoom = zoom_range(ds)
            shape = [ds.RasterYSize, ds.RasterXSize]
        finally:
            ds = None
    return {
        "epsg": georef.epsg_of(wkt), "wkt": wkt, "shape": shape,
        "geotransform": list(geotransform), "bbox": list(georef.lonlat_bounds(box, wkt)),
        "footprint": georef.lonlat_outline(box, wkt), "minzoom": minzoom, "maxzoom": maxzoom, "bands": bands,
    }


def _band_facts(band):
    nodata = band.GetNoDataValue()
    facts = {"data_type": gdal.GetDataTypeName(band.DataType).lower(),
             "nodata": None if nodata is None or not math.isfinite(nodata) else nodata,
             "colour": gdal.GetColorInterpretationName(band.GetColorInterpretation()).lower()}
    try:
        minimum, maximum, mean, stddev = band.ComputeStatistics(True)
    except RuntimeError:  # no valid pixel at all
        return {**facts, "statistics": None}
    valid = band.GetMetadataItem("STATISTICS_VALID_PERCENT")
    facts["statistics"] = {"minimum": minimum, "maximum": maximum, "mean": mean, "stddev": stddev,
                           "valid_percent": float(valid) if valid is not None else None}
    return facts


def hillshade_tile(paths, z, x, y, band=1, size=TILE_SIZE):
    """Shaded relief of the DEM tiles `paths` (one collection's, in one CRS) over tile z/x/y, as
    TileData of one 8-bit band (grey); None where they hold no data there.

    The DEM is warped to the tile's grid with a pixel of margin on every side, so that the relief
    at the tile's edge sees its neighbours, and shaded there. A Web Mercator metre is cos(latitude)
    metres on the ground: that is the shading's scale (horizontal units to vertical)."""
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    pixel = (maxx - minx) / size
    box = (minx - pixel, miny - pixel, maxx + pixel, maxy + pixel)
    vrt = f"/vsimem/relief-{uuid.uuid4().hex}.vrt"
    try:
        with thread_config(GDAL_PAM_ENABLED="NO", **TILE_OPEN_OPTIONS):
            source = gdal.BuildVRT(vrt, [str(p) for p in paths], bandList=[band])
            nodata = source.GetRasterBand(1).GetNoDataValue()
            dem = gdal.Warp("", source, format="MEM", outputBounds=box, dstSRS=WEB_MERCATOR, width=size + 2,
                            height=size + 2, resampleAlg="bilinear", outputType=gdal.GDT_Float32,
                            dstNodata=nodata if nodata is not None else -9999.0)
            source = None
            latitude = math.degrees(2 * math.atan(math.exp((miny + maxy) / 2 / 6378137.0)) - math.pi / 2)
            relief = gdal.DEMProcessing("", dem, "hillshade", format="MEM", computeEdges=True,
                                        scale=math.cos(math.radians(latitude)))
            pixels = relief.ReadAsArray()[1:-1, 1:-1]
    except RuntimeError as exc:
        raise gdal_error(exc) from None
    finally:
        gdal.Unlink(vrt) if gdal.VSIStatL(vrt) else None
    valid = pixels > 0  # the shading's nodata is 0
    if not valid.any():
        return None
    return TileData(bands=pixels[None], alpha=np.where(valid, 255, 0).astype(np.uint8))
