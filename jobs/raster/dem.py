"""A gdal.DEMProcessing operation (hillshade, slope, aspect, colour relief ...) over one tile of
the index, with a halo: the tile's neighbours lend it the pixels along its edges, so that an
operation that looks at each pixel's neighbourhood gives the same result at a tile's edge as it
would inside one whole raster. The window is clipped to the index extent, so the edge of the
index behaves exactly as the edge of one whole raster does. An operation is a step of
jobs.raster.chain, which runs it on the window, alone or after other steps. Knows nothing of
Django.
"""

from dataclasses import dataclass, field

from osgeo import gdal

from . import blocks
from .chain import process_chain


@dataclass(frozen=True)
class Operation:
    """A gdal.DEMProcessing operation (`name`, such as "hillshade") as a step of a chain."""

    name: str
    halo: int
    options: dict = field(default_factory=dict)

    def run(self, source, callback, progress):
        return gdal.DEMProcessing("", source, self.name, format="MEM", callback=callback, **self.options)


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
    return process_chain(area=tile, sources=[tile, *neighbours], grid=grid, steps=[Operation(processing, halo, options)],
                         out_path=out_path, progress=progress, band=band)


def process_block(*, tiles, neighbours, grid, halo, processing, options, out_path, progress=None, band=1):
    """process_tile for a block of tiles (jobs.raster.blocks) at once: one window over the block
    and the `neighbours` around it, one operation, and one file at `out_path` covering the block."""
    return process_chain(area=blocks.area(tiles), sources=[*tiles, *neighbours], grid=grid,
                         steps=[Operation(processing, halo, options)], out_path=out_path, progress=progress, band=band)
