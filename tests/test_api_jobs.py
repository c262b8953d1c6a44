import pytest
from rest_framework.authtoken.models import Token

from jobs import storage
from jobs.lifecycle import job_log
from jobs.services.control import job_cancel
from jobs.services.submit import job_submit
from jobs.models import Job, JobStatus

from .test_execution import run


@pytest.fixture
def job(index, owner):
    return job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2], labels=["flood"])


def test_it_needs_credentials(db, client_for):
    response = client_for().get("/api/v1/jobs/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_a_token_is_issued_for_a_username_and_password_and_accepted(owner, client_for):
    response = client_for().post("/api/v1/auth/token/", {"username": "owner", "password": "owner-pass-1"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert token == Token.objects.get(user=owner).key
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/jobs/").status_code == 200


def test_a_wrong_password_gets_no_token(owner, client_for):
    response = client_for().post("/api/v1/auth/token/", {"username": "owner", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert "Unable to log in" in response.json()["detail"]


def test_session_login_works_too(owner, client):
    client.login(username="owner", password="owner-pass-1")
    assert client.get("/api/v1/jobs/").status_code == 200


def test_it_creates_a_job(index, owner, client_for):
    response = client_for(owner).post("/api/v1/jobs/", {
        "type": "slope", "tile_ids": [index.id_at(0, 0), index.id_at(0, 1)], "params": {"units": "percent"},
        "labels": ["a", "b"]}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["type"] == "slope" and body["status"] == "queued" and body["owner"] == "owner"
    assert body["params"]["units"] == "percent" and body["labels"] == ["a", "b"]
    assert (body["tiles_total"], body["tiles_done"], body["tiles_failed"], body["progress"]) == (2, 0, 0, 0)
    assert body["outputs"] == [] and body["error"] == "" and body["started"] is None
    assert Job.objects.get(pk=body["id"]).owner == owner


def test_it_creates_a_town_job(town, owner, client_for):
    response = client_for(owner).post("/api/v1/jobs/", {"type": "hillshade", "town_id": town.id}, format="json")
    assert response.status_code == 201
    assert response.json()["tiles_total"] == 4 and response.json()["town"] == town.id


@pytest.mark.parametrize("body,field,problem", [
    ({"tile_ids": [100]}, "type", "give a job type, or steps for a chain"),
    ({"type": "hillshade"}, "tile_ids", "give exactly one of tile_ids and town_id"),
    ({"type": "hillshade", "tile_ids": [100], "town_id": 11850}, "town_id", "give exactly one"),
    ({"type": "hillshade", "tile_ids": []}, "tile_ids", "must not be empty"),
    ({"type": "hillshade", "tile_ids": [100, 100]}, "tile_ids", "duplicate tile ids: 100"),
    ({"type": "hillshade", "tile_ids": [100, 1, 2]}, "tile_ids", "unknown tile ids: 1, 2"),
    ({"type": "hillshade", "tile_ids": ["x"]}, "tile_ids", "A valid integer is required."),
    ({"type": "hillshade", "town_id": 999}, "town_id", "unknown town id: 999"),
    ({"type": "fog", "tile_ids": [100]}, "type", "unknown job type 'fog'"),
    ({"type": "hillshade", "tile_ids": [100], "params": {"altitude": 91}}, "params", "must be at most 90"),
    ({"type": "hillshade", "tile_ids": [100], "params": "steep"}, "params", "Expected a dictionary"),
    ({"type": "hillshade", "tile_ids": [100], "interim_results": "maybe"}, "interim_results", "not a valid choice"),
])
def test_it_rejects_bad_input_naming_the_field(town, owner, client_for, body, field, problem):
    response = client_for(owner).post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 400
    data = response.json()
    assert field in data["errors"] and problem in data["detail"]
    assert f"{field}: " in data["detail"] or f"{field}." in data["detail"]  # e.g. "params.altitude: ..."
    assert Job.objects.count() == 0


def test_too_many_tiles_is_a_400(index, owner, client_for, settings):
    settings.MAX_TILES_PER_JOB = 2
    response = client_for(owner).post("/api/v1/jobs/", {"type": "slope", "tile_ids": index.ids[:3]}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "tile_ids: 3 tiles is more than the limit of 2 tiles per job"


def test_a_user_lists_only_their_own_jobs_and_staff_see_all(job, index, other, staff, client_for):
    job_submit(owner=other, job_type="slope", tile_ids=index.ids[:1])
    assert [j["owner"] for j in client_for(job.owner).get("/api/v1/jobs/").json()["results"]] == ["owner"]
    assert [j["owner"] for j in client_for(other).get("/api/v1/jobs/").json()["results"]] == ["other"]
    assert sorted(j["owner"] for j in client_for(staff).get("/api/v1/jobs/").json()["results"]) == ["other", "owner"]


def test_another_users_job_is_not_found(job, other, staff, client_for):
    assert client_for(other).get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert client_for(other).post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 404
    assert client_for(other).get(f"/api/v1/jobs/{job.pk}/logs/").status_code == 404
    assert client_for(staff).get(f"/api/v1/jobs/{job.pk}/").status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


def test_it_shows_progress_while_tiles_finish(job, client_for):
    from jobs.models import JobTile, TileStatus

    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    JobTile.objects.filter(pk=job.tiles.first().pk).update(status=TileStatus.SUCCEEDED)
    body = client_for(job.owner).get(f"/api/v1/jobs/{job.pk}/").json()
    assert (body["status"], body["tiles_done"], body["progress"]) == ("running", 1, 50)


def test_cancel_and_then_409(job, client_for):
    client = client_for(job.owner)
    response = client.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    again = client.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert again.status_code == 409
    assert again.json() == {"detail": f"job {job.pk} is already canceled; only waiting, queued, running or merging jobs can be canceled"}


def test_staff_can_cancel_anybodys_job(job, staff, client_for):
    assert client_for(staff).post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 200
    assert "canceled by staff" in job.logs.last().message


def test_logs_page_forward_from_a_cursor(job, client_for):
    client = client_for(job.owner)
    first = client.get(f"/api/v1/jobs/{job.pk}/logs/").json()
    assert [entry["message"][:15] for entry in first["results"]] == ["owner submitted"]
    assert set(first["results"][0]) == {"id", "created", "level", "tile", "message"}
    job_cancel(job=job, by="owner")
    job_log(job.pk, "one more line")
    tail = client.get(first["next"]).json()
    assert [entry["message"][:15] for entry in tail["results"]] == ["canceled by own", "one more line"]
    assert tail["last_id"] == tail["results"][-1]["id"]
    assert client.get(tail["next"]).json()["results"] == []


def test_logs_take_a_limit_and_refuse_a_bad_cursor(job, client_for):
    for i in range(5):
        job_log(job.pk, f"line {i}")
    client = client_for(job.owner)
    page = client.get(f"/api/v1/jobs/{job.pk}/logs/?limit=2").json()
    assert len(page["results"]) == 2
    assert len(client.get(page["next"]).json()["results"]) == 2
    response = client.get(f"/api/v1/jobs/{job.pk}/logs/?after=abc")
    assert response.status_code == 400 and response.json()["detail"].startswith("after: ")


def test_a_finished_job_shows_its_outputs_and_they_download(index, owner, media, client_for):
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2]))
    client = client_for(owner)
    body = client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert (body["status"], body["progress"], body["tiles_done"]) == ("succeeded", 100, 2)
    cog = body["outputs"][0]
    assert cog["name"] == "hillshade.tif" and cog["url"] == f"http://testserver/api/v1/jobs/{job.pk}/outputs/hillshade.tif"
    response = client.get(cog["url"])
    assert response.status_code == 200 and response["Content-Type"] == "image/tiff"
    assert int(response["Content-Length"]) == cog["size"]
    assert b"".join(response.streaming_content)[:4] == b"II*\x00"
    assert client.get(f"/api/v1/jobs/{job.pk}/outputs/other.tif/").status_code == 404
    assert client.get(f"/api/v1/jobs/{job.pk}/outputs/..%2F..%2Fsecret/").status_code == 404


def test_the_job_carries_links_duration_and_owner(job, client_for):
    body = client_for(job.owner).get(f"/api/v1/jobs/{job.pk}/").json()
    base = f"http://testserver/api/v1/jobs/{job.pk}/"
    assert body["links"] == {"self": base, "tiles": base + "tiles/", "logs": base + "logs/",
                             "outputs": base + "outputs/", "cancel": base + "cancel/", "resume": None, "stac": None}
    assert body["duration_s"] is None and body["owner"] == "owner" and body["updated"]


def test_a_finished_jobs_duration_and_links(index, owner, media, client_for):
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    body = client_for(owner).get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["duration_s"] == round((job.finished - job.started).total_seconds(), 3)
    assert body["links"]["cancel"] is None
    outputs = client_for(owner).get(body["links"]["outputs"]).json()
    assert [o["name"] for o in outputs] == ["slope.tif", "thumbnail.png"]


def test_deleting_a_finished_job_removes_it_and_its_files(index, owner, media, client_for,
                                                          django_capture_on_commit_callbacks):
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).delete(f"/api/v1/jobs/{job.pk}/")
    assert response.status_code == 204
    assert not Job.objects.filter(pk=job.pk).exists() and not storage.job_dir(job.pk).exists()


def test_deleting_an_unfinished_job_is_a_409(job, client_for):
    response = client_for(job.owner).delete(f"/api/v1/jobs/{job.pk}/")
    assert response.status_code == 409
    assert response.json()["detail"] == f"job {job.pk} is queued; cancel it first, only finished jobs can be deleted"
    assert Job.objects.filter(pk=job.pk).exists()


def test_another_users_job_cannot_be_deleted(index, owner, other, media, client_for):
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    assert client_for(other).delete(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert Job.objects.filter(pk=job.pk).exists()


def test_the_tiles_of_a_job_with_their_status(index, owner, media, client_for):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    from jobs.models import JobTile

    JobTile.objects.filter(job=job, tile__number=index.ids[1]).update(status="failed", error="bad data", attempts=1)
    client = client_for(owner)
    body = client.get(f"/api/v1/jobs/{job.pk}/tiles/").json()
    assert body["count"] == 3
    assert body["results"][1] == {"tile_id": index.ids[1], "status": "failed", "attempts": 1, "started": None,
                                  "finished": None, "output_size": None, "bytes_written": None, "cpu_seconds": None,
                                  "peak_memory": None, "error": "bad data"}
    failed = client.get(f"/api/v1/jobs/{job.pk}/tiles/?status=failed,canceled").json()
    assert [t["tile_id"] for t in failed["results"]] == [index.ids[1]]
    bad = client.get(f"/api/v1/jobs/{job.pk}/tiles/?status=lost")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("status: ")


def test_cors_is_off_unless_origins_are_configured(job, client_for, settings):
    client = client_for(job.owner)
    assert "Access-Control-Allow-Origin" not in client.get("/api/v1/jobs/", HTTP_ORIGIN="https://maps.example.org")
    settings.CORS_ALLOWED_ORIGINS = ["https://maps.example.org"]
    response = client.get("/api/v1/jobs/", HTTP_ORIGIN="https://maps.example.org")
    assert response["Access-Control-Allow-Origin"] == "https://maps.example.org"
    assert "Access-Control-Allow-Origin" not in client.get("/api/v1/jobs/", HTTP_ORIGIN="https://evil.example")
