"""Job types a site's operator declares in YAML files (JOBSITE_JOB_TYPES_FILE), each a
command-line tool run over every tile with its halo (see jobs.raster.command).

A file is checked whole before any of its types is used: its shape against DECLARATION (JSON
Schema, with the jsonschema library), then what a schema cannot say: placeholders that name
nothing, a program not on PATH, defaults that break their own bounds, names already taken. Every
problem is reported with its file and line; one bad file loads nothing.
"""

import dataclasses
import importlib
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import numpy as np
import regex
import yaml

from . import paramschema
from .jobschema import BAND, Input, JobType, Param, raster_mosaic
from .raster import command
from .raster.calc import OUTPUT_TYPES, type_nodata

NAME = "^[a-z][a-z0-9-]{0,63}$"
PARAM_NAME = "^[a-z][a-z0-9_]{0,31}$"
DECLARATION = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "additionalProperties": False, "required": ["job_types"],
    "properties": {"job_types": {"type": "array", "minItems": 1, "items": {
        "type": "object", "additionalProperties": False, "required": ["name", "version", "command"],
        "properties": {
            "name": {"type": "string", "pattern": NAME},
            "version": {"type": "string", "minLength": 1, "maxLength": 32},
            "title": {"type": "string", "maxLength": 200},
            "description": {"type": "string", "maxLength": 2000},
            "keywords": {"type": "array", "items": {"type": "string", "maxLength": 64}},
            "params": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["name", "type"],
                "properties": {
                    "name": {"type": "string", "pattern": PARAM_NAME},
                    "type": {"enum": ["number", "integer", "boolean", "string"]},
                    "default": {"type": ["number", "integer", "boolean", "string"]},
                    "minimum": {"type": "number"}, "maximum": {"type": "number"},
                    "exclusive_minimum": {"type": "boolean"},
                    "choices": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "pattern": {"type": "string"},
                    "help": {"type": "string"},
                    "required": {"type": "boolean"},
                }}},
            "inputs": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["name", "kind"],
                "properties": {"name": {"type": "string", "pattern": PARAM_NAME},
                               "kind": {"enum": ["raster", "vector", "table", "text"]},
                               "help": {"type": "string"}}}},
            "halo": {"type": "integer", "minimum": 0, "maximum": 256},
            "tiled": {"type": "boolean"},
            "output": {"type": "object", "additionalProperties": False, "properties": {
                "data_type": {"enum": list(OUTPUT_TYPES)}, "nodata": {"type": "number"},
                "render_as": {"enum": ["colormap", "grey"]}}},
            "time_limit": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
            "memory_mb": {"type": "integer", "minimum": 64, "maximum": 1024 * 1024},
            "input_format": {"enum": list(command.FORMATS)},
            "output_format": {"enum": list(command.FORMATS)},
            "command": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "env": {"type": "object", "additionalProperties": {"type": "string"},
                    "propertyNames": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"}},
        }}}},
}


class DeclarationError(Exception):
    """Job type files that cannot be loaded; `problems` lists each with its file and line."""

    def __init__(self, problems):
        super().__init__("\n".join(problems))
        self.problems = problems


