"""Standard clients of OGC API - Processes against a live server and a real cluster: OWSLib runs
a hillshade over a town to success and downloads the COG, dismisses a running job, and reads a
failed job's error."""

import pytest
import requests
from osgeo import gdal
from owslib.ogcapi.processes import Processes
from owslib.util import Authentication

from jobs.models import Job, JobStatus

from .conftest import wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def ogc(live_server, owner):
    return Processes(f"{live_server.url}/ogcapi/", auth=Authentication("owner", "owner-pass-1"))


def status_of(ogc, job_id):
    return requests.get(f"{ogc.url}jobs/{job_id}", auth=("owner", "owner-pass-1"), timeout=10).json()


def test_owslib_runs_a_hillshade_over_a_town_and_downloads_the_cog(town, ogc, start_cluster, tmp_path):
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
    results = requests.get(f"{ogc.url}jobs/{job_id}/results", auth=("owner", "owner-pass-1"), timeout=10).json()
    cog = requests.get(results["hillshade.tif"]["href"], auth=("owner", "owner-pass-1"), timeout=30)
    assert cog.status_code == 200 and cog.headers["Content-Type"].startswith("image/tiff; application=geotiff")
    (tmp_path / "hillshade.tif").write_bytes(cog.content)
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


def test_owslib_reads_a_failed_jobs_error(index, owner, ogc, start_cluster, media):
    start_cluster()
    (media / "nothing").mkdir(parents=True, exist_ok=True)
    for path in index.folder.iterdir():  # the tiles' files are gone: every tile fails
        path.rename(media / "nothing" / path.name)
    try:
        accepted = ogc.execute("slope", inputs={"tile_ids": index.ids[:2]}, async_=True)
        info = wait_for(lambda: (s := status_of(ogc, accepted["jobID"]))["status"] in ("successful", "failed") and s,
                        timeout=60, message="the job to end")
    finally:
        for path in (media / "nothing").iterdir():
            path.rename(index.folder / path.name)
    assert info["status"] == "failed" and info["message"]
    results = requests.get(f"{ogc.url}jobs/{accepted['jobID']}/results", auth=("owner", "owner-pass-1"), timeout=10)
    assert results.status_code == 500 and results.json()["detail"].startswith(f"job {accepted['jobID']} failed")
