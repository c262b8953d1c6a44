"""A chain's interim results per step, and resumption from the step that failed or changed."""

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from osgeo import gdal

from datafiles import services as datafiles
from datafiles.models import DataFile as datafiles_model
from jobs import storage
from jobs.models import Job, JobLog, JobStatus, JobTile, TileStatus
from jobs.services import chainruns
from jobs.services.control import job_resume
from jobs.services.submit import job_submit
from jobsite.media import media_path

from .conftest import assert_same_pixels, wait_until_final
from .datafile_samples import COLOR_TABLE
from .test_chains import steps_over_whole
from .test_blocks import whole_batches  # noqa: F401 (a fixture)
from .test_execution import merged_pixels, run

SLOPES = [{"type": "slope"}, {"type": "slope", "params": {"units": "percent"}}, {"type": "hillshade"}]
WHOLE_SLOPES = [("slope", {}), ("slope", {"slopeFormat": "percent"}), ("hillshade", {})]
RELIEF = [{"type": "slope"}, {"type": "hillshade"}, {"type": "color-relief", "inputs": {"color_table": "ramp.txt"}}]


def relief_over_whole(index, ramp, **options):
    return steps_over_whole(index.whole, [("slope", {}), ("hillshade", {}), ("color-relief", {
        "colorFilename": str(media_path(ramp.path)), **options})])


@pytest.fixture
def ramp(owner, media):
    return datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode()))[0]


def runs(job):
    """{tile number: how many times each step ran for it}."""
    return {number: steps.get("runs") for number, steps in JobTile.objects.filter(job=job).values_list("tile__number",
                                                                                                         "steps")}


def test_each_step_keeps_its_result_with_the_margin_the_later_steps_need(index, owner, media,
                                                                         django_capture_on_commit_callbacks):
    job = run(job_submit(owner=owner, tile_ids=index.ids, steps=SLOPES, interim_results="always"))
    assert job.status == JobStatus.SUCCEEDED, job.error
    for step, margin in ((0, 2), (1, 1)):
        whole = steps_over_whole(index.whole, WHOLE_SLOPES[:step + 1])
        for job_tile in JobTile.objects.filter(job=job).select_related("tile"):
            path, size, col, row, width, height, _ = job_tile.steps["outputs"][step]
            tile = job_tile.tile  # its window, or its block's, grown by the margin
            assert col <= max(0, tile.col - margin) and row <= max(0, tile.row - margin)
            assert col + width >= min(250, tile.col + tile.width + margin)
            assert row + height >= min(190, tile.row + tile.height + margin)
            assert (col == 0 or col % 64 == 64 - margin) and (row == 0 or row % 64 == 64 - margin)
            assert_same_pixels(whole[row:row + height, col:col + width], gdal.Open(str(media_path(path))).ReadAsArray())
    assert set(map(tuple, runs(job).values())) == {(1, 1, 1)}
    kept = sum(JobTile.objects.filter(job=job).values_list("steps_size", flat=True))
    assert kept > 0 and storage.job_usage(owner)[1] >= kept + job.outputs_size

    job.status = JobStatus.FAILED  # a job whose interim results cleanup_storage may delete
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    paths = [output[0] for steps in JobTile.objects.filter(job=job).values_list("steps", flat=True)
             for output in steps["outputs"]]
    with django_capture_on_commit_callbacks(execute=True):
        assert storage.cleanup(owner=owner)[2] >= kept
    assert not any(media_path(path).exists() for path in paths)
    assert set(JobTile.objects.filter(job=job).values_list("steps_size", flat=True)) == {0}