class _StrictLoader(yaml.SafeLoader):
    """YAML without aliases (a file of nested aliases grows without bound) and without duplicate
    keys (PyYAML would keep the last one silently)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(problem="aliases (*name) are not allowed in job type files",
                                       problem_mark=event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key, _ in node.value:
            if key.value in seen:
                raise yaml.MarkedYAMLError(problem=f"the key {key.value!r} appears twice", problem_mark=key.start_mark)
            seen.add(key.value)
        return super().construct_mapping(node, deep)


def _format(value):
    """A parameter's value as one argument: numbers in Python's own notation, whatever the locale."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class CommandJobType(JobType):
    """A declared job type: a command-line tool run over each tile with its halo, or, for a type
    that cannot be tiled, once over the mosaic of the tiles at the merge."""

    tool: command.Tool = field(default=None, repr=False)
    output_type: str = "Float32"
    output_nodata: float = -9999.0
    tiled: bool = True

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        if not self.tiled:  # the tile as it is, for the merge to mosaic
            return command.copy_tile(tile=tile, band=params.get("band", 1), crs_wkt=grid.crs_wkt, out_path=out_path)
        return command.run_on_tile(tile=tile, neighbours=neighbours, grid=grid, halo=self.halo,
                                   band=params.get("band", 1), tool=self.tool, values=_values(params, inputs),
                                   output_type=self.output_type, output_nodata=self.output_nodata,
                                   out_path=out_path, progress=progress)

    @property
    def in_chains(self):
        return "any" if self.tiled else ""  # a type that is not tiled runs once over the mosaic

    def chain_step(self, params, inputs, grid):
        return command.ToolStep(self.name, self.tile_halo(params, grid), self.tool, _values(params, inputs),
                                self.output_type, self.output_nodata)

    def merge(self, *, tile_paths, out_dir, params, inputs, crs_wkt, progress=None):
        if self.tiled:
            return super().merge(tile_paths=tile_paths, out_dir=out_dir, params=params, inputs=inputs, crs_wkt=crs_wkt)
        result = out_dir / f".tool-output-{uuid.uuid4().hex}.tif"  # a merge run again beside it has its own
        try:
            command.run_on_raster(tile_paths=tile_paths, tool=self.tool, values=_values(params, inputs),
                                  output_type=self.output_type, output_nodata=self.output_nodata, out_path=result,
                                  crs_wkt=crs_wkt, progress=progress)
            return raster_mosaic(self, [result], out_dir)
        finally:
            result.unlink(missing_ok=True)


def _values(params, inputs):
    """What a command's placeholders stand for: the parameters' values and the data files' paths."""
    values = {name: _format(value) for name, value in params.items()}
    values.update({name: str(stored.path) for name, stored in inputs.items()})
    return values


def load_files(paths, taken=(), path_variable=None, max_time_limit=86400):
    """The job types declared in `paths`, none of them named as one of `taken`, none with a time
    limit beyond `max_time_limit` seconds; DeclarationError lists every problem of every file."""
    problems, found = [], {}
    for path in paths:
        types, file_problems = _load_file(Path(path), set(taken) | set(found), path_variable, max_time_limit)
        problems += file_problems
        if not file_problems:
            found.update({kind.name: kind for kind in types})
    if problems:
        raise DeclarationError(problems)
    return found


def _load_file(path, taken, path_variable, max_time_limit):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [], [f"{path}: cannot be read: {exc.strerror}"]
    except UnicodeDecodeError as exc:
        return [], [f"{path}: is not UTF-8 text (byte {exc.start})"]
    try:
        tree = yaml.compose(text, Loader=_StrictLoader)
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        return [], [f"{path}{where}: is not YAML: {getattr(exc, 'problem', exc)}"]
    lines = _lines(tree)

    def at(location, message):
        keys = tuple(location)
        while keys and keys not in lines:
            keys = keys[:-1]
        return f"{path}:{lines.get(keys, 1)}: {_where(data, location)}{message}"

    schema_errors = sorted(jsonschema.Draft202012Validator(DECLARATION).iter_errors(data),
                           key=lambda error: list(map(str, error.absolute_path)))
    if schema_errors:
        return [], [at(_location(error), _schema_message(error)) for error in schema_errors]
    types, problems = [], []
    for number, declared in enumerate(data["job_types"]):
        kind, own = _job_type(declared, path, taken | {t.name for t in types}, path_variable, max_time_limit)
        problems += [at(["job_types", number, *location], message) for location, message in own]
        if kind is not None:
            types.append(kind)
    return types, problems


