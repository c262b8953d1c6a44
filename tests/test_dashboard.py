"""The dashboard's pages and actions with Django's test client (the browser tests drive it live)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datafiles.models import DataFile
from datafiles.services import datafile_store
from jobs import services
from jobs.models import Job, JobStatus

from .datafile_samples import COLOR_TABLE, CSV, geotiff_bytes
from .test_execution import run


@pytest.fixture
def logged_in(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def job(index, owner):
    return services.job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:4], labels=["flood"])


def page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, url
    return response.content.decode()


@pytest.mark.parametrize("url", ["/", "/jobs/new/", "/datafiles/", "/jobs/1/"])
def test_pages_need_a_login(db, client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_login_page_and_login(owner, client):
    assert "Log in" in page(client, "/accounts/login/")
    response = client.post("/accounts/login/", {"username": "owner", "password": "owner-pass-1"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_jobs_page_lists_own_jobs_with_progress_and_filters(job, index, other, logged_in):
    services.job_submit(owner=other, job_type="aspect", tile_ids=index.ids[:1])
    html = page(logged_in, "/")
    assert f'data-job="{job.pk}"' in html and 'aria-valuenow="0"' in html and "flood" in html
    assert html.count("data-job=") == 1
    assert 'data-job=' not in page(logged_in, "/?status=succeeded")
    assert f'data-job="{job.pk}"' in page(logged_in, "/?label=flood&type=slope&search=flo")
    assert "status: Select a valid choice" in page(logged_in, "/?status=lost")
    assert 'href="/admin/"' not in html  # not staff


def test_staff_see_every_job_and_the_admin_link(job, staff, client):
    client.force_login(staff)
    html = page(client, "/")
    assert f'data-job="{job.pk}"' in html and 'href="/admin/"' in html and 'href="/api/v1/docs/"' in html


def test_the_list_pages(index, owner, logged_in):
    Job.objects.bulk_create([Job(type="slope", owner=owner, tiles_total=1) for _ in range(30)])
    assert "page 1 of 2 (30 jobs)" in page(logged_in, "/") and "page 2 of 2" in page(logged_in, "/?page=2")


def test_the_live_endpoints(job, other, logged_in, client):
    data = logged_in.get(f"/jobs/live/?ids={job.pk},999").json()
    assert data["jobs"] == [{"id": job.pk, "status": "queued", "progress": 0, "tiles_done": 0, "tiles_failed": 0,
                             "tiles_total": 4, "final": False, "duration": ""}]
    live = logged_in.get(f"/jobs/{job.pk}/live/?after=0").json()
    assert live["tiles"] == {str(t): "pending" for t in job.tiles.values_list("tile_id", flat=True)}
    assert live["logs"][0]["message"].startswith("owner submitted") and live["allowed"] == {
        "cancel": True, "resume": False, "delete": False}
    assert logged_in.get("/jobs/live/?ids=x").status_code == 400
    client.force_login(other)
    assert client.get(f"/jobs/{job.pk}/live/").status_code == 404 and client.get(f"/jobs/live/?ids={job.pk}").json() == {"jobs": []}


def test_the_job_page_shows_the_tile_map_log_and_only_allowed_buttons(job, logged_in):
    html = page(logged_in, f"/jobs/{job.pk}/")
    assert html.count('class="tile status-pending"') == 4 and "<title>tile 100: pending</title>" in html
    assert "owner submitted slope" in html and "slope=" not in html
    cancel = html.index('data-action="cancel"')
    assert " hidden" not in html[cancel - 120:cancel]  # shown
    delete = html.index('data-action="delete"')
    assert " hidden" in html[delete - 120:delete]  # not for a queued job
    assert "Resume…" not in html


def test_a_finished_job_shows_its_thumbnail_and_downloads(index, owner, media, logged_in):
    job = run(services.job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2]))
    html = page(logged_in, f"/jobs/{job.pk}/")
    assert f'src="/api/v1/jobs/{job.pk}/outputs/thumbnail.png/"' in html and "hillshade.tif" in html
    assert logged_in.get(f"/api/v1/jobs/{job.pk}/outputs/thumbnail.png/")["Content-Type"] == "image/png"


def test_another_users_job_page_is_a_404(job, other, client):
    client.force_login(other)
    assert client.get(f"/jobs/{job.pk}/").status_code == 404
    assert client.post(f"/jobs/{job.pk}/cancel/", {"confirm": "yes"}).status_code == 404
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_cancel_asks_first_without_javascript_then_cancels(job, logged_in):
    confirm = logged_in.post(f"/jobs/{job.pk}/cancel/")
    assert confirm.status_code == 200 and "Cancel job" in confirm.content.decode()
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    done = logged_in.post(f"/jobs/{job.pk}/cancel/", {"confirm": "yes"}, follow=True)
    assert "Job {} canceled.".format(job.pk) in done.content.decode()
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELED
    again = logged_in.post(f"/jobs/{job.pk}/cancel/", {"confirm": "yes"}, follow=True)
    assert "is already canceled" in again.content.decode()


def test_actions_need_csrf(job, owner):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    assert strict.post(f"/jobs/{job.pk}/cancel/", {"confirm": "yes"}).status_code == 403


def test_resume_with_a_changed_parameter_and_delete(job, logged_in, media):
    services.job_cancel(job=job, by="owner")
    html = page(logged_in, f"/jobs/{job.pk}/")
    assert "Resume…" in html and 'name="param_units"' in html
    response = logged_in.post(f"/jobs/{job.pk}/resume/", {"param_units": "percent", "param_scale": "1", "confirm": "yes",
                                                          "param_algorithm": "Horn"}, follow=True)
    assert "resumed: 4 tiles will run" in response.content.decode()
    job.refresh_from_db()
    assert job.params["units"] == "percent" and job.status == JobStatus.QUEUED
    bad = logged_in.post(f"/jobs/{job.pk}/resume/", {"param_scale": "-1", "confirm": "yes"}, follow=True)
    assert "params.scale: must be greater than 0" in bad.content.decode()
    queued = logged_in.post(f"/jobs/{job.pk}/resume/", {"confirm": "yes"}, follow=True)
    assert "only failed or canceled jobs can be resumed" in queued.content.decode()
    services.job_cancel(job=job, by="owner")
    assert logged_in.post(f"/jobs/{job.pk}/delete/", {"confirm": "yes"}).status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists()


def test_the_new_job_form_is_built_from_the_type(index, town, logged_in):
    html = page(logged_in, "/jobs/new/")
    assert 'name="param_azimuth"' in html and 'value="315.0"' in html and "(≥ 0, ≤ 360)" in html
    assert 'name="param_mode"' in html and "Testheim" in html
    slope = page(logged_in, "/jobs/new/?type=slope")
    assert 'name="param_units"' in slope and 'name="param_azimuth"' not in slope
    assert logged_in.get("/jobs/new/?type=erosion").status_code == 404


def test_a_new_job_from_the_form(index, town, logged_in, owner):
    response = logged_in.post("/jobs/new/", {"type": "hillshade", "town": town.pk, "param_z_factor": "2",
                                             "param_scale": "1", "param_azimuth": "300", "param_altitude": "40",
                                             "param_mode": "standard", "param_algorithm": "Horn", "labels": "a, b"})
    job = Job.objects.get(owner=owner)
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.tiles_total == 4 and job.params["z_factor"] == 2.0 and sorted(job.labels.values_list("name", flat=True)) == ["a", "b"]


@pytest.mark.parametrize("data,field,problem", [
    ({"tile_ids": "100, x"}, "tile_ids", "tile ids are whole numbers"),
    ({"tile_ids": "1, 2"}, "tile_ids", "unknown tile ids: 1, 2"),
    ({}, "tile_ids", "give exactly one of tile_ids and town_id"),
    ({"tile_ids": "100", "param_azimuth": "400"}, "param_azimuth", "Ensure this value is less than or equal to 360"),
    ({"tile_ids": "100", "param_z_factor": "0"}, "param_z_factor", "z_factor: must be greater than 0"),
])
def test_errors_are_shown_next_to_their_fields(index, logged_in, data, field, problem):
    defaults = {"type": "hillshade", "param_z_factor": "1", "param_scale": "1", "param_azimuth": "315",
                "param_altitude": "45", "param_mode": "standard", "param_algorithm": "Horn"}
    html = logged_in.post("/jobs/new/", {**defaults, **data}).content.decode()
    assert problem in html and Job.objects.count() == 0
    start = html.index(f'name="{field}"')
    assert 'class="error"' in html[start:start + 1200]


def test_input_files_are_chosen_from_your_own(index, owner, other, media, logged_in):
    datafile_store(owner=owner, upload=SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode()))
    datafile_store(owner=other, upload=SimpleUploadedFile("secret.txt", COLOR_TABLE.encode()))
    html = page(logged_in, "/jobs/new/?type=color-relief")
    assert '<option value="ramp.txt">' in html and "secret.txt" not in html
    response = logged_in.post("/jobs/new/", {"type": "color-relief", "tile_ids": "100", "input_color_table": "ramp.txt",
                                             "param_matching": "interpolate"})
    assert response.status_code == 302 and Job.objects.get().inputs.get().file_name == "ramp.txt"


def test_upload_without_javascript_then_detail_and_delete(owner, media, logged_in, tmp_path,
                                                          django_capture_on_commit_callbacks):
    response = logged_in.post("/datafiles/", {"file": SimpleUploadedFile("dem.tif", geotiff_bytes(tmp_path))}, follow=True)
    html = response.content.decode()
    assert "dem.tif stored: a raster file." in html and 'src="/datafiles/dem.tif/preview.png"' in html
    assert "&quot;width&quot;: 20" in html
    preview = logged_in.get("/datafiles/dem.tif/preview.png")
    assert preview["Content-Type"] == "image/png" and preview.content[:4] == b"\x89PNG"
    assert "20 × 10, 1 band, EPSG:25832" in page(logged_in, "/datafiles/")
    assert "Delete dem.tif?" in logged_in.post("/datafiles/dem.tif/delete/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        logged_in.post("/datafiles/dem.tif/delete/", {"confirm": "yes"})
    assert not DataFile.objects.exists()


def test_a_table_preview_and_upload_errors(owner, media, logged_in):
    logged_in.post("/datafiles/", {"file": SimpleUploadedFile("stations.csv", CSV.encode())})
    html = page(logged_in, "/datafiles/stations.csv/")
    assert "<th>station</th>" in html and "<td>7.25</td>" in html
    bad = logged_in.post("/datafiles/", {"file": SimpleUploadedFile("x.tif", b"not a tiff")}).content.decode()
    assert "x.tif cannot be read as .tif" in bad
    again = logged_in.post("/datafiles/", {"file": SimpleUploadedFile("stations.csv", CSV.encode())}).content.decode()
    assert "you already have a data file named stations.csv" in again
    assert logged_in.get("/datafiles/nothing.csv/").status_code == 404


def test_the_job_page_forms_post_to_the_dashboard_not_the_api(job, logged_in):
    html = page(logged_in, f"/jobs/{job.pk}/")
    assert f'action="/jobs/{job.pk}/cancel/"' in html and f'action="/jobs/{job.pk}/delete/"' in html
