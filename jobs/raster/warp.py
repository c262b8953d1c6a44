"""A reprojection of the index onto another CRS and pixel size, one tile at a time, whose tile
outputs mosaic (nodata transparent) into what one gdal.Warp of the whole area gives. Knows nothing
of Django.

The outputs of neighbouring tiles overlap on the target grid, so each target pixel is written by
one tile only, its owner: the tile whose pixel holds the point the target pixel's centre comes
from (the centre transformed back to the index CRS). Every other tile writes nodata there. The
owner warps with a halo of its neighbours' pixels, so that its resampling kernel sees what it would
see inside the whole area. The transformer is the exact one (errorThreshold=0): the approximate one
interpolates coordinates over spans that differ between a tile's window and the whole area, so
even `near` could pick other pixels.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal, gdal_array, osr

from jobsite.gdalpolicy import thread_config

from .io import (TILE_OPEN_OPTIONS, RasterError, gdal_error, open_tile, progress_callback, raise_stopped, read_window,
                 tile_layout, write_gtiff, written_atomically)

RESAMPLING = ("near", "bilinear", "cubic", "cubicspline", "lanczos", "average", "mode")

# How many source pixels beyond the one under a target pixel's centre GDAL's kernels read, at no
# downsampling: bilinear its 2 x 2 neighbours, cubic and cubicspline 4 x 4, lanczos 6 x 6. `near`
# reads none; its 1 covers a centre that GDAL's transformer and ours place on either side of a
# pixel edge. When downsampling, GDAL widens these kernels by the ratio of the pixel sizes.
_RADIUS = {"near": 1, "bilinear": 1, "cubic": 2, "cubicspline": 2, "lanczos": 3}

# Points per edge where a box is transformed between CRSs, as gdalwarp samples an extent.
_DENSIFY = 21

# Target pixel centres transformed back per call: bounds the memory of a large window.
_BLOCK = 1 << 18


def halo_pixels(resampling, src_pixel, dst_pixel):
    """Source pixels a tile must borrow from its neighbours on each side so that a warp of it gives
    the whole-area values at its edges; `dst_pixel` is a target pixel's size in the source CRS, in
    the units of `src_pixel`. One pixel more than the kernel needs is a margin for rounding."""
    ratio = dst_pixel / src_pixel
    if resampling in ("average", "mode"):
        # The pixels under the target pixel's footprint: it reaches ratio / 2 from its centre, and
        # one more where it covers a pixel in part. A whole ratio allows a footprint that rotation
        # or a scale that varies over the index make up to twice as large.
        return math.ceil(ratio) + 1 + 1
    if resampling not in _RADIUS:
        raise ValueError(f"unknown resampling {resampling!r}; one of {', '.join(RESAMPLING)}")
    scale = max(1.0, ratio) if resampling != "near" else 1.0
    return math.ceil(_RADIUS[resampling] * scale) + 1


def default_nodata(gdal_data_type):
    """A nodata value for an output whose source has none: the least value of an integer type
    (rarely a real value of a signed one, the usual fill of an unsigned one), -9999 for floats."""
    dtype = np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(gdal_data_type))
    return float(np.iinfo(dtype).min) if np.issubdtype(dtype, np.integer) else -9999.0


@dataclass(frozen=True)
class OutputGrid:
    """The target grid: north-up, its CRS, its size in pixels."""

    geotransform: tuple
    width: int
    height: int
    crs_wkt: str

    @property
    def bounds(self):
        x0, px, _, y0, _, py = self.geotransform
        return (x0, y0 + py * self.height, x0 + px * self.width, y0)


def _transformation(src_wkt, dst_wkt):
    """Between two CRSs, in x, y (longitude, latitude) order whatever their axes say."""
    src, dst = osr.SpatialReference(wkt=src_wkt), osr.SpatialReference(wkt=dst_wkt)
    for srs in (src, dst):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(src, dst)


def output_grid(src_bounds, src_crs_wkt, dst_crs_wkt, resolution, max_pixels=2**31):
    """The grid of square `resolution` pixels (target CRS units), aligned on multiples of it as
    `gdalwarp -tap` aligns, that covers `src_bounds` (minx, miny, maxx, maxy in the source CRS).

    Raises ValueError for a resolution that is not positive, an area the target CRS cannot hold,
    or a grid of more than `max_pixels` pixels: a tiny resolution would ask for a gigantic raster.
    """
    if not resolution > 0:
        raise ValueError(f"the resolution must be positive, not {resolution}")
    try:
        minx, miny, maxx, maxy = _transformation(src_crs_wkt, dst_crs_wkt).TransformBounds(*src_bounds, _DENSIFY)
    except RuntimeError as exc:
        raise ValueError(f"the area cannot be transformed to the target CRS: {exc}") from None
    col0, col1 = math.floor(minx / resolution), math.ceil(maxx / resolution)
    row0, row1 = math.floor(miny / resolution), math.ceil(maxy / resolution)
    width, height = max(1, col1 - col0), max(1, row1 - row0)
    if width * height > max_pixels:
        raise ValueError(f"a resolution of {resolution} makes a grid of {width} x {height} pixels, more than "
                         f"the {max_pixels} allowed")
    return OutputGrid((col0 * resolution, resolution, 0.0, row1 * resolution, 0.0, -resolution), width, height,
                      dst_crs_wkt)


def _window(tile, grid, grid_geotransform, target):
    """(col, row, width, height) on the target grid of the tile's footprint grown by a source pixel,
    transformed (edges densified), snapped outward, grown by a target pixel and clipped to the grid.
    The source pixel is for the index's edge: average and mode give a value to a target pixel whose
    footprint comes within a pixel of it (GDAL then takes the edge pixel), and the edge tile owns it.
    A tile outside the grid gets the grid's pixel nearest it, which it does not own: it writes one
    nodata pixel, so that every tile leaves a file to merge."""
    gx, gpx, _, gy, _, gpy = grid_geotransform
    left, top, right, bottom = tile.col - 1, tile.row - 1, tile.col + tile.width + 1, tile.row + tile.height + 1
    box = (gx + left * gpx, gy + bottom * gpy, gx + right * gpx, gy + top * gpy)
    minx, miny, maxx, maxy = _transformation(grid.crs_wkt, target.crs_wkt).TransformBounds(*box, _DENSIFY)
    tx, tpx, _, ty, _, tpy = target.geotransform
    cols = sorted(((minx - tx) / tpx, (maxx - tx) / tpx))
    rows = sorted(((miny - ty) / tpy, (maxy - ty) / tpy))
    col0 = min(max(math.floor(cols[0]) - 1, 0), target.width - 1)
    row0 = min(max(math.floor(rows[0]) - 1, 0), target.height - 1)
    col1 = min(max(math.ceil(cols[1]) + 1, col0 + 1), target.width)
    row1 = min(max(math.ceil(rows[1]) + 1, row0 + 1), target.height)
    return col0, row0, col1 - col0, row1 - row0


def _owned(tile, grid, grid_geotransform, target, window):
    """Where in `window` `tile` owns the target pixels: their centres, transformed back, fall in
    its pixels. A centre is computed from its pixel's place on the whole target grid, so every
    tile computes the same point for it and exactly one owns it. A centre beyond the index's edge
    belongs to the tile at that edge: average and mode give a value to a pixel that only overlaps
    the index, and that tile's halo reaches the edge as the whole area does."""
    col, row, width, height = window
    tx, tpx, _, ty, _, tpy = target.geotransform
    gx, gpx, _, gy, _, gpy = grid_geotransform
    back = _transformation(target.crs_wkt, grid.crs_wkt)
    xs = tx + (np.arange(col, col + width) + 0.5) * tpx
    owned = np.empty((height, width), dtype=bool)
    step = max(1, _BLOCK // width)
    for top in range(0, height, step):
        ys = ty + (np.arange(row + top, row + min(height, top + step)) + 0.5) * tpy
        grid_x, grid_y = np.meshgrid(xs, ys)
        points = np.array(back.TransformPoints(np.column_stack([grid_x.ravel(), grid_y.ravel()])))
        c = np.clip(np.floor((points[:, 0] - gx) / gpx), 0, grid.width - 1)
        r = np.clip(np.floor((points[:, 1] - gy) / gpy), 0, grid.height - 1)
        inside = (c >= tile.col) & (c < tile.col + tile.width) & (r >= tile.row) & (r < tile.row + tile.height)
        owned[top : top + len(ys)] = inside.reshape(len(ys), width)
    return owned


def resampling_scale(grid, grid_geotransform, target):
    """The resampling scale (target pixels per index pixel, across and down) of every tile: the
    size of the whole index's target grid over the index's, as GDAL computes it for one chunk of
    the whole area. GDAL would otherwise compute it from each window's shape, and a kernel that
    widens to downsample would widen differently in each tile."""
    gx, gpx, _, gy, _, gpy = grid_geotransform
    bounds = (gx, gy + grid.height * gpy, gx + grid.width * gpx, gy)
    whole = output_grid(bounds, grid.crs_wkt, target.crs_wkt, target.geotransform[1], max_pixels=math.inf)
    return whole.width / grid.width, whole.height / grid.height


def tile_halo(resampling, grid, grid_geotransform, target):
    """The halo (index pixels) each tile of `grid` needs to be warped onto `target`."""
    x_scale, y_scale = resampling_scale(grid, grid_geotransform, target)
    return halo_pixels(resampling, 1.0, 1.0 / min(x_scale, y_scale))


def reproject_tile(*, tile, neighbours, grid, grid_geotransform, band, src_nodata, target, resampling, dst_nodata,
                   out_path, progress=None):
    """Warp band `band` of one tile onto `target` (an output_grid, of the whole index or of a part),
    writing the target pixels it owns and `dst_nodata` elsewhere: the outputs of all tiles mosaic
    into one warp of the whole area.

    1. The window is the part of the target grid the tile's footprint covers (see _window).
    2. The source is the tile grown by halo_pixels on each side, clipped to the index `grid`, read
       from the tile and its `neighbours` (those that overlap it are enough) into an in-memory
       raster on the index's georeferencing (`grid_geotransform`, `grid.crs_wkt`, `src_nodata`;
       None when the source has none).
    3. It is warped onto the window at the same resampling scale in every tile (see resampling_scale).
    4. The pixels the tile does not own become `dst_nodata`; the window is written to `out_path`
       (via a temporary name) in the source's data type, with `dst_nodata` as its nodata: a value
       of that type (default_nodata gives one for a source without nodata).

    Returns the size in bytes of the written file. Raises Cancelled when `progress` returns False,
    RasterError with GDAL's message when GDAL fails; nothing is left at `out_path` in either case.
    """
    x_scale, y_scale = resampling_scale(grid, grid_geotransform, target)
    halo = tile_halo(resampling, grid, grid_geotransform, target)
    col0, row0 = max(0, tile.col - halo), max(0, tile.row - halo)
    col1 = min(grid.width, tile.col + tile.width + halo)
    row1 = min(grid.height, tile.row + tile.height + halo)
    gx, gpx, _, gy, _, gpy = grid_geotransform
    state = {}
    callback = progress_callback(progress, state)
    out_path = Path(out_path)
    try:
        with written_atomically(out_path) as tmp, thread_config(GDAL_NUM_THREADS="1", **TILE_OPEN_OPTIONS):
            try:
                data_type = open_tile(tile.path).GetRasterBand(band).DataType
            except RuntimeError as exc:
                raise gdal_error(exc, tile.path) from None
            window = _window(tile, grid, grid_geotransform, target)
            dtype = gdal_array.GDALTypeCodeToNumericTypeCode(data_type)
            fill = src_nodata if src_nodata is not None else 0  # where no tile lies, as in a VRT
            pixels = read_window([tile, *neighbours], col0, row0, col1 - col0, row1 - row0, fill, dtype, band=band)
            source = gdal_array.OpenArray(pixels)
            source.SetGeoTransform((gx + col0 * gpx, gpx, 0.0, gy + row0 * gpy, 0.0, gpy))
            source.SetProjection(grid.crs_wkt)
            if src_nodata is not None:
                source.GetRasterBand(1).SetNoDataValue(src_nodata)
            tx, tpx, _, ty, _, tpy = target.geotransform
            window_gt = (tx + window[0] * tpx, tpx, 0.0, ty + window[1] * tpy, 0.0, tpy)
            result = gdal.GetDriverByName("MEM").Create("", window[2], window[3], 1, data_type)
            result.SetGeoTransform(window_gt)
            result.SetProjection(target.crs_wkt)
            result.GetRasterBand(1).SetNoDataValue(dst_nodata)
            result.GetRasterBand(1).Fill(dst_nodata)
            gdal.Warp(result, source, resampleAlg=resampling, errorThreshold=0, srcNodata=src_nodata,
                      dstNodata=dst_nodata, multithread=False, callback=callback,
                      warpOptions=[f"XSCALE={x_scale!r}", f"YSCALE={y_scale!r}"])
            if state.get("stopped"):
                raise_stopped(state, None)
            own = result.ReadAsArray()
            own[~_owned(tile, grid, grid_geotransform, target, window)] = dst_nodata
            write_gtiff(tmp, own, window_gt, target.crs_wkt, dst_nodata, tile_layout(window[2], window[3]), callback)
            if state.get("stopped"):
                raise_stopped(state, None)
    except (RuntimeError, RasterError) as exc:
        raise_stopped(state, exc)
    return out_path.stat().st_size
