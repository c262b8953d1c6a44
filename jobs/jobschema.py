"""What a job type is: its typed parameters (`Param`), the data files it reads (`Input`), and the
operation (`JobType`): how it checks a request, processes one tile and merges the tiles.

Users only ever fill typed parameters; `JobType.clean_params` checks them against the schema and
fills in defaults. A parameter that the other parameters' values leave unused (hillshade's
altitude with mode igor) is ignored: it is neither required nor checked nor stored. The job types
themselves are in jobs.jobtypes.
"""

import math
import sys
from dataclasses import dataclass

import regex

from .raster import mosaic
from jobsite.exceptions import Rejected


# A pattern is the site operator's, the value a user's: a pattern that backtracks badly must not
# hold up the web server, so it is matched with a time-out, on values of a bounded length.
PATTERN_SECONDS = 0.05
MAX_PATTERN_VALUE = 256


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "number", "integer", "boolean", "string" or "object" (checked by its job type)
    default: object
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple = ()
    required: bool = False
    pattern: str | None = None  # a string must match it whole (re.fullmatch)
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
        if self.type == "object":
            if not isinstance(value, dict):
                raise ValueError("must be an object")
            return value
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if self.choices and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        if "\x00" in value:
            raise ValueError("must not contain a NUL character")
        if self.pattern is not None:
            if len(value) > MAX_PATTERN_VALUE:
                raise ValueError(f"must be at most {MAX_PATTERN_VALUE} characters long")
            if value.startswith("-"):  # a tool would read it as an option
                raise ValueError("must not start with -")
            try:
                matched = regex.fullmatch(self.pattern, value, timeout=PATTERN_SECONDS)
            except TimeoutError:
                raise ValueError(f"takes too long to check against the pattern {self.pattern}") from None
            if not matched:
                raise ValueError(f"must match the pattern {self.pattern}")
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
        if self.pattern is not None:
            described["pattern"] = self.pattern
        return described


BAND = Param("band", "integer", 1, "The band of the collection to read (1 is the first)", minimum=1, maximum=1000)


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
    version: str = "1"  # a job records it; a resume after it changed reruns every tile
    title: str = ""
    keywords: tuple = ()
    source: str = "built-in"  # or where it was declared ("file PATH")
    decides_collection = False  # whether its parameters name the collection it runs over (collection_of)
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

    def tile_halo(self, params, grid):
        """Pixels of the neighbouring tiles each tile of `grid` (an IndexGrid) needs."""
        return self.halo

    def collection_of(self, params):
        """The collection whose tiles the job runs over, if its parameters decide it (calc: its
        first input's); None leaves it to the job's `collection`."""
        return None

    def check_collection(self, collection, params):
        """Rejected if the clean `params` do not fit `collection` (a band it does not have)."""
        band = params.get("band")
        if band is not None and band > collection.band_count:
            raise Rejected({"params": {"band": f"collection {collection.pk} has {collection.band_count} "
                                               f"band{'s' if collection.band_count != 1 else ''}, not {band}"}})

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
        return {"name": self.name, "version": self.version, "title": self.title or self.name,
                "description": self.description, "keywords": list(self.keywords), "source": self.source,
                "params": [p.schema() for p in self.params], "inputs": [i.schema() for i in self.inputs]}


def raster_mosaic(kind, tile_paths, out_dir):
    mosaic.merge_to_cog(tile_paths, out_dir / kind.output_name, out_dir / "thumbnail.png")
    return [(kind.output_name, "image/tiff"), ("thumbnail.png", "image/png")], None
