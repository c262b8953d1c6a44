"""OGC API - Processes 1.0 under /ogcapi/: the landing page and conformance, processes, execution,
the job list, status, results and dismiss, with problem details for every refusal. Test names
carry the requirement ids of OGC 18-062r2 where one applies."""

import base64
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datafiles.services import datafile_store
from jobs.api.auth import token_for
from jobs.models import Job, JobStatus
from jobs.ogcapi.problems import INVALID_PARAMETER, NO_SUCH_JOB, NO_SUCH_PROCESS, RESULT_NOT_READY
from jobs.services.control import job_cancel
from jobs.services.submit import job_submit

from .datafile_samples import polygons_bytes
from .test_execution import run

OGC_CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"


@pytest.fixture
def api(owner, client_for):
    return client_for(owner)


def problem(response, status, problem_type=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"]
    if problem_type:
        assert body["type"] == problem_type
    return body


def test_req_core_landing_page_links_to_the_api_conformance_processes_and_jobs(client):
    body = client.get("/ogcapi/").json()
    rels = {link["rel"]: link["href"] for link in body["links"]}
    assert rels["self"] == "http://testserver/ogcapi/"
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/conformance"] == "http://testserver/ogcapi/conformance"
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/processes"] == "http://testserver/ogcapi/processes"
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/job-list"] == "http://testserver/ogcapi/jobs"


def test_req_core_conformance_declares_what_is_implemented(client):
    assert client.get("/ogcapi/conformance").json()["conformsTo"] == [
        f"{OGC_CONF}/{name}" for name in ("core", "ogc-process-description", "json", "html", "oas30", "job-list",
                                          "callback", "dismiss")]


def test_processes_need_an_account_and_say_so_as_a_problem(client):
    problem(client.get("/ogcapi/processes"), 401)


def test_req_core_process_list_pages_with_limit_and_next_links(api):
    first = api.get("/ogcapi/processes?limit=2").json()
    assert len(first["processes"]) == 2
    following = next(link["href"] for link in first["links"] if link["rel"] == "next")
    second = api.get(following).json()
    assert {p["id"] for p in second["processes"]}.isdisjoint(p["id"] for p in first["processes"])
    everything = api.get("/ogcapi/processes?limit=10000").json()["processes"]
    assert {"hillshade", "slope", "zonal-statistics"} <= {p["id"] for p in everything}
    assert all(p["version"] and "async-execute" in p["jobControlOptions"] for p in everything)


@pytest.mark.parametrize("query", ["limit=0", "limit=10001", "limit=ten", "offset=-1"])
def test_a_bad_paging_value_is_a_400_problem_naming_it(api, query):
    body = problem(api.get(f"/ogcapi/processes?{query}"), 400, INVALID_PARAMETER)
    assert body["detail"].startswith(query.split("=")[0] + ":")


def test_req_ogc_process_description_has_inputs_with_schemas_and_outputs(api):
    body = api.get("/ogcapi/processes/hillshade").json()
    assert body["id"] == "hillshade" and body["inputs"]["tile_ids"]["schema"]["type"] == "array"
    assert body["inputs"]["town_id"]["schema"]["type"] == "integer"
    assert body["inputs"]["z_factor"]["schema"]["type"] == "number" and body["inputs"]["z_factor"]["minOccurs"] == 0
    assert body["outputs"]["hillshade.tif"]["schema"]["contentMediaType"] == (
        "image/tiff; application=geotiff; profile=cloud-optimized")
    zonal = api.get("/ogcapi/processes/zonal-statistics").json()
    assert zonal["inputs"]["zones"]["schema"]["oneOf"][0] == {"type": "string", "format": "uri"}
    assert api.get("/ogcapi/processes/color-relief").json()["inputs"]["color_table"]["schema"] == {
        "type": "string", "format": "uri"}
    assert zonal["outputs"]["zonal-statistics.json"]["schema"]["type"] == "array"


def test_req_core_unknown_process_is_a_404_no_such_process(api):
    problem(api.get("/ogcapi/processes/nothing"), 404, NO_SUCH_PROCESS)
    problem(api.post("/ogcapi/processes/nothing/execution", {}, format="json"), 404, NO_SUCH_PROCESS)


def test_an_unknown_path_under_ogcapi_is_a_json_problem(api):
    problem(api.get("/ogcapi/collections"), 404)


def test_req_core_process_execute_async_creates_a_job_and_answers_its_status(index, owner, api):
    response = api.post("/ogcapi/processes/hillshade/execution",
                        {"inputs": {"tile_ids": index.ids[:2], "z_factor": {"value": 2}}}, format="json",
                        headers={"Prefer": "respond-async"})
    assert response.status_code == 201, response.json()
    job = Job.objects.get()
    assert response["Location"] == f"http://testserver/ogcapi/jobs/{job.pk}"
    assert response["Preference-Applied"] == "respond-async"
    info = response.json()
    assert info == {**info, "jobID": str(job.pk), "type": "process", "processID": "hillshade", "status": "accepted"}
    assert job.params["z_factor"] == 2 and job.tiles_total == 2 and job.owner == owner


@pytest.mark.parametrize("body,field", [
    ({"inputs": {"tile_ids": [100], "sun": 3}}, "inputs.sun"),
    ({"inputs": {"tile_ids": [100], "z_factor": "steep"}}, "params"),
    ({"inputs": {"tile_ids": [100], "town_id": 11850}}, "tile_ids"),
    ({"inputs": []}, "inputs"),
    ({"inputs": {"tile_ids": [100]}, "response": "stream"}, "response"),
    ({"inputs": {"tile_ids": [100]}, "outputs": {"hillshade.tif": {"transmissionMode": "value"}}},
     "outputs.hillshade.tif.transmissionMode"),
    ({"inputs": {"tile_ids": [100]}, "outputs": {"shade.png": {}}}, "outputs.shade.png"),
    ({"inputs": {"tile_ids": [100]}, "subscriber": {"doneUri": "https://example.org/"}}, "subscriber.doneUri"),
    ({"inputs": {"tile_ids": [100]}, "subscriber": {"successUri": "http://127.0.0.1:8000/"}}, "webhooks.successUri"),
    ({"inputs": {"tile_ids": [100]}, "subscriber": {"failedUri": "http://169.254.169.254/"}}, "webhooks.failedUri"),
    ({"inputs": {"tile_ids": [100]}, "subscriber": "https://example.org/"}, "subscriber"),
    ([1, 2], "body"),
])
def test_bad_execute_requests_are_400_problems_naming_the_member_and_create_nothing(town, api, body, field):
    response = api.post("/ogcapi/processes/hillshade/execution", body, format="json",
                        headers={"Prefer": "respond-async"})
    answer = problem(response, 400)
    assert field in answer["detail"], answer
    assert not Job.objects.exists()


@pytest.mark.parametrize("size", [10 * 1024 * 1024, 17 * 1024 * 1024])
def test_a_body_of_many_megabytes_is_a_400_or_413_problem(index, api, size):
    body = '{"inputs": {"tile_ids": [100], "mode": "' + "x" * size + '"}}'
    response = api.post("/ogcapi/processes/hillshade/execution", body, content_type="application/json",
                        headers={"Prefer": "respond-async"})
    problem(response, 400 if size < 16 * 1024 * 1024 else 413)
    assert not Job.objects.exists()


def test_other_methods_are_405_problems(api):
    problem(api.post("/ogcapi/jobs", {}, format="json"), 405)
    problem(api.delete("/ogcapi/processes/hillshade"), 405)


def test_a_body_that_is_not_json_is_a_400_problem(index, api):
    response = api.post("/ogcapi/processes/hillshade/execution", "{not json", content_type="application/json")
    problem(response, 400)
    assert not Job.objects.exists()


@pytest.mark.parametrize("href,says", [
    ("https://elsewhere.example.org/api/v1/datafiles/zones.geojson/", "no other address is read"),
    ("file:///etc/passwd", "must be an http or https URL"),
    ("/api/v1/jobs/", "must be the URL of one of your data files"),
    ("/api/v1/datafiles/theirs.geojson/", "you have no data file named 'theirs.geojson'"),
])
def test_a_data_file_input_must_be_one_of_the_callers_own_on_this_site(index, owner, other, media, api, tmp_path, href,
                                                                       says):
    datafile_store(owner=other, upload=SimpleUploadedFile("theirs.geojson", polygons_bytes(tmp_path)))
    response = api.post("/ogcapi/processes/zonal-statistics/execution", {"inputs": {"zones": {"href": href}}},
                        format="json", headers={"Prefer": "respond-async"})
    assert says in problem(response, 400, INVALID_PARAMETER)["detail"]
    assert not Job.objects.exists()


def test_a_data_file_input_by_its_url_on_this_site(index, owner, media, api, tmp_path):
    datafile_store(owner=owner, upload=SimpleUploadedFile("zones.geojson", polygons_bytes(tmp_path)))
    response = api.post("/ogcapi/processes/zonal-statistics/execution",
                        {"inputs": {"zones": {"href": "http://testserver/api/v1/datafiles/zones.geojson/"}}},
                        format="json", headers={"Prefer": "respond-async"})
    assert response.status_code == 201, response.json()
    assert Job.objects.get().inputs.get().file_name == "zones.geojson"


def test_req_job_list_filters_by_process_status_label_and_time(index, owner, other, api):
    hill = job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:1], labels=["flood"])
    slope = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    job_cancel(job=slope)
    job_submit(owner=other, job_type="slope", tile_ids=index.ids[:1])

    def ids(query=""):
        return [int(job["jobID"]) for job in api.get(f"/ogcapi/jobs{query}").json()["jobs"]]
    assert ids() == [slope.pk, hill.pk]
    assert ids("?processID=hillshade") == [hill.pk]
    assert ids("?status=dismissed") == [slope.pk] and ids("?status=accepted,dismissed") == [slope.pk, hill.pk]
    assert ids("?label=flood") == [hill.pk]
    assert ids(f"?datetime={quote(hill.created.isoformat())}/..") == [slope.pk, hill.pk]
    assert ids("?datetime=../2000-01-01T00:00:00Z") == []
    assert ids("?minDuration=0") == []  # neither has started
    page = api.get("/ogcapi/jobs?limit=1").json()
    assert len(page["jobs"]) == 1 and any(link["rel"] == "next" for link in page["links"])
    problem(api.get("/ogcapi/jobs?status=done"), 400, INVALID_PARAMETER)
    problem(api.get("/ogcapi/jobs?datetime=yesterday"), 400, INVALID_PARAMETER)
    problem(api.get("/ogcapi/jobs?type=docker"), 400, INVALID_PARAMETER)


