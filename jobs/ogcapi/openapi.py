"""The OpenAPI 3.0 document of jobsite's OGC API - Processes (served at /ogcapi/api): every path
under /ogcapi/, its parameters, and the shapes of its documents as OGC 18-062r2 defines them
(landing page, conformance, process list and description, execute request, statusInfo, job list,
results, exception). Process inputs and outputs are described per process at
/ogcapi/processes/{processID}; here an execute request's inputs are any JSON."""

from django.urls import reverse

from .documents import STATUS

JSON = "application/json"
HTML = "text/html"
PROBLEM = "application/problem+json"
MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _array(items):
    return {"type": "array", "items": items}


def _object(required=(), **properties):
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


TEXT = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}

SCHEMAS = {
    "link": _object(["href"], href=TEXT, rel=TEXT, type=TEXT, hreflang=TEXT, title=TEXT),
    "landingPage": _object(["links"], title=TEXT, description=TEXT, links=_array(_ref("link"))),
    "confClasses": _object(["conformsTo"], conformsTo=_array(TEXT)),
    "jobControlOptions": _array({"type": "string", "enum": ["sync-execute", "async-execute", "dismiss"]}),
    "transmissionMode": {"type": "string", "enum": ["value", "reference"]},
    "processSummary": _object(
        ["id", "version"], id=TEXT, version=TEXT, title=TEXT, description=TEXT, keywords=_array(TEXT),
        jobControlOptions=_ref("jobControlOptions"), outputTransmission=_array(_ref("transmissionMode")),
        links=_array(_ref("link"))),
    "inputDescription": _object(
        ["schema"], title=TEXT, description=TEXT, schema={"type": "object"},
        minOccurs={"type": "integer", "minimum": 0},
        maxOccurs={"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "enum": ["unbounded"]}]}),
    "outputDescription": _object(["schema"], title=TEXT, description=TEXT, schema={"type": "object"}),
    "process": {"allOf": [_ref("processSummary"), _object(
        ["inputs", "outputs"], inputs={"type": "object", "additionalProperties": _ref("inputDescription")},
        outputs={"type": "object", "additionalProperties": _ref("outputDescription")})]},
    "processList": _object(["processes", "links"], processes=_array(_ref("processSummary")),
                           links=_array(_ref("link"))),
    "subscriber": {**_object(successUri={"type": "string", "format": "uri"},
                             inProgressUri={"type": "string", "format": "uri"},
                             failedUri={"type": "string", "format": "uri"}), "additionalProperties": False},
    "execute": {**_object(
        inputs={"type": "object", "description": "input id: its value, {\"value\": ...}, or, for a data file, "
                                                 "{\"href\": the URL of one of your data files or of a file on a "
                                                 "host this service reads from}, or polygons as GeoJSON"},
        outputs={"type": "object", "additionalProperties": _object(transmissionMode=_ref("transmissionMode"))},
        response={"type": "string", "enum": ["raw", "document"], "default": "document"},
        subscriber=_ref("subscriber")), "additionalProperties": False},
    "jobRequest": {**_object(
        mode={"type": "string", "enum": ["async", "sync", "auto"], "default": "async"},
        response={"type": "string", "enum": ["raw", "document"], "default": "document"},
        inputs=_array(_object(["id", "data"], id=TEXT, data={})),
        outputs=_array(_object(["id"], id=TEXT, transmissionMode=_ref("transmissionMode"))),
        labels=_array(TEXT)), "additionalProperties": False},
    "statusInfo": _object(
        ["jobID", "status", "type"], jobID=TEXT, processID=TEXT, type={"type": "string", "enum": ["process"]},
        status={"type": "string", "enum": sorted(set(STATUS.values()))}, message=TEXT, created=TIME, started=TIME,
        finished=TIME, updated=TIME, progress={"type": "integer", "minimum": 0, "maximum": 100},
        links=_array(_ref("link"))),
    "jobList": _object(["jobs", "links"], jobs=_array(_ref("statusInfo")), links=_array(_ref("link"))),
    "results": {"type": "object", "description": "output id: its value, or {\"href\", \"type\"} of its file",
                "additionalProperties": {}},
    "exception": {**_object(["type"], type=TEXT, title=TEXT, status={"type": "integer"}, detail=TEXT,
                            instance=TEXT), "additionalProperties": True},
}


def _answer(description, schema=None, media_types=(JSON,), headers=None):
    content = {}
    for media_type in media_types:
        content[media_type] = {"schema": schema if media_type != HTML else TEXT} if schema else {}
    found = {"description": description, "content": content}
    if headers:
        found["headers"] = headers
    return found


def _problem(description):
    return _answer(description, _ref("exception"), (PROBLEM,))


def _query(name, description, schema, explode=None):
    found = {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
    if explode is not None:
        found.update(style="form", explode=explode)
    return found


def _in_path(name, description, pattern="^[^/]+$"):
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "pattern": pattern}}


FORMAT = _query("f", "json (the default) or html", {"type": "string", "enum": ["json", "html"]})
PROCESS_ID = {**_in_path("processID", "a process (job type) id"), "example": "echo"}
JOB_ID = _in_path("jobID", "a job id")
REFUSED = {"400": _problem("a parameter or member of the request is wrong; the problem names it"),
           "401": _problem("no account, or credentials that are wrong: log in, or send your API token (Token, or "
                           "HTTP Basic as the password)")}
PAGE = [_query("limit", "how many on a page", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10}),
        _query("offset", "how many to skip", {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0})]
