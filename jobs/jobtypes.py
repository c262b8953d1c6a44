"""The job types: named raster operations with a typed parameter schema (see jobs.jobschema).
`DemJobType.gdal_options` turns the clean values into GDAL's own options.
"""

import time
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings

from datafiles.formats import Unreadable

from . import vector
from . import declared
from .crosscollection import CALC, REPROJECT
from .jobschema import BAND, Input, JobType, Param
from .raster import dem, zonal
from .raster.io import Cancelled, RasterError, write_csv, write_json
from jobsite.exceptions import Rejected, quoted

ALGORITHMS = ("Horn", "ZevenbergenThorne")


@dataclass(frozen=True)
class DemJobType(JobType):
    """A gdal.DEMProcessing operation over each tile, read with its halo."""

    processing: str = ""
    to_gdal: object = field(default=None, repr=False)  # (clean params, input paths) -> DEMProcessing options
    in_blocks: bool = True

    def gdal_options(self, clean_params, inputs=None):
        return self.to_gdal(clean_params, inputs or {})

    @property
    def in_chains(self):
        return "last" if self.processing == "color-relief" else "any"  # colour relief's result has several bands

    def chain_step(self, params, inputs, grid):
        return dem.Operation(self.processing, self.tile_halo(params, grid), self.gdal_options(params, inputs))

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        return dem.process_tile(tile=tile, neighbours=neighbours, grid=grid, halo=self.halo, processing=self.processing,
                                options=self.gdal_options(params, inputs), out_path=out_path, progress=progress,
                                band=params.get("band", 1))

    def process_block(self, *, tiles, neighbours, grid, params, inputs, out_path, progress):
        return dem.process_block(tiles=tiles, neighbours=neighbours, grid=grid, halo=self.halo,
                                 processing=self.processing, options=self.gdal_options(params, inputs),
                                 out_path=out_path, progress=progress, band=params.get("band", 1))


@lru_cache(maxsize=2)
def _polygons(stored, target_wkt, progress=None):
    """Polygons of a data file (a datafiles StoredFile) in the CRS `target_wkt`, read only by the drivers
    of its kind. A stored data file's path never changes content (a replaced file gets a new
    path), so they can be kept for the next tiles."""
    try:
        return read_polygons(stored, target_wkt, progress)
    except (vector.VectorError, Unreadable) as exc:
        raise RasterError(str(exc)) from None


def read_polygons(stored, target_wkt, progress=None):
    """The polygons of a user's vector file, at most MAX_ZONES of them and MAX_ZONE_BYTES of
    geometry; Unreadable or VectorError say what is wrong. `progress()` is called as they are read
    (a tile's keeps its lease)."""
    ds = stored.open("vector")
    with stored.reading():
        return tuple(vector.read_polygons(ds, target_wkt, stored.name, settings.MAX_ZONES, settings.MAX_ZONE_BYTES,
                                          progress))


@dataclass(frozen=True)
class ZonalStatistics(JobType):
    """Per polygon of a vector file: count, min, max, mean and standard deviation of the pixels
    whose centre lies inside it. Each tile sums what it holds; the merge adds the sums up."""

    tile_suffix = ".json"

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        polygons = _polygons(inputs["zones"], grid.crs_wkt, progress)
        return zonal.zonal_partial(tile.path, polygons, out_path, grid.crs_wkt, progress, params.get("band", 1))

    def merge(self, *, tile_paths, out_dir, params, inputs, crs_wkt, progress=None):
        rows = zonal.zonal_combine(tile_paths, _polygons(inputs["zones"], crs_wkt))
        write_json(out_dir / "zonal-statistics.json", rows)
        write_csv(out_dir / "zonal-statistics.csv", rows)
        return list(self.output_files()), rows

    def output_files(self):
        return (("zonal-statistics.csv", "text/csv"), ("zonal-statistics.json", "application/json"))