def test_req_core_another_users_job_is_a_404_no_such_job(index, other, api):
    theirs = job_submit(owner=other, job_type="slope", tile_ids=index.ids[:1])
    for path in (f"/ogcapi/jobs/{theirs.pk}", f"/ogcapi/jobs/{theirs.pk}/results"):
        problem(api.get(path), 404, NO_SUCH_JOB)
    problem(api.delete(f"/ogcapi/jobs/{theirs.pk}"), 404, NO_SUCH_JOB)
    problem(api.get("/ogcapi/jobs/99999999999999999999999"), 404, NO_SUCH_JOB)
    assert Job.objects.get(pk=theirs.pk).status == JobStatus.QUEUED


def test_req_core_results_are_not_ready_until_success_then_by_reference(index, owner, media, api):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])
    problem(api.get(f"/ogcapi/jobs/{job.pk}/results"), 404, RESULT_NOT_READY)
    run(job)
    info = api.get(f"/ogcapi/jobs/{job.pk}").json()
    assert info["status"] == "successful" and info["progress"] == 100 and info["finished"]
    assert any(link["href"].endswith(f"/ogcapi/jobs/{job.pk}/results") for link in info["links"])
    results = api.get(f"/ogcapi/jobs/{job.pk}/results").json()
    assert results["slope.tif"]["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    cog = api.get(results["slope.tif"]["href"])
    assert cog.status_code == 200 and cog["Content-Type"] == results["slope.tif"]["type"]
    assert b"".join(cog.streaming_content)[:4] in (b"II*\x00", b"MM\x00*")
    problem(api.get(f"/ogcapi/jobs/{job.pk}/results/nothing.tif"), 404)


def test_req_dismiss_cancels_a_running_job_and_deletes_a_finished_one(index, owner, media, api):
    queued = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])
    answer = api.delete(f"/ogcapi/jobs/{queued.pk}")
    assert answer.status_code == 200 and answer.json()["status"] == "dismissed"
    assert Job.objects.get(pk=queued.pk).status == JobStatus.CANCELED
    again = problem(api.delete(f"/ogcapi/jobs/{queued.pk}"), 404, NO_SUCH_JOB)
    assert again["detail"] == f"job {queued.pk} was dismissed"
    done = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2]))
    assert api.delete(f"/ogcapi/jobs/{done.pk}").json()["status"] == "dismissed"
    assert not Job.objects.filter(pk=done.pk).exists()
    problem(api.delete(f"/ogcapi/jobs/{done.pk}"), 404, NO_SUCH_JOB)


