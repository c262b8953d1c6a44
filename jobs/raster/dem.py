"""A gdal.DEMProcessing operation (hillshade, slope, aspect, colour relief ...) over one tile of
the index, with a halo: the tile's neighbours lend it the pixels along its edges, so that an
operation that looks at each pixel's neighbourhood gives the same result at a tile's edge as it
would inside one whole raster. The window is clipped to the index extent, so the edge of the
index behaves exactly as the edge of one whole raster does. A chain of such operations runs the
same way on one window, each on the result of the one before (process_chain). Knows nothing of
Django.
"""

from pathlib import Path

from osgeo import gdal, gdal_array

from jobsite.gdalpolicy import thread_config

from . import blocks
from .io import (TILE_OPEN_OPTIONS, RasterError, gdal_error, progress_callback, raise_stopped, read_area, tile_layout,
                 write_gtiff, written_atomically)


def process_tile(*, tile, neighbours, grid, halo, processing, options, out_path, progress=None, band=1):
    """Run a `gdal.DEMProcessing` operation over band `band` of one tile, reading `halo` pixels of
    its neighbours.

    1. The window is the tile grown by `halo` pixels on each side, clipped to the index `grid`.
    2. Its pixels are read from the tile and its neighbours into an in-memory raster that has the
       tile's georeferencing, shifted to the window.
    3. The operation runs on the window; the tile's own part of the result is written to
       `out_path` (via a temporary name), so neighbourhood operations see across tile edges.

    Returns the size in bytes of the written file. Raises Cancelled when `progress` returns False,
    RasterError with GDAL's message when GDAL fails; nothing is left at `out_path` in either case.
    """
    return process_chain(area=tile, sources=[tile, *neighbours], grid=grid, steps=[(processing, options, halo)],
                         out_path=out_path, progress=progress, band=band)


def process_block(*, tiles, neighbours, grid, halo, processing, options, out_path, progress=None, band=1):
    """process_tile for a block of tiles (jobs.raster.blocks) at once: one window over the block
    and the `neighbours` around it, one operation, and one file at `out_path` covering the block."""
    return process_chain(area=blocks.area(tiles), sources=[*tiles, *neighbours], grid=grid,
                         steps=[(processing, options, halo)], out_path=out_path, progress=progress, band=band)


class StepFailed(RasterError):
    """A step of a chain failed (`step`, counted from 0), or the write of its result did."""

    def __init__(self, message, step, transient=False):
        super().__init__(message, transient)
        self.step = step


