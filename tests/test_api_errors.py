"""The error contract: JSON with a `detail` everywhere under /api/, never an HTML page or a 500."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from jobs.services.control import job_cancel
from jobs.services.submit import job_submit
from jobs.models import Job

ENDPOINTS = ["/api/v1/jobs/", "/api/v1/jobs/1/", "/api/v1/jobs/1/logs/", "/api/v1/jobs/1/tiles/",
             "/api/v1/jobs/1/outputs/", "/api/v1/tiles/", "/api/v1/towns/", "/api/v1/job-types/", "/api/v1/labels/"]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_every_endpoint_needs_credentials(db, client_for, url):
    response = client_for().get(url)
    assert response.status_code == 401 and response["Content-Type"] == "application/json"
    assert response.json()["detail"] == "Authentication credentials were not provided."
    assert response["WWW-Authenticate"] == "Token"


def test_a_bad_token_is_a_401(db, client_for):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/jobs/").json() == {"detail": "Invalid token."}


@pytest.mark.parametrize("url", ["/api/v1/nothing-here/", "/api/v1/jobs/abc/", "/api/v2/jobs/"])
def test_an_unknown_api_url_is_a_json_404(owner, client_for, url):
    response = client_for(owner).get(url)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert "detail" in response.json()


def test_malformed_json_is_a_400_with_detail(owner, client_for):
    response = client_for(owner).post("/api/v1/jobs/", "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["detail"].startswith("JSON parse error")


def test_a_wrong_method_is_a_json_405(owner, client_for):
    response = client_for(owner).put("/api/v1/tiles/")
    assert response.status_code == 405 and response.json() == {"detail": 'Method "PUT" not allowed.'}


def test_a_body_that_is_not_an_object_is_a_400(owner, client_for):
    response = client_for(owner).post("/api/v1/jobs/", [1, 2], format="json")
    assert response.status_code == 400 and "detail" in response.json()


def test_the_old_endpoints_wrap_their_errors_too(db, client_for):
    response = client_for().get("/job_status?job_id=1")
    assert response.status_code == 401
    assert response.json() == {"status": 401, "data": None, "message": "Authentication credentials were not provided."}


def test_active_jobs_beyond_the_limit_are_a_429_saying_so(index, owner, other, client_for, settings):
    settings.MAX_ACTIVE_JOBS_PER_USER = 2
    client = client_for(owner)
    for _ in range(2):
        assert client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100]}, format="json").status_code == 201
    response = client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100]}, format="json")
    assert response.status_code == 429
    assert response.json() == {"detail": "you have 2 active jobs and the limit is 2; wait for one to finish or cancel one"}
    assert Job.objects.filter(owner=owner).count() == 2
    assert client_for(other).post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100]}, format="json").status_code == 201
    job_cancel(job=Job.objects.filter(owner=owner).first(), by="owner")
    assert client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100]}, format="json").status_code == 201
    legacy = client.get("/start_job?tile_ids=100")
    assert legacy.status_code == 429 and legacy.json()["status"] == 429


@pytest.mark.parametrize("url", [
    "/api/v1/jobs/?town=99999999999999999999", "/api/v1/jobs/?tile=-2.3e268", "/api/v1/jobs/?tile=1.5",
    "/api/v1/tiles/?id=1,99999999999999999999", "/api/v1/tiles/?town=99999999999999999999",
    "/job_status?job_id=99999999999999999999",
])
def test_numbers_beyond_any_id_are_a_400_not_an_overflow(index, owner, client_for, url):
    assert client_for(owner).get(url).status_code == 400


@pytest.mark.parametrize("url", ["/api/v1/jobs/9999999999999999999999/", "/api/v1/tiles/99999999999/",
                                 "/api/v1/towns/99999999999/"])
def test_ids_beyond_any_id_in_a_url_are_a_404(index, owner, client_for, url):
    assert client_for(owner).get(url).status_code == 404


@pytest.mark.parametrize("body,field", [
    ({"type": "slope", "tile_ids": [99999999999999999999]}, "tile_ids"),
    ({"type": "slope", "town_id": 99999999999999999999}, "town_id"),
    ({"type": "slope", "tile_ids": [-1]}, "tile_ids"),
])
def test_ids_beyond_any_id_in_a_body_are_a_400(index, owner, client_for, body, field):
    response = client_for(owner).post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"]


@pytest.mark.parametrize("debug", [True, False], ids=["debug-on", "debug-off"])
@pytest.mark.parametrize("method", ["get", "head", "post", "put", "patch", "delete", "options"])
@pytest.mark.parametrize("url", ["/api", "/api/", "/api/v1/nothing-here/", "/api/v1/nothing-here", "/api/v1/jobs/abc/",
                                 "/api/v2/jobs/"])
def test_an_unknown_api_url_is_a_json_404_for_every_method_with_debug_on_too(owner, client_for, settings, debug,
                                                                             method, url):
    """`make run` serves with DEBUG on, where Django answers an unknown URL with its HTML debug page
    listing every URL pattern."""
    settings.DEBUG = debug
    response = getattr(client_for(owner), method)(url)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    if method == "head":
        assert response.content == b""
    else:
        assert response.json()["detail"].startswith(f"No API endpoint at '{url}'")


def assert_field_lists(errors):
    """Each field maps to a non-empty list of messages, or (a field with parts) to an object of the same shape."""
    assert isinstance(errors, dict) and errors
    for value in errors.values():
        if isinstance(value, dict):
            assert_field_lists(value)
        else:
            assert isinstance(value, list) and value and all(isinstance(message, str) for message in value), errors


def field_at(errors, path):
    for part in path.split("."):
        errors = errors[part]
    return errors


# One bad request of each kind at each endpoint that takes input: (method, url, body, the field it names).
BAD_REQUESTS = {
    "job-unknown-type": ("post", "/api/v1/jobs/", {"type": "fog", "tile_ids": [100]}, "type"),
    "job-missing-type": ("post", "/api/v1/jobs/", {"tile_ids": [100]}, "type"),
    "job-unknown-tiles": ("post", "/api/v1/jobs/", {"type": "slope", "tile_ids": [1, 2]}, "tile_ids"),
    "job-tile-not-a-number": ("post", "/api/v1/jobs/", {"type": "slope", "tile_ids": ["x"]}, "tile_ids.0"),
    "job-tiles-and-town": ("post", "/api/v1/jobs/", {"type": "slope", "tile_ids": [100], "town_id": 11850}, "town_id"),
    "job-unknown-town": ("post", "/api/v1/jobs/", {"type": "slope", "town_id": 999}, "town_id"),
    "job-param-beyond": ("post", "/api/v1/jobs/", {"type": "hillshade", "tile_ids": [100], "params": {"azimuth": 400}},
                         "params.azimuth"),
    "job-params-not-an-object": ("post", "/api/v1/jobs/", {"type": "slope", "tile_ids": [100], "params": [1]},
                                 "params"),
    "job-bad-label": ("post", "/api/v1/jobs/", {"type": "slope", "tile_ids": [100], "labels": ["a" * 300]}, "labels"),
    "job-interim-choice": ("post", "/api/v1/jobs/", {"type": "slope", "tile_ids": [100], "interim_results": "x"},
                           "interim_results"),
    "job-missing-input": ("post", "/api/v1/jobs/", {"type": "color-relief", "tile_ids": [100]}, "inputs.color_table"),
    "job-wait-timeout": ("post", "/api/v1/jobs/", {"type": "slope", "tile_ids": [100], "wait_timeout": 0},
                         "wait_timeout"),
    "job-body-a-list": ("post", "/api/v1/jobs/", [1], "non_field_errors"),
    "resume-param": ("post", "/api/v1/jobs/JOB/resume/", {"params": {"scale": -1}}, "params.scale"),
    "resume-by-put": ("put", "/api/v1/jobs/JOB/", {"params": {"nope": 1}}, "params.nope"),
    "jobs-status": ("get", "/api/v1/jobs/?status=lost", None, "status"),
    "jobs-type": ("get", "/api/v1/jobs/?type=nosuch", None, "type"),
    "jobs-created-after": ("get", "/api/v1/jobs/?created_after=yesterday", None, "created_after"),
    "jobs-finished-before": ("get", "/api/v1/jobs/?finished_before=soon", None, "finished_before"),
    "jobs-ordering": ("get", "/api/v1/jobs/?ordering=owner", None, "ordering"),
    "jobs-tile": ("get", "/api/v1/jobs/?tile=abc", None, "tile"),
    "jobs-limit": ("get", "/api/v1/jobs/?limit=x", None, "limit"),
    "jobs-offset": ("get", "/api/v1/jobs/?offset=-1", None, "offset"),
    "job-tiles-status": ("get", "/api/v1/jobs/JOB/tiles/?status=lost", None, "status"),
    "job-logs-after": ("get", "/api/v1/jobs/JOB/logs/?after=x", None, "after"),
    "tiles-bbox": ("get", "/api/v1/tiles/?bbox=1,2", None, "bbox"),
    "tiles-id": ("get", "/api/v1/tiles/?id=a", None, "id"),
    "towns-limit": ("get", "/api/v1/towns/?limit=0", None, "limit"),
    "datafiles-kind": ("get", "/api/v1/datafiles/?kind=bogus", None, "kind"),
    "datafiles-ordering": ("get", "/api/v1/datafiles/?ordering=bogus", None, "ordering"),
    "datafile-no-file": ("upload", "/api/v1/datafiles/", {}, "file"),
    "datafile-extension": ("upload", "/api/v1/datafiles/", {"file": ("a.exe", b"x")}, "name"),
    "datafile-not-what-it-says": ("upload", "/api/v1/datafiles/", {"file": ("a.tif", b"not a tiff")}, "file"),
    "datafile-names-differ": ("replace", "/api/v1/datafiles/a.csv/", {"file": ("a.csv", b"a\n1\n"), "name": "b.csv"},
                              "name"),
    "datafile-content-format": ("get", "/api/v1/datafiles/a.csv/content/?format=png", None, "format"),
    "storage-older-than": ("delete", "/api/v1/storage/?older_than=x", None, "older_than"),
    "token-missing-fields": ("token", "/api/v1/auth/token/", {}, "password"),
    "token-wrong-password": ("token", "/api/v1/auth/token/", {"username": "owner", "password": "no"},
                             "non_field_errors"),
}


@pytest.mark.parametrize("method,url,body,field", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_every_400_maps_each_field_to_a_list_of_messages(index, owner, media, method, url, body, field):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])
    job_cancel(job=job)
    client = APIClient()
    client.force_authenticate(owner)
    client.post("/api/v1/datafiles/", {"file": SimpleUploadedFile("a.csv", b"a,b\n1,2\n")})
    url = url.replace("JOB", str(job.pk))
    if method in ("upload", "replace"):
        files = {key: SimpleUploadedFile(*value) if isinstance(value, tuple) else value for key, value in body.items()}
        response = (client.post if method == "upload" else client.put)(url, files)
    elif method == "token":
        response = APIClient().post(url, body, format="json")
    elif body is None:
        response = getattr(client, method)(url)
    else:
        response = getattr(client, method)(url, body, format="json")
    assert response.status_code == 400, response.content
    answer = response.json()
    assert set(answer) == {"detail", "errors"}
    assert_field_lists(answer["errors"])
    messages = field_at(answer["errors"], field)
    assert isinstance(messages, list)
    # `detail` says the same in one line, each message after its dotted field name.
    assert (messages[0] if field == "non_field_errors" else f"{field}: {messages[0]}") in answer["detail"]


@pytest.mark.parametrize("url,valid", [
    ("/api/v1/jobs/?status=lost", "waiting, queued, running, merging, succeeded, failed, canceled"),
    ("/api/v1/jobs/?status=queued,lost", "waiting, queued, running, merging, succeeded, failed, canceled"),
    ("/api/v1/jobs/?type=nosuch", "aspect, calc, chain, clip, color-relief, echo, hillshade, reproject, slope, zonal-statistics"),
    ("/api/v1/jobs/?ordering=owner",
     "created, -created, finished, -finished, duration, -duration, status, -status, id, -id"),
    ("/api/v1/jobs/JOB/tiles/?status=lost", "waiting, pending, running, succeeded, failed, canceled"),
    ("/api/v1/datafiles/?kind=photo", "raster, vector, table, text"),
    ("/api/v1/datafiles/?ordering=colour", "name, -name, uploaded, -uploaded, size, -size, kind, -kind"),
])
def test_an_unknown_choice_is_a_400_naming_the_valid_ones_everywhere(index, owner, client_for, url, valid):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])
    response = client_for(owner).get(url.replace("JOB", str(job.pk)))
    assert response.status_code == 400
    field = url.split("?")[1].split("=")[0]
    bad = url.split("=")[1].split(",")[-1]
    assert response.json()["errors"] == {field: [f"Select a valid choice: '{bad}' is not one of {valid}"]}


def test_an_unknown_interim_results_choice_names_the_valid_ones(index, owner, client_for):
    response = client_for(owner).post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100], "interim_results": "maybe"},
                                      format="json")
    assert response.json()["errors"] == {
        "interim_results": ["'maybe' is not a valid choice; the choices are always, on_error, never"]}
