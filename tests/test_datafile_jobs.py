"""Job types that read data files, jobs that wait for their data, and files in use."""

import re
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from osgeo import gdal

from jobsite.media import media_path
from datafiles import services as datafiles
from datafiles.models import DataFile
from jobs.services.repair import jobs_fail_overdue, sweep
from jobs import lifecycle
from jobs.services.submit import job_submit
from jobs.jobtypes import read_polygons
from jobsite.exceptions import Rejected
from jobs.models import ClusterHeartbeat, Job, JobLog, JobStatus, TileStatus
from jobs.raster.zonal import polygon_mask

from .conftest import assert_same_pixels, wait_for, wait_until_final
from .datafile_samples import COLOR_TABLE, CSV, geotiff_bytes, polygons_bytes
from .test_execution import merged_pixels, run


def store(owner, name, content):
    return datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile(name, content))[0]


def test_color_relief_equals_gdaldem_on_the_whole_raster(index, owner, media):
    ramp = store(owner, "ramp.txt", COLOR_TABLE.encode())
    job = run(job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids,
                         inputs={"color_table": "ramp.txt"}, params={"alpha": True}))
    assert job.status == JobStatus.SUCCEEDED, job.error
    expected = gdal.DEMProcessing("", str(index.whole), "color-relief", format="MEM", addAlpha=True,
                                  colorFilename=str(media_path(ramp.path))).ReadAsArray()
    assert merged_pixels(job).shape == (4, 190, 250)
    assert_same_pixels(expected, merged_pixels(job))



def test_zonal_statistics_equal_direct_computation_on_the_whole_raster(index, owner, media, tmp_path, client_for):
    store(owner, "zones.geojson", polygons_bytes(tmp_path))  # stored in WGS 84, reprojected by the job
    job = run(job_submit(owner=owner, job_type="zonal-statistics", inputs={"zones": "zones.geojson"}))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.tiles_total == 4  # chosen by the polygons: 100, 101, 110 and 111

    datafile = DataFile.objects.get(owner=owner, name="zones.geojson")
    whole = gdal.Open(str(index.whole))
    polygons = read_polygons(datafile.stored, whole.GetProjection())
    pixels = whole.ReadAsArray().astype(np.float64)
    for row, polygon in zip(job.results, polygons, strict=True):
        values = pixels[polygon_mask(whole, polygon.wkb, whole.GetProjection()) & (pixels != -9999.0)]
        assert (row["zone"], row["id"], row["count"]) == (polygon.index, polygon.properties["id"], values.size)
        assert (row["min"], row["max"]) == (values.min(), values.max())
        assert np.isclose(row["mean"], values.mean(), rtol=1e-12) and np.isclose(row["std"], values.std(), rtol=1e-9)

    names = [o["name"] for o in job.outputs]
    assert names == ["zonal-statistics.csv", "zonal-statistics.json"]
    csv_text = media_path(job.outputs[0]["path"]).read_text()
    assert csv_text.splitlines()[0] == "zone,id,name,count,min,max,mean,std"
    body = client_for(owner).get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["results"] == job.results and body["inputs"] == {"zones": "zones.geojson"}


def test_clip_sets_every_pixel_outside_the_polygons_to_nodata(index, owner, media, tmp_path):
    store(owner, "mask.gpkg", polygons_bytes(tmp_path, "GPKG", ".gpkg", 25832))
    job = run(job_submit(owner=owner, job_type="clip", tile_ids=index.ids, inputs={"mask": "mask.gpkg"}))
    assert job.status == JobStatus.SUCCEEDED, job.error
    whole = gdal.Open(str(index.whole))
    expected = whole.ReadAsArray()
    inside = np.zeros(expected.shape, dtype=bool)
    for polygon in read_polygons(DataFile.objects.get(name="mask.gpkg").stored, whole.GetProjection()):
        inside |= polygon_mask(whole, polygon.wkb, whole.GetProjection())
    expected[~inside] = -9999.0
    assert_same_pixels(expected, merged_pixels(job))
    assert 0 < inside.sum() < inside.size


def test_clip_without_tiles_takes_those_under_the_polygons(index, owner, media, tmp_path):
    store(owner, "mask.geojson", polygons_bytes(tmp_path))
    job = job_submit(owner=owner, job_type="clip", inputs={"mask": "mask.geojson"})
    assert sorted(job.tiles.values_list("tile__number", flat=True)) == [100, 101, 110, 111]


