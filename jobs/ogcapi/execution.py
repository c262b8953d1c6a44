"""An OGC API - Processes execute request, read into what jobs.services.submit takes.

`{"inputs": {...}, "outputs": {...}, "response": "raw" | "document"}`: each input given as its
value, as `{"value": ...}`, or (a data file) as `{"href": URL}` of one of the caller's data files
on this site, of a file on a host the operator trusts (jobs.ogcapi.given_files), or, for an input
of polygons, as a GeoJSON object inline. Nothing is fetched from any other address.
"""

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.urls import Resolver404, get_script_prefix, resolve

from datafiles.models import DataFile
from jobsite import outbound

from .documents import TILE_INPUTS
from .given_files import InlineArea, Remote, inline_area
from .problems import invalid

TILE_FIELDS = tuple(TILE_INPUTS)
RESPONSES = ("document", "raw")
TRANSMISSION_MODES = ("value", "reference")
MODES = ("async", "sync", "auto")
CALLBACKS = ("successUri", "inProgressUri", "failedUri")


@dataclass
class Execution:
    submit: dict  # the job as the REST API's create request has it (type, tiles, params, inputs, labels)
    given: dict = field(default_factory=dict)  # input: InlineArea or Remote, to store as data files first
    outputs: dict = field(default_factory=dict)  # output id: transmission mode; empty: all, each as it comes
    response: str = "document"
    mode: str = "auto"  # async, sync or auto (as the Prefer header says, or not)


def read_execution(body, kind, request):
    """The Execution an execute request asks for; a Problem (400) naming the first bad member."""
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object with inputs")
    unknown = sorted(set(body) - {"inputs", "outputs", "response", "subscriber", "mode"})
    if unknown:
        raise invalid(unknown[0], "is not a member of an execute request (inputs, outputs, response)")
    if body.get("mode", "auto") not in MODES:  # an early draft's, still sent by some clients
        raise invalid("mode", f"must be one of {', '.join(MODES)}")
    inputs = body.get("inputs", {})
    if not isinstance(inputs, dict):
        raise invalid("inputs", "must be an object of input id: value")
    params, files, submit, to_store = {}, {}, {}, {}
    parameters = set(kind.params_schema()["properties"])
    data_inputs = {job_input.name: job_input.kind for job_input in kind.inputs}
    for name, given in inputs.items():
        if name in data_inputs:
            found = _data_file(name, given, data_inputs[name], request)
            if isinstance(found, (InlineArea, Remote)):
                to_store[name] = found
            else:
                files[name] = found
        elif name in TILE_FIELDS and kind.uses_tiles:
            submit[name] = _value(given)
        elif name in parameters:
            params[name] = _value(given)
        else:
            known = ", ".join(sorted([*(TILE_FIELDS if kind.uses_tiles else ()), *parameters, *data_inputs]))
            raise invalid(f"inputs.{name}", f"unknown input; the process {kind.name} takes {known}")
    submit.update(type=kind.name, params=params)
    if files:
        submit["inputs"] = files
    callbacks = _subscriber(body.get("subscriber"))
    if callbacks:
        submit["webhooks"] = callbacks
    outputs = _outputs(body.get("outputs"), kind)
    response = _response(body)
    if response == "raw" and len(outputs) != 1 and len(kind.output_files()) != 1:
        raise invalid("response", "raw answers one output: choose it in outputs, or ask for a document")
    return Execution(submit=submit, given=to_store, outputs=outputs, response=response, mode=body.get("mode", "auto"))


def read_sps_request(body, kind, request):
    """The Execution of the SPS jobs-database request: `{"mode", "response", "inputs": [{"id",
    "data"}], "outputs": [{"id", "transmissionMode"}], "labels": [...]}`; the same checks as an
    execute request's, and labels for the job (an empty list: none)."""
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object with inputs")
    unknown = sorted(set(body) - {"mode", "response", "inputs", "outputs", "labels"})
    if unknown:
        raise invalid(unknown[0], "is not a member of a job request (mode, response, inputs, outputs, labels)")
    mode = body.get("mode", "async")
    if mode not in MODES:
        raise invalid("mode", f"must be one of {', '.join(MODES)}")
    execute = {"inputs": _as_map(body.get("inputs", []), "inputs", "data"),
               "response": body.get("response", "document")}
    if body.get("outputs") is not None:
        execute["outputs"] = {name: {key: value for key, value in output.items() if key != "id"}
                              for name, output in _by_id(body["outputs"], "outputs").items()}
    execution = read_execution({**execute, "mode": mode}, kind, request)
    execution.submit["labels"] = body.get("labels", [])
    return execution


