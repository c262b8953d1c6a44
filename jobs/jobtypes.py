"""The job types: named raster operations with a typed parameter schema.

Users only ever fill typed parameters; `JobType.clean_params` checks them against the schema and
fills in defaults, and `JobType.gdal_options` turns the clean values into GDAL's own options. A
parameter that the other parameters' values leave unused (hillshade's altitude with mode igor) is
ignored: it is neither required nor checked nor stored.
"""

import math
import sys
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings

from datafiles.formats import Unreadable

from . import vector
from .raster import dem, mosaic, zonal
from .raster.io import RasterError, write_csv, write_json
from jobsite.exceptions import Rejected, quoted

ALGORITHMS = ("Horn", "ZevenbergenThorne")


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "number", "integer", "boolean" or "string"
    default: object
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple = ()
    required: bool = False
    unused_with: tuple = ()  # ((other parameter, (values that leave this one unused)), ...)

    def is_unused(self, clean):
        """Whether the clean values of the other parameters leave this one unused."""
        return any(clean.get(other) in values for other, values in self.unused_with)

    def clean(self, value):
        """The value converted to this parameter's type; ValueError says what is wrong."""
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if self.type in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"must be {'an integer' if self.type == 'integer' else 'a number'}")
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an integer beyond any float, such as JSON's 1 and 400 zeros
                raise ValueError(f"must be at most {sys.float_info.max:g} in size") from None
            if not finite:
                raise ValueError("must be a finite number")
            if self.type == "integer" and value != int(value):
                raise ValueError("must be an integer")
            if self.minimum is not None:
                if self.exclusive_minimum and value <= self.minimum:
                    raise ValueError(f"must be greater than {self.minimum:g}")
                if value < self.minimum:
                    raise ValueError(f"must be at least {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"must be at most {self.maximum:g}")
            return int(value) if self.type == "integer" else float(value)
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if self.choices and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        return value

    def schema(self):
        described = {"name": self.name, "type": self.type, "required": self.required, "default": self.default,
                     "help": self.help}
        if self.minimum is not None:
            described["exclusive_minimum" if self.exclusive_minimum else "minimum"] = self.minimum
        if self.maximum is not None:
            described["maximum"] = self.maximum
        if self.choices:
            described["choices"] = list(self.choices)
        return described


@dataclass(frozen=True)
class Input:
    """A data file a job type reads: the job names one of its owner's files for it."""

    name: str
    kind: str  # the data file kind it must be: raster, vector, table or text
    help: str

    def schema(self):
        return {"name": self.name, "kind": self.kind, "help": self.help}


@dataclass(frozen=True)
class JobType:
    """A named operation: its typed parameters, the data files it reads, how it processes one
    tile and how it merges the tiles into the job's outputs."""

    name: str
    description: str
    params: tuple
    inputs: tuple = ()
    halo: int = 0  # pixels of the neighbouring tiles each tile needs
    tiles_from: str | None = None  # an input whose polygons choose the tiles when no tiles or town are given
    tile_suffix = ".tif"

    def clean_params(self, raw):
        """Checked parameters with defaults filled in, without those the others leave unused (given
        or not, they are ignored); Rejected names every bad parameter."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise Rejected({"params": "must be an object of parameter names to values"})
        known = {param.name: param for param in self.params}
        errors = {name: f"unknown parameter; {self.name} takes {', '.join(known) or 'none'}"
                  for name in raw if name not in known}
        clean = {}
        for name, param in known.items():
            if name not in raw or raw[name] is None:
                if param.required:
                    errors[name] = "is required"
                clean[name] = param.default
                continue
            try:
                clean[name] = param.clean(raw[name])
            except ValueError as exc:
                errors[name] = str(exc)
        unused = {name for name, param in known.items() if param.is_unused(clean)}
        errors = {name: problem for name, problem in errors.items() if name not in unused}
        clean = {name: value for name, value in clean.items() if name not in unused}
        if errors:
            raise Rejected({"params": errors})
        return clean

    def clean_inputs(self, raw):
        """{input name: data file name} for every input this type reads; Rejected otherwise."""
        raw = {} if raw is None else raw
        if not isinstance(raw, dict) or not all(isinstance(v, str) and v for v in raw.values()):
            raise Rejected({"inputs": "must be an object of input names to data file names"})
        known = {i.name for i in self.inputs}
        errors = {name: f"unknown input; {self.name} reads {', '.join(sorted(known)) or 'no data files'}"
                  for name in raw if name not in known}
        errors.update({i.name: f"is required: {i.help}" for i in self.inputs if i.name not in raw})
        if errors:
            raise Rejected({"inputs": errors})
        return dict(raw)

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        """Write the tile's result to `out_path`; return its size in bytes."""
        raise NotImplementedError

    def merge(self, *, tile_paths, out_dir, params, inputs, crs_wkt):
        """Write the job's outputs into `out_dir` from its tiles' results (`crs_wkt`: that of the job's collection).
        Returns ([(file name, content type)], results to keep on the job, or None)."""
        return raster_mosaic(self, tile_paths, out_dir)

    @property
    def output_name(self):
        return f"{self.name}.tif"

    def schema(self):
        return {"name": self.name, "description": self.description, "params": [p.schema() for p in self.params],
                "inputs": [i.schema() for i in self.inputs]}


def raster_mosaic(kind, tile_paths, out_dir):
    mosaic.merge_to_cog(tile_paths, out_dir / kind.output_name, out_dir / "thumbnail.png")
    return [(kind.output_name, "image/tiff"), ("thumbnail.png", "image/png")], None


@dataclass(frozen=True)
class DemJobType(JobType):
    """A gdal.DEMProcessing operation over each tile, read with its halo."""

    processing: str = ""
    to_gdal: object = field(default=None, repr=False)  # (clean params, input paths) -> DEMProcessing options

    def gdal_options(self, clean_params, inputs=None):
        return self.to_gdal(clean_params, inputs or {})

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        return dem.process_tile(tile=tile, neighbours=neighbours, grid=grid, halo=self.halo, processing=self.processing,
                                options=self.gdal_options(params, inputs), out_path=out_path, progress=progress)


@lru_cache(maxsize=2)
def _polygons(stored, target_wkt):
    """Polygons of a data file (a datafiles StoredFile) in the CRS `target_wkt`, read only by the drivers
    of its kind. A stored data file's path never changes content (a replaced file gets a new
    path), so they can be kept for the next tiles."""
    try:
        return read_polygons(stored, target_wkt)
    except (vector.VectorError, Unreadable) as exc:
        raise RasterError(str(exc)) from None


def read_polygons(stored, target_wkt):
    """The polygons of a user's vector file, at most MAX_ZONES of them and MAX_ZONE_BYTES of
    geometry; Unreadable or VectorError say what is wrong."""
    ds = stored.open("vector")
    with stored.reading():
        return tuple(vector.read_polygons(ds, target_wkt, stored.name, settings.MAX_ZONES, settings.MAX_ZONE_BYTES))


@dataclass(frozen=True)
class ZonalStatistics(JobType):
    """Per polygon of a vector file: count, min, max, mean and standard deviation of the pixels
    whose centre lies inside it. Each tile sums what it holds; the merge adds the sums up."""

    tile_suffix = ".json"

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        polygons = _polygons(inputs["zones"], grid.crs_wkt)
        return zonal.zonal_partial(tile.path, polygons, out_path, grid.crs_wkt, progress)

    def merge(self, *, tile_paths, out_dir, params, inputs, crs_wkt):
        rows = zonal.zonal_combine(tile_paths, _polygons(inputs["zones"], crs_wkt))
        write_json(out_dir / "zonal-statistics.json", rows)
        write_csv(out_dir / "zonal-statistics.csv", rows)
        return [("zonal-statistics.csv", "text/csv"), ("zonal-statistics.json", "application/json")], rows


@dataclass(frozen=True)
class Clip(JobType):
    """The mosaic with every pixel outside the polygons of a vector file set to nodata."""

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        return zonal.mask_tile(tile.path, _polygons(inputs["mask"], grid.crs_wkt), out_path, grid.crs_wkt, progress)


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
                ALGORITHM, COMPUTE_EDGES,
            ),
            halo=1, processing="hillshade", to_gdal=_hillshade,
        ),
        DemJobType(
            "slope", "Steepness of the terrain, in degrees or percent, as float32 (-9999 is nodata).",
            (SCALE, Param("units", "string", "degree", "Unit of the result", choices=("degree", "percent")),
             ALGORITHM, COMPUTE_EDGES),
            halo=1, processing="slope", to_gdal=_slope,
        ),
        DemJobType(
            "aspect", "Direction the terrain faces, in degrees from north (0-360), as float32 (-9999 is nodata).",
            (
                Param("trigonometric", "boolean", False, "Angles counter-clockwise from east instead of clockwise from north"),
                Param("zero_for_flat", "boolean", False, "0 instead of -9999 where the terrain is flat"),
                ALGORITHM, COMPUTE_EDGES,
            ),
            halo=1, processing="aspect", to_gdal=_aspect,
        ),
        DemJobType(
            "color-relief", "Colours by elevation from a colour table in the format of gdaldem color-relief, as RGB "
                            "(or RGBA) 8-bit.",
            (
                Param("matching", "string", "interpolate", "interpolate between the table's entries, or take the "
                      "exact or the nearest entry", choices=("interpolate", "exact", "nearest")),
                Param("alpha", "boolean", False, "Add an alpha band, transparent where there is no data"),
            ),
            inputs=(Input("color_table", "text", "a colour table: lines of 'elevation red green blue [alpha]', "
                                                 "'nv' for nodata, elevations may be percentages"),),
            processing="color-relief", to_gdal=_color_relief,
        ),
        ZonalStatistics(
            "zonal-statistics", "For each polygon of a vector file: count, min, max, mean and standard deviation of "
                                "the tiles' valid pixels whose centre lies inside it; CSV and JSON outputs.",
            (), inputs=(Input("zones", "vector", "polygons; without tile_ids or town_id they choose the tiles"),),
            tiles_from="zones",
        ),
        Clip(
            "clip", "The mosaic with every pixel outside the polygons of a vector file set to nodata.",
            (), inputs=(Input("mask", "vector", "polygons; without tile_ids or town_id they choose the tiles"),),
            tiles_from="mask",
        ),
    )
}


def get_job_type(name):
    """The job type called `name`; Rejected lists the known types otherwise."""
    if not isinstance(name, str) or name not in JOB_TYPES:
        raise Rejected({"type": f"unknown job type {quoted(name)}; the types are {', '.join(sorted(JOB_TYPES))}"})
    return JOB_TYPES[name]
