"""Chains: a job of several steps, each a job type reading the result of the step before, run tile
by tile in one pass with no mosaic in between.

A chain is requested as a list of steps, `[{"type": "slope", "params": {...}}, {"type":
"color-relief", "inputs": {"color_table": "ramp.txt"}}]`, and stored as a job of type "chain"
whose params are the steps' clean parameters (`{"steps": [{"type": ..., "params": ...}, ...]}`)
and whose inputs are named after their step (`steps[1].color_table`). Each tile is read with the
sum of its steps' halos; each step runs on a window that shrinks by its halo, and the last one is
cropped to the tile (jobs.raster.chain.process_chain), so the merged result equals the steps run
one after the other over the whole area.

A step is any job type whose chain_position allows it: the gdal.DEMProcessing types (hillshade,
slope, aspect, colour relief), the tiled command-line types an operator declares, Python types that give their
step, and calc, whose inputs are bands of collections and, after the first step, results of earlier
steps (`{"step": k}`). A step after the first reads band 1 of the one before, so a step whose
result has several bands (colour relief) can only be the last.
"""

import dataclasses
import hashlib
from dataclasses import dataclass

from .jobschema import JobType, raster_mosaic
from .jobtypes import JOB_TYPES, get_job_type
from .raster import blocks
from .raster.chain import process_chain
from .raster.io import RasterError
from jobsite.exceptions import Rejected, quoted

CHAIN = "chain"
MAX_STEPS = 8


def is_chain(job):
    return job.type == CHAIN


def job_type_of(job):
    """The JobType that runs `job`: its type, or, for a chain, the Chain of its steps."""
    return chain_of(job.params) if is_chain(job) else get_job_type(job.type)


@dataclass(frozen=True)
class Step:
    kind: JobType
    params: dict  # clean


@dataclass(frozen=True)
class Chain(JobType):
    """Steps run one after the other on each tile's window (see the module's description)."""

    steps: tuple = ()

    @property
    def in_blocks(self):
        # A block's window gives each step the same pixels as its tiles' windows would, but for
        # colour relief, whose table's percentages are of the window's range (jobs.jobtypes).
        return all(step.kind.runs_blocks for step in self.steps)

    @property
    def decides_collection(self):
        return self.steps[0].kind.decides_collection

    def collection_of(self, params):
        return self.steps[0].kind.collection_of(self.steps[0].params)

    @property
    def output_name(self):
        return self.steps[-1].kind.output_name

    @property
    def passes(self):
        return len(self.steps)

    def can_start_at(self, start):
        """Whether a run from step `start` has what its steps read: the kept result of the step
        before it, and no earlier one (calc's {"step": k} inputs)."""
        return all(read >= start - 1 for step in self.steps[start:] for read in step.kind.steps_read(step.params))

    def stored_params(self):
        return {"steps": [{"type": step.kind.name, "params": step.params} for step in self.steps]}

    def clean_params(self, raw):
        """The stored form of a chain's steps, checked again (a resume may change them)."""
        if raw is None:
            return self.stored_params()
        if not isinstance(raw, dict) or set(raw) != {"steps"}:
            raise Rejected({"params": "a chain's params are its steps: {\"steps\": [...]}"})
        return chain_of_steps(raw["steps"], with_inputs=False).stored_params()

    def clean_inputs(self, raw):
        """The inputs chain_from_request gathered from the steps, checked there."""
        return dict(raw or {})

    def input_errors(self, errors):
        return {input_field(name): problem for name, problem in errors.items()}

    def tile_halo(self, params, grid):
        return sum(step.kind.tile_halo(step.params, grid) for step in self.steps)

    def check_collection(self, collection, params):
        try:
            self.steps[0].kind.check_collection(collection, self.steps[0].params)
        except Rejected as exc:
            raise Rejected(_in_step(0, exc.errors)) from None

    def _run_steps(self, grid, inputs):
        """Each step as jobs.raster.chain runs it, with its own inputs. Its halo must be its type's
        tile_halo, which fetched the tiles around: a type that says otherwise fails the tile."""
        run_steps = []
        for number, step in enumerate(self.steps):
            run_step = step.kind.chain_step(step.params, {name.split(".", 1)[1]: stored for name, stored in inputs.items()
                                                          if name.startswith(f"steps[{number}].")}, grid)
            if run_step.halo != step.kind.tile_halo(step.params, grid):
                raise RasterError(f"job type {step.kind.name}: its chain step's halo ({run_step.halo}) is not its "
                                  f"tile_halo ({step.kind.tile_halo(step.params, grid)})")
            run_steps.append(run_step)
        return run_steps

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress, **resume):
        """As a job type's, and with `resume`, jobs.raster.chain.process_chain's start, interim results
        to read, and interim results to keep (jobs.services.chainruns gives them)."""
        return process_chain(area=tile, sources=[tile, *neighbours], grid=grid, steps=self._run_steps(grid, inputs),
                             out_path=out_path, progress=progress, band=self.steps[0].params.get("band", 1), **resume)

    def process_block(self, *, tiles, neighbours, grid, params, inputs, out_path, progress, **resume):
        return process_chain(area=blocks.area(tiles), sources=[*tiles, *neighbours], grid=grid,
                             steps=self._run_steps(grid, inputs), out_path=out_path, progress=progress,
                             band=self.steps[0].params.get("band", 1), **resume)

    def merge(self, *, tile_paths, out_dir, params, inputs, crs_wkt, progress=None):
        return raster_mosaic(self, tile_paths, out_dir)


