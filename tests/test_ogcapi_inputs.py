"""OGC API data file inputs that are not yet the caller's data files: polygons given inline as
GeoJSON, and files on a host the operator trusts, fetched once. Each is stored as the caller's data
file with an upload's checks; a refused request leaves none behind, and no other address is read."""

import json
import time

import pytest

from datafiles.models import DataFile
from jobs.models import Job, JobStatus

from .attack_servers import RecordingServer, tarpit
from .datafile_samples import box, polygons_bytes
from .test_execution import run
from .test_ogcapi import problem

ZONAL = "/ogcapi/processes/zonal-statistics/execution"
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def api(owner, client_for):
    return client_for(owner)


@pytest.fixture
def area(tmp_path):
    """The test zones as GeoJSON in longitude and latitude."""
    return json.loads(polygons_bytes(tmp_path))


def test_polygons_given_inline_choose_the_tiles_and_are_the_zones(index, media, api, area):
    response = api.post(ZONAL, {"inputs": {"zones": {"value": area}}}, format="json", headers=ASYNC)
    assert response.status_code == 201, response.json()
    job = Job.objects.get()
    datafile = DataFile.objects.get()
    assert datafile.name.startswith("area-") and datafile.name.endswith(".geojson") and datafile.kind == "vector"
    assert job.inputs.get().file_name == datafile.name and job.tiles_total == 4
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert len(job.results) == 2 and all(row["count"] for row in job.results)


def test_the_same_area_given_again_is_the_same_data_file(index, media, api, area):
    geometry = area["features"][1]["geometry"]
    for _ in range(2):
        response = api.post(ZONAL, {"inputs": {"zones": geometry}}, format="json", headers=ASYNC)
        assert response.status_code == 201, response.json()
    assert DataFile.objects.count() == 1 and Job.objects.count() == 2


@pytest.mark.parametrize("value,says", [
    ({"type": "Point", "coordinates": [7.5, 51.4]}, "must be a GeoJSON object"),
    ({"type": "Polygon", "coordinates": "nowhere"}, "not a polygon"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}, "overlap no tile"),
    ("POLYGON ((0 0, 1 0, 1 1, 0 0))", "must be the URL of one of your data files"),
])
def test_bad_inline_polygons_are_400_problems_and_leave_no_data_file(index, media, api, value, says,
                                                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = problem(api.post(ZONAL, {"inputs": {"zones": value}}, format="json", headers=ASYNC), 400)
    assert says in json.dumps(body), body
    assert not Job.objects.exists() and not DataFile.objects.exists()
    assert not any(path.is_file() for path in media.rglob("*"))


def test_only_inputs_of_polygons_take_geojson_inline(index, media, api):
    body = problem(api.post("/ogcapi/processes/color-relief/execution",
                            {"inputs": {"tile_ids": [100], "color_table": {"value": {"type": "Polygon"}}}},
                            format="json", headers=ASYNC), 400)
    assert body["errors"] == {"inputs.color_table": body["errors"]["inputs.color_table"]}
    assert not DataFile.objects.exists()


# Files on a trusted host.

def test_a_file_on_a_trusted_host_is_fetched_once_and_stored_as_a_data_file(index, media, api, settings, tmp_path):
    settings.OGC_HREF_HOSTS = ["127.0.0.1"]
    with RecordingServer(body=polygons_bytes(tmp_path)) as server:
        for _ in range(2):
            response = api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/data/Zones%20v2.geojson"}}},
                                format="json", headers=ASYNC)
            assert response.status_code == 201, response.json()
    assert server.requests == ["/data/Zones%20v2.geojson"] * 2
    [datafile] = DataFile.objects.all()
    assert datafile.name.startswith("Zones-v2-") and datafile.name.endswith(".geojson")
    assert {job.inputs.get().file_name for job in Job.objects.all()} == {datafile.name}


def test_no_other_host_is_read(index, media, api, settings, tmp_path):
    settings.OGC_HREF_HOSTS = ["data.example.org"]
    with RecordingServer(body=polygons_bytes(tmp_path)) as server:
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/zones.geojson"}}}, format="json",
                                headers=ASYNC), 400)
    assert "JOBSITE_OGC_HREF_HOSTS: data.example.org" in body["detail"]
    assert server.requests == [] and not DataFile.objects.exists()


def test_a_redirect_is_not_followed(index, media, api, settings, tmp_path):
    settings.OGC_HREF_HOSTS = ["127.0.0.1"]
    with RecordingServer(body=polygons_bytes(tmp_path), redirects={"/zones.geojson": "http://169.254.169.254/x"}) as server:
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/zones.geojson"}}}, format="json",
                                headers=ASYNC), 400)
    assert "answered 302" in body["detail"] and server.requests == ["/zones.geojson"]
    assert not DataFile.objects.exists()


@pytest.mark.parametrize("content,name,status,says", [
    (b"<VRTDataset><VRTRasterBand><SimpleSource><SourceFilename>/etc/passwd</SourceFilename></SimpleSource>"
     b"</VRTRasterBand></VRTDataset>", "zones.geojson", 400, "cannot be read"),
    (b"x" * 5000, "zones.geojson", 413, "the limit is 4096 bytes"),
    (b"{}", "zones", 400, "must end in a file name with one of the extensions"),
])
def test_a_fetched_file_is_checked_as_an_upload_and_nothing_is_left_of_a_refused_one(
        index, media, api, settings, content, name, status, says, django_capture_on_commit_callbacks):
    settings.OGC_HREF_HOSTS = ["127.0.0.1"]
    settings.DATAFILE_MAX_BYTES = 4096
    with RecordingServer(body=content) as server, django_capture_on_commit_callbacks(execute=True):
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/{name}"}}}, format="json",
                                headers=ASYNC), status)
    assert says in body["detail"], body
    assert not Job.objects.exists() and not DataFile.objects.exists()
    assert not any(path.is_file() for path in media.rglob("*"))


def test_a_host_that_never_answers_costs_the_time_out_and_no_more(index, media, api, settings):
    settings.OGC_HREF_HOSTS = ["127.0.0.1"]
    settings.OGC_HREF_SECONDS = 1
    with tarpit() as (url, accepted):
        started = time.monotonic()
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{url}/zones.geojson"}}}, format="json",
                                headers=ASYNC), 400)
    assert time.monotonic() - started < 5 and accepted
    assert "within 1 s" in body["detail"] and not DataFile.objects.exists()


def test_a_fetched_file_from_a_job_that_is_refused_is_removed_again(index, media, api, settings, tmp_path,
                                                                     django_capture_on_commit_callbacks):
    settings.OGC_HREF_HOSTS = ["127.0.0.1"]
    far = polygons_bytes(tmp_path, zones=[(1, "far", box(0, 0, 10, 10))])
    with RecordingServer(body=far) as server, django_capture_on_commit_callbacks(execute=True):
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/far.geojson"}}}, format="json",
                                headers=ASYNC), 400)
    assert "overlap no tile" in json.dumps(body) and not DataFile.objects.exists()
    assert not any(path.is_file() for path in media.rglob("*"))