def process_chain(*, area, sources, grid, steps, out_path, progress=None, band=1, start=0, keep=None, written=None,
                  interim=None):
    """Run `steps`, gdal.DEMProcessing operations given as (processing, options, halo), one after
    the other over band `band` of `area` (a tile, or a block of tiles), each on the result of the
    one before, and write the area's part of the last result to `out_path`.

    The window is the area grown by the sum of the steps' halos, clipped to the index `grid`. After
    each step the window shrinks by that step's halo on every side that does not reach the edge of
    the index: the pixels there lacked part of their neighbourhood. On a side that reaches the edge,
    the window's edge is the edge of the whole raster at every step, as it is when each step runs
    over the whole area. So the result equals the steps run one after the other over the whole
    index, pixel for pixel.

    A chain may start at step `start`, reading the `interim` results of the step before it (GridTiles
    placed on the grid) instead of `sources`. With `keep` (a path per step, the last one's unused),
    the window each step before the last leaves is written there, and (step, path, size, col, row,
    width, height) appended to `written`: the margin it keeps is what the later steps need.

    Returns the size in bytes of the written file; raises as process_tile, and StepFailed naming the
    step of a chain of several.
    """
    # The operations and the write get the callback, so a cancel stops the tile in either.
    state = {}
    callback = progress_callback(progress, state)
    out_path = Path(out_path)
    last, ran = len(steps) - 1, False
    try:
        with written_atomically(out_path) as tmp, thread_config(GDAL_NUM_THREADS="1", **TILE_OPEN_OPTIONS):
            halo = sum(halo for _, _, halo in steps[start:])
            window = (read_area(area, interim, grid, halo, 1, reference=interim[0]) if start
                      else read_area(area, sources, grid, halo, band))
            height, width = window.pixels.shape
            # the window's pixels beyond the area: left, top, right, bottom
            margins = [-window.dx, -window.dy, width - area.width + window.dx, height - area.height + window.dy]
            inside = [area.col + window.dx > 0, area.row + window.dy > 0,
                      area.col + area.width + margins[2] < grid.width, area.row + area.height + margins[3] < grid.height]
            # The CRS is the index's: reading it from each tile's GeoTIFF keys costs more than the
            # whole operation on a small tile.
            result = _in_memory(window.pixels, window.geotransform, grid.crs_wkt, window.nodata)
            for number in range(start, last + 1):
                processing, options, halo = steps[number]
                try:
                    result = gdal.DEMProcessing("", result, processing, format="MEM", callback=callback, **options)
                except RuntimeError as exc:
                    raise _failed(exc, number, steps) from None
                if state.get("stopped"):
                    raise_stopped(state, None)
                if number == last:  # its result is read at the area's offset
                    ran = True
                    break
                cut = [min(halo, margin) if shrinks else 0 for margin, shrinks in zip(margins, inside, strict=True)]
                if any(cut):
                    result = gdal.Translate("", result, format="MEM", srcWin=[
                        cut[0], cut[1], result.RasterXSize - cut[0] - cut[2], result.RasterYSize - cut[1] - cut[3]])
                    margins = [margin - c for margin, c in zip(margins, cut, strict=True)]
                if keep:
                    _keep(result, keep[number], number, area, margins, window, grid, written)
            own = result.ReadAsArray(margins[0], margins[1], area.width, area.height)
            write_gtiff(tmp, own, window.tile_geotransform, grid.crs_wkt, result.GetRasterBand(1).GetNoDataValue(),
                        tile_layout(area.width, area.height), callback)
            if state.get("stopped"):
                raise_stopped(state, None)
    except (RuntimeError, RasterError, OSError) as exc:
        if ran and last and not isinstance(exc, StepFailed) and not state.get("stopped"):  # its result's write
            exc = StepFailed(f"step {last + 1} of {len(steps)} ({steps[last][0]}): writing the result failed: {exc}",
                             last, getattr(exc, "transient", True))
        if isinstance(exc, OSError):
            raise
        raise_stopped(state, exc)
    return out_path.stat().st_size


def _failed(exc, number, steps):
    if len(steps) == 1:
        return gdal_error(exc)
    error = gdal_error(exc, f"step {number + 1} of {len(steps)} ({steps[number][0]})")  # as the log says it
    return StepFailed(str(error), number, error.transient)


def _keep(result, path, number, area, margins, window, grid, written):
    """Write a step's result (the window it left) to `path`, placed on the grid, and note it."""
    px, py = window.tile_geotransform[1], window.tile_geotransform[5]
    x0, y0 = window.tile_geotransform[0] - margins[0] * px, window.tile_geotransform[3] - margins[1] * py
    band = result.GetRasterBand(1)
    with written_atomically(path) as tmp:
        write_gtiff(tmp, band.ReadAsArray(), (x0, px, 0.0, y0, 0.0, py), grid.crs_wkt, band.GetNoDataValue(),
                    tile_layout(result.RasterXSize, result.RasterYSize))
    written.append((number, str(path), Path(path).stat().st_size, area.col - margins[0], area.row - margins[1],
                    result.RasterXSize, result.RasterYSize))


def _in_memory(pixels, geotransform, crs_wkt, nodata):
    """A one-band in-memory raster of `pixels`, placed by `geotransform`."""
    source = gdal_array.OpenArray(pixels)
    source.SetGeoTransform(geotransform)
    source.SetProjection(crs_wkt)
    if nodata is not None:
        source.GetRasterBand(1).SetNoDataValue(nodata)
    return source
