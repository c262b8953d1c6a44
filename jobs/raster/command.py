"""A command-line tool (gdaldem, saga_cmd, a GRASS module ...) run over one tile of the index with
its halo. Knows nothing of Django.

1. The tile grown by the halo (clipped to the index grid) is written to a private temporary
   folder, in GeoTIFF or the format the job type asks for (SAGA's .sdat), with the window's
   georeferencing, so the tool sees across the tile's edges exactly as it would inside the whole
   raster.
2. The tool runs as an argument list, never through a shell: each placeholder of the job type's
   command becomes exactly one argument. It gets a clean environment, the folder as its working
   directory and home, limits on CPU time, memory and file size, and a process group of its own,
   which a cancel or the time limit ends (SIGTERM, then SIGKILL a second later): see toolprocess.
3. Its output is read back, checked to be the window's size, cropped to the tile and written at
   the tile's output path as the built-in types write theirs. The folder goes whatever happens.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from osgeo import gdal, gdal_array

from jobsite.gdalpolicy import thread_config

from . import mosaic, toolprocess
from .chain import in_memory
from .io import (TILE_OPEN_OPTIONS, Cancelled, RasterError, gdal_error, open_tile, read_with_halo, tile_layout,
                 write_error, write_gtiff, written_atomically)

# The formats a tool may read and write, and the file name the window gets in each.
FORMATS = {"GTiff": "tile.tif", "SAGA": "tile.sdat", "AAIGrid": "tile.asc"}


@dataclass(frozen=True)
class Tool:
    """How a command runs: its argument list, in which {name} placeholders stand for the input
    and output rasters and the values given to run_on_tile; extra environment; its limits."""

    argv: tuple
    env: dict = field(default_factory=dict)
    time_limit: float = 600.0
    memory_bytes: int = 2 * 1024 ** 3
    file_bytes: int = 4 * 1024 ** 3
    input_format: str = "GTiff"
    output_format: str = "GTiff"
    path: str = os.defpath
    scratch: str | None = None  # where the temporary folders go (the system's temporary folder without it)


# {name} is a placeholder; {{ and }} are a literal brace (as in Python's str.format).
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(\w+)\}")


def substitute(template, values):
    """One argument from a template: each {name} replaced by values[name] and each {{ or }} by one
    brace, in one pass, so that a value that itself holds braces stays as it is."""
    return PLACEHOLDER.sub(lambda match: values[match.group(1)] if match.group(1) else match.group(0)[0], template)


def placeholders(template):
    """The names of the placeholders in `template`, without the escaped braces."""
    return [name for name in PLACEHOLDER.findall(template) if name]


def run_on_tile(*, tile, neighbours, grid, halo, band, tool, values, output_type, output_nodata, out_path,
                progress=None):
    """Run `tool` over one tile read with `halo` pixels of its neighbours; write the tile's part
    of its output to `out_path` (atomically) as `output_type` with `output_nodata`. Returns the
    size in bytes of the written file. Raises Cancelled when `progress` returns False,
    RasterError naming the problem otherwise; nothing is left at `out_path` or in the temporary
    folder in either case."""
    folder = toolprocess.make_folder(tool.scratch)
    try:
        with thread_config(GDAL_NUM_THREADS="1", **TILE_OPEN_OPTIONS):
            window = read_with_halo(tile, neighbours, grid, halo, band)
        result, tool_nodata = _run_over(folder, tool, values, window.pixels, window.geotransform, grid.crs_wkt,
                                        window.nodata, progress)
        out = _as_type(window.own(result, tile), output_type, output_nodata, tool_nodata)
        with written_atomically(out_path) as tmp:
            write_gtiff(tmp, out, window.tile_geotransform, grid.crs_wkt, output_nodata,
                        tile_layout(tile.width, tile.height))
    finally:
        toolprocess.remove_folder(folder)
    return Path(out_path).stat().st_size


@dataclass(frozen=True)
class ToolStep:
    """A tool run over a window as a step of a chain (jobs.raster.chain): the window the steps
    before it leave is its input, as a tile grown by its halo is run_on_tile's."""

    name: str
    halo: int
    tool: Tool
    values: dict
    output_type: str
    output_nodata: float

    def run(self, source, callback, progress):
        folder = toolprocess.make_folder(self.tool.scratch)
        try:
            band, geotransform, crs_wkt = source.GetRasterBand(1), source.GetGeoTransform(), source.GetProjection()
            result, tool_nodata = _run_over(folder, self.tool, self.values, band.ReadAsArray(), geotransform, crs_wkt,
                                            band.GetNoDataValue(), progress)
            return in_memory(_as_type(result, self.output_type, self.output_nodata, tool_nodata), geotransform, crs_wkt,
                             self.output_nodata)
        finally:
            toolprocess.remove_folder(folder)