@pytest.mark.parametrize("policy", ["on_error", "never"])
def test_interim_results_of_steps_go_with_the_jobs_policy(index, owner, media, policy,
                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = run(job_submit(owner=owner, tile_ids=index.ids, steps=SLOPES, interim_results=policy))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert set(JobTile.objects.filter(job=job).values_list("steps_size", flat=True)) == {0}
    folder = media / "jobs" / str(job.pk) / "steps"
    assert not list(folder.rglob("*.tif"))
    assert folder.is_dir() == (policy == "on_error")  # written while the job ran, removed once it succeeded
    assert_same_pixels(steps_over_whole(index.whole, WHOLE_SLOPES), merged_pixels(job))


@pytest.fixture
def failed_at_the_last_step(index, owner, media, ramp, settings):
    """A chain of three steps whose last step's output cannot be written for one tile: the job
    fails with that tile failed at step 3, the others succeeded."""
    settings.TILE_MAX_ATTEMPTS = 1
    job = job_submit(owner=owner, tile_ids=index.ids, steps=RELIEF, interim_results="on_error")
    broken = index.id_at(1, 1)
    blocker = media / "jobs" / str(job.pk) / "tiles" / f"{broken}_1.tif"
    blocker.mkdir(parents=True)  # where the tile's output would be renamed to
    job = run(job)
    assert job.status == JobStatus.FAILED
    failed = JobTile.objects.get(job=job, status=TileStatus.FAILED)
    assert failed.tile.number == broken and failed.steps["failed"] == 2
    assert set(map(tuple, runs(job).values())) == {(1, 1, 1)}
    blocker.rmdir()
    return Job.objects.get(pk=job.pk), broken


def test_a_resume_without_changes_runs_only_the_failed_tile_and_only_from_the_step_it_failed_at(
        index, ramp, failed_at_the_last_step):
    job, broken = failed_at_the_last_step
    resumed, to_run = job_resume(job=job)
    assert to_run == 1
    resumed = run(resumed)
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    assert runs(resumed) == {number: [1, 1, 2] if number == broken else [1, 1, 1] for number in index.ids}
    assert_same_pixels(relief_over_whole(index, ramp), merged_pixels(resumed))


def test_a_resume_that_changes_the_last_step_keeps_every_tiles_earlier_steps(index, ramp, failed_at_the_last_step):
    job, _ = failed_at_the_last_step
    steps = [*RELIEF[:2], {"type": "color-relief", "params": {"alpha": True}}]
    resumed, to_run = job_resume(job=job, params={"steps": [{k: v for k, v in step.items() if k != "inputs"}
                                                            for step in steps]})
    assert to_run == len(index.ids)
    log = JobLog.objects.filter(job=job).order_by("-id").first().message
    assert "step 1 (slope) kept for 12 and run for 0" in log and "step 3 (color-relief) kept for 0 and run for 12" in log
    resumed = run(resumed)
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    assert set(map(tuple, runs(resumed).values())) == {(1, 1, 2)}  # steps 1 and 2 never ran again
    assert_same_pixels(relief_over_whole(index, ramp, addAlpha=True), merged_pixels(resumed))


def test_the_api_and_the_job_page_count_per_step_the_tiles_done_and_the_bytes_kept(
        index, owner, ramp, failed_at_the_last_step, client_for):
    job, _ = failed_at_the_last_step
    client = client_for(owner)

    def facts():
        steps = client.get(f"/api/v1/jobs/{job.pk}/").json()["steps"]
        return [step["tiles_done"] for step in steps], [step["interim_bytes"] for step in steps]

    kept = [sum(t.steps["outputs"][step][1] for t in JobTile.objects.filter(job=job)) for step in range(2)]
    assert all(kept) and facts() == ([12, 12, 11], [*kept, None])
    listed = client.get("/api/v1/jobs/").json()["results"][0]["steps"]
    assert [step["type"] for step in listed] == ["slope", "hillshade", "color-relief"] and "tiles_done" not in listed[0]
    job_resume(job=job, params={"steps": [*RELIEF[:2], {"type": "color-relief", "params": {"alpha": True}}]})
    assert facts() == ([12, 12, 0], [*kept, None])  # steps 1 and 2 kept for every tile, step 3 to run
    page = Client()
    page.force_login(owner)
    html = page.get(f"/jobs/{job.pk}/").content.decode()
    assert html.count("12 of 12 tiles done") == 2 and "0 of 12 tiles done" in html
    resumed = run(Job.objects.get(pk=job.pk))
    assert resumed.status == JobStatus.SUCCEEDED and facts()[0] == [12, 12, 12]


def test_a_chain_failed_at_step_2_on_one_tile_is_put_right_by_a_corrected_step_2_without_running_step_1_again(
        index, owner, media, ramp, settings):
    settings.TILE_MAX_ATTEMPTS = 1
    job = job_submit(owner=owner, tile_ids=index.ids, steps=RELIEF, interim_results="always")
    broken = index.id_at(1, 2)
    blocker = media / storage.step_output_relpath(job.pk, broken, broken, 1, 1)
    blocker.mkdir(parents=True)  # step 2's result cannot be written for this tile
    job = run(job)
    assert job.status == JobStatus.FAILED
    failed = JobTile.objects.get(job=job, status=TileStatus.FAILED)
    assert failed.tile.number == broken and failed.steps["failed"] == 1
    blocker.rmdir()
    corrected = [RELIEF[0], {"type": "hillshade", "params": {"z_factor": 2}}, RELIEF[2]]
    resumed, to_run = job_resume(job=Job.objects.get(pk=job.pk), params={"steps": [
        {k: v for k, v in step.items() if k != "inputs"} for step in corrected]})
    assert to_run == len(index.ids)
    resumed = run(resumed)
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    # step 1 ran once for every tile; step 2 again for all, step 3 once more where it had run
    assert runs(resumed) == {number: [1, 2, 1] if number == broken else [1, 2, 2] for number in index.ids}
    expected = steps_over_whole(index.whole, [("slope", {}), ("hillshade", {"zFactor": 2}), ("color-relief", {
        "colorFilename": str(media_path(ramp.path))})])
    assert_same_pixels(expected, merged_pixels(resumed))


def test_a_resume_goes_back_to_the_earliest_step_whose_result_a_later_calc_reads(index, owner, media, settings):
    settings.TILE_MAX_ATTEMPTS = 1
    mixed = {"type": "calc", "params": {"expression": "where(h > 150, s, -s)", "inputs": {"s": {"step": 0},
                                                                                       "h": {"step": 1}}}}
    job = job_submit(owner=owner, tile_ids=index.ids, steps=[{"type": "slope"}, {"type": "hillshade"}, mixed],
                     interim_results="on_error")
    broken = index.id_at(0, 1)
    blocker = media / "jobs" / str(job.pk) / "tiles" / f"{broken}_1.tif"
    blocker.mkdir(parents=True)
    job = run(job)
    assert job.status == JobStatus.FAILED
    blocker.rmdir()
    assert [step["tiles_done"] for step in chainruns.step_facts(job)] == [12, 12, 11]  # it failed at step 3
    resumed, to_run = job_resume(job=Job.objects.get(pk=job.pk))
    assert to_run == 1
    assert [step["tiles_done"] for step in chainruns.step_facts(job)] == [12, 11, 11]  # it runs from step 2
    resumed = run(resumed)
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    # step 3 reads step 1's result, which only a run from step 2 has: step 2 runs again, step 1 not
    assert runs(resumed) == {number: [1, 2, 2] if number == broken else [1, 1, 1] for number in index.ids}
    slope = gdal.DEMProcessing("", str(index.whole), "slope", format="MEM")
    s, h = slope.ReadAsArray(), gdal.DEMProcessing("", slope, "hillshade", format="MEM").ReadAsArray()
    expected = np.where((s != -9999) & (h != 0), np.where(h > 150, s, -s), -9999).astype(np.float32)
    assert_same_pixels(expected, merged_pixels(resumed))


def test_a_resume_that_changes_the_first_step_runs_every_step_again(index, ramp, failed_at_the_last_step):
    job, _ = failed_at_the_last_step
    steps = [{"type": "slope", "params": {"units": "percent"}}, *[{"type": s["type"]} for s in RELIEF[1:]]]
    resumed, _ = job_resume(job=job, params={"steps": steps})
    resumed = run(resumed)
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    assert set(map(tuple, runs(resumed).values())) == {(2, 2, 2)}
    expected = steps_over_whole(index.whole, [("slope", {"slopeFormat": "percent"}), ("hillshade", {}), (
        "color-relief", {"colorFilename": str(media_path(ramp.path))})])
    assert_same_pixels(expected, merged_pixels(resumed))


def test_a_resume_after_the_interim_results_were_deleted_starts_from_the_first_step(
        index, owner, ramp, failed_at_the_last_step, django_capture_on_commit_callbacks):
    job, broken = failed_at_the_last_step
    with django_capture_on_commit_callbacks(execute=True):
        storage.cleanup(owner=owner)
    assert not list((media_path("jobs") / str(job.pk) / "steps").rglob("*.tif"))
    resumed = run(job_resume(job=Job.objects.get(pk=job.pk))[0])
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    assert runs(resumed)[broken] == [2, 2, 2]
    assert np.array_equal(relief_over_whole(index, ramp), merged_pixels(resumed))


def test_a_chain_cut_short_runs_its_new_last_step_again_from_the_kept_results(index, ramp, failed_at_the_last_step):
    job, _ = failed_at_the_last_step
    resumed = run(job_resume(job=job, params={"steps": [{"type": "slope"}, {"type": "hillshade"}]})[0])
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    assert set(map(tuple, runs(resumed).values())) == {(1, 2)}
    assert_same_pixels(steps_over_whole(index.whole, [("slope", {}), ("hillshade", {})]), merged_pixels(resumed))


@pytest.mark.usefixtures("whole_batches")
def test_a_resume_reads_the_results_that_blocks_kept(index, owner, media):
    job = run(job_submit(owner=owner, tile_ids=index.ids, steps=SLOPES, interim_results="always"))
    holders = {}
    for steps in JobTile.objects.filter(job=job).values_list("steps", flat=True):
        holders[steps["outputs"][1][0]] = holders.get(steps["outputs"][1][0], 0) + 1
    assert max(holders.values()) >= 4  # a block's file, which its tiles share
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)  # as if its merge had failed
    changed = [*SLOPES[:2], {"type": "hillshade", "params": {"z_factor": 2}}]
    resumed = run(job_resume(job=Job.objects.get(pk=job.pk), params={"steps": changed})[0])
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    assert set(map(tuple, runs(resumed).values())) == {(1, 1, 2)}
    assert_same_pixels(steps_over_whole(index.whole, [*WHOLE_SLOPES[:2], ("hillshade", {"zFactor": 2})]),
                       merged_pixels(resumed))


