"""Standard clients of OGC API - Processes against a live server and a real cluster: OWSLib and
cuiman run a hillshade over a town to success and read its results (OWSLib downloads the COG),
dismiss a running job, and read a failed job's error."""

import pytest
import requests
from osgeo import gdal
from owslib.ogcapi.processes import Processes
from owslib.util import Authentication

from jobs.api.auth import token_for
from jobs.models import Job, JobStatus, Tile

from .conftest import wait_for

pytestmark = pytest.mark.cluster
OGC_CORE = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core"


@pytest.fixture
def basic(owner):
    """HTTP Basic credentials: the user name, and the API token as the password."""
    return "owner", token_for(owner).key


@pytest.fixture
def ogc(live_server, basic):
    return Processes(f"{live_server.url}/ogcapi/", auth=Authentication(*basic))


def break_tiles(media, numbers):
    """The tiles `numbers` read a file that is no GeoTIFF, in this test only: every job over them fails."""
    broken = media / "broken.tif"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"II*\x00garbage that is no TIFF")
    Tile.objects.filter(number__in=numbers).update(path=str(broken))


def status_of(ogc, job_id):
    return requests.get(f"{ogc.url}jobs/{job_id}", auth=(ogc.auth.username, ogc.auth.password), timeout=10).json()


def test_owslib_runs_a_hillshade_over_a_town_and_downloads_the_cog(town, ogc, basic, start_cluster, tmp_path):
    start_cluster()
    assert "hillshade" in [process["id"] for process in ogc.processes()]
    description = ogc.process("hillshade")
    assert "town_id" in description["inputs"] and "hillshade.tif" in description["outputs"]
    accepted = ogc.execute("hillshade", inputs={"town_id": town.id, "z_factor": 2}, async_=True)
    job_id = accepted["jobID"]
    assert ogc.response_headers["Location"].endswith(f"/ogcapi/jobs/{job_id}")
    info = wait_for(lambda: (s := status_of(ogc, job_id))["status"] in ("successful", "failed") and s, timeout=60,
                    message="the job to end")
    assert info["status"] == "successful", info
    results = requests.get(f"{ogc.url}jobs/{job_id}/results", auth=basic, timeout=10).json()
    cog = requests.get(results["hillshade.tif"]["href"], auth=basic, timeout=30)
    assert cog.status_code == 200 and cog.headers["Content-Type"].startswith("image/tiff; application=geotiff")
    assert_a_cog(cog.content, tmp_path)


def assert_a_cog(content, tmp_path):
    (tmp_path / "hillshade.tif").write_bytes(content)
    dataset = gdal.Open(str(tmp_path / "hillshade.tif"))
    assert dataset.GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") == "COG"


def test_owslib_dismisses_a_running_job(large_index, owner, ogc, start_cluster):
    start_cluster()
    accepted = ogc.execute("hillshade", inputs={"tile_ids": large_index.ids, "mode": "multidirectional"},
                           async_=True)
    job_id = accepted["jobID"]
    wait_for(lambda: status_of(ogc, job_id)["status"] == "running", timeout=60, message="the job to run")
    dismissed = ogc._request(method="DELETE", path=f"jobs/{job_id}")
    assert dismissed["status"] == "dismissed"
    assert Job.objects.get(pk=int(job_id)).status == JobStatus.CANCELED


def test_owslib_reads_a_failed_jobs_error(index, owner, ogc, basic, start_cluster, media):
    start_cluster()
    break_tiles(media, index.ids[:2])
    accepted = ogc.execute("slope", inputs={"tile_ids": index.ids[:2]}, async_=True)
    info = wait_for(lambda: (s := status_of(ogc, accepted["jobID"]))["status"] in ("successful", "failed") and s,
                    timeout=60, message="the job to end")
    assert info["status"] == "failed" and info["message"]
    results = requests.get(f"{ogc.url}jobs/{accepted['jobID']}/results", auth=basic, timeout=10)
    assert results.status_code == 500 and results.json()["detail"].startswith(f"job {accepted['jobID']} failed")


