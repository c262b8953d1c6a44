"""Chains: several steps in one job, run tile by tile in one pass, equal to the steps run one after
the other over the whole raster."""

import re

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from osgeo import gdal

from datafiles import services as datafiles
from jobs import tileindex
from jobs.models import DailyUsage, Job, JobInput, JobLog, JobStatus, JobTile, Tile
from jobs.raster import dem
from jobs.raster.chain import process_chain
from jobs.raster.io import RasterError
from jobs.services.control import job_cancel, job_resume
from jobs.services.submit import job_submit
from jobsite.exceptions import Rejected
from jobsite.media import media_path

from .conftest import assert_same_pixels, wait_until_final, window_of
from .datafile_samples import COLOR_TABLE, CSV
from .test_blocks import block_files, whole_batches  # noqa: F401 (a fixture)
from .test_execution import merged_pixels, run


def steps_over_whole(path, steps):
    """Each (processing, options) run over the whole raster at `path`, the next on its result."""
    result = gdal.Open(str(path))
    for processing, options in steps:
        result = gdal.DEMProcessing("", result, processing, format="MEM", **options)
    return result.ReadAsArray()


@pytest.fixture
def ramp(owner, media):
    return datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode()))[0]


@pytest.mark.parametrize("steps,expected", [
    ([{"type": "slope"}, {"type": "hillshade", "params": {"z_factor": 3}}],
     [("slope", {}), ("hillshade", {"zFactor": 3})]),
    ([{"type": "aspect", "params": {"compute_edges": True}}, {"type": "slope", "params": {"units": "percent"}},
      {"type": "hillshade", "params": {"compute_edges": True, "algorithm": "ZevenbergenThorne"}}],
     [("aspect", {"computeEdges": True}), ("slope", {"slopeFormat": "percent"}),
      ("hillshade", {"computeEdges": True, "alg": "ZevenbergenThorne"})]),
])
def test_a_chain_equals_its_steps_run_one_after_the_other_over_the_whole_raster(index, owner, media, steps, expected):
    job = run(job_submit(owner=owner, steps=steps, tile_ids=index.ids))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.type == "chain" and [step["type"] for step in job.params["steps"]] == [s["type"] for s in steps]
    assert_same_pixels(steps_over_whole(index.whole, expected), merged_pixels(job))


def test_slope_then_colour_relief_equals_gdaldem_twice(index, owner, media, ramp, client_for):
    job = run(job_submit(owner=owner, tile_ids=index.ids, steps=[
        {"type": "slope"}, {"type": "color-relief", "params": {"alpha": True}, "inputs": {"color_table": "ramp.txt"}}]))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.outputs[0]["name"] == "color-relief.tif"
    assert JobInput.objects.get(job=job).name == "steps[1].color_table"
    expected = steps_over_whole(index.whole, [("slope", {}), ("color-relief", {
        "colorFilename": str(media_path(ramp.path)), "addAlpha": True})])
    assert merged_pixels(job).shape == (4, 190, 250)
    assert_same_pixels(expected, merged_pixels(job))

    client = client_for(owner)
    stac = client.get(client.get(f"/api/v1/jobs/{job.pk}/").json()["links"]["stac"])
    assert stac.status_code == 200 and stac.json()["collection"] == "chain"
    assert stac.json()["properties"]["jobsite:parameters"] == job.params
    assert client.get("/api/v1/stac/collections/chain").status_code == 200
    status = client.get(f"/ogcapi/jobs/{job.pk}?f=json").json()
    assert status["processID"] == "chain" and status["status"] == "successful"
    assert client.get(f"/ogcapi/jobs/{job.pk}/results?f=json").status_code == 200
    page = Client()
    page.force_login(owner)
    html = page.get(f"/jobs/{job.pk}/").content.decode()
    assert re.search(r"<li><strong>slope</strong>.*</li><li><strong>color-relief</strong>.*"
                     r"<code>color_table=ramp.txt</code>", html)