@dataclass(frozen=True)
class Clip(JobType):
    """The mosaic with every pixel outside the polygons of a vector file set to nodata."""

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        return zonal.mask_tile(tile.path, _polygons(inputs["mask"], grid.crs_wkt, progress), out_path, grid.crs_wkt, progress,
                               params.get("band", 1))


@dataclass(frozen=True)
class Echo(JobType):
    """The message given, as the job's result, after an optional pause: a job of no tiles, for
    clients that check a server's conformance and for testing the service end to end."""

    uses_tiles = False

    def merge(self, *, tile_paths, out_dir, params, inputs, crs_wkt, progress=None):
        deadline = time.monotonic() + params["pause"]
        while time.monotonic() < deadline:
            if progress is not None and not progress(1 - (deadline - time.monotonic()) / params["pause"]):
                raise Cancelled("the job is no longer merging")
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        write_json(out_dir / "echo.json", params["message"])
        return list(self.output_files()), params["message"]

    def output_files(self):
        return (("echo.json", "application/json"),)

    def result_schema(self):
        return {"type": "string"}


def _common(params):
    return {"alg": params["algorithm"], "computeEdges": params["compute_edges"]}


# Parameters a hillshade mode has no use for: GDAL refuses them in that mode, so they are ignored.
UNUSED_BY_MODE = {"multidirectional": "azimuth", "igor": "altitude"}


def _unused_with_modes(name):
    """A hillshade parameter's `unused_with`: the modes that do not use it."""
    return (("mode", tuple(mode for mode, unused in UNUSED_BY_MODE.items() if unused == name)),)


def _hillshade(params, inputs):
    mode = params["mode"]
    options = {
        **_common(params), "zFactor": params["z_factor"], "scale": params["scale"], "azimuth": params.get("azimuth"),
        "altitude": params.get("altitude"), "combined": mode == "combined",
        "multiDirectional": mode == "multidirectional", "igor": mode == "igor",
    }
    if mode in UNUSED_BY_MODE:  # a job stored before unused parameters were dropped may still hold one
        del options[UNUSED_BY_MODE[mode]]
    return options


def _color_relief(params, inputs):
    selection = {"interpolate": None, "exact": "exact_color_entry", "nearest": "nearest_color_entry"}[params["matching"]]
    return {"colorFilename": inputs["color_table"].path, "addAlpha": params["alpha"], "colorSelection": selection}


def _slope(params, inputs):
    return {**_common(params), "scale": params["scale"], "slopeFormat": params["units"]}


def _aspect(params, inputs):
    return {**_common(params), "trigonometric": params["trigonometric"], "zeroForFlat": params["zero_for_flat"]}


ALGORITHM = Param("algorithm", "string", "Horn", "Gradient estimator: Horn (smoother) or ZevenbergenThorne (sharper)",
                  choices=ALGORITHMS)
COMPUTE_EDGES = Param("compute_edges", "boolean", False,
                      "Compute values on the edge of the index too, instead of leaving them nodata")
SCALE = Param("scale", "number", 1.0, "Ratio of vertical units to horizontal units (111120 for degrees and metres)",
              minimum=0, exclusive_minimum=True)

