"""The abstract tests of OGC API - Processes - Part 1 (OGC 18-062r2) that jobsite's conformance
classes name, with their requirement ids in the test names: the OpenAPI 3.0 document (oas30) and
the API checked against it by schemathesis, every document validated with jsonschema against the
document's schemas, and the echo process.

The standard's own schemas (core/openapi/schemas of the 1.0 standard, with their licence) are
not redistributed with jobsite: point OGC_API_PROCESSES_SCHEMAS at that folder to validate every
document against them as well."""

import os
import re
import time
from pathlib import Path

import jsonschema
import pytest
import referencing
import schemathesis
import yaml

from jobs.models import Job, JobStatus
from jobs.services.submit import job_submit

from .api_schema import AS_DOCUMENTED, NO_SERVER_ERROR, bounded_run, schema_at
from .test_execution import run
from .test_ogcapi import problem

OUR_SCHEMAS = "urn:jobsite:ogcapi"
BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
STANDARD = os.environ.get("OGC_API_PROCESSES_SCHEMAS")


@pytest.fixture
def api(owner, client_for):
    return client_for(owner)


def openapi_document(client):
    response = client.get("/ogcapi/api")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.oai.openapi+json;version=3.0"
    return response.json()


def valid(document, name, client):
    """Validate `document` against the schema `name` of the OpenAPI document (and of the standard,
    where it is at hand); a jsonschema error says what does not fit."""
    ours = openapi_document(client)
    registry = referencing.Registry().with_resource(OUR_SCHEMAS, referencing.Resource.from_contents(
        ours, default_specification=referencing.jsonschema.DRAFT202012))
    jsonschema.Draft202012Validator({"$ref": f"{OUR_SCHEMAS}#/components/schemas/{name}"},
                                    registry=registry).validate(document)
    if STANDARD:
        standard_validator(name).validate(document)
    return document


def standard_validator(name):
    """The standard's schema `name`. Its formats are asserted: a string value is told from a base64
    one (format byte) only by its format."""
    folder = Path(STANDARD)

    def retrieve(uri):
        return referencing.Resource.from_contents(yaml.safe_load((folder / uri.rsplit("/", 1)[-1]).read_text()),
                                                  default_specification=referencing.jsonschema.DRAFT202012)
    registry = referencing.Registry(retrieve=retrieve)
    formats = jsonschema.FormatChecker()
    formats.checks("byte")(lambda value: not isinstance(value, str) or bool(BASE64.fullmatch(value)))
    return jsonschema.Draft202012Validator({"$ref": f"file:///{name}.yaml"}, registry=registry, format_checker=formats)


# oas30: the API definition.

