"""Nothing leaks: no answer tells what it need not."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobsite.exceptions import quoted
from jobs.models import ClusterHeartbeat

# Echoes and the health endpoint

LONG = "x" * 10_000
MOST = 2_000  # bytes an error answer may take, however long the input it names


def test_quoted_shows_at_most_60_characters_and_says_how_many_more():
    assert quoted("ramp.txt") == "'ramp.txt'"
    assert quoted(LONG) == f"'{'x' * 60}'… (9940 more characters)"


@pytest.mark.parametrize("body,field", [
    ({"type": "slope", "tile_ids": [100], "labels": [LONG]}, "labels"),
    ({"type": "slope", "tile_ids": [100], "labels": ["ok", LONG + "\n"]}, "labels"),
    ({"type": LONG, "tile_ids": [100]}, "type"),
    ({"type": "slope", "tile_ids": [100], "interim_results": LONG}, "interim_results"),
    ({"type": "slope", "tile_ids": [100], "params": {LONG: 1}}, "params"),
    ({"type": "slope", "tile_ids": [100], "params": {"units": LONG}}, "params.units"),
], ids=["label", "label-not-printable", "type", "interim-results", "param-name", "param-value"])
def test_a_long_value_in_a_job_is_not_echoed_back(index, owner, client_for, body, field):
    response = client_for(owner).post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 400 and len(response.content) < MOST
    assert field in response.json()["detail"]


@pytest.mark.parametrize("name", [LONG + "/a.csv", "../" + LONG + ".csv"], ids=["slash", "dots"])
def test_a_long_data_file_name_is_not_echoed_back(db, owner, client_for, media, name):
    upload = SimpleUploadedFile("a.csv", b"a,b\n1,2\n")
    response = client_for(owner).post("/api/v1/datafiles/", {"file": upload, "name": name})
    assert response.status_code == 400 and len(response.content) < MOST
    assert response.json()["detail"].startswith("name: ")


def test_a_data_file_name_in_the_url_and_another_in_the_body(db, owner, client_for, media):
    upload = SimpleUploadedFile("a.csv", b"a,b\n1,2\n")
    response = client_for(owner).put("/api/v1/datafiles/a.csv/", {"file": upload, "name": LONG + ".csv"})
    assert response.status_code == 400 and len(response.content) < MOST and "name: the URL names 'a.csv'" in response.json()["detail"]


@pytest.mark.parametrize("url,field", [
    (f"/start_job?tile_ids=1,{LONG}", "tile_ids"),
    (f"/start_job?tile_ids={'9' * 4000},{'9' * 4000}", "tile_ids"),
    (f"/start_job?town_id={LONG}", "town_id"),
    (f"/job_status?job_id={LONG}", "job_id"),
], ids=["tile-ids", "tile-ids-4000-digits", "town-id", "job-id"])
def test_a_long_query_value_of_the_old_pipeline_is_not_echoed_back(index, owner, client_for, url, field):
    response = client_for(owner).get(url)
    assert response.status_code == 400 and len(response.content) < MOST
    assert response.json()["message"].startswith(f"{field}: ")


@pytest.mark.parametrize("url,status,field", [
    (f"/api/v1/jobs/?status={LONG}", 400, "status"),
    (f"/api/v1/jobs/?ordering={LONG}", 400, "ordering"),
    (f"/api/v1/storage/?older_than={LONG}", 400, "older_than"),
    (f"/api/v1/jobs/JOB/outputs/{LONG}/", 404, "has no output"),
    (f"/api/v1/job-types/{LONG}/", 404, "no job type"),
    (f"/api/v1/{LONG}/", 404, "No API endpoint"),
], ids=["status-filter", "ordering", "older-than", "output-name", "job-type", "unknown-url"])
def test_a_long_value_in_a_query_or_url_is_not_echoed_back(index, owner, client_for, url, status, field):
    from jobs.services.submit import job_submit

    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    client = client_for(owner)
    response = client.delete(url) if "storage" in url else client.get(url.replace("JOB", str(job.pk)))
    assert response.status_code == status and len(response.content) < MOST
    assert field in response.json()["detail"]


def test_a_message_listing_50_unknown_tile_ids_is_not_cut(index, owner, client_for):
    unknown = list(range(2_000_000_000, 2_000_000_060))
    response = client_for(owner).post("/api/v1/jobs/", {"type": "slope", "tile_ids": unknown}, format="json")
    shown = ", ".join(map(str, unknown[:50]))
    assert response.json()["detail"] == f"tile_ids: unknown tile ids: {shown} and 10 more"


def test_the_health_endpoint_tells_anybody_but_staff_only_ok_or_failing(db, owner, staff, client_for):
    ClusterHeartbeat.objects.create(key="q:abc", host="worker-1", pid=42)
    assert client_for().get("/api/v1/health/").json() == {"status": "ok"}
    assert client_for(owner).get("/api/v1/health/").json() == {"status": "ok"}
    detailed = client_for(staff).get("/api/v1/health/").json()
    assert detailed["status"] == "ok" and detailed["cluster"]["alive"][0]["host"] == "worker-1"
    assert detailed["database"]["vendor"] and "kind" in detailed["broker"]


# GDAL's messages and layer names name the user's own file

def no_server_path(text, media):
    assert str(media) not in text and ".upload-" not in text and "/vsizip/" not in text and "/datafiles/" not in text


@pytest.mark.parametrize("name,content", [
    ("dem.tif", b"II*\x00 this is no tiff"),
    ("dem.tif", b'<VRTDataset rasterXSize="1" rasterYSize="1"></VRTDataset>'),
    ("zones.geojson", b'{"type": "FeatureCollection", "features": ['),
    ("zones.gpkg", b"SQLite format 3\x00 but no more"),
    ("zones.zip", b"PK\x03\x04 broken"),
])
def test_a_refused_upload_names_the_users_file_and_no_path_here(owner, media, client_for, name, content):
    from .test_datafiles import upload

    response = upload(client_for(owner), name, content)
    assert response.status_code == 400 and name in response.json()["detail"]
    no_server_path(response.content.decode(), media)


def test_a_zip_whose_shapefile_is_broken_names_the_zip(owner, media, client_for):
    import io
    import zipfile

    from .test_datafiles import upload

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("zones.shp", b"\x00" * 100)
        archive.writestr("zones.shx", b"\x00" * 100)
    response = upload(client_for(owner), "zones.zip", buffer.getvalue())
    assert response.status_code == 400 and "zones.zip" in response.json()["detail"]
    no_server_path(response.content.decode(), media)


def test_a_single_layer_is_named_after_the_upload(owner, media, client_for):
    from .test_datafiles import upload

    content = (b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
               b'"geometry": {"type": "Point", "coordinates": [1, 2]}}]}')  # no name of its own: GDAL takes the file's
    body = upload(client_for(owner), "my zones.geojson", content).json()
    assert [layer["name"] for layer in body["metadata"]["layers"]] == ["my zones"]


def test_a_job_that_fails_on_an_input_names_it_and_no_path_here(index, owner, media, tmp_path):
    from datafiles import services as datafiles
    from jobs.models import JobStatus
    from jobs.services.submit import job_submit
    from jobsite.media import media_path

    from .datafile_samples import polygons_bytes
    from .test_execution import run

    zones = datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("zones.geojson", polygons_bytes(tmp_path)))[0]
    job = job_submit(owner=owner, job_type="zonal-statistics", tile_ids=index.ids[:1], inputs={"zones": "zones.geojson"})
    media_path(zones.path).write_bytes(b"no longer GeoJSON")
    job = run(job)
    errors = " ".join([job.error, *job.tiles.values_list("error", flat=True), *job.logs.values_list("message", flat=True)])
    assert job.status == JobStatus.FAILED and "zones.geojson" in errors
    no_server_path(errors, media)
