"""The documents of OGC API - Processes 1.0 made from jobsite's job types and jobs: process
summaries and descriptions, statusInfo, and results.

A job type is a process: its parameters are inputs with their JSON Schema, and so are the tiles to
run over (`tile_ids`, `town_id`, `collection`) and its data files (by reference to one of the
caller's data files). Its outputs are its result files.
"""

from django.conf import settings
from django.urls import reverse

from jobsite.exceptions import id_list

from ..jobtypes import JOB_TYPES
from ..models import MAX_ID, Job, JobStatus, Start

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
MEDIA_TYPES = {"image/tiff": COG}  # what an output's own content type is called here
# A job's status as OGC API - Processes names it.
STATUS = {JobStatus.WAITING: "accepted", JobStatus.QUEUED: "accepted", JobStatus.RUNNING: "running",
          JobStatus.MERGING: "running", JobStatus.SUCCEEDED: "successful", JobStatus.FAILED: "failed",
          JobStatus.CANCELED: "dismissed"}
JOBSITE_STATUSES = {name: [ours for ours, theirs in STATUS.items() if theirs == name] for name in set(STATUS.values())}
TILE_INPUTS = {
    "tile_ids": {"title": "Tiles", "description": "Tile ids of the collection to run over; give this or town_id",
                 "schema": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": MAX_ID}},
                 "minOccurs": 0, "maxOccurs": 1},
    "town_id": {"title": "Town", "description": "A town whose tiles to run over; give this or tile_ids",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID}, "minOccurs": 0, "maxOccurs": 1},
    "collection": {"title": "Collection", "description": "The collection of tiles to run over; the site's default "
                                                         "collection without it",
                   "schema": {"type": "string", "maxLength": 64}, "minOccurs": 0, "maxOccurs": 1},
    "wait_for_tiles": {"title": "Wait for tiles", "description": "true: tile_ids may name tiles the collection does "
                                                                 "not have yet; the job waits for them",
                       "schema": {"type": "boolean", "default": False}, "minOccurs": 0, "maxOccurs": 1},
    "start": {"title": "Start", "description": "with tiles to wait for: all_arrived starts once the last has arrived; "
                                               "as_available runs each tile as soon as it and its neighbours are there",
              "schema": {"type": "string", "enum": list(Start.values), "default": Start.ALL_ARRIVED},
              "minOccurs": 0, "maxOccurs": 1},
    "wait_timeout": {"title": "Wait timeout", "description": "seconds to wait for tiles not loaded yet",
                     "schema": {"type": "integer", "minimum": 1, "maximum": Job.MAX_WAIT_SECONDS},
                     "minOccurs": 0, "maxOccurs": 1},
}


def absolute(request, url_name, **kwargs):
    return request.build_absolute_uri(reverse(url_name, kwargs=kwargs or None))


def link(href, rel, title=None, media_type="application/json"):
    found = {"href": href, "rel": rel, "type": media_type}
    if title:
        found["title"] = title
    return found


def process_summary(request, kind):
    url = absolute(request, "ogc-process", process_id=kind.name)
    return {"id": kind.name, "version": kind.version, "title": kind.title or kind.name,
            "description": kind.description, "keywords": list(kind.keywords),
            "jobControlOptions": ["async-execute", "sync-execute", "dismiss"],
            # Files go by reference; JSON results by value too.
            "outputTransmission": ["value", "reference"] if any(media == "application/json" for _, media in
                                                               kind.output_files()) else ["reference"],
            "links": [link(url, "self", f"the process {kind.name}"),
                      link(f"{url}?f=html", "alternate", f"the process {kind.name} as HTML", "text/html"),
                      link(f"{url}/execution", "http://www.opengis.net/def/rel/ogc/1.0/execute",
                           f"execute {kind.name}")]}


def process_description(request, kind):
    return {**process_summary(request, kind), "inputs": process_inputs(kind), "outputs": process_outputs(kind)}


def process_inputs(kind):
    schema = kind.params_schema()
    required = set(schema.get("required", ()))
    inputs = dict(TILE_INPUTS) if kind.uses_tiles else {}
    for name, prop in schema["properties"].items():
        inputs[name] = {"title": prop.get("title", name), "description": prop.get("description", ""),
                        "schema": oas30_schema(prop), "minOccurs": 1 if name in required else 0, "maxOccurs": 1}
    for job_input in kind.inputs:
        by_reference = {"type": "string", "format": "uri"}
        description = (f"{job_input.help} (one of your data files of kind {job_input.kind}, by reference: its URL "
                       "under /api/v1/datafiles/, or that of a file on a host this service reads from")
        if job_input.kind == "vector":
            description += "; or the polygons inline, as a GeoJSON geometry, Feature or FeatureCollection"
        inputs[job_input.name] = {
            "title": job_input.name, "description": description + ")",
            "schema": by_reference if job_input.kind != "vector" else {"oneOf": [by_reference, {
                "type": "object", "required": ["type"], "description": "GeoJSON, in longitude and latitude (CRS84)"}]},
            "minOccurs": 0 if kind.tiles_from else 1, "maxOccurs": 1}
    return inputs


def process_outputs(kind):
    return {name: {"title": name, "schema": {"type": "string", "contentMediaType": MEDIA_TYPES.get(media, media)}
                   if media != "application/json" else oas30_schema(kind.result_schema())}
            for name, media in kind.output_files()}


# The keywords of an OpenAPI 3.0 Schema Object, which the standard's process descriptions take.
OAS30_KEYWORDS = frozenset((
    "title", "description", "type", "format", "default", "enum", "nullable", "readOnly", "writeOnly", "example",
    "deprecated", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength",
    "pattern", "maxItems", "minItems", "uniqueItems", "maxProperties", "minProperties", "required", "not", "allOf",
    "oneOf", "anyOf", "items", "properties", "additionalProperties", "contentMediaType", "contentEncoding"))