def cuiman_client(live_server, basic):
    """cuiman's client on its own httpx transport, given the credentials. cuiman 0.0.8, the last
    release for Python 3.11, sends none of its own, and joins an endpoint's path to the server's
    URL as an absolute path (dropping /ogcapi); its later releases join it below the API's URL, as
    this transport does."""
    import httpx
    import uri_template
    from cuiman import Client
    from cuiman.api.transport.httpx import HttpxTransport

    class Transport(HttpxTransport):
        def _get_request_args(self, args):
            (method, _), options = super()._get_request_args(args)
            endpoint = uri_template.expand(args.path, **args.path_params)
            return (method, f"{self.server_url.rstrip('/')}/{endpoint.lstrip('/')}"), options

    transport = Transport(server_url=f"{live_server.url}/ogcapi")
    transport.sync_httpx = httpx.Client(auth=basic, timeout=30)
    return Client(server_url=f"{live_server.url}/ogcapi", _transport=transport)


def test_cuiman_runs_a_hillshade_over_a_town_and_reads_everything_back(town, basic, live_server, start_cluster,
                                                                       tmp_path):
    from gavicore.models import ProcessRequest

    start_cluster()
    client = cuiman_client(live_server, basic)
    assert OGC_CORE in client.get_conformance().conformsTo
    assert "hillshade" in [process.id for process in client.get_processes().processes]
    assert "town_id" in client.get_process("hillshade").inputs
    # Four tiles and no preference: run synchronously, answering the results.
    results = client.execute_process("hillshade", ProcessRequest(inputs={"town_id": town.id}))
    assert results["hillshade.tif"]["type"].startswith("image/tiff; application=geotiff")
    [listed] = client.get_jobs().jobs
    assert client.get_job(listed.jobID).status.value == "successful"
    reference = client.get_job_results(listed.jobID).root["hillshade.tif"]
    href = reference["href"] if isinstance(reference, dict) else reference.href
    # cuiman reads documents only: the file comes through its transport's HTTP client, with its credentials.
    cog = client._transport.sync_httpx.get(href)
    assert cog.status_code == 200 and cog.headers["Content-Type"].startswith("image/tiff; application=geotiff")
    assert_a_cog(cog.content, tmp_path)


def test_cuiman_dismisses_a_running_job(large_index, basic, live_server, start_cluster):
    from gavicore.models import ProcessRequest

    start_cluster()
    client = cuiman_client(live_server, basic)
    # 48 tiles, over JOBSITE_OGC_SYNC_MAX_TILES: answered at once as a job to watch.
    job = client.execute_process("hillshade", ProcessRequest(inputs={"tile_ids": large_index.ids,
                                                                     "mode": "multidirectional"}))
    wait_for(lambda: client.get_job(job.jobID).status.value == "running", timeout=60, message="the job to run")
    assert client.dismiss_job(job.jobID).status.value == "dismissed"
    assert Job.objects.get(pk=int(job.jobID)).status == JobStatus.CANCELED


def test_cuiman_reads_a_failed_jobs_error(index, basic, live_server, start_cluster, media):
    from cuiman import ClientError
    from gavicore.models import ProcessRequest

    start_cluster()
    client = cuiman_client(live_server, basic)
    break_tiles(media, index.ids[:2])
    # Two tiles and no preference: run synchronously, answering the failure.
    with pytest.raises(ClientError) as failed:
        client.execute_process("slope", ProcessRequest(inputs={"tile_ids": index.ids[:2]}))
    job = Job.objects.get()
    assert job.status == JobStatus.FAILED
    assert failed.value.api_error.status == 500 and failed.value.api_error.detail == f"job {job.pk} failed: {job.error}"
    info = client.get_job(str(job.pk))
    assert info.status.value == "failed" and info.message == job.error
    with pytest.raises(ClientError) as no_results:
        client.get_job_results(str(job.pk))
    assert job.error in no_results.value.api_error.detail
