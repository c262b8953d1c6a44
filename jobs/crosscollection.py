"""Job types whose inputs or output lie on another grid than the tiles they run over.

`reproject` warps a collection onto another CRS and pixel size (see jobs.raster.warp): each tile
writes the pixels of the target grid it owns, so that the tiles mosaic into one warp of the whole
collection.

`calc` evaluates a band-math expression over named inputs, each a band of a collection, on the
grid of its first input's collection: an input of that collection is read from the tile itself;
an input of another collection is warped onto the tile's pixels from that collection's tiles
under the tile's footprint (grown by the resampling kernel's reach), so that a tile's pixels are
those one warp of the whole other collection onto the whole grid would give.
"""

import math
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from django.db.models import Max
from osgeo import gdal

from jobsite import georef
from jobsite.exceptions import Rejected, quoted
from jobsite.gdalpolicy import thread_config

from .jobschema import BAND, JobType, Param
from .models import Collection, Job, Tile
from .raster import calc, warp
from .raster.calcstep import CalcStep
from .raster.io import (TILE_OPEN_OPTIONS, Cancelled, IndexGrid, RasterError, gdal_error, open_tile, progress_callback,
                        raise_stopped, tile_layout, write_gtiff, written_atomically)

INPUT_NAME = re.compile(r"[a-z_][a-z0-9_]{0,31}")
MAX_INPUTS = 8
INPUTS_SHAPE = {
    "minProperties": 1, "maxProperties": MAX_INPUTS,
    "additionalProperties": {
        "type": "object", "additionalProperties": False,
        # {"step": k}: the result of a chain's earlier step steps[k] (jobs.chains), for a step of a chain
        "properties": {"collection": {"type": "string"}, "band": {"type": "integer", "minimum": 1},
                       "step": {"type": "integer", "minimum": 0}},
    },
}
# Resampling methods for inputs on another grid, and how many of their pixels each reaches out.
RESAMPLING = {"near": 1, "bilinear": 1, "cubic": 2, "cubicspline": 2, "lanczos": 3, "average": 1, "mode": 1}


def has_grid(collection):
    """Whether load_tiles has recorded the collection's grid (not so for one still empty)."""
    return bool(collection.crs_wkt and collection.pixel_width and collection.tile_count)


def _clean_raster_inputs(raw, steps_before):
    """{name: {"collection": slug, "band": n} or {"step": k}} (of the shape INPUTS_SHAPE) checked
    against the collections and, for a chain's step, the `steps_before` it; Rejected names each bad
    input."""
    errors, clean = {}, {}
    collections = {c.pk: c for c in Collection.objects.filter(pk__in=[spec.get("collection") for spec in raw.values()])}
    for name, spec in raw.items():
        problem = _raster_input_problem(name, spec, collections, steps_before)
        if problem:
            errors[f"inputs.{name}"] = problem
        elif "step" in spec:
            clean[name] = {"step": int(spec["step"])}
        else:
            clean[name] = {"collection": spec["collection"], "band": int(spec.get("band", 1))}  # JSON's 2.0 too
    if errors:
        raise Rejected({"params": errors})
    return clean


def _raster_input_problem(name, spec, collections, steps_before):
    if not INPUT_NAME.fullmatch(name) or calc.name_problem(name):
        why = calc.name_problem(name) if INPUT_NAME.fullmatch(name) else (
            "must be 1 to 32 lower-case letters, digits and _, not starting with a digit")
        return f"{quoted(name)} is not an input name: it {why}"
    if "step" not in spec and "collection" not in spec:
        return 'needs collection ({"collection": name, "band": n}), or in a chain\'s later step, step ({"step": k})'
    if "step" in spec and "collection" in spec:
        return "names both a collection and a step: an input is one of them"
    if "step" in spec:
        if "band" in spec:
            return "a step's result has one band: leave band out"
        if not steps_before:
            return "is the result of a chain's step: only a step after the first of a chain reads one"
        if spec["step"] >= steps_before:
            return f"steps[{spec['step']}] is not a step before this one; it may read steps[0] to steps[{steps_before - 1}]"
        return None
    band = spec.get("band", 1)
    collection = collections.get(spec["collection"])
    if collection is None:
        return f"unknown collection {quoted(spec['collection'])}"
    if not has_grid(collection):
        return f"collection {collection.pk} has no tiles loaded"
    if band > collection.band_count:
        return f"collection {collection.pk} has {collection.band_count} band(s), not {band}"
    return None