def copy_tile(*, tile, band, crs_wkt, out_path):
    """Band `band` of the tile as it is, for a type that runs its tool once over the mosaic."""
    try:
        with thread_config(**TILE_OPEN_OPTIONS):
            ds = open_tile(tile.path)
            source = ds.GetRasterBand(band)
            pixels, nodata, geotransform = source.ReadAsArray(), source.GetNoDataValue(), ds.GetGeoTransform()
    except RuntimeError as exc:
        raise gdal_error(exc, tile.path) from None
    with written_atomically(out_path) as tmp:
        write_gtiff(tmp, pixels, geotransform, crs_wkt, nodata, tile_layout(tile.width, tile.height))
    return Path(out_path).stat().st_size


def run_on_raster(*, tile_paths, tool, values, output_type, output_nodata, out_path, crs_wkt, progress=None):
    """Run `tool` once over the mosaic of `tile_paths` (in the CRS `crs_wkt`), for a job type
    that cannot be tiled; write its output to `out_path` (atomically) as a tiled GeoTIFF. The
    mosaic goes straight into the tool's folder in its input format, and its output is converted
    a block of rows at a time, so that the worker never holds the whole area in memory. Returns
    the size in bytes."""
    folder = toolprocess.make_folder(tool.scratch)
    try:
        input_path = folder / FORMATS[tool.input_format]
        # The grid from the tiles' mosaic, not from the tool's copy: a format such as SAGA's keeps
        # neither the CRS's authority nor every digit of the origin.
        size, geotransform = mosaic.mosaic_to(tile_paths, input_path, tool.input_format)
        output_path = _run_tool(folder, tool, values, input_path, progress)
        with written_atomically(out_path) as tmp:
            _convert_by_rows(output_path, tool, size, tmp, geotransform, crs_wkt, output_type, output_nodata, progress)
    finally:
        toolprocess.remove_folder(folder)
    return Path(out_path).stat().st_size


PIXELS_AT_ONCE = 4 * 1024 * 1024