@pytest.mark.parametrize("kwargs,problem", [
    ({"job_type": "color-relief", "inputs": {"color_table": "dem.tif"}}, "dem.tif is a raster file; color_table needs a text file"),
    ({"job_type": "color-relief", "inputs": {}}, "color_table"),
    ({"job_type": "color-relief", "inputs": {"color_table": "ramp.txt", "extra": "x.csv"}}, "unknown input"),
    ({"job_type": "slope", "inputs": {"zones": "a.geojson"}}, "slope reads no data files"),
    ({"job_type": "color-relief", "inputs": {"color_table": 5}}, "must be an object of input names to data file names"),
    ({"job_type": "zonal-statistics", "inputs": {"zones": "later.geojson"}}, "give tile_ids or town_id"),
    ({"job_type": "color-relief", "inputs": {"color_table": "ramp.txt"}, "wait_timeout": 0}, "wait_timeout"),
])
def test_bad_inputs_are_rejected_and_nothing_is_written(index, owner, media, tmp_path, kwargs, problem):
    store(owner, "dem.tif", geotiff_bytes(tmp_path))
    kwargs = {"tile_ids": None if kwargs["job_type"] == "zonal-statistics" else index.ids[:1], **kwargs}
    with pytest.raises(Rejected, match=problem):
        job_submit(owner=owner, **kwargs)
    assert Job.objects.count() == 0


def test_a_job_waits_for_its_file_and_starts_when_it_arrives(index, owner, media, client_for,
                                                              django_capture_on_commit_callbacks):
    client = client_for(owner)
    body = client.post("/api/v1/jobs/", {"type": "color-relief", "tile_ids": index.ids[:2],
                                         "inputs": {"color_table": "ramp.txt"}}, format="json").json()
    assert body["status"] == "waiting" and body["waiting_for"] == ["ramp.txt"] and body["wait_deadline"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/api/v1/datafiles/", {"file": SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode())}, format="multipart")
    job = Job.objects.get(pk=body["id"])
    assert job.status == JobStatus.QUEUED and job.waiting_for == []
    assert run(job).status == JobStatus.SUCCEEDED


def test_a_file_of_the_wrong_kind_arriving_fails_the_waiting_job(index, owner, media, tmp_path,
                                                                  django_capture_on_commit_callbacks):
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1],
                     inputs={"color_table": "ramp.csv"})
    with django_capture_on_commit_callbacks(execute=True):
        store(owner, "ramp.csv", CSV.encode())
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error == "ramp.csv arrived, but ramp.csv is a table file; color_table needs a text file"
    assert_ended_without_waiting(job)


def assert_ended_without_waiting(job, client=None):
    """A job that ended waits for nothing and has no tile left pending, in the database and on its
    page (outside its log, which keeps what happened: "submitted ...; waiting for ramp.txt")."""
    job.refresh_from_db()
    assert job.is_final and job.waiting_for == []
    assert not job.tiles.filter(status=TileStatus.PENDING).exists()
    assert set(job.tiles.values_list("status", flat=True)) == {TileStatus.CANCELED}
    if client is not None:
        html = re.sub(r'<ol class="log".*?</ol>', "", client.get(f"/jobs/{job.pk}/").content.decode(), flags=re.DOTALL)
        assert job.status in html and "waiting for" not in html


def test_a_waiting_job_fails_after_its_wait_timeout_naming_the_file(index, owner, media):
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1],
                     inputs={"color_table": "ramp.txt"}, wait_timeout=60)
    assert (job.wait_deadline - job.created).total_seconds() == pytest.approx(60, abs=1)
    sweep()
    assert Job.objects.get(pk=job.pk).status == JobStatus.WAITING
    Job.objects.filter(pk=job.pk).update(wait_deadline=timezone.now() - timedelta(seconds=1))
    sweep()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error == "waited in vain for ramp.txt, which never arrived"


def test_failing_an_overdue_job_cancels_its_tiles_and_clears_what_it_waited_for(index, owner, media, client):
    overdue = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:3],
                         inputs={"color_table": "ramp.txt"}, wait_timeout=60)
    later = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:2],
                       inputs={"color_table": "ramp.txt"}, wait_timeout=60)
    Job.objects.filter(pk=overdue.pk).update(wait_deadline=timezone.now() - timedelta(seconds=1))
    jobs_fail_overdue()
    client.force_login(owner)
    assert_ended_without_waiting(overdue, client)
    assert overdue.status == JobStatus.FAILED and overdue.finished is not None
    assert JobLog.objects.filter(job=overdue, message="failed: waited in vain for ramp.txt, which never arrived; "
                                                      "3 pending tiles will not run").exists()
    later.refresh_from_db()
    assert later.status == JobStatus.WAITING and later.waiting_for == ["ramp.txt"]
    assert set(later.tiles.values_list("status", flat=True)) == {TileStatus.PENDING}


