"""Steps run one after the other on one window of the index (a tile or a block of tiles grown by
the sum of the steps' halos), each on the result of the one before, with the area's part of the
last result written as the output. Knows nothing of Django.

A step is an object with a `name`, a `halo` (the pixels of its neighbourhood each result pixel
needs) and `run(source, callback, progress)`, which returns its result as a one-band in-memory
raster placed as `source` (the last step's may have several bands). A step that reads more than
the result before it says which earlier steps' results it reads (`reads_steps`) and is given a
ChainView as well: `run(source, callback, progress, view)`. A first step may `read(area, sources,
grid, halo)` the window itself instead of band `band` of the sources. The steps are
jobs.raster.dem.Operation (gdal.DEMProcessing), jobs.raster.command.ToolStep (a command-line tool)
and jobs.raster.calcstep.CalcStep (band math over bands and earlier results).
"""

from dataclasses import dataclass
from pathlib import Path

from osgeo import gdal, gdal_array

from jobsite.gdalpolicy import thread_config

from .io import (TILE_OPEN_OPTIONS, Cancelled, RasterError, gdal_error, open_tile, progress_callback, raise_stopped,
                 read_area, read_window, tile_layout, write_gtiff, written_atomically)


class StepFailed(RasterError):
    """A step of a chain failed (`step`, counted from 0), or the write of its result did."""

    def __init__(self, message, step, transient=False):
        super().__init__(message, transient)
        self.step = step


def process_chain(*, area, sources, grid, steps, out_path, progress=None, band=1, start=0, keep=None, written=None,
                  interim=None):
    """Run `steps` one after the other over band `band` of `area` (a tile, or a block of tiles),
    each on the result of the one before, and write the area's part of the last result to `out_path`.

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

    Returns the size in bytes of the written file. Raises Cancelled when `progress` returns False,
    RasterError with GDAL's message when GDAL fails, and StepFailed naming the step of a chain of
    several; nothing is left at `out_path`.
    """
    # The steps and the write get the callback, so a cancel stops the tile in either.
    state = {}
    callback = progress_callback(progress, state)
    out_path = Path(out_path)
    last, ran = len(steps) - 1, False
    try:
        with written_atomically(out_path) as tmp, thread_config(GDAL_NUM_THREADS="1", **TILE_OPEN_OPTIONS):
            halo = sum(step.halo for step in steps[start:])
            window = _first_window(area, sources, grid, steps, halo, band, start, interim)
            height, width = window.pixels.shape
            # the window's pixels beyond the area: left, top, right, bottom
            margins = [-window.dx, -window.dy, width - area.width + window.dx, height - area.height + window.dy]
            inside = [area.col + window.dx > 0, area.row + window.dy > 0,
                      area.col + area.width + margins[2] < grid.width, area.row + area.height + margins[3] < grid.height]
            # The CRS is the index's: reading it from each tile's GeoTIFF keys costs more than the
            # whole operation on a small tile.
            result = in_memory(window.pixels, window.geotransform, grid.crs_wkt, window.nodata)
            kept = set().union(*(getattr(step, "reads_steps", ()) for step in steps))  # results later steps read
            history = {start - 1: (result, list(margins))} if start - 1 in kept else {}
            for number in range(start, last + 1):
                if number or not hasattr(steps[0], "read"):  # a first step that reads its window has run
                    view = ChainView(area, sources, grid, margins, history, result.GetGeoTransform())
                    result = _run(steps, number, result, callback, progress, view)
                if state.get("stopped"):
                    raise_stopped(state, None)
                if number == last:  # its result is read at the area's offset
                    ran = True
                    break
                cut = [min(steps[number].halo, margin) if shrinks else 0
                       for margin, shrinks in zip(margins, inside, strict=True)]
                if any(cut):
                    result = gdal.Translate("", result, format="MEM", srcWin=[
                        cut[0], cut[1], result.RasterXSize - cut[0] - cut[2], result.RasterYSize - cut[1] - cut[3]])
                    margins = [margin - c for margin, c in zip(margins, cut, strict=True)]
                if number in kept:
                    history[number] = (result, list(margins))
                if keep:
                    _keep(result, keep[number], number, area, margins, window, grid, written)
            own = result.ReadAsArray(margins[0], margins[1], area.width, area.height)
            write_gtiff(tmp, own, window.tile_geotransform, grid.crs_wkt, result.GetRasterBand(1).GetNoDataValue(),
                        tile_layout(area.width, area.height), callback)
            if state.get("stopped"):
                raise_stopped(state, None)
    except (RuntimeError, RasterError, OSError) as exc:
        if ran and last and not isinstance(exc, StepFailed) and not state.get("stopped"):  # its result's write
            exc = StepFailed(f"step {last + 1} of {len(steps)} ({steps[last].name}): writing the result failed: {exc}",
                             last, getattr(exc, "transient", True))
        if isinstance(exc, OSError):
            raise
        raise_stopped(state, exc)
    return out_path.stat().st_size