def basic(user, secret):
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def test_http_basic_takes_the_api_token_as_the_password(owner, other, client):
    token = token_for(owner).key
    assert client.get("/ogcapi/processes", HTTP_AUTHORIZATION=basic("owner", token)).status_code == 200
    near_miss = token[:-1] + ("1" if token.endswith("0") else "0")
    for user, secret in (("owner", "owner-pass-1"), ("other", token), ("owner", near_miss), ("owner", "\x00")):
        refused = problem(client.get("/ogcapi/processes", HTTP_AUTHORIZATION=basic(user, secret)), 401)
        assert "HTTP Basic takes your API token as the password" in refused["detail"]
    challenge = client.get("/ogcapi/processes")
    assert challenge.status_code == 401 and challenge["WWW-Authenticate"] == 'Basic realm="jobsite"'


@pytest.mark.cluster
def test_req_core_process_execute_sync_answers_the_results(index, owner, client_for, start_cluster, settings):
    start_cluster()
    api = client_for(owner)
    response = api.post("/ogcapi/processes/slope/execution", {"inputs": {"tile_ids": index.ids[:4]}}, format="json")
    assert response.status_code == 200, response.content
    job = Job.objects.get()
    assert job.status == JobStatus.SUCCEEDED and response["Link"].endswith(f'/ogcapi/jobs/{job.pk}>; rel="monitor"')
    assert response.json()["slope.tif"]["href"] == f"http://testserver/ogcapi/jobs/{job.pk}/results/slope.tif"