def jobs_reading(slug, among=None):
    """Ids of the calc jobs, and of the chains with a calc step, with an input in collection `slug`
    (of the jobs `among`, or all)."""
    def reads(job_type, params):
        calcs = [params] if job_type == "calc" else [step["params"] for step in params["steps"] if step["type"] == "calc"]
        return any(spec.get("collection") == slug for each in calcs for spec in (each or {}).get("inputs", {}).values())

    # "chain" is jobs.chains.CHAIN, which reads the job types, this one too
    jobs = Job.objects.filter(type__in=["calc", "chain"])
    if among is not None:
        jobs = jobs.filter(pk__in=among)
    return [job_id for job_id, job_type, params in jobs.values_list("id", "type", "params").iterator()
            if reads(job_type, params or {})]


@dataclass(frozen=True)
class Calc(JobType):
    """A band-math expression over bands of one or several collections (see jobs.raster.calc)."""

    decides_collection = True

    def clean_params(self, raw):
        return self.clean_step_params(raw, 0)

    def clean_step_params(self, raw, number):
        """As a step `number` of a chain, which may read the results of the steps before it, and
        must read one of them if it is not the first."""
        clean = super().clean_params(raw)
        problems = {}
        try:
            clean["inputs"] = _clean_raster_inputs(clean["inputs"], number)
            if number and not self.steps_read(clean):
                problems["inputs"] = ('a step after the first reads the result of a step before it: give an input '
                                      f'{{"step": {number - 1}}}')
        except Rejected as exc:
            problems.update(exc.errors["params"])
        try:
            calc.check_expression(clean["expression"], set(clean["inputs"]))
        except calc.ExpressionError as exc:
            problems["expression"] = str(exc)
        if clean.get("nodata") is not None and not _fits(clean["nodata"], clean["output_type"]):
            problems["nodata"] = f"{clean['nodata']:g} is not a value of {clean['output_type']}"
        if problems:
            raise Rejected({"params": problems})
        return clean

    def collection_of(self, params):
        """The first input's collection, in the order the request gave them (once stored,
        PostgreSQL's jsonb keeps its own order: the job's collection says it then)."""
        return next(spec["collection"] for spec in params["inputs"].values() if "collection" in spec)

    def steps_read(self, params):
        return frozenset(spec["step"] for spec in params["inputs"].values() if "step" in spec)

    def check_collection(self, collection, params):
        if collection.pk not in {spec.get("collection") for spec in params["inputs"].values()}:
            raise Rejected({"params": {"inputs": f"no input reads collection {collection.pk}, whose tiles the job "
                                                 "runs over"}})

    in_chains = "any"

    def chain_step(self, params, inputs, grid):
        return CalcStep(self.name, params, _resampled)

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        nodata = params["nodata"] if params.get("nodata") is not None else calc.type_nodata(params["output_type"])
        used = calc.check_expression(params["expression"], set(params["inputs"]))
        with thread_config(GDAL_NUM_THREADS="1", **TILE_OPEN_OPTIONS):
            try:
                geotransform = open_tile(tile.path).GetGeoTransform()
            except RuntimeError as exc:
                raise gdal_error(exc, tile.path) from None
            arrays, valid = {}, np.ones((tile.height, tile.width), dtype=bool)
            for number, name in enumerate(sorted(used)):
                if progress is not None and not progress(number / (len(used) + 1)):
                    raise Cancelled("stopped by the progress callback")
                spec = params["inputs"][name]
                if spec["collection"] == grid.collection:
                    pixels, ok = _own_band(tile, spec["band"])
                else:
                    pixels, ok = _resampled(spec, geotransform, tile, grid.crs_wkt, params["resampling"], progress)
                arrays[name] = pixels
                valid &= ok
        result = calc.evaluate(params["expression"], arrays, valid, params["output_type"], nodata)
        with written_atomically(out_path) as tmp:
            write_gtiff(tmp, result, geotransform, grid.crs_wkt, nodata,
                        tile_layout(tile.width, tile.height))
        return out_path.stat().st_size


def _fits(value, output_type):
    dtype = np.dtype(calc.OUTPUT_TYPES[output_type])
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    return (dtype.kind == "f" or value == int(value)) and float(info.min) <= value <= float(info.max)


def _own_band(tile, band):
    """A band of the tile itself, as float64, and where it holds data."""
    try:
        source = open_tile(tile.path).GetRasterBand(band)
        pixels = source.ReadAsArray().astype(np.float64)
    except RuntimeError as exc:
        raise gdal_error(exc, tile.path) from None
    nodata = source.GetNoDataValue()
    valid = ~np.isnan(pixels) if nodata is None else (pixels != nodata) & ~np.isnan(pixels)
    return pixels, valid