def _convert_by_rows(path, tool, size, out_path, geotransform, crs_wkt, output_type, output_nodata, progress):
    program = Path(tool.argv[0]).name
    ds = _open_output(path, program, size, tool.output_format)
    band = ds.GetRasterBand(1)
    tool_nodata = band.GetNoDataValue()
    rows_at_once = max(1, PIXELS_AT_ONCE // size[0])
    try:
        out = gdal.GetDriverByName("GTiff").Create(str(out_path), size[0], size[1], 1,
                                                   gdal.GetDataTypeByName(output_type), ["TILED=YES", "BIGTIFF=IF_SAFER"])
        out.SetGeoTransform(geotransform)
        out.SetProjection(crs_wkt)
        out_band = out.GetRasterBand(1)
        out_band.SetNoDataValue(output_nodata)
        for row in range(0, size[1], rows_at_once):
            if progress is not None and not progress(row / size[1]):
                raise Cancelled("stopped by the progress callback")
            rows = min(rows_at_once, size[1] - row)
            try:
                pixels = band.ReadAsArray(0, row, size[0], rows)
            except RuntimeError as exc:
                raise RasterError(f"{program} wrote an output GDAL cannot read: {exc}") from None
            out_band.WriteArray(_as_type(pixels, output_type, output_nodata, tool_nodata), 0, row)
        out.FlushCache()
        out = None
    except RuntimeError as exc:  # the disk full, say
        raise write_error(exc, out_path) from None


def _run_over(folder, tool, values, pixels, geotransform, crs_wkt, nodata, progress):
    """The tool run over `pixels` (written into `folder` in its input format): its output's
    pixels, of the same size, and the nodata value it set."""
    input_path = folder / FORMATS[tool.input_format]
    _write_input(input_path, tool.input_format, pixels, geotransform, crs_wkt, nodata)
    output_path = _run_tool(folder, tool, values, input_path, progress)
    height, width = pixels.shape
    ds = _open_output(output_path, tool.argv[0], (width, height), tool.output_format)
    band = ds.GetRasterBand(1)
    try:
        return band.ReadAsArray(), band.GetNoDataValue()
    except RuntimeError as exc:
        raise RasterError(f"{Path(tool.argv[0]).name} wrote an output GDAL cannot read: {exc}") from None


def _run_tool(folder, tool, values, input_path, progress):
    """Run the tool with its placeholders filled in; the path its output must be at."""
    output_path = folder / ("out" + Path(FORMATS[tool.output_format]).suffix)
    values = {**values, "input": str(input_path), "output": str(output_path)}
    argv = [substitute(part, values) for part in tool.argv]
    env = {name: substitute(value, values) for name, value in tool.env.items()}
    toolprocess.run(argv, env, tool, folder, progress)
    return output_path


def _write_input(path, driver, pixels, geotransform, crs_wkt, nodata):
    if driver == "GTiff":
        write_gtiff(path, pixels, geotransform, crs_wkt, nodata, tile_layout(pixels.shape[1], pixels.shape[0]))
        return
    source = gdal_array.OpenArray(pixels)
    source.SetGeoTransform(geotransform)
    source.SetProjection(crs_wkt)
    if nodata is not None:
        source.GetRasterBand(1).SetNoDataValue(nodata)
    try:
        gdal.Translate(str(path), source, format=driver)
    except RuntimeError as exc:
        raise gdal_error(exc, f"writing the tool's {driver} input") from None


def _open_output(path, program, size, driver):
    """The tool's output, opened only with the driver of its declared format (an output that is a
    VRT pointing elsewhere is not read), checked to be `size` (width, height)."""
    program = Path(program).name
    if not path.exists():
        raise RasterError(f"{program} wrote no output (expected {path.name})")
    try:
        ds = gdal.OpenEx(str(path), gdal.OF_RASTER, allowed_drivers=[driver])
    except RuntimeError as exc:
        raise RasterError(f"{program} wrote an output GDAL cannot read: {exc}") from None
    if (ds.RasterXSize, ds.RasterYSize) != size:
        raise RasterError(f"{program} wrote {ds.RasterXSize} x {ds.RasterYSize} pixels; "
                          f"the window it was given is {size[0]} x {size[1]}")
    return ds


def _as_type(pixels, output_type, nodata, tool_nodata):
    """The tool's pixels as `output_type`: its nodata (if it set one, NaN too) becomes `nodata`, and
    so do values the type cannot hold (integer types round to the nearest integer)."""
    dtype = np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(gdal.GetDataTypeByName(output_type)))
    values = pixels.astype(np.float64)
    missing = np.isnan(values) if tool_nodata is None or np.isnan(tool_nodata) else values == tool_nodata
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.rint(values)
        missing |= ~np.isfinite(values) | (values < info.min) | (values > info.max)
    out = np.where(missing, np.nan, values) if nodata is None else np.where(missing, nodata, values)
    return out.astype(dtype) if dtype.kind == "f" or nodata is not None else np.nan_to_num(out).astype(dtype)