LIST = {"type": "array", "items": TEXT}


def _document_paths():
    execute_answers = {
        "200": {**_answer("the results of a job that ran at once: a results document, or the one output itself "
                          "with response raw (in its own media type)", _ref("results"),
                          headers={"Link": {"description": "the job, rel=monitor", "schema": TEXT}}),
                "content": {JSON: {"schema": _ref("results")}, "*/*": {}}},
        "201": _answer("the job is created and runs; its status", _ref("statusInfo"),
                       headers={"Location": {"description": "the job's URL", "schema": TEXT}}),
        **REFUSED,
        "404": _problem("no such process"),
        "409": _problem("a data file this request names or gives conflicts with one of yours"),
        "413": _problem("the request body, a fetched file or your stored data is too large"),
        "415": _problem("the body is not JSON"),
        "429": _problem("the limit of active or kept jobs is reached, or too many files are being fetched"),
        "500": _problem("the job that ran at once failed; the problem says why and links to the job"),
    }
    return {
        "/": {"get": _operation("landing page", "the links to everything else", [FORMAT],
                                {"200": _answer("the landing page", _ref("landingPage"), (JSON, HTML)), **REFUSED},
                                public=True)},
        "/api": {"get": _operation("this document", "the OpenAPI 3.0 document of the OGC API (f=html: its "
                                                    "documentation page)", [FORMAT], {
            "200": _answer("this document", {"type": "object"}, (MEDIA_TYPE,)),
            "302": {"description": "to the documentation page, for f=html"}, **REFUSED}, public=True)},
        "/conformance": {"get": _operation("conformance", "the conformance classes implemented", [FORMAT], {
            "200": _answer("the conformance classes", _ref("confClasses"), (JSON, HTML)), **REFUSED},
            public=True)},
        "/processes": {"get": _operation("processes", "every job type, as a process summary", [*PAGE, FORMAT], {
            "200": _answer("a page of processes", _ref("processList"), (JSON, HTML)), **REFUSED})},
        "/processes/{processID}": {"get": _operation("process", "a process description: inputs and outputs with "
                                                                "their JSON Schema", [PROCESS_ID, FORMAT], {
            "200": _answer("the process", _ref("process"), (JSON, HTML)), **REFUSED,
            "404": _problem("no such process")})},
        "/processes/{processID}/execution": {"post": {
            **_operation("execute", "run a process over tiles, a town or a collection: at once where it is small "
                                    "enough and no Prefer: respond-async is sent, else as a job",
                         [PROCESS_ID, {"name": "Prefer", "in": "header", "required": False, "schema": TEXT,
                                       "description": "respond-async for an answer at once with the job's status"}],
                         execute_answers),
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("execute"), "example": {
                "inputs": {"message": "hello", "pause": 0}, "response": "document"}}}},
            "callbacks": _callbacks()}},
        "/processes/{processID}:{version}/jobs": {"post": {
            **_operation("job request", "the SPS jobs-database request: a job of the process at this version, with "
                                        "labels", [_in_path("processID", "a process (job type) id", "^[^/:]+$"),
                                                   _in_path("version", "the process's version")],
                         execute_answers),
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("jobRequest")}}}}},
        "/jobs": {"get": _operation("jobs", "your jobs, newest first", [
            _query("type", "process (every job here is)", LIST, explode=False),
            _query("processID", "only jobs of these processes", LIST, explode=False),
            _query("status", "only jobs in these states", {"type": "array", "items": {
                "type": "string", "enum": sorted(set(STATUS.values()))}}, explode=False),
            _query("label", "only jobs with all these labels", {**LIST, "maxItems": 20}, explode=True),
            _query("datetime", "created at an instant or in an interval (RFC 3339, .. for an open end)", TEXT),
            _query("minDuration", "ran at least this many seconds", {"type": "integer", "minimum": 0}),
            _query("maxDuration", "ran at most this many seconds", {"type": "integer", "minimum": 0}),
            *PAGE, FORMAT], {"200": _answer("a page of jobs", _ref("jobList"), (JSON, HTML)), **REFUSED})},
        "/jobs/{jobID}": {
            "get": _operation("job status", "a job's statusInfo", [JOB_ID, FORMAT], {
                "200": _answer("the job's status", _ref("statusInfo"), (JSON, HTML)), **REFUSED,
                "404": _problem("no such job (or another user's)")}),
            "delete": _operation("dismiss", "cancel a job that has not ended; delete one that has", [JOB_ID], {
                "200": _answer("the job's status, dismissed", _ref("statusInfo")), **REFUSED,
                "404": _problem("no such job, or one dismissed before")})},
        "/jobs/{jobID}/results": {"get": _operation("results", "a succeeded job's results", [JOB_ID, FORMAT], {
            "200": _answer("the results: files by reference, JSON results by value", _ref("results"), (JSON, HTML)),
            **REFUSED, "404": _problem("no such job, or its results are not ready (result-not-ready)"),
            "500": _problem("the job failed; the problem says why")})},
        "/jobs/{jobID}/results/{name}": {"get": _operation("result file", "one result file of a succeeded job", [
            JOB_ID, _in_path("name", "the output's id")], {
            "200": {"description": "the file, with its media type", "content": {"*/*": {}}}, **REFUSED,
            "404": _problem("no such job or result, or not ready")})},
    }