def test_a_chain_over_part_of_the_index_reads_its_neighbours_through_every_step(index, owner, media):
    inner = [index.id_at(1, 1), index.id_at(1, 2)]  # tiles with neighbours on every side
    steps = [{"type": "slope"}, {"type": "slope"}, {"type": "hillshade"}]
    job = run(job_submit(owner=owner, steps=steps, tile_ids=inner))
    assert job.status == JobStatus.SUCCEEDED, job.error
    whole = steps_over_whole(index.whole, [("slope", {}), ("slope", {}), ("hillshade", {})])
    assert_same_pixels(window_of(whole, index, inner), merged_pixels(job))


def test_a_data_file_of_the_wrong_kind_is_refused_naming_its_step(index, owner, media):
    datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("ramp.csv", CSV.encode()))
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, tile_ids=index.ids, steps=[
            {"type": "slope"}, {"type": "color-relief", "inputs": {"color_table": "ramp.csv"}}])
    assert refused.value.errors == {
        "steps[1].inputs.color_table": "ramp.csv is a table file; steps[1].color_table needs a text file"}
    assert not Job.objects.exists()


@pytest.mark.parametrize("request_fields,errors", [
    ({"steps": [{"type": "slope", "params": {"scale": 0}}, {"type": "hillshade", "params": {"z_factor": "x"}}]},
     {"steps[0].params.scale", "steps[1].params.z_factor"}),
    ({"steps": [{"type": "slope"}, {"type": "color-relief"}]}, {"steps[1].inputs.color_table"}),
    ({"steps": [{"type": "color-relief", "inputs": {"color_table": "ramp.txt"}}, {"type": "slope"}]}, {"steps[1]"}),
    ({"steps": [{"type": "slope"}, {"type": "zonal-statistics"}]}, {"steps[1].type"}),
    ({"steps": [{"type": "slope"}, {"type": "hillshade", "params": {"band": 2}}]}, {"steps[1].params.band"}),
    ({"steps": [{"type": "slope", "extra": 1}]}, {"steps[0]"}),
    ({"steps": []}, {"steps"}),
    ({"steps": [{"type": "slope"}] * 9}, {"steps"}),
    ({"steps": "slope"}, {"steps"}),
    ({"steps": [{"type": "slope"}], "job_type": "slope", "params": {}}, {"type", "params"}),
    ({"steps": [{"type": "slope", "params": {"band": 7}}]}, {"steps[0].params.band"}),
])
def test_a_bad_chain_is_refused_naming_its_step_and_nothing_is_written(index, owner, media, ramp, request_fields, errors):
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, tile_ids=index.ids, **request_fields)
    assert set(refused.value.errors) == errors
    assert not Job.objects.exists() and not JobTile.objects.exists() and not JobInput.objects.exists()


@pytest.mark.cluster
def test_a_chain_submitted_through_the_api_waits_for_its_colour_table_and_runs_on_the_cluster(
        cluster, index, owner, client_for, media):
    client = client_for(owner)
    response = client.post("/api/v1/jobs/", {"tile_ids": index.ids, "steps": [
        {"type": "slope", "params": {"units": "percent"}},
        {"type": "color-relief", "inputs": {"color_table": "ramp.txt"}}]}, format="json")
    assert response.status_code == 201, response.json()
    job = response.json()
    assert job["type"] == "chain" and job["status"] == "waiting" and job["waiting_for"] == ["ramp.txt"]
    assert job["steps"] == [{"type": "slope", "params": job["params"]["steps"][0]["params"], "inputs": {},
                             "tiles_done": 0, "interim_bytes": 0},
                            {"type": "color-relief", "params": {"matching": "interpolate", "alpha": False, "band": 1},
                             "inputs": {"color_table": "ramp.txt"}, "tiles_done": 0, "interim_bytes": None}]
    assert job["inputs"] == {"steps[1].color_table": "ramp.txt"}
    ramp = datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode()))[0]
    done = wait_until_final(job["id"], timeout=60)
    assert done.status == JobStatus.SUCCEEDED, (done.error, cluster.output()[-2000:])
    expected = steps_over_whole(index.whole, [("slope", {"slopeFormat": "percent"}),
                                              ("color-relief", {"colorFilename": str(media_path(ramp.path))})])
    assert_same_pixels(expected, merged_pixels(done))


