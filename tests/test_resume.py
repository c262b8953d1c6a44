"""Resuming failed and canceled jobs from their interim results."""

import threading

import pytest
from django.db import connection

from jobsite.media import media_path
from jobs import tileindex

from jobs.jobtypes import get_job_type
from jobs.services.control import job_cancel, job_resume
from jobs.services.submit import job_submit
from jobs.services.claims import claim_tiles
from jobs.services.worker import run_tile
from jobsite.exceptions import Conflict, Rejected
from jobs.models import Job, JobLog, JobStatus, JobTile, Tile, TileStatus

from .conftest import assert_same_pixels, whole_area
from .test_execution import merged_pixels, run


@pytest.fixture
def failed_job(index, owner, media):
    """A hillshade over every tile whose tile 111 could not be read."""
    good_path = Tile.objects.get(number=111).path
    Tile.objects.filter(number=111).update(path=str(media / "missing.tif"))
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids))
    assert job.status == JobStatus.FAILED
    Tile.objects.filter(number=111).update(path=good_path)  # the data is repaired
    return job


def attempts(job):
    return dict(JobTile.objects.filter(job=job).values_list("tile__number", "attempts"))


def neighbours_of_111(index):
    return {index.id_at(row, col) for row in range(3) for col in range(3)}


def test_resume_reruns_only_the_tiles_that_did_not_succeed(failed_job, index, owner):
    failed = set(JobTile.objects.filter(job=failed_job).exclude(status=TileStatus.SUCCEEDED).values_list("tile__number", flat=True))
    assert failed == neighbours_of_111(index)  # 111 and every tile whose halo needs it
    job, to_run = job_resume(job=failed_job, by=owner)
    assert (job.status, job.attempt, to_run, job.error) == (JobStatus.QUEUED, 2, len(failed), "")
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED
    assert attempts(job) == {tile_id: 2 if tile_id in failed else 1 for tile_id in index.ids}
    assert_same_pixels(whole_area(index.whole, "hillshade"), merged_pixels(job))
    log = JobLog.objects.filter(job=job, message__startswith="resumed").get().message
    assert log == f"resumed by owner (attempt 2): {len(index.ids) - len(failed)} tiles kept from before; {len(failed)} tiles to run"


def test_new_parameters_recompute_every_tile(failed_job, index, owner):
    job, to_run = job_resume(job=failed_job, by=owner, params={"z_factor": 3, "azimuth": 100})
    assert to_run == len(index.ids) and job.params["z_factor"] == 3.0 and job.params["altitude"] == 45.0
    job = run(job)
    assert set(attempts(job).values()) == {2}
    assert_same_pixels(whole_area(index.whole, "hillshade", zFactor=3, azimuth=100), merged_pixels(job))
    log = JobLog.objects.filter(job=job, message__startswith="resumed").get().message
    assert "parameters changed (z_factor 1.0 -> 3.0; azimuth 315.0 -> 100.0), every tile runs again" in log


def test_giving_the_same_parameter_values_is_no_change(failed_job, owner):
    _, to_run = job_resume(job=failed_job, by=owner, params={"z_factor": 1})
    assert to_run == 9


def test_a_tile_output_that_is_gone_or_cut_short_runs_again(failed_job, index, owner):
    kept = JobTile.objects.filter(job=failed_job, status=TileStatus.SUCCEEDED).order_by("tile__number")
    gone, cut = kept[0], kept[1]
    media_path(gone.output_path).unlink()
    with open(media_path(cut.output_path), "r+b") as handle:
        handle.truncate(100)
    _, to_run = job_resume(job=failed_job, by=owner)
    assert to_run == 9 + 2
    job = run(Job.objects.get(pk=failed_job.pk))
    assert job.status == JobStatus.SUCCEEDED
    assert_same_pixels(whole_area(index.whole, "hillshade"), merged_pixels(job))


def test_bad_new_parameters_are_rejected_and_the_job_stays_as_it_was(failed_job, owner):
    with pytest.raises(Rejected) as caught:
        job_resume(job=failed_job, by=owner, params={"azimuth": 720})
    assert caught.value.errors == {"params": {"azimuth": "must be at most 360"}}
    failed_job.refresh_from_db()
    assert (failed_job.status, failed_job.attempt) == (JobStatus.FAILED, 1)


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.MERGING, JobStatus.SUCCEEDED,
                                    JobStatus.WAITING])
def test_only_failed_or_canceled_jobs_resume(index, owner, status):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    Job.objects.filter(pk=job.pk).update(status=status)
    with pytest.raises(Conflict, match=f"job {job.pk} is {status}; only failed or canceled jobs can be resumed"):
        job_resume(job=job, by=owner)


def test_cancel_then_resume_keeps_the_finished_tiles(index, owner, media):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:4], interim_results="on_error")
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    slope = get_job_type("slope")
    for _ in range(2):  # two tiles finish before the cancel
        run_tile(job, claim_tiles(job.pk, "w", 1)[0], slope, {},
                 tileindex.index_grid())
    job_cancel(job=job, by="owner")
    job, to_run = job_resume(job=Job.objects.get(pk=job.pk), by=owner)
    assert to_run == 2
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED and sorted(attempts(job).values()) == [1, 1, 1, 1]


def test_the_api_resumes_with_post_or_put_and_says_how_many_tiles_run(failed_job, owner, other, client_for):
    client = client_for(owner)
    detail = client.get(f"/api/v1/jobs/{failed_job.pk}/").json()
    assert detail["links"]["resume"] == f"http://testserver/api/v1/jobs/{failed_job.pk}/resume/"
    assert client_for(other).post(f"/api/v1/jobs/{failed_job.pk}/resume/").status_code == 404
    response = client.post(f"/api/v1/jobs/{failed_job.pk}/resume/", {"params": {"z_factor": 2}}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["attempt"], body["tiles_to_run"], body["params"]["z_factor"]) == ("queued", 2, 12, 2.0)
    again = client.put(f"/api/v1/jobs/{failed_job.pk}/", {}, format="json")
    assert again.status_code == 409 and again.json()["detail"].endswith("only failed or canceled jobs can be resumed")


def test_the_api_resumes_with_put(failed_job, owner, client_for):
    response = client_for(owner).put(f"/api/v1/jobs/{failed_job.pk}/", {}, format="json")
    assert response.status_code == 200 and response.json()["tiles_to_run"] == 9


@pytest.mark.parametrize("body,problem", [
    ({"params": {"altitude": 100}}, "params.altitude: must be at most 90"),
    ({"params": "steep"}, "params: Expected a dictionary"),
])
def test_the_api_rejects_bad_resume_bodies(failed_job, owner, client_for, body, problem):
    response = client_for(owner).post(f"/api/v1/jobs/{failed_job.pk}/resume/", body, format="json")
    assert response.status_code == 400 and problem in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_of_concurrent_resumes_exactly_one_wins(index, owner, media):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])
    job_cancel(job=job, by="owner")
    start, outcomes = threading.Barrier(4), []

    def resume():
        start.wait()
        try:
            job_resume(job=Job.objects.get(pk=job.pk), by=owner)
            outcomes.append("won")
        except Conflict:
            outcomes.append("409")
        finally:
            connection.close()

    threads = [threading.Thread(target=resume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["409", "409", "409", "won"]
    assert Job.objects.get(pk=job.pk).attempt == 2
    assert JobLog.objects.filter(job=job, message__startswith="resumed").count() == 1