def _resampled(spec, geotransform, tile, crs_wkt, resampling, progress):
    """A band of another collection warped onto the tile's pixels, as float64, and where it holds
    data. Reads that collection's tiles under the tile's footprint, grown by as many of their
    pixels as the kernel reaches (more where the tile's pixels are coarser than theirs)."""
    other = Collection.objects.get(pk=spec["collection"])
    left, top = geotransform[0], geotransform[3]
    right, bottom = left + tile.width * geotransform[1], top + tile.height * geotransform[5]
    minx, miny, maxx, maxy = georef.transformed_bounds((left, bottom, right, top), crs_wkt, other.crs_wkt)
    other_pixel = max(other.pixel_width, other.pixel_height)
    ratio = max(maxx - minx, maxy - miny) / max(tile.width, tile.height) / other_pixel
    reach = (math.ceil(RESAMPLING[resampling] * max(1.0, ratio)) + 2) * other_pixel
    paths = _tiles_under(other, (minx - reach, miny - reach, maxx + reach, maxy + reach))
    empty = np.full((tile.height, tile.width), np.nan)
    if not paths:
        return empty, np.zeros(empty.shape, dtype=bool)
    vrt = f"/vsimem/calc-{uuid.uuid4().hex}.vrt"
    state = {}
    try:
        source = gdal.BuildVRT(vrt, paths, bandList=[spec["band"]])
        warped = gdal.Warp("", source, format="MEM", outputBounds=(left, bottom, right, top), width=tile.width,
                           height=tile.height, dstSRS=crs_wkt, resampleAlg=resampling, errorThreshold=0,
                           outputType=gdal.GDT_Float64, workingType=gdal.GDT_Float64, dstNodata=float("nan"),
                           multithread=False, callback=progress_callback(progress, state))
        if state.get("stopped"):
            raise_stopped(state, None)
        pixels = warped.GetRasterBand(1).ReadAsArray()
    except RuntimeError as exc:
        if state.get("stopped"):
            raise_stopped(state, exc)
        raise RasterError(f"collection {other.pk}: {exc}", transient=gdal.GetLastErrorNo() == gdal.CPLE_FileIO) from None
    finally:
        source = None
        gdal.Unlink(vrt)
    return pixels, ~np.isnan(pixels)


def _tiles_under(collection, box):
    """Paths of the collection's tiles that overlap `box`, found on the grid index: the columns
    and rows the box spans, widened by the largest tile."""
    widest, highest = _largest_tile(collection.pk, collection.updated)
    minx, miny, maxx, maxy = box
    px, py = collection.pixel_width, collection.pixel_height
    col0, col1 = (minx - collection.origin_x) / px - widest, (maxx - collection.origin_x) / px
    row0, row1 = (collection.origin_y - maxy) / py - highest, (collection.origin_y - miny) / py
    return list(Tile.objects.filter(collection=collection, col__gt=col0, col__lt=col1, row__gt=row0, row__lt=row1,
                                    minx__lt=maxx, maxx__gt=minx, miny__lt=maxy, maxy__gt=miny)
                .values_list("path", flat=True))


@lru_cache(maxsize=64)
def _largest_tile(slug, updated):
    """The width and height in pixels of the collection's largest tile, as of its `updated`."""
    sizes = Tile.objects.filter(collection_id=slug).aggregate(width=Max("width"), height=Max("height"))
    return sizes["width"] or 0, sizes["height"] or 0


CALC = Calc(
    "calc", "A band-math expression over named inputs, each a band of a collection, on the grid of the first input's "
            "collection; inputs on other grids are resampled onto it. Pixels where an input is nodata or the result "
            "is not finite (a division by zero) are nodata.",
    (
        Param("expression", "string", None, "e.g. (nir - red) / (nir + red): numbers, the input names, + - * / ** %, "
              "comparisons, & | ~ and the functions " + ", ".join(calc.FUNCTIONS), required=True),
        Param("inputs", "object", None, 'name: {"collection": name, "band": number}; the job runs over the tiles of '
              "the first input's collection; a step of a chain after the first also reads earlier steps' results, "
              'name: {"step": k}', required=True, shape=INPUTS_SHAPE),
        Param("output_type", "string", "Float32", "The data type of the result", choices=tuple(calc.OUTPUT_TYPES)),
        Param("resampling", "string", "near", "How inputs on another grid are resampled onto the first input's",
              choices=tuple(RESAMPLING)),
        Param("nodata", "number", None, "The result's nodata value; by default -9999 for floats, the smallest value "
              "of a signed integer type, the largest of an unsigned one"),
    ),
)


