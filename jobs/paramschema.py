"""Job parameters as JSON Schema (draft 2020-12): one schema per job type, from which the REST API's
job-type descriptions, the dashboard's form and the parameter check all come.

`property_schema(param)` describes one parameter, `object_schema(params)` the parameters of a job
type, and `problems(schema, values)` checks values against it with the jsonschema library and
says, per parameter, what is wrong in words a user can act on.

Two rules are jobsite's own:
- a string pattern is the site operator's and the value a user's: it is matched with the `regex`
  library and a time-out, so that a pattern that backtracks badly cannot hold up a web worker;
  the published pattern is anchored, so that it means a whole match to every JSON Schema reader;
- a parameter that the others' values leave unused (hillshade's altitude with mode igor) carries
  `x-unused-with` ({other parameter: [values]}); it is left out before the check and then
  ignored. JSON Schema cannot relax a property's constraints on another's value without moving
  them away from the property, where per-input descriptions (OGC API) and forms need them.
"""

import re

import regex
from jsonschema import Draft202012Validator, ValidationError, validators

DIALECT = "https://json-schema.org/draft/2020-12/schema"

PATTERN_SECONDS = 0.05
MAX_PATTERN_VALUE = 256

# What a value matched against an operator's pattern may not be: an option to the tool, or a string
# with control characters (a newline ends a line in a tool's own parsing; `$` matches before one).
NOT_AN_OPTION = {"pattern": "^-|[\\x00-\\x1f\\x7f]"}
NO_NUL = {"pattern": "\\x00"}
_NOT_MESSAGES = {NOT_AN_OPTION["pattern"]: "must not start with - or contain control characters",
                 NO_NUL["pattern"]: "must not contain a NUL character"}
OWN_PATTERNS = frozenset(_NOT_MESSAGES)

_TYPE_MESSAGES = {"number": "must be a number", "integer": "must be an integer", "boolean": "must be true or false",
                  "string": "must be a string", "object": "must be an object"}


def anchored(pattern):
    """The operator's whole-match pattern as a JSON Schema pattern (which a reader searches for)."""
    return f"^(?:{pattern})$"


def unanchored(pattern):
    return pattern[4:-2] if pattern.startswith("^(?:") and pattern.endswith(")$") else pattern


def _timed_pattern(validator, pattern, instance, schema):
    if not validator.is_type(instance, "string"):
        return
    if pattern in OWN_PATTERNS:  # jobsite's own: a character class, linear in the value's length
        if not re.search(pattern, instance):
            yield ValidationError(f"must match the pattern {pattern}")
        return
    if len(instance) > MAX_PATTERN_VALUE:  # maxLength says so; an operator's pattern is not tried
        return
    try:
        matched = regex.search(pattern, instance, timeout=PATTERN_SECONDS)
    except TimeoutError:
        yield ValidationError(f"takes too long to check against the pattern {unanchored(pattern)}")
        return
    if not matched:
        yield ValidationError(f"must match the pattern {unanchored(pattern)}")


ParamsValidator = validators.extend(Draft202012Validator, {"pattern": _timed_pattern})


def compile_pattern(pattern):
    """regex.error if the operator's pattern is not one on its own and anchored as it is published
    (`a)|(b` compiles only anchored, where it would mean something else)."""
    regex.compile(pattern)
    regex.compile(anchored(pattern))


def property_schema(param):
    """The JSON Schema of one jobs.jobschema.Param."""
    schema = {"type": param.type, "description": param.help}
    if param.default is not None:
        schema["default"] = param.default
    if param.minimum is not None:
        schema["exclusiveMinimum" if param.exclusive_minimum else "minimum"] = param.minimum
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    if param.choices:
        schema["enum"] = list(param.choices)
    elif param.pattern is not None:  # the length first: a longer value is not matched at all
        schema.update(maxLength=MAX_PATTERN_VALUE, pattern=anchored(param.pattern))
        schema["not"] = NOT_AN_OPTION
    elif param.type == "string":
        schema["not"] = NO_NUL
    if param.shape:
        schema.update(param.shape)
    if param.unused_with:
        schema["x-unused-with"] = {other: list(values) for other, values in param.unused_with}
    return schema


def object_schema(params, title="it"):
    """The JSON Schema of a job type's parameters (a sequence of Param); `title`: the type's name."""
    return {"$schema": DIALECT, "title": title, "type": "object",
            "properties": {param.name: property_schema(param) for param in params},
            "required": [param.name for param in params if param.required],
            "additionalProperties": False}


def unused(schema, values):
    """Names of the parameters that `values` (given values over defaults) leave unused."""
    return {name for name, prop in schema["properties"].items()
            if any(values.get(other) in among for other, among in prop.get("x-unused-with", {}).items())}


def problems(schema, values):
    """{parameter name (or "name.key" within an object): what is wrong} for `values`."""
    found = {}
    for error in ParamsValidator(schema).iter_errors(values):
        if error.validator == "additionalProperties" and not error.path:
            known = ", ".join(schema["properties"]) or "none"
            for name in values:
                if name not in schema["properties"]:
                    found.setdefault(name, f"unknown parameter; {schema['title']} takes {known}")
        elif error.validator == "required" and not error.path:
            for name in error.validator_value:
                if name not in values:
                    found.setdefault(name, "is required")
        else:
            name, *within = error.path
            key = f"{name}.{within[0]}" if within else name
            found.setdefault(key, _message(error, within[1:]))
    return found


def _message(error, within):
    if error.validator == "type":
        message = _TYPE_MESSAGES.get(error.validator_value, error.message) if isinstance(
            error.validator_value, str) else error.message
        return f"{'.'.join(map(str, within))} {message}" if within else message
    message = {
        "minimum": lambda bound: f"must be at least {bound:g}",
        "exclusiveMinimum": lambda bound: f"must be greater than {bound:g}",
        "maximum": lambda bound: f"must be at most {bound:g}",
        "enum": lambda choices: f"must be one of {', '.join(map(str, choices))}",
        "maxLength": lambda length: f"must be at most {length} characters long",
        "minProperties": lambda count: f"must have at least {count} entr{'y' if count == 1 else 'ies'}",
        "maxProperties": lambda count: f"must have at most {count} entries",
        "not": lambda schema: _NOT_MESSAGES.get(schema.get("pattern"), error.message),
        "required": lambda names: f"needs {', '.join(names)}",
        "additionalProperties": lambda allowed: f"takes only {', '.join(error.schema.get('properties', {}))}",
    }.get(error.validator, lambda value: error.message)(error.validator_value)
    return f"{'.'.join(map(str, within))} {message}" if within else message
