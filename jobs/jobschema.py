"""What a job type is: its typed parameters (`Param`), the data files it reads (`Input`), and the
operation (`JobType`): how it checks a request, processes one tile and merges the tiles.

Users only ever fill typed parameters; `JobType.clean_params` checks them against the type's JSON
Schema (jobs.paramschema) and fills in defaults. A parameter that the other parameters' values leave unused (hillshade's
altitude with mode igor) is ignored: it is neither required nor checked nor stored. The job types
themselves are in jobs.jobtypes.
"""

import math
import sys
from dataclasses import dataclass, field

from . import paramschema
from .raster import mosaic
from jobsite.exceptions import Rejected


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "number", "integer", "boolean", "string" or "object"
    default: object
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple = ()
    required: bool = False
    pattern: str | None = None  # a string must match it whole
    unused_with: tuple = ()  # ((other parameter, (values that leave this one unused)), ...)
    shape: dict | None = field(default=None, compare=False)  # more JSON Schema, such as an object's properties

    def clean(self, value):
        """The value checked against this parameter's schema and converted to its type;
        ValueError says what is wrong."""
        found = paramschema.problems(paramschema.object_schema((self,)), {self.name: value})
        if found:
            raise ValueError(next(iter(found.values())))
        return self.convert(value)

    def convert(self, value):
        """A value that its schema accepts, as its Python type; ValueError for a number that no
        float holds (JSON's 1 with 400 zeros) or that is not finite."""
        if self.type not in ("number", "integer"):
            return value
        try:
            finite = math.isfinite(value)
        except OverflowError:
            raise ValueError(f"must be at most {sys.float_info.max:g} in size") from None
        if not finite:
            raise ValueError("must be a finite number")
        return int(value) if self.type == "integer" else float(value)


BAND = Param("band", "integer", 1, "The band of the collection to read (1 is the first)", minimum=1, maximum=1000)


@dataclass(frozen=True)
class Input:
    """A data file a job type reads: the job names one of its owner's files for it."""

    name: str
    kind: str  # the data file kind it must be: raster, vector, table or text
    help: str
    reads_as: str = ""  # "color_table": a text file that GDAL must read as a gdaldem colour table

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
    render_as: str = "colormap"  # how maps show a one-band result: a colour map over its values, or grey
    decides_collection = False  # whether its parameters name the collection it runs over (collection_of)
    uses_tiles = True  # False: a job of no tiles, whose merge alone does the work
    tile_suffix = ".tif"
    passes = 1  # how many times its tiles' pixels are processed: the daily pixel quota counts each
    in_blocks = False  # whether process_block gives, pixel for pixel, the tiles' process_tile side by side
    # Where it may stand in a chain (jobs.chains): "any", "first" (it reads its window itself), "last"
    # (its result has several bands, which no step reads), or "" (not in a chain).
    in_chains = ""

    def params_schema(self):
        """The JSON Schema of this type's parameters (see jobs.paramschema)."""
        return paramschema.object_schema(self.params, self.name)

    def clean_params(self, raw):
        """Checked parameters with defaults filled in, without those the others leave unused (given
        or not, they are ignored); Rejected names every bad parameter."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise Rejected({"params": "must be an object of parameter names to values"})
        schema = self.params_schema()
        # null is "the default" for a known parameter; an unknown one is refused whatever its value
        given = {name: value for name, value in raw.items() if value is not None or name not in schema["properties"]}
        unused = paramschema.unused(schema, {**{p.name: p.default for p in self.params}, **given})
        given = {name: value for name, value in given.items() if name not in unused}
        schema["required"] = [name for name in schema["required"] if name not in unused]
        errors = paramschema.problems(schema, given)
        clean = {}
        for param in self.params:
            if param.name in unused or param.name in errors:
                continue
            try:
                clean[param.name] = param.convert(given[param.name]) if param.name in given else param.default
            except ValueError as exc:
                errors[param.name] = str(exc)
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

    def input_errors(self, errors):
        """A refusal's fields for {input name: problem}."""
        return {"inputs": errors}

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

    def clean_step_params(self, raw, number):
        """clean_params for step `number` of a chain (jobs.chains)."""
        return self.clean_params(raw)

    def steps_read(self, params):
        """The earlier steps of a chain whose results it reads besides the one before (calc's
        {"step": k} inputs)."""
        return frozenset()

    def chain_step(self, params, inputs, grid):
        """This type as a step of a chain over `grid` (jobs.raster.chain), for the clean `params` and
        its `inputs` (data files); only for types `in_chains`."""
        raise NotImplementedError

    @property
    def chain_position(self):
        """Where it stands in chains: `in_chains`, if its chain_step and process_tile come from the
        same class (a subclass that redefines process_tile alone would run its parent's work in a
        chain), else "" (not in chains)."""
        return self.in_chains if self._defined_by("process_tile") is self._defined_by("chain_step") else ""

    @property
    def runs_blocks(self):
        """Whether adjacent tiles of a batch run as one block (process_block, jobs.raster.blocks):
        where the type says they may, and its process_tile and process_block come from the same
        class (a subclass that redefines process_tile alone runs tile by tile)."""
        return self.in_blocks and self._defined_by("process_tile") is self._defined_by("process_block")

    def _defined_by(self, name):
        return next(klass for klass in type(self).__mro__ if name in vars(klass))

    def process_block(self, *, tiles, neighbours, grid, params, inputs, out_path, progress):
        """Write the result of a block of `tiles` (GridTiles covering a rectangle, the first at its
        top left) to one file at `out_path`, as process_tile would for each of them; return its
        size in bytes. Only for types that `runs_blocks`."""
        raise NotImplementedError

    def merge(self, *, tile_paths, out_dir, params, inputs, crs_wkt, progress=None):
        """Write the job's outputs into `out_dir` from its tiles' results (`crs_wkt`: that of the job's collection).
        A long merge calls `progress(fraction)` now and then and stops (raising Cancelled) when it
        returns False: the job is no longer merging (canceled). Returns ([(file name, content type)], results to keep on the job, or None)."""
        return raster_mosaic(self, tile_paths, out_dir)

    @property
    def public_source(self):
        """Where the type comes from, for users: a declaring file by its name only (its folder is
        the server's business; the admin shows the whole path)."""
        kind, _, where = self.source.partition(" ")
        return f"file {where.rsplit('/', 1)[-1]}" if kind == "file" else self.source

    @property
    def output_name(self):
        return f"{self.name}.tif"

    def output_files(self):
        """The files its merge writes: (name, content type) each."""
        return ((self.output_name, "image/tiff"), ("thumbnail.png", "image/png"))

    def result_schema(self):
        """The JSON Schema of the results its merge keeps on the job (those of its JSON output)."""
        return {"type": "array", "items": {"type": "object"}}

    def schema(self):
        return {"name": self.name, "version": self.version, "title": self.title or self.name,
                "description": self.description, "keywords": list(self.keywords), "source": self.public_source,
                "params": self.params_schema(), "inputs": [i.schema() for i in self.inputs]}


def raster_mosaic(kind, tile_paths, out_dir):
    mosaic.merge_to_cog(tile_paths, out_dir / kind.output_name, out_dir / "thumbnail.png")
    return [(kind.output_name, "image/tiff"), ("thumbnail.png", "image/png")], None