# A resolution far finer than the collection's would make each tile write a raster too large for
# a worker's memory, and the merge a mosaic too large for the disk; one far coarser would make each
# tile read most of the collection as its halo.
MAX_TILE_OUTPUT_PIXELS = 64 * 1024 * 1024
MAX_OUTPUT_PER_SOURCE_PIXEL = 16
MAX_HALO = 256


@lru_cache(maxsize=32)
def _crs_wkt(code):
    return georef.srs_from_epsg(code).ExportToWkt()


@dataclass(frozen=True)
class Reproject(JobType):
    """A collection warped onto the grid of `resolution` pixels in EPSG:`dst_crs`, aligned on
    multiples of the resolution (as gdalwarp -tap)."""

    def clean_params(self, raw):
        clean = super().clean_params(raw)
        try:
            _crs_wkt(clean["dst_crs"])
        except RuntimeError:
            raise Rejected({"params": {"dst_crs": f"EPSG:{clean['dst_crs']} is not a CRS that PROJ knows"}}) from None
        return clean

    def check_collection(self, collection, params):
        super().check_collection(collection, params)
        if not has_grid(collection):
            raise Rejected({"collection": f"collection {collection.pk} has no tiles loaded"})
        width = round((collection.maxx - collection.minx) / collection.pixel_width)
        height = round((collection.maxy - collection.miny) / collection.pixel_height)
        grid = IndexGrid(width, height, collection.crs_wkt, 0, 0, (collection.minx, collection.pixel_width, 0.0,
                                                                    collection.maxy, 0.0, -collection.pixel_height))
        try:
            target = self.target(grid, params)
        except ValueError as exc:
            raise Rejected({"params": {"dst_crs" if "transformed" in str(exc) else "resolution": str(exc)}}) from None
        resolution = params["resolution"]
        if target.width * target.height > MAX_OUTPUT_PER_SOURCE_PIXEL * width * height:
            raise Rejected({"params": {"resolution": f"{resolution:g} makes {target.width:,} x {target.height:,} "
                                                     f"pixels of {width:,} x {height:,}; at most "
                                                     f"{MAX_OUTPUT_PER_SOURCE_PIXEL} per pixel of the collection"}})
        per_tile = target.width * target.height / max(1, collection.tile_count)
        if per_tile > MAX_TILE_OUTPUT_PIXELS:
            raise Rejected({"params": {"resolution": f"{resolution:g} makes about {per_tile:,.0f} pixels of "
                                                     f"output per tile; at most {MAX_TILE_OUTPUT_PIXELS:,}"}})
        if self.tile_halo(params, grid) > MAX_HALO:
            raise Rejected({"params": {"resolution": f"{resolution:g} is so much coarser than the collection's pixels "
                                                     f"that each tile would read more than {MAX_HALO} pixels around it"}})

    def target(self, grid, params):
        gx, gpx, _, gy, _, gpy = grid.geotransform
        bounds = (gx, gy + grid.height * gpy, gx + grid.width * gpx, gy)
        return warp.output_grid(bounds, grid.crs_wkt, _crs_wkt(params["dst_crs"]), params["resolution"],
                                max_pixels=math.inf)

    def tile_halo(self, params, grid):
        return warp.tile_halo(params["resampling"], grid, grid.geotransform, self.target(grid, params))

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        try:
            with thread_config(**TILE_OPEN_OPTIONS):
                source = open_tile(tile.path).GetRasterBand(params["band"])
        except RuntimeError as exc:
            raise gdal_error(exc, tile.path) from None
        src_nodata = source.GetNoDataValue()
        dst_nodata = src_nodata if src_nodata is not None else warp.default_nodata(source.DataType)
        return warp.reproject_tile(tile=tile, neighbours=neighbours, grid=grid, grid_geotransform=grid.geotransform,
                                   band=params["band"], src_nodata=src_nodata, target=self.target(grid, params),
                                   resampling=params["resampling"], dst_nodata=dst_nodata, out_path=out_path,
                                   progress=progress)


REPROJECT = Reproject(
    "reproject", "One band of the collection warped to another CRS and pixel size (as gdalwarp -t_srs -tr -tap -et 0), "
                 "equal to one warp of the whole collection.",
    (
        Param("dst_crs", "integer", None, "The EPSG code of the target CRS", minimum=1, maximum=999999, required=True),
        Param("resolution", "number", None, "The target pixel size, in the target CRS's units", minimum=0,
              exclusive_minimum=True, required=True),
        Param("resampling", "string", "near", "The resampling method", choices=warp.RESAMPLING),
        BAND,
    ),
)
