"""The job types: named raster operations with a typed parameter schema.

Users only ever fill typed parameters; `JobType.clean_params` checks them against the schema and
fills in defaults, and `JobType.gdal_options` turns the clean values into GDAL's own options.
"""

import math
from dataclasses import dataclass, field

from .exceptions import Rejected

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

    def clean(self, value):
        """The value converted to this parameter's type; ValueError says what is wrong."""
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if self.type in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"must be {'an integer' if self.type == 'integer' else 'a number'}")
            if self.type == "integer" and value != int(value):
                raise ValueError("must be an integer")
            if not math.isfinite(value):
                raise ValueError("must be a finite number")
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
class JobType:
    name: str
    description: str
    processing: str  # the gdal.DEMProcessing mode
    halo: int  # pixels of the neighbouring tiles each tile needs
    params: tuple
    to_gdal: object = field(repr=False)  # clean params -> gdal.DEMProcessing keyword options
    check: object = field(default=None, repr=False)  # (given, clean) -> {name: problem} across parameters

    def clean_params(self, raw):
        """Checked parameters with defaults filled in; Rejected names every bad parameter."""
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
        if not errors and self.check:
            errors = self.check(raw, clean)
        if errors:
            raise Rejected({"params": errors})
        return clean

    def gdal_options(self, clean_params):
        return self.to_gdal(clean_params)

    @property
    def output_name(self):
        return f"{self.name}.tif"

    def schema(self):
        return {"name": self.name, "description": self.description, "params": [p.schema() for p in self.params]}


def _common(params):
    return {"alg": params["algorithm"], "computeEdges": params["compute_edges"]}


# Parameters a hillshade mode has no use for: GDAL refuses them in that mode.
UNUSED_BY_MODE = {"multidirectional": "azimuth", "igor": "altitude"}


def _hillshade(params):
    mode = params["mode"]
    options = {
        **_common(params), "zFactor": params["z_factor"], "scale": params["scale"], "azimuth": params["azimuth"],
        "altitude": params["altitude"], "combined": mode == "combined", "multiDirectional": mode == "multidirectional",
        "igor": mode == "igor",
    }
    if mode in UNUSED_BY_MODE:
        del options[UNUSED_BY_MODE[mode]]
    return options


def _check_hillshade(given, clean):
    unused = UNUSED_BY_MODE.get(clean["mode"])
    if unused and given.get(unused) is not None:
        return {unused: f"is not used with mode {clean['mode']}; leave it out"}
    return {}


def _slope(params):
    return {**_common(params), "scale": params["scale"], "slopeFormat": params["units"]}


def _aspect(params):
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
        JobType(
            "hillshade", "Shaded relief: the terrain lit from a direction, as 8-bit grey values (0 is nodata).",
            "hillshade", 1,
            (
                Param("z_factor", "number", 1.0, "Vertical exaggeration", minimum=0, exclusive_minimum=True),
                SCALE,
                Param("azimuth", "number", 315.0, "Direction of the light, in degrees clockwise from north",
                      minimum=0, maximum=360),
                Param("altitude", "number", 45.0, "Height of the light above the horizon, in degrees",
                      minimum=0, maximum=90),
                Param("mode", "string", "standard",
                      "standard: one light; combined: slope and oblique shading; multidirectional: four lights; "
                      "igor: no darkening of slopes facing away", choices=("standard", "combined", "multidirectional", "igor")),
                ALGORITHM, COMPUTE_EDGES,
            ),
            _hillshade,
            _check_hillshade,
        ),
        JobType(
            "slope", "Steepness of the terrain, in degrees or percent, as float32 (-9999 is nodata).", "slope", 1,
            (SCALE, Param("units", "string", "degree", "Unit of the result", choices=("degree", "percent")),
             ALGORITHM, COMPUTE_EDGES),
            _slope,
        ),
        JobType(
            "aspect", "Direction the terrain faces, in degrees from north (0-360), as float32 (-9999 is nodata).",
            "aspect", 1,
            (
                Param("trigonometric", "boolean", False, "Angles counter-clockwise from east instead of clockwise from north"),
                Param("zero_for_flat", "boolean", False, "0 instead of -9999 where the terrain is flat"),
                ALGORITHM, COMPUTE_EDGES,
            ),
            _aspect,
        ),
    )
}


def get_job_type(name):
    """The job type called `name`; Rejected lists the known types otherwise."""
    if not isinstance(name, str) or name not in JOB_TYPES:
        raise Rejected({"type": f"unknown job type {name!r}; the types are {', '.join(sorted(JOB_TYPES))}"})
    return JOB_TYPES[name]