def test_a_kept_result_too_narrow_for_the_new_steps_halos_is_not_used(index, owner, media, ramp):
    old = [{"type": "slope"}, {"type": "slope"}, {"type": "color-relief", "inputs": {"color_table": "ramp.txt"}}]
    job = run(job_submit(owner=owner, tile_ids=index.ids, steps=old, interim_results="always"))
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    # colour relief needs no halo, so step 2 kept no margin; hillshade needs one pixel, and the one
    # pixel step 1 kept is also one short of the two that step 2 and hillshade need together
    resumed = run(job_resume(job=Job.objects.get(pk=job.pk), params={"steps": [
        {"type": "slope"}, {"type": "slope"}, {"type": "hillshade"}]})[0])
    assert resumed.status == JobStatus.SUCCEEDED, resumed.error
    assert set(map(tuple, runs(resumed).values())) == {(2, 2, 2)}
    assert_same_pixels(steps_over_whole(index.whole, [("slope", {}), ("slope", {}), ("hillshade", {})]),
                       merged_pixels(resumed))


@pytest.mark.cluster
def test_a_chain_failed_at_its_last_step_is_put_right_on_the_cluster_without_running_its_first_steps_again(
        start_cluster, index, owner, client_for, media):
    cluster = start_cluster(JOBSITE_TILE_MAX_ATTEMPTS="1")
    client = client_for(owner)
    job = client.post("/api/v1/jobs/", {"tile_ids": index.ids, "steps": RELIEF, "interim_results": "on_error"},
                      format="json").json()
    assert job["status"] == "waiting"  # for its colour table: the time to break one tile's output
    blocker = media / "jobs" / str(job["id"]) / "tiles" / f"{index.id_at(2, 3)}_1.tif"
    blocker.mkdir(parents=True)
    response = client.post("/api/v1/datafiles/", {"file": SimpleUploadedFile("ramp.txt", COLOR_TABLE.encode())},
                           format="multipart")
    assert response.status_code == 201
    failed = wait_until_final(job["id"], timeout=60)
    assert failed.status == JobStatus.FAILED, cluster.output()[-2000:]
    assert "step 3 of 3 (color-relief)" in failed.error or JobTile.objects.filter(
        job_id=job["id"], error__contains="step 3 of 3 (color-relief)").exists()
    blocker.rmdir()

    steps = [{"type": "slope"}, {"type": "hillshade"}, {"type": "color-relief", "params": {"alpha": True}}]
    response = client.put(f"/api/v1/jobs/{job['id']}/", {"params": {"steps": steps}}, format="json")
    assert response.status_code == 200, response.json()
    done = wait_until_final(job["id"], timeout=60)
    assert done.status == JobStatus.SUCCEEDED, (done.error, cluster.output()[-2000:])
    assert set(map(tuple, runs(done).values())) == {(1, 1, 2)}  # slope and hillshade ran once per tile
    ramp = media_path(datafiles_model.objects.get(name="ramp.txt").path)
    expected = steps_over_whole(index.whole, [("slope", {}), ("hillshade", {}), (
        "color-relief", {"colorFilename": str(ramp), "addAlpha": True})])
    assert_same_pixels(expected, merged_pixels(done))