def test_req_oas30_the_landing_page_links_to_an_openapi_3_document_of_every_path(client):
    links = {link["rel"]: link for link in client.get("/ogcapi/").json()["links"]}
    assert links["service-desc"]["href"] == "http://testserver/ogcapi/api"
    assert links["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    document = openapi_document(client)
    assert document["openapi"].startswith("3.0.") and document["servers"] == [{"url": "http://testserver/ogcapi"}]
    assert set(document["paths"]) == {
        "/", "/api", "/conformance", "/processes", "/processes/{processID}", "/processes/{processID}/execution",
        "/processes/{processID}:{version}/jobs", "/jobs", "/jobs/{jobID}", "/jobs/{jobID}/results",
        "/jobs/{jobID}/results/{name}"}
    assert set(document["paths"]["/jobs/{jobID}"]) == {"get", "delete"}
    assert "callbacks" in document["paths"]["/processes/{processID}/execution"]["post"]


def test_req_oas30_the_documentation_page_is_served_from_local_files(client):
    page = client.get("/ogcapi/api.html")
    assert page.status_code == 200 and "/ogcapi/api" in page.content.decode()
    assert "cdn" not in page.content.decode().lower()
    assert client.get("/ogcapi/api?f=html")["Location"] == "/ogcapi/api.html"
    links = {link["rel"]: link["href"] for link in client.get("/ogcapi/").json()["links"]}
    assert links["service-doc"] == "http://testserver/ogcapi/api.html"


def test_req_core_every_document_fits_its_schema(index, owner, other, media, api, client):
    valid(client.get("/ogcapi/").json(), "landingPage", client)
    valid(client.get("/ogcapi/conformance").json(), "confClasses", client)
    valid(api.get("/ogcapi/processes?limit=100").json(), "processList", client)
    for summary in api.get("/ogcapi/processes?limit=100").json()["processes"]:
        valid(api.get(f"/ogcapi/processes/{summary['id']}").json(), "process", client)
    succeeded = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2]))
    queued = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1], labels=["flood"])
    echoed = run(job_submit(owner=owner, job_type="echo", params={"message": "hello"}))
    valid(api.get(f"/ogcapi/jobs/{succeeded.pk}").json(), "statusInfo", client)
    valid(api.get(f"/ogcapi/jobs/{queued.pk}").json(), "statusInfo", client)
    valid(api.get("/ogcapi/jobs").json(), "jobList", client)
    valid(api.get(f"/ogcapi/jobs/{succeeded.pk}/results").json(), "results", client)
    valid(api.get(f"/ogcapi/jobs/{echoed.pk}/results").json(), "results", client)
    valid(problem(api.get("/ogcapi/processes/nothing"), 404), "exception", client)
    valid(problem(api.get(f"/ogcapi/jobs/{queued.pk}/results"), 404), "exception", client)
    valid(api.delete(f"/ogcapi/jobs/{queued.pk}").json(), "statusInfo", client)


def test_a_document_that_does_not_fit_is_caught(client):
    """The validation above can fail: a statusInfo without its jobID, or with a status of its own."""
    with pytest.raises(jsonschema.ValidationError):
        valid({"type": "process", "status": "running"}, "statusInfo", client)
    with pytest.raises(jsonschema.ValidationError):
        valid({"jobID": "1", "type": "process", "status": "paused"}, "statusInfo", client)


@pytest.mark.skipif(not STANDARD, reason="OGC_API_PROCESSES_SCHEMAS is not set")
def test_the_standards_schemas_are_the_ones_read():
    assert (Path(STANDARD) / "statusInfo.yaml").is_file()
    with pytest.raises(jsonschema.ValidationError):
        standard_validator("statusInfo").validate({"jobID": "1", "type": "process", "status": "paused"})


# The echo process.

def test_req_ogc_process_description_of_the_echo_process_has_no_tile_inputs(api):
    described = api.get("/ogcapi/processes/echo").json()
    assert set(described["inputs"]) == {"message", "pause"}
    assert described["inputs"]["message"]["minOccurs"] == 1 and described["inputs"]["pause"]["minOccurs"] == 0
    assert described["inputs"]["pause"]["schema"]["maximum"] == 10
    assert described["outputs"] == {"echo.json": {"title": "echo.json", "schema": {"type": "string"}}}


def test_the_echo_process_answers_its_message_as_its_result(db, owner, media, api):
    job = run(job_submit(owner=owner, job_type="echo", params={"message": "hello, ünïcode"}))
    assert job.status == JobStatus.SUCCEEDED and job.tiles_total == 0 and job.results == "hello, ünïcode"
    assert api.get(f"/ogcapi/jobs/{job.pk}/results").json() == {"echo.json": "hello, ünïcode"}
    raw = api.get(f"/ogcapi/jobs/{job.pk}/results/echo.json")
    assert b"".join(raw.streaming_content) == '"hello, \\u00fcn\\u00efcode"'.encode()