# The SPS jobs-database requests.

def test_an_sps_job_request_creates_the_same_job_with_its_labels(index, owner, api):
    body = {"mode": "async", "response": "document",
            "inputs": [{"id": "tile_ids", "data": index.ids[:2]}, {"id": "units", "data": "percent"}],
            "outputs": [{"id": "slope.tif", "transmissionMode": "reference"}],
            "labels": ["re-processing-3", "release23.3"]}
    response = api.post("/ogcapi/processes/slope:1/jobs", body, format="json")
    assert response.status_code == 201, response.json()
    job = Job.objects.get()
    assert response["Location"] == f"http://testserver/ogcapi/jobs/{job.pk}" and response.json()["status"] == "accepted"
    assert job.params["units"] == "percent" and sorted(job.labels.values_list("name", flat=True)) == [
        "re-processing-3", "release23.3"]
    found = api.get("/ogcapi/jobs?label=release23.3").json()["jobs"]
    assert [info["jobID"] for info in found] == [str(job.pk)]


def test_an_sps_request_with_no_labels_makes_a_job_without_any(index, api):
    response = api.post("/ogcapi/processes/slope:1/jobs", {"inputs": [{"id": "tile_ids", "data": [100]}], "labels": []},
                        format="json")
    assert response.status_code == 201 and not Job.objects.get().labels.exists()