def _lines(node, keys=()):
    """{path of keys and indexes: 1-based line} of every node of a composed YAML document."""
    found = {keys: node.start_mark.line + 1} if node is not None else {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            found.update(_lines(value, (*keys, key.value)))
            found[(*keys, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            found.update(_lines(value, (*keys, index)))
    return found


def _where(data, location):
    """'job type NAME: field: ' for a problem at `location` in the file."""
    location = list(location)
    if len(location) >= 2 and location[0] == "job_types" and isinstance(location[1], int):
        declared = data["job_types"][location[1]]
        name = declared.get("name") if isinstance(declared, dict) else None
        rest = ".".join(map(str, location[2:]))
        return f"job type {name or '#' + str(location[1] + 1)!s}: " + (f"{rest}: " if rest else "")
    return f"{'.'.join(map(str, location))}: " if location else ""


def _location(error):
    """Where a schema error is: for a key that is not allowed, that key rather than its object."""
    location = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        unexpected = [key for key in error.instance if key not in error.schema.get("properties", {})]
        location += unexpected[:1]
    return location


def _schema_message(error):
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"is not a key here; the keys are {allowed}"
    if error.validator == "pattern" and error.schema.get("pattern") == NAME:
        return f"{error.instance!r} is not a job type name: lower-case letters, digits and -, starting with a letter"
    return error.message


def _job_type(declared, path, taken, path_variable, max_time_limit):
    """(CommandJobType or None, [(location within the type, problem)])."""
    problems = []
    name = declared["name"]
    if name in taken:
        problems.append((["name"], f"{name} is already a job type; give this one another name"))
    params, names = [], {"input", "output", "band"}
    for index, raw in enumerate(declared.get("params", [])):
        param, problem = _param(raw)
        if problem:
            problems.append((["params", index], problem))
        elif raw["name"] in names:
            problems.append((["params", index, "name"], f"{raw['name']} is taken (input, output and band are "
                                                         "the service's; each parameter needs its own name)"))
        else:
            params.append(param)
            names.add(raw["name"])
    inputs = []
    for index, raw in enumerate(declared.get("inputs", [])):
        if raw["name"] in names:
            problems.append((["inputs", index, "name"], f"{raw['name']} is already a parameter or input name"))
        inputs.append(Input(raw["name"], raw["kind"], raw.get("help", "")))
        names.add(raw["name"])
    for index, part in enumerate(declared["command"]):
        for placeholder in command.placeholders(part):
            if placeholder not in names:
                problems.append((["command", index], f"the placeholder {{{placeholder}}} names nothing; the names "
                                                     f"are {', '.join(sorted(names))}"))
    for variable, value in declared.get("env", {}).items():
        for placeholder in command.placeholders(value):
            if placeholder not in names:
                problems.append((["env", variable], f"the placeholder {{{placeholder}}} names nothing"))
    named = {name for part in declared["command"] for name in command.placeholders(part)}
    for needed in ("input", "output"):
        if needed not in named:
            problems.append((["command"], f"the command must name {{{needed}}}, the tile's {needed} raster"))
    if declared.get("time_limit", 600) > max_time_limit:
        problems.append((["time_limit"], f"at most {max_time_limit:g} s: a tile's task may not run longer "
                                         "(JOBSITE_TASK_TIMEOUT less the tile task budget)"))
    output = declared.get("output", {})
    if "nodata" in output and not _fits(output["nodata"], output.get("data_type", "Float32")):
        problems.append((["output", "nodata"], f"{output['nodata']} is not a value of {output.get('data_type', 'Float32')}"))
    if not declared.get("tiled", True) and declared.get("halo"):
        problems.append((["halo"], "a type that is not tiled sees the whole mosaic: leave halo out"))
    program = declared["command"][0]
    if "{" in program or "}" in program:
        problems.append((["command", 0], "the program may not be a placeholder"))
    elif "/" in program:  # a path, relative to the file that declares it (the tool runs elsewhere)
        program = os.path.normpath(os.path.abspath(path.parent / program))  # a link stays a link: its name may matter
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            problems.append((["command", 0], f"{declared['command'][0]} ({program}) is not an executable file"))
    elif shutil.which(program, path=path_variable) is None:
        problems.append((["command", 0], f"{program} is not a program on PATH ({path_variable}); install it "
                                         "or give its path"))
    if problems:
        return None, problems
    output = declared.get("output", {})
    output_type = output.get("data_type", "Float32")
    tool = command.Tool(argv=(program, *declared["command"][1:]), env=dict(declared.get("env", {})),
                        time_limit=float(declared.get("time_limit", 600)),
                        memory_bytes=declared.get("memory_mb", 2048) * 1024 * 1024,
                        input_format=declared.get("input_format", "GTiff"),
                        output_format=declared.get("output_format", "GTiff"),
                        path=path_variable)
    kind = CommandJobType(
        name, declared.get("description", ""), (*params, BAND), inputs=tuple(inputs), halo=declared.get("halo", 0),
        version=declared["version"], title=declared.get("title", ""), keywords=tuple(declared.get("keywords", [])),
        source=f"file {path}", tool=tool, output_type=output_type,
        output_nodata=float(output.get("nodata", type_nodata(output_type))), tiled=declared.get("tiled", True),
        render_as=output.get("render_as", "colormap"))
    return kind, []


def _param(raw):
    """(Param, None) or (None, what is wrong with its declaration)."""
    kind = raw["type"]
    if raw.get("choices") and kind != "string":
        return None, "choices are for string parameters"
    if raw.get("pattern") is not None:
        if kind != "string":
            return None, "a pattern is for string parameters"
        try:
            paramschema.compile_pattern(raw["pattern"])
        except regex.error as exc:
            return None, f"the pattern is not a regular expression: {exc}"
    if raw.get("required") is False and "default" not in raw:
        return None, "a parameter that is not required needs a default (the tool needs a value for it)"
    if kind in ("boolean", "string") and ({"minimum", "maximum"} & set(raw)):
        return None, "bounds are for number and integer parameters"
    if kind == "string" and not raw.get("choices") and raw.get("pattern") is None:
        return None, "a string parameter needs choices or a pattern, so that no value can smuggle in an option"
    param = Param(raw["name"], kind, raw.get("default"), raw.get("help", ""), minimum=raw.get("minimum"),
                  maximum=raw.get("maximum"), exclusive_minimum=raw.get("exclusive_minimum", False),
                  choices=tuple(raw.get("choices", ())), required=raw.get("required", "default" not in raw),
                  pattern=raw.get("pattern"))
    if "default" in raw:
        try:
            param.clean(raw["default"])
        except ValueError as exc:
            return None, f"the default {raw['default']!r} {exc}"
    return param, None


def load_python(dotted_paths, taken=()):
    """The JobType objects at `dotted_paths` ("package.module.NAME"), each with its source set;
    DeclarationError names each path that is not one, or whose name is taken."""
    found, problems = {}, []
    for dotted in dotted_paths:
        module_name, _, attribute = dotted.rpartition(".")
        try:
            kind = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError) as exc:
            problems.append(f"{dotted}: cannot be imported: {exc}")
            continue
        if not isinstance(kind, JobType):
            problems.append(f"{dotted}: is a {type(kind).__name__}, not a jobs.jobschema.JobType")
        elif kind.name in taken or kind.name in found:
            problems.append(f"{dotted}: {kind.name} is already a job type; give this one another name")
        else:
            found[kind.name] = dataclasses.replace(kind, source=f"python {dotted}")
    if problems:
        raise DeclarationError(problems)
    return found


def _fits(value, data_type):
    dtype = np.dtype(OUTPUT_TYPES[data_type])
    if dtype.kind == "f":
        return value != value or abs(value) <= float(np.finfo(dtype).max)  # NaN, or a finite value it holds
    info = np.iinfo(dtype)
    return value == int(value) and info.min <= value <= info.max
