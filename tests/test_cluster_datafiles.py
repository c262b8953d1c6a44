"""A job that waits for its data, with a real `manage.py qcluster`."""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from osgeo import gdal

from jobsite.media import media_path
from datafiles.models import DataFile
from jobs.models import JobStatus

from .conftest import assert_same_pixels, wait_until_final
from .datafile_samples import COLOR_TABLE

pytestmark = pytest.mark.cluster


def test_a_waiting_job_starts_by_itself_within_seconds_of_the_upload(cluster, index, owner, client_for, media):
    client = client_for(owner)
    job = client.post("/api/v1/jobs/", {"type": "color-relief", "tile_ids": index.ids,
                                        "inputs": {"color_table": "ramp.txt"}}, format="json").json()
    assert job["status"] == "waiting"
    time.sleep(1.0)
    assert client.get(f"/api/v1/jobs/{job['id']}/").json()["status"] == "waiting"

    uploaded = time.monotonic()
    response = client.post("/api/v1/datafiles/", {"file": SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode())},
                           format="multipart")
    assert response.status_code == 201
    done = wait_until_final(job["id"], timeout=30)
    assert done.status == JobStatus.SUCCEEDED, (done.error, cluster.output()[-2000:])
    assert time.monotonic() - uploaded < 10
    ramp = media_path(DataFile.objects.get(name="ramp.txt").path)
    expected = gdal.DEMProcessing("", str(index.whole), "color-relief", format="MEM", colorFilename=str(ramp)).ReadAsArray()
    assert_same_pixels(expected, gdal.Open(str(media_path(done.outputs[0]["path"]))).ReadAsArray())