def test_an_unknown_version_is_a_404_naming_the_versions_there_are(index, api):
    body = problem(api.post("/ogcapi/processes/slope:develop/jobs", {"inputs": []}, format="json"), 404,
                   NO_SUCH_PROCESS)
    assert body["detail"] == "the process slope has version 1, not 'develop'"
    problem(api.post("/ogcapi/processes/nothing:1/jobs", {"inputs": []}, format="json"), 404, NO_SUCH_PROCESS)
    assert not Job.objects.exists()


@pytest.mark.parametrize("body,field", [
    ({"inputs": {"tile_ids": [100]}}, "inputs"),
    ({"inputs": [{"data": [100]}]}, "inputs.0"),
    ({"inputs": [{"id": "tile_ids"}]}, "inputs.tile_ids"),
    ({"inputs": [{"id": "tile_ids", "data": [100]}, {"id": "tile_ids", "data": [101]}]}, "inputs.1"),
    ({"inputs": [{"id": "tile_ids", "data": [100]}], "mode": "later"}, "mode"),
    ({"inputs": [{"id": "tile_ids", "data": [100]}], "labels": "flood"}, "labels"),
    ({"inputs": [{"id": "tile_ids", "data": [100]}], "labels": ["x" * 500]}, "labels"),
    ({"inputs": [{"id": "tile_ids", "data": [100]}], "priority": 1}, "priority"),
])
def test_bad_sps_requests_are_400_problems_naming_the_member(index, api, body, field):
    answer = problem(api.post("/ogcapi/processes/slope:1/jobs", body, format="json"), 400)
    assert answer["detail"].startswith(field), answer
    assert not Job.objects.exists()


# Errors that Django and the middleware answer before a view runs are problems too.

@pytest.mark.parametrize("path,status", [
    ("/ogcapi/jobs?processID=%00", 400),
    ("/ogcapi/jobs?label=a%00b", 400),
    ("/ogcapi/processes/a%00b", 400),
])
def test_a_nul_character_anywhere_is_a_400_problem(api, path, status):
    assert "NUL" in problem(api.get(path), status)["detail"]


def test_a_path_under_a_result_is_a_404_problem(api):
    problem(api.get("/ogcapi/jobs/1/results/x/y"), 404)


def test_a_form_body_is_a_415_problem(index, api):
    response = api.post("/ogcapi/processes/hillshade/execution", {"inputs": "x"})
    problem(response, 415)


def test_many_labels_in_a_query_are_a_400_problem(api):
    problem(api.get("/ogcapi/jobs?label=" + ",".join(f"l{n}" for n in range(200))), 400, INVALID_PARAMETER)


def test_with_no_place_to_wait_an_execute_request_is_answered_at_once(index, api, settings):
    settings.OGC_SYNC_WAITS = 0
    response = api.post("/ogcapi/processes/slope/execution", {"inputs": {"tile_ids": [100]}}, format="json")
    assert response.status_code == 201 and "Preference-Applied" not in response
    assert response["Location"].endswith(f"/ogcapi/jobs/{Job.objects.get().pk}")


def test_a_data_file_url_percent_encoded_or_as_a_plain_string(index, owner, media, api, tmp_path):
    datafile_store(owner=owner, upload=SimpleUploadedFile("my zones.geojson", polygons_bytes(tmp_path)))
    for given in ("/api/v1/datafiles/my%20zones.geojson/", {"href": "http://testserver/api/v1/datafiles/my%20zones.geojson/"}):
        response = api.post("/ogcapi/processes/zonal-statistics/execution", {"inputs": {"zones": given}},
                            format="json", headers={"Prefer": "respond-async"})
        assert response.status_code == 201, response.json()
    assert set(Job.objects.values_list("inputs__file_name", flat=True)) == {"my zones.geojson"}



# Callbacks: the subscriber's URLs get the standard's documents, through the webhook deliveries.

