"""The dashboard's pages and actions with Django's test client (the browser tests drive it live)."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from datafiles.models import DataFile
from datafiles.services import datafile_store
from jobs import lifecycle
from jobs.services.control import job_cancel, job_resume
from jobs.services.submit import job_submit
from jobs.services.claims import claim_tiles
from jobs.services.worker import _record_succeeded
from jobsite.exceptions import Rejected
from jobs.models import Job, JobStatus

from .datafile_samples import COLOR_TABLE, CSV, geotiff_bytes, polygons_bytes
from .test_execution import run


@pytest.fixture
def logged_in(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def job(index, owner):
    return job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:4], labels=["flood"])


def page(client, url, status=200):
    response = client.get(url)
    assert response.status_code == status, url
    return response.content.decode()


@pytest.mark.parametrize("url", ["/", "/jobs/new/", "/datafiles/", "/jobs/1/", "/collections/"])
def test_pages_need_a_login(db, client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_login_page_and_login(owner, client):
    assert "Log in" in page(client, "/accounts/login/")
    response = client.post("/accounts/login/", {"username": "owner", "password": "owner-pass-1"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_jobs_page_lists_own_jobs_with_progress_and_filters(job, index, other, logged_in):
    job_submit(owner=other, job_type="aspect", tile_ids=index.ids[:1])
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
    assert live["tiles"] == {str(t): "pending" for t in job.tiles.values_list("tile__number", flat=True)}
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
    assert '<details class="resume" data-action="resume" hidden>' in html  # shown live once it can resume


def test_a_finished_job_shows_its_thumbnail_and_downloads(index, owner, media, logged_in):
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2]))
    html = page(logged_in, f"/jobs/{job.pk}/")
    assert f'src="/api/v1/jobs/{job.pk}/outputs/thumbnail.png"' in html and "hillshade.tif" in html
    assert logged_in.get(f"/api/v1/jobs/{job.pk}/outputs/thumbnail.png")["Content-Type"] == "image/png"


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
    job_cancel(job=job, by="owner")
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
    job_cancel(job=job, by="owner")
    assert logged_in.post(f"/jobs/{job.pk}/delete/", {"confirm": "yes"}).status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists()


def test_the_new_job_form_is_built_from_the_type(index, town, logged_in):
    html = page(logged_in, "/jobs/new/")
    assert 'name="param_azimuth"' in html and 'value="315.0"' in html and "(≥ 0, ≤ 360)" in html
    assert 'name="param_mode"' in html and "Testheim" in html
    slope = page(logged_in, "/jobs/new/?type=slope")
    assert 'name="param_units"' in slope and 'name="param_azimuth"' not in slope
    assert logged_in.get("/jobs/new/?type=erosion").status_code == 404


def test_the_collections_page_lists_each_with_its_grid_and_a_job_form_for_it(index, logged_in, tmp_path):
    from django.core.management import call_command

    from .test_collections import mercator_over

    call_command("load_tiles", str(mercator_over(index, tmp_path / "webm")), "--collection", "webm", "--title", "Mercator")
    html = page(logged_in, "/collections/")
    assert html.count('class="footprint"') == 2 and "EPSG:25832" in html and "EPSG:3857" in html
    row = html[html.index('id="collection-webm"'):]
    row = row[:row.index("</tr>")]
    assert "Mercator" in row and "<td>4</td>" in row and "1 × Float32" in row and "/jobs/new/?collection=webm" in row
    form = page(logged_in, "/jobs/new/?collection=webm")
    assert '<option value="webm" selected>' in form
    assert '<option value="default" selected>' in page(logged_in, "/jobs/new/?collection=nosuch")


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


# The job page's live parts, times and durations, the confirmations, the favicon, data file metadata.

def test_it_sends_the_live_parts_exactly_as_the_page_renders_them(index, owner, media, logged_in):
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2]))
    html = page(logged_in, f"/jobs/{job.pk}/")
    live = logged_in.get(f"/jobs/{job.pk}/live/?after=0").json()
    assert set(live["parts"]) == {"state", "result", "facts"} and live["settled"] is True
    for name, part in live["parts"].items():
        assert f'<div data-part="{name}">{part}</div>' in html, name
    assert "hillshade.tif</a> (" in live["parts"]["result"] and "bytes)" not in live["parts"]["result"]
    assert re.search(r"\((\d+\.\d|\d+)\s(KB|MB)\)", live["parts"]["result"])
    assert re.search(r"<dt>Finished</dt><dd><time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>",
                     live["parts"]["facts"])
    for line in live["logs"]:
        assert line["html"] in html


def test_a_canceled_job_settles_once_its_stopping_tile_has_said_how_it_ended(job, logged_in, media):
    lifecycle.move_job(job.pk, "start")
    [running] = claim_tiles(job.pk, "worker-1", 1)
    job_cancel(job=job)
    live = logged_in.get(f"/jobs/{job.pk}/live/?after=0").json()
    assert live["status"] == "canceled" and live["settled"] is False  # its worker still holds the tile
    _record_succeeded(job.pk, [(running, f"jobs/{job.pk}/tiles/x.tif", 1)])  # its GDAL call ended after all
    live = logged_in.get(f"/jobs/{job.pk}/live/?after=0").json()
    assert live["settled"] is True and "its output was discarded" in live["logs"][-1]["html"]


def test_a_job_canceled_again_after_a_resume_that_reruns_its_tiles_settles(job, logged_in, media):
    lifecycle.move_job(job.pk, "start")
    done = claim_tiles(job.pk, "worker-1", 2)
    _record_succeeded(job.pk, [(tile, f"jobs/{job.pk}/tiles/{tile.pk}.tif", 1) for tile in done])
    job_cancel(job=job)
    job_resume(job=job, params={"units": "percent"})  # a new result: every tile runs again
    job_cancel(job=Job.objects.get(pk=job.pk))  # before any did: no worker holds one
    assert logged_in.get(f"/jobs/{job.pk}/live/?after=0").json()["settled"] is True


def test_a_running_jobs_live_answer_is_not_settled(job, logged_in):
    live = logged_in.get(f"/jobs/{job.pk}/live/").json()
    assert live["settled"] is False and "<dt>Started</dt><dd>–</dd>" in live["parts"]["facts"]
    assert logged_in.get(f"/jobs/{job.pk}/live/?after=99999999999999999999").status_code == 400


def test_times_are_shown_with_their_time_zone(job, owner, media, logged_in, settings, tmp_path):
    datafile_store(owner=owner, upload=SimpleUploadedFile("dem.tif", geotiff_bytes(tmp_path)))
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d"
    assert re.search(stamp + " UTC</time>", page(logged_in, "/"))
    assert re.search(stamp + r":\d\d UTC</time>", page(logged_in, f"/jobs/{job.pk}/"))
    assert "times in UTC" in page(logged_in, f"/jobs/{job.pk}/")
    assert re.search(stamp + " UTC</time>", page(logged_in, "/datafiles/"))
    assert re.search(stamp + r":\d\d UTC</time>", page(logged_in, "/datafiles/dem.tif/"))
    settings.TIME_ZONE = "Europe/Berlin"
    assert re.search(stamp + " CET</time>", page(logged_in, "/"))
    assert "times in Europe/Berlin" in page(logged_in, f"/jobs/{job.pk}/")


@pytest.mark.parametrize("seconds,shown", [(0.4, "0.4 s"), (0, "0.0 s"), (9.3, "9.3 s"), (42.7, "42 s"),
                                           (185, "3:05"), (3725, "1:02:05")])
def test_durations_read_well_below_a_second_too(job, logged_in, seconds, shown):
    started = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELED, started=started,
                                         finished=started + timedelta(seconds=seconds))
    assert logged_in.get(f"/jobs/live/?ids={job.pk}").json()["jobs"][0]["duration"] == shown
    assert f'<td data-field="duration">{shown}</td>' in page(logged_in, "/")
    assert f"<dt>Duration</dt><dd>{shown}</dd>" in page(logged_in, f"/jobs/{job.pk}/")


def test_the_cancel_form_asks_in_the_dialog_with_words_of_its_own(job, logged_in):
    html = page(logged_in, f"/jobs/{job.pk}/")
    assert '<dialog class="confirm"' in html
    form = re.search(r'<form [^>]*data-action="cancel"[^>]*>', html).group(0)
    assert 'data-confirm="Cancel this job?"' in form
    assert 'data-confirm-yes="Cancel job"' in form and 'data-confirm-no="Keep running"' in form


def test_every_page_links_a_favicon_that_exists(job, staff, logged_in, client):
    link = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
    for url in ("/", f"/jobs/{job.pk}/", "/datafiles/", "/jobs/new/"):
        assert link in page(logged_in, url), url
    client.force_login(staff)
    assert link in page(client, "/admin/") and "Django administration" in page(client, "/admin/")
    icon = finders.find("favicon.svg")
    assert icon and Path(icon).read_text().startswith("<svg")


def test_raster_metadata_is_a_table_with_the_raw_json_behind_a_toggle(owner, media, logged_in, tmp_path):
    datafile_store(owner=owner, upload=SimpleUploadedFile("dem.tif", geotiff_bytes(tmp_path)))
    html = page(logged_in, "/datafiles/dem.tif/")
    assert '<th scope="row">Width</th><td>20</td>' in html and '<th scope="row">Band count</th><td>1</td>' in html
    assert '<th scope="row">EPSG</th><td>25832</td>' in html
    bands = html[html.index('<th scope="row">Bands</th>'):]
    assert "<th>type</th><th>nodata</th>" in bands[:300]
    raw = html[html.index('<details class="raw-metadata">'):]
    assert raw.startswith('<details class="raw-metadata"><summary>Raw JSON</summary><pre class="metadata">{')
    assert "&quot;width&quot;: 20" in raw and "</pre></details>" in raw


def test_vector_and_table_metadata_read_as_tables(owner, media, logged_in, tmp_path):
    datafile_store(owner=owner, upload=SimpleUploadedFile("zones.geojson", polygons_bytes(tmp_path)))
    datafile_store(owner=owner, upload=SimpleUploadedFile("stations.csv", CSV.encode()))
    vector = page(logged_in, "/datafiles/zones.geojson/")
    layers = vector[vector.index('<th scope="row">Layers</th>'):]
    assert "<th>name</th><th>geometry type</th><th>feature count</th><th>fields</th><th>CRS</th><th>EPSG</th>" in layers
    assert "<td>areas</td><td>Polygon</td><td>2</td><td>id Integer, name String</td><td>WGS 84</td><td>4326</td>" in layers
    table = page(logged_in, "/datafiles/stations.csv/")
    assert '<th scope="row">Columns</th><td>station, height, name</td>' in table
    assert '<th scope="row">Row count</th><td>3</td>' in table and '<th scope="row">Preview</th>' not in table


@pytest.mark.parametrize("width,height,shown", [(64, 48, (256, 192)), (20, 10, (240, 120)), (256, 100, (256, 100)),
                                                (3000, 1000, (256, 85)), (10, 1000, (3, 256))])
def test_small_raster_previews_are_shown_larger(owner, media, logged_in, tmp_path, width, height, shown):
    datafile_store(owner=owner, upload=SimpleUploadedFile("dem.tif", geotiff_bytes(tmp_path, width, height)))
    html = page(logged_in, "/datafiles/dem.tif/")
    assert (f'<img class="thumbnail raster-preview" src="/datafiles/dem.tif/preview.png" width="{shown[0]}" '
            f'height="{shown[1]}"') in html


HILLSHADE_DEFAULTS = {"type": "hillshade", "param_z_factor": "1", "param_scale": "1", "param_azimuth": "315",
                      "param_altitude": "45", "param_mode": "standard", "param_algorithm": "Horn"}


def error_next_to(html, field, problem):
    start = html.index(f'name="{field}"')
    return problem in html[start:start + 1200]


def test_the_new_job_form_names_every_problem_the_service_finds_at_once(index, logged_in):
    html = logged_in.post("/jobs/new/", {**HILLSHADE_DEFAULTS, "tile_ids": "1, 2", "param_z_factor": "0",
                                         "labels": "ok, " + "x" * 200}).content.decode()
    assert Job.objects.count() == 0
    assert error_next_to(html, "tile_ids", "unknown tile ids: 1, 2")
    assert error_next_to(html, "param_z_factor", "z_factor: must be greater than 0")
    assert error_next_to(html, "labels", "is not a label")


def test_a_form_refused_for_one_field_still_names_the_parameters_problems(index, logged_in):
    html = logged_in.post("/jobs/new/", {**HILLSHADE_DEFAULTS, "tile_ids": "100, x", "param_z_factor": "0",
                                         "param_scale": "-2"}).content.decode()
    assert Job.objects.count() == 0
    assert error_next_to(html, "tile_ids", "tile ids are whole numbers")
    assert error_next_to(html, "param_z_factor", "z_factor: must be greater than 0")
    assert error_next_to(html, "param_scale", "scale: must be greater than 0")


def test_the_submit_service_refuses_with_every_bad_field(index, owner):
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="hillshade", tile_ids=[1], params={"z_factor": 0, "azimuth": 400},
                   labels=[""], interim_results="sometimes", wait_timeout=0)
    assert set(refused.value.errors) == {"params", "labels", "interim_results", "wait_timeout", "tile_ids"}
    assert set(refused.value.errors["params"]) == {"z_factor", "azimuth"}
