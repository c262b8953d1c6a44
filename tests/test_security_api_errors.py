"""No 500 and no HTML under /api/, for any input, with DEBUG off and on: each refusal is a 4xx whose
JSON `detail` names the field and the problem (jobsite/api/errors.py, jobsite/api/middleware.py)."""

import json
import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from jobs.services import control
from jobs.services.control import job_cancel
from jobs.services.submit import job_submit
from jobsite.jsonnesting import MAX_DEPTH, nesting_depth
from jobs.models import Job, JobTile

from .test_api_errors import assert_field_lists

HUGE = int("1" + "0" * 400)  # JSON's 1 followed by 400 zeros: beyond any float or database integer
BEYOND_64_BITS = "99999999999999999999"


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    """Each case with DEBUG off and with DEBUG on (as `make run` serves)."""
    settings.DEBUG = request.param
    return request.param


@pytest.fixture
def api(owner):
    """A client that answers an exception as the server would, instead of raising it in the test."""
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(owner)
    return client


@pytest.fixture
def job(index, owner):
    return job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])


def assert_json_error(response, status, field):
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert field in detail, detail
    if "errors" in response.json():  # each field's messages as a list, as at every 400
        assert_field_lists(response.json()["errors"])
    return detail


def nested(depth):
    return "[" * depth + "]" * depth


# Oversized numbers, deep JSON and ids beyond 64 bits in a job's body.
BODIES = {
    "param-huge": ({"type": "hillshade", "tile_ids": [100], "params": {"z_factor": HUGE}}, "params.z_factor"),
    "param-huge-negative": ({"type": "hillshade", "tile_ids": [100], "params": {"azimuth": -HUGE}}, "params.azimuth"),
    "param-1e400": ('{"type": "hillshade", "tile_ids": [100], "params": {"z_factor": 1e400}}', "params.z_factor"),
    "tile-id-huge": ({"type": "slope", "tile_ids": [HUGE]}, "tile_ids"),
    "tile-id-beyond-64-bits": ({"type": "slope", "tile_ids": [int(BEYOND_64_BITS)]}, "tile_ids"),
    "town-id-huge": ({"type": "slope", "town_id": HUGE}, "town_id"),
    "wait-timeout-huge": ({"type": "slope", "tile_ids": [100], "wait_timeout": HUGE}, "wait_timeout"),
    "label-huge": ({"type": "slope", "tile_ids": [100], "labels": [HUGE]}, "labels"),
    "type-huge": ({"type": HUGE, "tile_ids": [100]}, "type"),
    "nested-1000": (nested(1000), f"JSON nested deeper than {MAX_DEPTH} levels"),
    "nested-100000": (nested(100_000), f"JSON nested deeper than {MAX_DEPTH} levels"),
    "nested-in-params": ('{"type": "slope", "tile_ids": [100], "params": {"a": ' + nested(MAX_DEPTH) + "}}",
                         f"JSON nested deeper than {MAX_DEPTH} levels"),
}


@pytest.mark.parametrize("body,field", BODIES.values(), ids=BODIES.keys())
def test_it_refuses_a_bad_job_body_with_a_400_naming_the_field(index, api, debug, body, field):
    if isinstance(body, str):
        response = api.post("/api/v1/jobs/", body, content_type="application/json")
    else:
        response = api.post("/api/v1/jobs/", body, format="json")
    assert_json_error(response, 400, field)
    assert Job.objects.count() == 0


def test_it_refuses_a_huge_parameter_in_a_resume(job, api, debug):
    job_cancel(job=job)
    response = api.post(f"/api/v1/jobs/{job.pk}/resume/", {"params": {"scale": HUGE}}, format="json")
    assert_json_error(response, 400, "params.scale")


def test_it_parses_json_nested_exactly_to_the_limit(index, api, debug):
    """64 levels pass the parser: the answer is about the parameters, not the nesting."""
    body = '{"type": "slope", "tile_ids": [100], "params": {"scale": ' + nested(MAX_DEPTH - 2) + "}}"
    assert nesting_depth(body) == MAX_DEPTH
    assert_json_error(api.post("/api/v1/jobs/", body, content_type="application/json"), 400, "params.scale")


