"""The OpenAPI schema, its documentation page, and the API checked against the schema."""

import re

import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile

from datafiles.services import datafile_store
from jobs.services.submit import job_submit

from .api_schema import AS_DOCUMENTED, NO_SERVER_ERROR, bounded_run, schema_at
from .datafile_samples import COLOR_TABLE, CSV
from .test_execution import run


def test_the_schema_describes_every_endpoint(db, client):
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ["/api/v1/jobs/", "/api/v1/jobs/{id}/", "/api/v1/jobs/{id}/cancel/", "/api/v1/jobs/{id}/logs/",
                 "/api/v1/jobs/{id}/tiles/", "/api/v1/jobs/{id}/outputs/", "/api/v1/jobs/{id}/outputs/{name}",
                 "/api/v1/jobs/{id}/outputs/{name}/link/",
                 "/api/v1/tiles/", "/api/v1/tiles/{number}/", "/api/v1/towns/", "/api/v1/towns/{id}/",
                 "/api/v1/job-types/", "/api/v1/job-types/{name}/", "/api/v1/labels/", "/api/v1/auth/token/",
                 "/start_job", "/job_status", "/cancel_job"]:
        assert path in paths, path
    assert "/api/v1/jobs/{id}/outputs/{name}/" not in paths  # the older URL of a file, still served
    assert set(paths["/api/v1/jobs/{id}/"]) == {"get", "put", "delete"}
    assert "/api/v1/jobs/{id}/resume/" in paths and set(paths["/api/v1/storage/"]) == {"get", "delete"}
    create = paths["/api/v1/jobs/"]["post"]
    assert {"201", "400", "401", "429"} <= set(create["responses"])
    filters = {p["name"] for p in paths["/api/v1/jobs/"]["get"]["parameters"]}
    assert {"status", "type", "label", "label_all", "owner", "town", "tile", "created_after", "finished_before",
            "search", "ordering", "limit", "offset"} <= filters


def test_the_docs_are_served_from_local_files(db, client):
    page = client.get("/api/v1/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(url.startswith("/static/") for url in assets if url.endswith((".js", ".css"))), assets
    assert "cdn" not in page.lower()
    script = next(url for url in assets if url.endswith("swagger-ui-bundle.js"))
    assert client.get(script).status_code == 200


@pytest.fixture
def api(index, town, owner, other, media):
    """Something to find for every endpoint: a finished job with outputs, a queued one, another user's."""
    run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2], labels=["flood"]))
    job_submit(owner=owner, job_type="slope", town_id=town.id)
    job_submit(owner=other, job_type="aspect", tile_ids=index.ids[:1])
    for name, content in [("stations.csv", CSV), ("ramp.txt", COLOR_TABLE)]:
        datafile_store(owner=owner, upload=SimpleUploadedFile(name, content.encode()))
    with schema_at("/api/v1/schema/") as schema:
        yield schema


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@bounded_run
def test_the_api_answers_as_its_schema_says(case, owner_token):
    """No 5xx, and every status code, content type and body as documented (the health endpoint's
    503 is its documented answer while no cluster runs, as in this test)."""
    checks = list(AS_DOCUMENTED)
    if case.path != "/api/v1/health/":
        checks.append(NO_SERVER_ERROR)
    case.call_and_validate(headers={"Authorization": f"Token {owner_token}"}, checks=checks)