def _operation(summary, description, parameters, responses, public=False):
    found = {"summary": summary, "description": description, "parameters": parameters, "responses": responses}
    if public:
        found["security"] = []
    return found


def _callbacks():
    """What a subscriber's URLs receive (POST, signed as jobsite's webhooks are)."""
    def callback(name, schema, description):
        return {f"{{$request.body#/subscriber/{name}}}": {"post": {
            "summary": description, "requestBody": {"content": {JSON: {"schema": schema}}},
            "responses": {"200": {"description": "received (any 2xx)"}}}}}
    return {"jobSucceeded": callback("successUri", _ref("results"), "the results, once the job succeeded"),
            "jobInProgress": callback("inProgressUri", _ref("statusInfo"), "the status while the job runs"),
            "jobFailed": callback("failedUri", _ref("exception"), "the failure, with the job's id and links")}


def document(request):
    """The OpenAPI document, its server the OGC API's root as this request reaches it."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "jobsite OGC API - Processes", "version": "1.0",
                 "description": "Raster jobs over a tile index, as OGC API - Processes - Part 1: Core (OGC 18-062r2), "
                                "with the SPS jobs-database request. The same accounts, jobs and permissions as the "
                                "REST API at /api/v1/."},
        "servers": [{"url": request.build_absolute_uri(reverse("ogc-landing")).rstrip("/")}],
        "paths": _document_paths(),
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic", "description": "your user name, and your API token as "
                                                                        "the password"},
            "token": {"type": "apiKey", "in": "header", "name": "Authorization",
                      "description": "Token YOUR-API-TOKEN"},
            "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"}}},
        "security": [{"basic": []}, {"token": []}, {"session": []}],
    }