def _first_window(area, sources, grid, steps, halo, band, start, interim):
    if start:
        return read_area(area, interim, grid, halo, 1, reference=interim[0])
    if not hasattr(steps[0], "read"):
        return read_area(area, sources, grid, halo, band)
    try:
        return steps[0].read(area, sources, grid, halo)
    except RuntimeError as exc:
        raise _failed(gdal_error(exc), 0, steps) from None
    except RasterError as exc:
        raise _failed(exc, 0, steps) from None


def _run(steps, number, source, callback, progress, view):
    try:
        if getattr(steps[number], "reads_steps", None) is not None:  # it sees the chain
            return steps[number].run(source, callback, progress, view)
        return steps[number].run(source, callback, progress)
    except RuntimeError as exc:
        raise _failed(gdal_error(exc), number, steps) from None
    except RasterError as exc:
        raise _failed(exc, number, steps) from None


@dataclass(frozen=True)
class ChainView:
    """The chain as a step that reads more than the result before it sees it: the window it runs
    on (the `area` grown by `margins`), bands of the collection over it, and the results of
    earlier steps (`history`: step -> (result, its margins)) cropped to it."""

    area: object
    sources: list
    grid: object
    margins: list
    history: dict
    geotransform: tuple

    def band(self, band):
        """(pixels, nodata) of band `band` of the collection's tiles over the window."""
        left, top, right, bottom = self.margins
        width, height = self.area.width + left + right, self.area.height + top + bottom
        try:
            source = open_tile(self.sources[0].path).GetRasterBand(band)
            nodata, data_type = source.GetNoDataValue(), source.DataType
        except RuntimeError as exc:
            raise gdal_error(exc, self.sources[0].path) from None
        pixels = read_window(self.sources, self.area.col - left, self.area.row - top, width, height,
                             nodata if nodata is not None else 0, gdal_array.GDALTypeCodeToNumericTypeCode(data_type),
                             band)
        return pixels, nodata

    def step_result(self, number):
        """(pixels, nodata) of the result of step `number` over the window."""
        result, margins = self.history[number]
        left, top, right, bottom = self.margins
        band = result.GetRasterBand(1)
        return (band.ReadAsArray(margins[0] - left, margins[1] - top, self.area.width + left + right,
                                 self.area.height + top + bottom), band.GetNoDataValue())


def _failed(error, number, steps):
    if len(steps) == 1 or isinstance(error, (StepFailed, Cancelled)):
        return error
    where = f"step {number + 1} of {len(steps)} ({steps[number].name})"  # as the log says it
    return StepFailed(f"{where}: {error}", number, error.transient)


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


def in_memory(pixels, geotransform, crs_wkt, nodata):
    """A one-band in-memory raster of `pixels` (not copied), placed by `geotransform`."""
    source = gdal_array.OpenArray(pixels)
    source._pixels = pixels  # the raster reads them where they are: they live as long as it does
    source.SetGeoTransform(geotransform)
    source.SetProjection(crs_wkt)
    if nodata is not None:
        source.GetRasterBand(1).SetNoDataValue(nodata)
    return source