@pytest.mark.parametrize("inputs,field", [
    ({}, "params"),
    ({"message": 3}, "params"),
    ({"message": "x" * 10001}, "params"),
    ({"message": "hi", "pause": 11}, "params"),
    ({"message": "hi", "pause": -1}, "params"),
    ({"message": "hi", "tile_ids": [100]}, "inputs.tile_ids"),
    ({"message": "hi", "town_id": 1}, "inputs.town_id"),
])
def test_bad_echo_requests_are_400_problems_naming_the_input(db, api, inputs, field):
    body = problem(api.post("/ogcapi/processes/echo/execution", {"inputs": inputs}, format="json",
                            headers={"Prefer": "respond-async"}), 400)
    assert field in body["errors"] or field.split(".")[0] in body["errors"], body
    assert not Job.objects.exists()


def test_the_echo_process_takes_no_tiles_in_the_rest_api(db, api):
    response = api.post("/api/v1/jobs/", {"type": "echo", "tile_ids": [100], "params": {"message": "hi"}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["tile_ids"] == ["echo runs over no tiles; leave tile_ids and town_id out"]


@pytest.mark.cluster
def test_req_core_the_echo_process_runs_sync_and_async_and_is_dismissed_while_it_pauses(owner, client_for,
                                                                                       start_cluster):
    start_cluster()
    api = client_for(owner)
    answered = api.post("/ogcapi/processes/echo/execution", {"inputs": {"message": "hello, echo"}}, format="json")
    assert answered.status_code == 200, answered.content
    assert valid(answered.json(), "results", api) == {"echo.json": "hello, echo"}
    raw = api.post("/ogcapi/processes/echo/execution", {"inputs": {"message": "raw"}, "response": "raw",
                                                        "outputs": {"echo.json": {}}}, format="json")
    assert raw["Content-Type"] == "application/json" and b"".join(raw.streaming_content) == b'"raw"'

    started = api.post("/ogcapi/processes/echo/execution", {"inputs": {"message": "later", "pause": 10}},
                       format="json", headers={"Prefer": "respond-async"})
    assert started.status_code == 201
    url = started["Location"]
    deadline = time.monotonic() + 30
    while api.get(url).json()["status"] != "running":
        assert time.monotonic() < deadline, "the echo job did not start"
        time.sleep(0.1)
    dismissed = api.delete(url)
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    job = Job.objects.get(pk=int(dismissed.json()["jobID"]))
    assert job.status == JobStatus.CANCELED and not job.outputs
    problem(api.delete(url), 404)


# The API against its OpenAPI document.

@pytest.fixture
def ogc_api(index, town, owner, other, media, settings):
    """Jobs to find: a finished one with results, a queued one, an echo, another user's; execute
    requests answer at once (no cluster runs here)."""
    settings.OGC_SYNC_SECONDS = 0
    run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2], labels=["flood"]))
    run(job_submit(owner=owner, job_type="echo", params={"message": "hello"}))
    job_submit(owner=owner, job_type="slope", town_id=town.id)
    job_submit(owner=other, job_type="aspect", tile_ids=index.ids[:1])
    with schema_at("/ogcapi/api") as schema:
        yield schema


schema = schemathesis.pytest.from_fixture("ogc_api")


@schema.parametrize()
@bounded_run
def test_the_ogc_api_answers_as_its_openapi_document_says(case, owner_token):
    """No 5xx, and every status code, content type and body as documented."""
    case.call_and_validate(headers={"Authorization": f"Token {owner_token}"}, checks=[*AS_DOCUMENTED, NO_SERVER_ERROR])


def test_an_echo_job_has_its_dashboard_page_and_rest_representation(db, owner, media, client_for):
    job = run(job_submit(owner=owner, job_type="echo", params={"message": "hello"}))
    client = client_for(owner)
    client.force_login(owner)
    page = client.get(f"/jobs/{job.pk}/")
    assert page.status_code == 200 and "echo.json" in page.content.decode()
    rest = client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert rest["status"] == "succeeded" and rest["tiles_total"] == 0 and rest["results"] == "hello"
