"""OGC API data file inputs that are not yet the caller's data files: polygons given inline as
GeoJSON, and files on a host the operator trusts, fetched once. Each is stored as the caller's data
file with an upload's checks; a refused request leaves none behind, and no other address is read."""

import hashlib
import json
import time

import pytest

from datafiles.models import DataFile
from jobs.models import Job, JobStatus

from .attack_servers import RecordingServer, tarpit, tcp_server
from .datafile_samples import box, polygons_bytes
from .test_webhooks import fake_dns
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

def trust(settings, server):
    """List the server by its address and port: a data server on the operator's own network."""
    settings.OGC_HREF_HOSTS = [f"127.0.0.1:{server.port}"]


def test_a_file_on_a_trusted_host_is_fetched_once_and_stored_as_a_data_file(index, media, api, settings, tmp_path):
    with RecordingServer(body=polygons_bytes(tmp_path)) as server:
        trust(settings, server)
        for _ in range(2):
            response = api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/data/Zones%20v2.geojson"}}},
                                format="json", headers=ASYNC)
            assert response.status_code == 201, response.json()
    assert server.requests == ["/data/Zones%20v2.geojson"] * 2
    [datafile] = DataFile.objects.all()
    assert datafile.name.startswith("Zones-v2-") and datafile.name.endswith(".geojson")
    assert {job.inputs.get().file_name for job in Job.objects.all()} == {datafile.name}


@pytest.mark.parametrize("listed", [["data.example.org"], ["127.0.0.1"], ["127.0.0.1:1"], ["localhost:{port}"]])
def test_no_other_host_or_port_is_read(index, media, api, settings, tmp_path, listed):
    with RecordingServer(body=polygons_bytes(tmp_path)) as server:
        settings.OGC_HREF_HOSTS = [entry.format(port=server.port) for entry in listed]
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/zones.geojson"}}}, format="json",
                                headers=ASYNC), 400)
    assert f"JOBSITE_OGC_HREF_HOSTS: {settings.OGC_HREF_HOSTS[0]}" in body["detail"]
    assert server.requests == [] and not DataFile.objects.exists()


@pytest.mark.parametrize("name,address", [("localhost", None), ("data.example.org", "10.1.2.3"),
                                          ("data.example.org", "::ffff:127.0.0.1")])
def test_a_host_listed_by_name_must_resolve_to_public_addresses(index, media, api, settings, tmp_path, monkeypatch,
                                                                name, address):
    """Whatever the webhooks' exemptions say: the name's DNS may not be the operator's."""
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.WEBHOOK_ALLOWED_HOSTS = [name]
    if address:
        fake_dns(monkeypatch, {name: address})
    with RecordingServer(body=polygons_bytes(tmp_path)) as server:
        settings.OGC_HREF_HOSTS = [f"{name}:{server.port}"]
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"http://{name}:{server.port}/zones.geojson"}}},
                                format="json", headers=ASYNC), 400)
    assert "only public addresses are allowed" in body["detail"] or "loopback address" in body["detail"], body
    assert server.requests == [] and not DataFile.objects.exists()


def test_what_a_host_that_is_no_http_server_says_is_not_shown(index, media, api, settings):
    with tcp_server(b"SSH-2.0-OpenSSH_9.2p1 secret-banner\r\n") as (url, accepted):
        settings.OGC_HREF_HOSTS = [url.removeprefix("http://")]
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{url}/zones.geojson"}}}, format="json",
                                headers=ASYNC), 400)
    assert accepted
    assert "did not answer as an HTTP server" in body["detail"] and "secret" not in json.dumps(body)


def test_nothing_is_fetched_for_a_request_refused_on_its_face(index, media, api, settings, tmp_path):
    with RecordingServer(body=polygons_bytes(tmp_path)) as server:
        trust(settings, server)
        problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/zones.geojson"}, "band": 0}},
                         format="json", headers=ASYNC), 400)
        settings.OGC_HREF_FETCHES = 0
        problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/zones.geojson"}}}, format="json",
                         headers=ASYNC), 429)
    assert server.requests == [] and not DataFile.objects.exists()


def test_fetches_take_a_place_one_per_user_and_so_many_on_the_site(index, owner, other, media, api, settings,
                                                                     tmp_path):
    from jobs.ogcapi.places import fetches

    settings.OGC_HREF_FETCHES = 2
    with RecordingServer(body=polygons_bytes(tmp_path)) as server:
        trust(settings, server)
        href = {"inputs": {"zones": {"href": f"{server.url}/zones.geojson"}}}
        with fetches.place(owner.pk) as mine:  # another request of the owner's fetches now
            assert mine
            assert "one of yours" in problem(api.post(ZONAL, href, format="json", headers=ASYNC), 429)["detail"]
        settings.OGC_HREF_FETCHES = 1
        with fetches.place(other.pk) as theirs:  # another user's takes the one place of the site
            assert theirs
            problem(api.post(ZONAL, href, format="json", headers=ASYNC), 429)
        assert api.post(ZONAL, href, format="json", headers=ASYNC).status_code == 201
    assert len(server.requests) == 1