def _by_id(items, field):
    """A list of {"id": ..., ...} by id; a Problem for anything else."""
    if not isinstance(items, list):
        raise invalid(field, 'must be a list of {"id": ..., ...}')
    found = {}
    for number, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise invalid(f"{field}.{number}", 'must be an object with an "id"')
        if item["id"] in found:
            raise invalid(f"{field}.{number}", f"{item['id'][:60]!r} is given twice")
        found[item["id"]] = item
    return found


def _as_map(items, field, key):
    found = {}
    for name, item in _by_id(items, field).items():
        if key not in item:
            raise invalid(f"{field}.{name}", f'has no "{key}"')
        found[name] = item[key]
    return found


def _value(given):
    """An input's value: as given, or the `value` of a qualified value."""
    if isinstance(given, dict) and "value" in given and set(given) <= {"value", "mediaType", "encoding", "schema"}:
        return given["value"]
    return given


def _data_file(name, given, kind, request):
    """The name of the caller's data file that an input refers to by its URL on this site; or, to
    store first, the file at a URL on a trusted host (Remote) or polygons given inline (InlineArea)."""
    if isinstance(given, dict) and "href" not in given and kind == "vector":
        return inline_area(name, given.get("value", given))
    href = given.get("href") if isinstance(given, dict) else given
    if not isinstance(href, str) or not href:
        raise invalid(f"inputs.{name}", "must be the URL of one of your data files, as {\"href\": URL} or the URL itself")
    parts = urlsplit(href)
    if parts.scheme not in ("", "http", "https"):
        raise invalid(f"inputs.{name}", "must be an http or https URL")
    if parts.netloc and parts.netloc != request.get_host():
        if outbound.listed(href, settings.OGC_HREF_HOSTS):
            return Remote(href)
        raise invalid(f"inputs.{name}", "must refer to one of your data files on this site (its URL under "
                                        "/api/v1/datafiles/) or to a file on a host this service reads from "
                                        f"(JOBSITE_OGC_HREF_HOSTS: {', '.join(settings.OGC_HREF_HOSTS) or 'none'}); "
                                        "no other address is read")
    path, prefix = unquote(parts.path), get_script_prefix()
    if "\x00" in path:
        raise invalid(f"inputs.{name}", "must not hold NUL characters")
    try:
        match = resolve("/" + path[len(prefix):] if path.startswith(prefix) else path)
    except Resolver404:
        match = None
    if match is None or match.url_name != "datafile-detail":
        raise invalid(f"inputs.{name}", "must be the URL of one of your data files (/api/v1/datafiles/NAME/)")
    file_name = match.kwargs["name"]
    if not DataFile.objects.filter(owner=request.user, name=file_name).exists():
        raise invalid(f"inputs.{name}", f"you have no data file named {file_name[:200]!r}")
    return file_name


def _subscriber(subscriber):
    """The callbacks of an OGC subscriber, as the job's own webhooks of those names (each URL is then
    checked as every webhook's is: no private or loopback address, no credentials)."""
    if subscriber is None:
        return {}
    if not isinstance(subscriber, dict):
        raise invalid("subscriber", "must be an object of successUri, inProgressUri and failedUri")
    for name, url in subscriber.items():
        if name not in CALLBACKS:
            raise invalid(f"subscriber.{name}", f"unknown callback; the callbacks are {', '.join(CALLBACKS)}")
        if not isinstance(url, str):
            raise invalid(f"subscriber.{name}", "must be a URL")
    return dict(subscriber)


def _outputs(outputs, kind):
    if outputs is None:
        return {}
    if not isinstance(outputs, dict):
        raise invalid("outputs", "must be an object of output id: {\"transmissionMode\": value | reference}")
    known = dict(kind.output_files())
    chosen = {}
    for name, wanted in outputs.items():
        if name not in known:
            raise invalid(f"outputs.{name}", f"unknown output; the process {kind.name} gives {', '.join(known)}")
        mode = (wanted or {}).get("transmissionMode", "reference") if isinstance(wanted, dict) else None
        if mode not in TRANSMISSION_MODES:
            raise invalid(f"outputs.{name}.transmissionMode", "must be value or reference")
        if mode == "value" and known[name] != "application/json":
            raise invalid(f"outputs.{name}.transmissionMode", "only JSON results are given by value; "
                                                              "a file is given by reference")
        chosen[name] = mode
    return chosen


def _response(body):
    response = body.get("response", "document")
    if response not in RESPONSES:
        raise invalid("response", "must be document or raw")
    return response