JOB_TYPES = {
    job_type.name: job_type
    for job_type in (
        DemJobType(
            "hillshade", "Shaded relief: the terrain lit from a direction, as 8-bit grey values (0 is nodata).",
            (
                Param("z_factor", "number", 1.0, "Vertical exaggeration", minimum=0, exclusive_minimum=True),
                SCALE,
                Param("azimuth", "number", 315.0, "Direction of the light, in degrees clockwise from north; "
                      "not used with mode multidirectional", minimum=0, maximum=360,
                      unused_with=_unused_with_modes("azimuth")),
                Param("altitude", "number", 45.0, "Height of the light above the horizon, in degrees; "
                      "not used with mode igor", minimum=0, maximum=90, unused_with=_unused_with_modes("altitude")),
                Param("mode", "string", "standard",
                      "standard: one light; combined: slope and oblique shading; multidirectional: four lights; "
                      "igor: no darkening of slopes facing away", choices=("standard", "combined", "multidirectional", "igor")),
                ALGORITHM, COMPUTE_EDGES, BAND,
            ),
            halo=1, processing="hillshade", to_gdal=_hillshade, render_as="grey",
        ),
        DemJobType(
            "slope", "Steepness of the terrain, in degrees or percent, as float32 (-9999 is nodata).",
            (SCALE, Param("units", "string", "degree", "Unit of the result", choices=("degree", "percent")),
             ALGORITHM, COMPUTE_EDGES, BAND),
            halo=1, processing="slope", to_gdal=_slope,
        ),
        DemJobType(
            "aspect", "Direction the terrain faces, in degrees from north (0-360), as float32 (-9999 is nodata).",
            (
                Param("trigonometric", "boolean", False, "Angles counter-clockwise from east instead of clockwise from north"),
                Param("zero_for_flat", "boolean", False, "0 instead of -9999 where the terrain is flat"),
                ALGORITHM, COMPUTE_EDGES, BAND,
            ),
            halo=1, processing="aspect", to_gdal=_aspect,
        ),
        DemJobType(
            "color-relief", "Colours by elevation from a colour table in the format of gdaldem color-relief, as RGB "
                            "(or RGBA) 8-bit.",
            (
                Param("matching", "string", "interpolate", "interpolate between the table's entries, or take the "
                      "exact or the nearest entry", choices=("interpolate", "exact", "nearest")),
                Param("alpha", "boolean", False, "Add an alpha band, transparent where there is no data"), BAND,
            ),
            inputs=(Input("color_table", "text", "a colour table: lines of 'elevation red green blue [alpha]', "
                                                 "'nv' for nodata, elevations may be percentages",
                                 reads_as="color_table"),),
            # A percentage in the table is of the range of the window GDAL is given: a block's
            # would not be its tiles'.
            processing="color-relief", to_gdal=_color_relief, in_blocks=False,
        ),
        ZonalStatistics(
            "zonal-statistics", "For each polygon of a vector file: count, min, max, mean and standard deviation of "
                                "the tiles' valid pixels whose centre lies inside it; CSV and JSON outputs.",
            (BAND,), inputs=(Input("zones", "vector", "polygons; without tile_ids or town_id they choose the tiles"),),
            tiles_from="zones",
        ),
        Clip(
            "clip", "The mosaic of one band with every pixel outside the polygons of a vector file set to nodata.",
            (BAND,), inputs=(Input("mask", "vector", "polygons; without tile_ids or town_id they choose the tiles"),),
            tiles_from="mask",
        ),
        CALC,
        REPROJECT,
        Echo(
            "echo", "Answers the message it is given, after a pause if asked: a job of no tiles, for checking "
                    "that a client and the service understand each other.",
            (Param("message", "string", None, "The text to answer", required=True, shape={"maxLength": 10000}),
             Param("pause", "number", 0.0, "Seconds to wait before answering", minimum=0, maximum=10)),
            keywords=("test",),
        ),
    )
}


# The built-in types' names: no declared type may take one.
BUILT_IN = frozenset(JOB_TYPES)


def install_declared(paths, path_variable, python_types=(), max_time_limit=86400):
    """Add the job types that the files `paths` declare (see jobs.declared) and the JobType
    objects at the dotted paths `python_types`; DeclarationError lists every problem, and then
    none is added."""
    found = declared.load_files(paths, taken=JOB_TYPES, path_variable=path_variable, max_time_limit=max_time_limit)
    found.update(declared.load_python(python_types, taken={*JOB_TYPES, *found}))
    JOB_TYPES.update(found)


def get_job_type(name):
    """The job type called `name`; Rejected lists the known types otherwise."""
    if not isinstance(name, str) or name not in JOB_TYPES:
        raise Rejected({"type": f"unknown job type {quoted(name)}; the types are {', '.join(sorted(JOB_TYPES))}"})
    return JOB_TYPES[name]