def test_a_job_of_the_api_never_waits_for_a_file_removed_meanwhile(index, owner, media, area):
    from jobs.api.serializers import JobCreateSerializer
    from jobs.ogcapi import given_files
    from jobsite.exceptions import Rejected

    with pytest.raises(Rejected) as refused:
        with given_files.stored(owner, {"zones": given_files.InlineArea(area)}) as names:
            DataFile.objects.filter(name=names["zones"]).delete()  # by a refused request that gave the same
            JobCreateSerializer(data={"type": "zonal-statistics", "inputs": names}).submit(owner, wait_for_files=False)
    assert refused.value.errors["inputs"]["zones"].startswith("you have no data file named")
    assert not Job.objects.exists()


def test_a_fetch_stops_at_what_is_left_of_the_quota(index, media, api, settings, tmp_path):
    settings.DATAFILE_QUOTA_BYTES = 100
    with RecordingServer(body=polygons_bytes(tmp_path)) as server:
        trust(settings, server)
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/zones.geojson"}}}, format="json",
                                headers=ASYNC), 413)
    assert "what is left of your quota" in body["detail"] and not DataFile.objects.exists()


def test_a_redirect_is_not_followed(index, media, api, settings, tmp_path):
    with RecordingServer(body=polygons_bytes(tmp_path), redirects={"/zones.geojson": "http://169.254.169.254/x"}) as server:
        trust(settings, server)
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
    settings.DATAFILE_MAX_BYTES = 4096
    with RecordingServer(body=content) as server, django_capture_on_commit_callbacks(execute=True):
        trust(settings, server)
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/{name}"}}}, format="json",
                                headers=ASYNC), status)
    assert says in body["detail"], body
    assert not Job.objects.exists() and not DataFile.objects.exists()
    assert not any(path.is_file() for path in media.rglob("*"))


def test_a_host_that_never_answers_costs_the_time_out_and_no_more(index, media, api, settings):
    settings.OGC_HREF_SECONDS = 1
    with tarpit() as (url, accepted):
        settings.OGC_HREF_HOSTS = [url.removeprefix("http://")]
        started = time.monotonic()
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{url}/zones.geojson"}}}, format="json",
                                headers=ASYNC), 400)
    assert time.monotonic() - started < 5 and accepted
    assert "within 1 s" in body["detail"] and not DataFile.objects.exists()


def test_a_fetched_file_from_a_job_that_is_refused_is_removed_again(index, media, api, settings, tmp_path,
                                                                     django_capture_on_commit_callbacks):
    far = polygons_bytes(tmp_path, zones=[(1, "far", box(0, 0, 10, 10))])
    with RecordingServer(body=far) as server, django_capture_on_commit_callbacks(execute=True):
        trust(settings, server)
        body = problem(api.post(ZONAL, {"inputs": {"zones": {"href": f"{server.url}/far.geojson"}}}, format="json",
                                headers=ASYNC), 400)
    assert "overlap no tile" in json.dumps(body) and not DataFile.objects.exists()
    assert not any(path.is_file() for path in media.rglob("*"))


# Two requests at once.

def test_a_file_stored_by_another_request_meanwhile_is_taken_not_refused(owner, media, area):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from datafiles.services import datafile_store
    from jobs.ogcapi import given_files

    content = json.dumps(area).encode()

    def the_other_request_first(file_name):  # it stores the same file between this one's look and store
        datafile_store(owner=owner, upload=SimpleUploadedFile(file_name, content))
        return SimpleUploadedFile(file_name, content)
    digest = hashlib.sha256(content).hexdigest()
    datafile, created = given_files._checked(owner, "zones", "area-x.geojson", digest, the_other_request_first)
    assert not created and DataFile.objects.get() == datafile


def test_a_refused_request_removes_its_file_unless_a_job_reads_or_awaits_it(index, owner, media, area, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from datafiles.services import datafile_store
    from jobs.ogcapi import given_files
    from jobs.services.submit import job_submit

    with pytest.raises(ValueError):
        with given_files.stored(owner, {"zones": given_files.InlineArea(area)}):
            raise ValueError("the request is refused")
    assert not DataFile.objects.exists()

    read, _ = datafile_store(owner=owner, upload=SimpleUploadedFile("read.geojson", polygons_bytes(tmp_path)))
    job_submit(owner=owner, job_type="zonal-statistics", inputs={"zones": "read.geojson"})
    job_submit(owner=owner, job_type="zonal-statistics", tile_ids=[100], inputs={"zones": "awaited.geojson"})
    awaited, _ = datafile_store(owner=owner, upload=SimpleUploadedFile("awaited.geojson", polygons_bytes(tmp_path)))
    unused, _ = datafile_store(owner=owner, upload=SimpleUploadedFile("unused.geojson", polygons_bytes(tmp_path)))
    given_files._remove_unused(owner, [read, awaited, unused])
    assert sorted(DataFile.objects.values_list("name", flat=True)) == ["awaited.geojson", "read.geojson"]