def test_an_overdue_job_that_started_meanwhile_is_left_alone(index, owner, media):
    """The UPDATE is conditional: a job queued by an upload between the query and the UPDATE runs."""
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1],
                     inputs={"color_table": "ramp.txt"}, wait_timeout=60)
    Job.objects.filter(pk=job.pk).update(wait_deadline=timezone.now() - timedelta(seconds=1))
    Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, waiting_for=[])
    assert lifecycle.move_job(job.pk, "fail", only_from=[JobStatus.WAITING], error="too late", message="failed") is None
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.error == ""
    assert set(job.tiles.values_list("status", flat=True)) == {TileStatus.PENDING}


def test_a_canceled_waiting_job_waits_for_nothing(index, owner, client_for, client):
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:2],
                     inputs={"color_table": "ramp.txt"})
    assert client_for(owner).post(f"/api/v1/jobs/{job.pk}/cancel/").json()["waiting_for"] == []
    client.force_login(owner)
    assert_ended_without_waiting(job, client)


def test_a_job_whose_data_file_is_gone_when_it_runs_fails_with_no_tile_pending(index, owner, media):
    store(owner, "ramp.txt", COLOR_TABLE.encode())
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:2],
                     inputs={"color_table": "ramp.txt"})
    job.inputs.update(datafile=None)
    job = run(job)
    assert job.status == JobStatus.FAILED and job.error == "inputs.color_table: the data file ramp.txt is gone"
    assert_ended_without_waiting(job)


def test_a_job_that_waited_in_vain_resumes_once_its_file_is_there(index, owner, media, client_for):
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:2],
                     inputs={"color_table": "ramp.txt"}, wait_timeout=60)
    Job.objects.filter(pk=job.pk).update(wait_deadline=timezone.now() - timedelta(seconds=1))
    jobs_fail_overdue()
    client = client_for(owner)
    refused = client.post(f"/api/v1/jobs/{job.pk}/resume/", {}, format="json")
    assert refused.status_code == 409 and "ramp.txt has not been uploaded" in str(refused.json())
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED

    store(owner, "ramp.txt", COLOR_TABLE.encode())
    assert client.post(f"/api/v1/jobs/{job.pk}/resume/", {}, format="json").json()["tiles_to_run"] == 2
    assert run(Job.objects.get(pk=job.pk)).status == JobStatus.SUCCEEDED


@pytest.mark.cluster
def test_a_wait_deadline_fails_the_job_within_seconds_under_a_real_cluster(start_cluster, index, owner, media,
                                                                           client_for, client):
    cluster = start_cluster()
    wait_for(ClusterHeartbeat.objects.exists, timeout=30, message="the cluster's first heartbeat")
    body = client_for(owner).post("/api/v1/jobs/", {"type": "clip", "tile_ids": index.ids[:3], "wait_timeout": 3,
                                                    "inputs": {"mask": "never.geojson"}}, format="json").json()
    assert body["status"] == "waiting" and body["waiting_for"] == ["never.geojson"]
    job = wait_until_final(body["id"], timeout=20)
    assert job.status == JobStatus.FAILED, cluster.output()[-2000:]
    assert job.error == "waited in vain for never.geojson, which never arrived"
    late = (job.finished - job.wait_deadline).total_seconds()
    assert 0 <= late < 3, late
    client.force_login(owner)
    assert_ended_without_waiting(job, client)


def test_the_sweep_starts_a_waiting_job_whose_file_is_there(index, owner, media):
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1],
                     inputs={"color_table": "ramp.txt"})
    store(owner, "ramp.txt", COLOR_TABLE.encode())  # its wake-up after commit never ran (a crash, say)
    sweep()
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_a_waiting_job_can_be_canceled(index, owner, client_for):
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1],
                     inputs={"color_table": "ramp.txt"})
    assert client_for(owner).post(f"/api/v1/jobs/{job.pk}/cancel/").json()["status"] == "canceled"


def test_a_file_a_queued_or_running_job_reads_cannot_be_deleted_or_replaced(index, owner, media, client_for):
    store(owner, "ramp.txt", COLOR_TABLE.encode())
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1],
                     inputs={"color_table": "ramp.txt"})
    client = client_for(owner)
    deleted = client.delete("/api/v1/datafiles/ramp.txt/")
    assert deleted.status_code == 409
    assert deleted.json()["detail"] == f"ramp.txt is used by running or queued jobs {job.pk}; it cannot be deleted until they finish"
    replaced = client.put("/api/v1/datafiles/ramp.txt/", {"file": SimpleUploadedFile("ramp.txt", b"0 0 0 0\n")},
                          format="multipart")
    assert replaced.status_code == 409 and "cannot be replaced" in replaced.json()["detail"]
    assert client.delete("/api/v1/datafiles/").status_code == 409
    assert DataFile.objects.filter(name="ramp.txt").exists()
    run(job)
    assert client.delete("/api/v1/datafiles/ramp.txt/").status_code == 204