def test_the_api_refuses_a_bad_chain_naming_each_step_field(index, owner, client_for, media):
    response = client_for(owner).post("/api/v1/jobs/", {"tile_ids": index.ids, "steps": [
        {"type": "slope", "params": {"units": "radians"}}, {"type": "hillshade", "params": {"z_factor": -1}},
        {"type": "nonsense"}]}, format="json")
    assert response.status_code == 400
    body = response.json()["errors"]
    assert {"steps[0].params.units", "steps[1].params.z_factor", "steps[2].type"} <= set(body), body
    assert "nonsense" in str(body["steps[2].type"])
    assert client_for(owner).post("/api/v1/jobs/", {"tile_ids": index.ids}, format="json").status_code == 400
    assert not Job.objects.exists()


def test_a_resume_with_changed_steps_runs_every_tile_of_the_new_chain(index, owner, media, ramp):
    job = job_submit(owner=owner, steps=[{"type": "slope"}, {"type": "hillshade"}], tile_ids=index.ids)
    job_cancel(job=job)
    with pytest.raises(Rejected) as refused:  # a step that reads a file the job does not name
        job_resume(job=Job.objects.get(pk=job.pk), params={"steps": [{"type": "slope"}, {"type": "color-relief"}]})
    assert set(refused.value.errors) == {"steps[1].inputs.color_table"}
    with pytest.raises(Rejected) as refused:
        job_resume(job=Job.objects.get(pk=job.pk), params={"steps": [{"type": "slope", "params": {"scale": -2}}]})
    assert set(refused.value.errors) == {"steps[0].params.scale"}

    resumed, to_run = job_resume(job=Job.objects.get(pk=job.pk), params={"steps": [
        {"type": "aspect"}, {"type": "slope"}, {"type": "hillshade", "params": {"z_factor": 2}}]})
    assert to_run == len(index.ids) and resumed.type_version == "1+1+1"
    assert "every tile runs again" in JobLog.objects.filter(job=job).order_by("-id").first().message
    resumed = run(resumed)
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    expected = steps_over_whole(index.whole, [("aspect", {}), ("slope", {}), ("hillshade", {"zFactor": 2})])
    assert_same_pixels(expected, merged_pixels(resumed))


def test_a_step_that_fails_is_named_and_leaves_no_file(index, tmp_path):
    grid = tileindex.index_grid(settings.DEFAULT_COLLECTION)
    tile = tileindex.grid_tile(Tile.objects.get(number=index.id_at(1, 1)))
    out = tmp_path / "tile.tif"
    with pytest.raises(RasterError, match=r"^step 2 of 2 \(slope\): Invalid value for -alg"):
        process_chain(area=tile, sources=[tile], grid=grid, out_path=out, steps=[
            dem.Operation("hillshade", 1), dem.Operation("slope", 1, {"alg": "Bogus"})])
    assert list(tmp_path.iterdir()) == []


def test_a_chain_counts_its_pixels_once_per_step_and_a_resume_drops_the_files_of_steps_it_no_longer_has(
        index, owner, media, ramp):
    job = job_submit(owner=owner, tile_ids=index.ids, steps=[
        {"type": "slope"}, {"type": "color-relief", "inputs": {"color_table": "ramp.txt"}}])
    assert DailyUsage.objects.get(user=owner).pixels == 250 * 190 * 2
    job_cancel(job=job)
    resumed, _ = job_resume(job=Job.objects.get(pk=job.pk), params={"steps": [{"type": "slope"}, {"type": "hillshade"}]})
    assert not JobInput.objects.filter(job=job).exists()
    ramp.delete()  # no longer read: the job does not wait for it nor fail over it
    resumed = run(resumed)
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    assert_same_pixels(steps_over_whole(index.whole, [("slope", {}), ("hillshade", {})]), merged_pixels(resumed))


@pytest.mark.usefixtures("whole_batches")
def test_a_chain_runs_adjacent_tiles_as_one_block_with_the_same_pixels(index, owner, media):
    job = run(job_submit(owner=owner, tile_ids=index.ids, interim_results="always", steps=[
        {"type": "aspect"}, {"type": "slope"}, {"type": "hillshade", "params": {"compute_edges": True}}]))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert max(len(tiles) for tiles in block_files(job).values()) >= 4  # a block of several tiles, one file
    expected = steps_over_whole(index.whole, [("aspect", {}), ("slope", {}), ("hillshade", {"computeEdges": True})])
    assert_same_pixels(expected, merged_pixels(job))