def _in_step(number, errors):
    """A step's refusal ({"params": {"z_factor": ...}}) as the chain's ({"steps[1].params.z_factor": ...})."""
    return {f"steps[{number}].{field}" + (f".{name}" if name else ""): problem
            for field, problems in errors.items()
            for name, problem in (problems.items() if isinstance(problems, dict) else [("", problems)])}


def steps_of(job, inputs, facts=None):
    """A chain job's steps with their inputs ({input name: file name} of the job), and with `facts`
    (jobs.services.chainruns.step_facts), as the API and the dashboard show them: [{"type": ...,
    "params": {...}, "inputs": {...}, "tiles_done": n, "interim_bytes": n}, ...]."""
    return [{**step, "inputs": {name.split(".", 1)[1]: file_name for name, file_name in inputs.items()
                                if name.startswith(f"steps[{number}].")}, **(facts[number] if facts else {})}
            for number, step in enumerate(job.params["steps"])]


def input_field(input_name):
    """`steps[1].color_table` as the field a refusal names: `steps[1].inputs.color_table`."""
    step, _, name = input_name.partition(".")
    return f"{step}.inputs.{name}"


def chain_of(params):
    """The Chain of a stored chain job's params, checked at submit. A parameter that a step's type
    no longer has is left out and one it gained has its default, as for a job of one type."""
    steps = []
    for stored in params["steps"]:
        kind = get_job_type(stored["type"])
        known = {param.name: param.default for param in kind.params}
        steps.append(Step(kind, {**known, **{name: value for name, value in stored["params"].items() if name in known}}))
    return _chain(steps)


def chain_from_request(steps):
    """The Chain of a request's `steps`, and its inputs as the job stores them ({"steps[1].color_table":
    file name}); Rejected names every bad field by its step (`steps[1].params.z_factor`)."""
    chain = chain_of_steps(steps, with_inputs=True)
    inputs = {f"steps[{number}].{name}": file_name for number, step in enumerate(steps)
              for name, file_name in (step.get("inputs") or {}).items()}
    return chain, inputs


def chain_of_steps(raw, with_inputs):
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STEPS:
        raise Rejected({"steps": f"must be a list of 1 to {MAX_STEPS} steps"})
    errors, steps = {}, []
    allowed = {"type", "params", "inputs"} if with_inputs else {"type", "params"}
    for number, given in enumerate(raw):
        where = f"steps[{number}]"
        if not isinstance(given, dict):
            errors[where] = "must be an object with a type, and params and inputs if the type takes them"
            continue
        unknown = sorted(set(given) - allowed)
        if unknown:
            shown = ", ".join(map(quoted, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            errors[where] = f"unknown field{'s' if len(unknown) > 1 else ''} {shown}; a step has {', '.join(sorted(allowed))}"
            continue
        kind = JOB_TYPES.get(given.get("type")) if isinstance(given.get("type"), str) else None
        if kind is None or not kind.chain_position:
            chainable = sorted(name for name, job_type in JOB_TYPES.items() if job_type.chain_position)
            errors[f"{where}.type"] = (f"{quoted(given.get('type'))} cannot be a step of a chain; "
                                       f"the types a chain takes are {', '.join(chainable)}")
            continue
        if kind.chain_position == "first" and number:
            errors[f"{where}.type"] = (f"{kind.name} reads its inputs' collections itself, so it can only be a "
                                       "chain's first step")
            continue
        try:
            params = kind.clean_step_params(given.get("params"), number)
        except Rejected as exc:
            errors.update(_in_step(number, exc.errors))
            continue
        if with_inputs:
            try:
                kind.clean_inputs(given.get("inputs"))
            except Rejected as exc:
                errors.update(_in_step(number, exc.errors))
        if number and params.get("band", 1) != 1:
            errors[f"{where}.params.band"] = "must be 1: the step reads the result of the step before, which has one band"
        steps.append(Step(kind, params))
    if not errors:
        for number, step in enumerate(steps[:-1]):
            if step.kind.chain_position == "last":
                errors[f"steps[{number + 1}]"] = (f"follows {step.kind.name}, whose result has several bands; "
                                                  f"{step.kind.name} can only be a chain's last step")
    if errors:
        raise Rejected(errors)
    return _chain(steps)


def _chain(steps):
    last = steps[-1].kind
    versions = "+".join(step.kind.version for step in steps)
    return Chain(CHAIN, " then ".join(step.kind.name for step in steps), params=(),
                 inputs=tuple(dataclasses.replace(i, name=f"steps[{number}].{i.name}") for number, step in enumerate(steps)
                              for i in step.kind.inputs),
                 version=versions if len(versions) <= 32 else hashlib.sha256(versions.encode()).hexdigest()[:32],
                 render_as=last.render_as, steps=tuple(steps))