def oas30_schema(schema):
    """A parameter's JSON Schema (2020-12) as an OpenAPI 3.0 Schema Object: numeric exclusive bounds as
    a bound and a flag, `const` as a one-value enum, a list of types with null as `nullable`, and no
    keywords beyond 3.0's (such as jobsite's x-unused-with, which the description says in words)."""
    if not isinstance(schema, dict):
        return schema
    found = {}
    for key, value in schema.items():
        if key not in OAS30_KEYWORDS:
            continue
        if key in ("not", "items", "additionalProperties"):
            found[key] = oas30_schema(value)
        elif key in ("allOf", "oneOf", "anyOf"):
            found[key] = [oas30_schema(each) for each in value]
        elif key == "properties":
            found[key] = {name: oas30_schema(each) for name, each in value.items()}
        elif key not in ("exclusiveMinimum", "exclusiveMaximum") or isinstance(value, bool):
            found[key] = value
    for exclusive, bound, tighter in (("exclusiveMinimum", "minimum", max), ("exclusiveMaximum", "maximum", min)):
        value = schema.get(exclusive)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if bound in schema and tighter(schema[bound], value) == schema[bound] and schema[bound] != value:
                continue  # the inclusive bound is the tighter one
            found[bound], found[exclusive] = value, True
    if "const" in schema:
        found["enum"] = [schema["const"]]
    if isinstance(found.get("type"), list):
        types = [name for name in found.pop("type") if name != "null"]
        if len(types) == 1:
            found["type"] = types[0]
        if "null" in schema["type"]:
            found["nullable"] = True
    return found


def status_info(request, job):
    url = absolute(request, "ogc-job", job_id=job.pk)
    rest = absolute(request, "job-detail", pk=job.pk)
    info = {"jobID": str(job.pk), "type": "process", "processID": job.type, "status": STATUS[job.status],
            "message": _message(job), "created": _time(job.created), "updated": _time(job.updated),
            "progress": job.progress(job.tiles_done)}
    if job.started:
        info["started"] = _time(job.started)
    if job.finished:
        info["finished"] = _time(job.finished)
    info["links"] = [link(url, "self", f"job {job.pk}"),
                     link(f"{url}?f=html", "alternate", f"job {job.pk} as HTML", "text/html"),
                     link(rest, "related", f"job {job.pk} in the REST API"),
                     link(f"{rest}logs/", "http://www.opengis.net/def/rel/ogc/1.0/log", f"the log of job {job.pk}"),
                     link(absolute(request, "job-page", pk=job.pk), "related", f"job {job.pk} in the dashboard",
                          "text/html")]
    if job.status == JobStatus.SUCCEEDED:
        info["links"] += [link(f"{url}/results", "http://www.opengis.net/def/rel/ogc/1.0/results",
                               f"the results of job {job.pk}"),
                          link(stac_item_url(request, job), "alternate", f"the results of job {job.pk} as a STAC Item",
                               "application/geo+json")]
    return info


def stac_item_url(request, job):
    return absolute(request, "stac-item", type_name=job.type, job_id=job.pk)


def _message(job):
    tiles = f"tiles {id_list(job.waiting_for_tiles)}" if job.waiting_for_tiles and not job.is_final else ""
    if job.status == JobStatus.WAITING:
        return f"waiting for {', '.join([*job.waiting_for, *([tiles] if tiles else [])])}"
    if job.status in (JobStatus.FAILED, JobStatus.CANCELED) and job.error:
        return job.error
    done = f"{job.tiles_done} of {job.tiles_total} tiles done" + (f", waiting for {tiles}" if tiles else "")
    return {JobStatus.QUEUED: f"queued; {job.tiles_total} tiles to run", JobStatus.RUNNING: f"running; {done}",
            JobStatus.MERGING: f"merging {job.tiles_total} tiles", JobStatus.SUCCEEDED: f"succeeded; {done}",
            JobStatus.FAILED: f"failed; {done}", JobStatus.CANCELED: f"dismissed; {done}"}[job.status]


def _time(value):
    return value.isoformat().replace("+00:00", "Z")


def results(request, job, selected=None, by_value=None):
    """{output id: value or {"href", "type"}} of a succeeded job; `selected` limits the outputs,
    `by_value` names those wanted inline (None: every JSON result; only those can be)."""
    found = {}
    for output in job.outputs:
        name = output["name"]
        if selected is not None and name not in selected:
            continue
        inline = output["content_type"] == "application/json" and job.results is not None
        if inline and (by_value is None or name in by_value):
            found[name] = job.results
        else:
            found[name] = {"href": absolute(request, "ogc-result", job_id=job.pk, name=name),
                           "type": MEDIA_TYPES.get(output["content_type"], output["content_type"])}
    return found


def known_process(process_id):
    return JOB_TYPES.get(process_id)


class SiteAddress:
    """Absolute URLs as JOBSITE_PUBLIC_URL has them (relative without it), where no request is at hand."""

    def build_absolute_uri(self, path):
        return f"{settings.PUBLIC_URL.rstrip('/')}{path}"


def callback_body(name, job):
    """What an OGC API subscriber's callback `name` gets about `job` (None for jobsite's own webhooks):
    the results on success, the statusInfo while it runs, an exception naming the job on failure."""
    site = SiteAddress()
    if name == "successUri":
        return results(site, job)
    if name == "inProgressUri":
        return status_info(site, job)
    if name == "failedUri":
        return {"type": "about:blank", "title": "Job failed", "status": 500, "detail": job.error or "failed",
                "jobID": str(job.pk), "links": status_info(site, job)["links"]}
    return None