def test_req_callback_a_subscriber_gets_status_while_running_and_the_results_at_the_end(
        index, owner, media, api, settings, django_capture_on_commit_callbacks):
    from notifications import delivery

    from .webhook_receiver import Receiver

    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = Receiver().start()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post("/ogcapi/processes/slope/execution", format="json", headers={"Prefer": "respond-async"},
                                data={"inputs": {"tile_ids": index.ids[:2]},
                                      "subscriber": {"successUri": f"{receiver.url}/done",
                                                     "inProgressUri": f"{receiver.url}/running",
                                                     "failedUri": f"{receiver.url}/failed"}})
        assert response.status_code == 201, response.json()
        job = Job.objects.get()
        with django_capture_on_commit_callbacks(execute=True):
            run(job)
        delivery.deliver(seconds=10)
    finally:
        receiver.stop()
    by_path = {}
    for received in receiver.received:
        by_path.setdefault(received.path, []).append(received.payload)
    assert set(by_path) == {"/running", "/done"}
    assert by_path["/running"][0]["jobID"] == str(job.pk) and by_path["/running"][0]["status"] == "running"
    [results] = by_path["/done"]
    assert results["slope.tif"]["href"].endswith(f"/ogcapi/jobs/{job.pk}/results/slope.tif")
    assert results["slope.tif"]["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"


def test_req_callback_a_failed_jobs_subscriber_gets_the_failure_at_failed_uri(
        index, owner, media, api, settings, django_capture_on_commit_callbacks):
    from jobs.models import Tile
    from notifications import delivery

    from .webhook_receiver import Receiver

    broken = media / "broken.tif"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"II*\x00garbage that is no TIFF")
    Tile.objects.filter(number=index.ids[0]).update(path=str(broken))
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = Receiver().start()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post("/ogcapi/processes/slope/execution", format="json", headers={"Prefer": "respond-async"},
                                data={"inputs": {"tile_ids": index.ids[:1]},
                                      "subscriber": {"successUri": f"{receiver.url}/done",
                                                     "failedUri": f"{receiver.url}/failed"}})
        assert response.status_code == 201, response.json()
        job = Job.objects.get()
        with django_capture_on_commit_callbacks(execute=True):
            job = run(job)
        delivery.deliver(seconds=10)
    finally:
        receiver.stop()
    assert job.status == JobStatus.FAILED
    [received] = receiver.received
    assert received.path == "/failed"
    assert received.payload["jobID"] == str(job.pk) and received.payload["status"] == 500
    assert received.payload["detail"] == job.error and "1 of its tiles failed: 100" in job.error
    assert any(link["href"].endswith(f"/ogcapi/jobs/{job.pk}") for link in received.payload["links"])


# HTML, for people: f=html or a browser's Accept header.

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def html(response):
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html"), response.content[:300]
    return response.content.decode()


def test_req_html_the_pages_for_people(index, owner, client):
    client.force_login(owner)
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])
    assert 'href="http://testserver/ogcapi/processes?f=html"' in html(client.get("/ogcapi/?f=html"))
    assert f"{OGC_CONF}/core" in html(client.get("/ogcapi/conformance", HTTP_ACCEPT=BROWSER))
    listing = html(client.get("/ogcapi/processes?f=html&limit=3"))
    assert 'href="/ogcapi/processes/aspect?f=html"' in listing and "The next page" in listing
    described = html(client.get("/ogcapi/processes/hillshade", HTTP_ACCEPT=BROWSER))
    assert 'id="input-z_factor"' in described and 'id="input-tile_ids"' in described and "hillshade.tif" in described
    status = html(client.get(f"/ogcapi/jobs/{job.pk}?f=html"))
    assert f'href="/jobs/{job.pk}/"' in status and "accepted" in status
    assert f'id="job-{job.pk}"' in html(client.get("/ogcapi/jobs?f=html"))
    run(job)
    assert "slope.tif" in html(client.get(f"/ogcapi/jobs/{job.pk}/results?f=html"))


def test_json_stays_the_default_and_errors_stay_problems_for_browsers(owner, client):
    client.force_login(owner)
    assert client.get("/ogcapi/processes", HTTP_ACCEPT="*/*")["Content-Type"] == "application/json"
    assert client.get("/ogcapi/processes?f=json", HTTP_ACCEPT=BROWSER)["Content-Type"] == "application/json"
    problem(client.get("/ogcapi/processes/nothing", HTTP_ACCEPT=BROWSER), 404, NO_SUCH_PROCESS)
    problem(client.get("/ogcapi/processes?f=xml"), 400, INVALID_PARAMETER)