@pytest.mark.parametrize("text,depth", [
    ("1", 0), ("[]", 1), ('{"a": [1, {"b": "[[[["}]}', 3), (r'["\"[", "]]]"]', 1), (r'["\\", [["x"]]]', 3),
    (nested(100_000), 100_000),
])
def test_it_counts_nesting_without_recursion_and_ignores_brackets_in_strings(text, depth):
    assert nesting_depth(text) == depth


# Ids, numbers, dates, offsets and page sizes beyond range in query strings and URLs.
QUERIES = {
    "job-filter-town": (f"/api/v1/jobs/?town={HUGE}", 400, "town"),
    "job-filter-tile": (f"/api/v1/jobs/?tile={BEYOND_64_BITS}", 400, "tile"),
    "job-filter-date-huge": (f"/api/v1/jobs/?created_after={HUGE}", 400, "created_after"),
    "job-filter-date-year": ("/api/v1/jobs/?finished_before=99999-01-01T00:00:00", 400, "finished_before"),
    "tile-filter-ids": (f"/api/v1/tiles/?id=100,{HUGE}", 400, "id"),
    "tile-filter-town": (f"/api/v1/tiles/?town={BEYOND_64_BITS}", 400, "town"),
    "tile-filter-bbox": (f"/api/v1/tiles/?bbox=0,0,{HUGE},{HUGE}", 400, "bbox"),
    "tile-filter-bbox-nan": ("/api/v1/tiles/?bbox=nan,0,1,1", 400, "bbox"),
    "offset-1e30": ("/api/v1/jobs/?offset=1e30", 400, "offset"),
    "offset-beyond-64-bits": (f"/api/v1/jobs/?offset={BEYOND_64_BITS}", 400, "offset"),
    "offset-huge": (f"/api/v1/tiles/?offset={HUGE}", 400, "offset"),
    "offset-negative": ("/api/v1/towns/?offset=-1", 400, "offset"),
    "limit-huge": (f"/api/v1/jobs/?limit={HUGE}", 400, "limit"),
    "job-tiles-offset": (f"/api/v1/jobs/JOB/tiles/?offset={BEYOND_64_BITS}", 400, "offset"),
    "job-logs-after": (f"/api/v1/jobs/JOB/logs/?after={BEYOND_64_BITS}", 400, "after"),
    "job-logs-after-huge": (f"/api/v1/jobs/JOB/logs/?after={HUGE}", 400, "after"),
    "job-logs-limit": ("/api/v1/jobs/JOB/logs/?limit=1e30", 400, "limit"),
    "job-id-in-url": ("/api/v1/jobs/99999999999999999999999/", 404, "No API endpoint at"),
    "job-id-huge-in-url": (f"/api/v1/jobs/{HUGE}/cancel/", 404, "No API endpoint at"),
    "tile-id-in-url": (f"/api/v1/tiles/{BEYOND_64_BITS}/", 404, "No API endpoint at"),
    "town-id-in-url": (f"/api/v1/towns/{HUGE}/", 404, "No API endpoint at"),
    "unknown-url": ("/api/v1/nothing-here/", 404, "No API endpoint at '/api/v1/nothing-here/'"),
    "nul-in-path": ("/api/v1/datafiles/a%00.csv/", 400, "path: must not hold NUL characters"),
}


@pytest.mark.parametrize("url,status,field", QUERIES.values(), ids=QUERIES.keys())
def test_it_answers_out_of_range_queries_with_json_naming_the_parameter(job, api, debug, url, status, field):
    assert_json_error(api.get(url.replace("JOB", str(job.pk))), status, field)


