"""The error contract: JSON with a `detail` everywhere under /api/, never an HTML page or a 500."""

import pytest

from jobs import services
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
    services.job_cancel(job=Job.objects.filter(owner=owner).first(), by="owner")
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

