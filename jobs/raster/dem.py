"""A gdal.DEMProcessing operation (hillshade, slope, aspect, colour relief ...) over one tile of
the index, with a halo: the tile's neighbours lend it the pixels along its edges, so that an
operation that looks at each pixel's neighbourhood gives the same result at a tile's edge as it
would inside one whole raster. The window is clipped to the index extent, so the edge of the
index behaves exactly as the edge of one whole raster does. Knows nothing of Django.
"""

from pathlib import Path

from osgeo import gdal, gdal_array

from jobsite.gdalpolicy import thread_config

from . import blocks
from .io import (TILE_OPEN_OPTIONS, RasterError, progress_callback, raise_stopped, read_area, tile_layout, write_gtiff,
                 written_atomically)


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
    return _process(tile, [tile, *neighbours], grid, halo, processing, options, out_path, progress, band)


def process_block(*, tiles, neighbours, grid, halo, processing, options, out_path, progress=None, band=1):
    """process_tile for a block of tiles (jobs.raster.blocks) at once: one window over the block
    and the `neighbours` around it, one operation, and one file at `out_path` covering the block."""
    return _process(blocks.area(tiles), [*tiles, *neighbours], grid, halo, processing, options, out_path, progress,
                    band)


def _process(tile, sources, grid, halo, processing, options, out_path, progress, band):
    # The operation and the write get the callback, so a cancel stops the tile in either.
    state = {}
    callback = progress_callback(progress, state)
    out_path = Path(out_path)
    try:
        with written_atomically(out_path) as tmp, thread_config(GDAL_NUM_THREADS="1", **TILE_OPEN_OPTIONS):
            window = read_area(tile, sources, grid, halo, band)
            # The CRS is the index's: reading it from each tile's GeoTIFF keys costs more than the
            # whole operation on a small tile.
            source = gdal_array.OpenArray(window.pixels)
            source.SetGeoTransform(window.geotransform)
            source.SetProjection(grid.crs_wkt)
            if window.nodata is not None:
                source.GetRasterBand(1).SetNoDataValue(window.nodata)
            result = gdal.DEMProcessing("", source, processing, format="MEM", callback=callback, **options)
            if state.get("stopped"):
                raise_stopped(state, None)
            own = result.ReadAsArray(-window.dx, -window.dy, tile.width, tile.height)
            write_gtiff(tmp, own, window.tile_geotransform, grid.crs_wkt, result.GetRasterBand(1).GetNoDataValue(),
                        tile_layout(tile.width, tile.height), callback)
            if state.get("stopped"):
                raise_stopped(state, None)
    except (RuntimeError, RasterError) as exc:
        raise_stopped(state, exc)
    return out_path.stat().st_size