def test_the_dashboards_live_ids_beyond_64_bits_are_a_400(job, client, owner, debug):
    client.force_login(owner)
    client.raise_request_exception = False
    for ids in (BEYOND_64_BITS, f"{job.pk},{HUGE}", "-99999999999999999999"):
        assert_json_error(client.get(f"/jobs/live/?ids={ids}"), 400, "ids")
    assert client.get(f"/jobs/live/?ids={job.pk}").json()["jobs"][0]["id"] == job.pk


def test_the_storage_cleanup_refuses_a_huge_age(job, api, debug):
    assert_json_error(api.delete(f"/api/v1/storage/?older_than={HUGE}"), 400, "older_than")


# Bodies and forms beyond Django's limits.

def test_a_body_over_the_size_limit_is_a_413(index, api, debug, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"type": "slope", "tile_ids": [100], "labels": ["x" * 2000]})
    detail = assert_json_error(api.post("/api/v1/jobs/", body, content_type="application/json"), 413, "body")
    assert detail == "body: larger than the limit of 1000 bytes"
    assert Job.objects.count() == 0


def test_a_form_field_over_the_size_limit_is_a_413(db, api, debug, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    upload = SimpleUploadedFile("a.csv", b"a,b\n1,2\n")
    assert_json_error(api.post("/api/v1/datafiles/", {"file": upload, "name": "x" * 2000}), 413, "body")


def test_too_many_form_fields_is_a_400(db, debug, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    client = APIClient(raise_request_exception=False)
    body = "&".join(f"field{i}=1" for i in range(11))
    response = client.post("/api/v1/auth/token/", body, content_type="application/x-www-form-urlencoded")
    assert_json_error(response, 400, "fields: more than 10 query or form fields")


def test_too_many_query_fields_is_a_400(db, api, debug, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    assert_json_error(api.get("/api/v1/jobs/?" + "&".join(["label=a"] * 11)), 400, "fields")


def test_too_many_files_is_a_400(db, api, debug, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    files = [SimpleUploadedFile(f"{i}.csv", b"a,b\n1,2\n") for i in range(3)]
    assert_json_error(api.post("/api/v1/datafiles/", {"file": files}), 400, "files: more than 2 files")


# What never reaches a view's own error handling.

def test_an_unexpected_exception_is_a_json_500_that_names_no_internals(job, api, debug, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("secret internals at /srv/jobsite/jobs/services.py")

    monkeypatch.setattr(control, "job_cancel", broken)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Internal server error; it has been logged."}
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert len(logged) == 1 and logged[0].exc_info[0] is RuntimeError  # once, with its traceback


def test_a_post_without_the_trailing_slash_is_a_json_404(db, api, debug):
    assert_json_error(api.post("/api/v1/jobs", {}, format="json"), 404, "API URLs end with a slash")


def test_a_bad_host_is_a_json_400(db, api, debug):
    assert_json_error(api.get("/api/v1/jobs/", HTTP_HOST="elsewhere.example"), 400, "request")


def test_a_nul_in_the_token_is_a_400(db, debug):
    client = APIClient(raise_request_exception=False)
    response = client.get("/api/v1/jobs/", HTTP_AUTHORIZATION="Token abc\x00def")
    assert_json_error(response, 400, "Authorization")


def test_an_error_a_browser_asks_for_in_html_is_json(db, debug):
    response = APIClient().get("/api/v1/jobs/", HTTP_ACCEPT="text/html")
    assert_json_error(response, 401, "Authentication credentials were not provided.")
    assert response["WWW-Authenticate"] == "Token"


def test_outside_the_api_django_keeps_its_own_pages(db, client, debug):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_failed_job_body_writes_nothing(index, api, debug):
    api.post("/api/v1/jobs/", nested(100_000), content_type="application/json")
    assert (Job.objects.count(), JobTile.objects.count()) == (0, 0)


def test_an_upload_whose_content_length_is_not_a_number_is_a_400(db, api, debug):
    upload = SimpleUploadedFile("a.csv", b"a,b\n1,2\n")
    assert_json_error(api.post("/api/v1/datafiles/", {"file": upload}, CONTENT_LENGTH="abc"), 400, "file")
