"""Quotas on what jobs keep: the bytes of a user's outputs and interim results
(JOBSITE_JOB_STORAGE_QUOTA_BYTES, 413) and the jobs a user keeps (JOBSITE_MAX_JOBS_PER_USER, 429).
A refused submit or resume writes nothing, and no job is ever pruned to make room."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import storage
from jobs.services.control import job_cancel
from jobs.services.submit import job_submit
from jobs.models import Job, JobLog, JobStatus, JobTile

QUOTA_MESSAGE = ("your jobs store {stored} bytes; your quota is {quota} bytes; "
                 "delete finished jobs or their interim results")


@pytest.fixture
def stored(index, owner, media):
    """A finished job of the owner's with 1000 bytes of outputs and two tiles of 300 bytes each kept,
    and a third tile whose interim file is gone (it counts nothing)."""
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    job_cancel(job=job)
    Job.objects.filter(pk=job.pk).update(outputs_size=1000)
    tiles = list(JobTile.objects.filter(job=job).order_by("tile__number"))
    for tile in tiles[:2]:
        JobTile.objects.filter(pk=tile.pk).update(output_path=f"jobs/{job.pk}/tiles/{tile.tile.number}_1.tif", output_size=300)
    JobTile.objects.filter(pk=tiles[2].pk).update(output_path="", output_size=None)
    job.refresh_from_db()
    return job


def written(media):
    return sorted(str(p.relative_to(media)) for p in media.rglob("*")) if media.exists() else []


def counts():
    return Job.objects.count(), JobTile.objects.count(), JobLog.objects.count()


def test_it_counts_outputs_and_the_interim_results_still_on_disk(stored, owner, other):
    assert storage.job_usage(owner) == (1, 1600)
    assert storage.job_usage(other) == (0, 0)


@pytest.mark.parametrize("quota,refused", [(1600, True), (1000, True), (1601, False)])
def test_a_submit_at_or_over_the_storage_quota_is_a_413_with_the_figures(stored, owner, client_for, settings, media,
                                                                       quota, refused):
    settings.JOB_STORAGE_QUOTA_BYTES = quota
    before, files = counts(), written(media)
    response = client_for(owner).post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100]}, format="json")
    if not refused:
        assert response.status_code == 201
        return
    assert response.status_code == 413
    assert response.json() == {"detail": QUOTA_MESSAGE.format(stored=1600, quota=quota)}
    assert counts() == before and written(media) == files


def test_another_users_storage_does_not_count(stored, other, client_for, settings):
    settings.JOB_STORAGE_QUOTA_BYTES = 1600
    assert client_for(other).post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100]}, format="json").status_code == 201


def test_deleting_interim_results_makes_room_again(stored, owner, client_for, settings):
    settings.JOB_STORAGE_QUOTA_BYTES = 1001
    client = client_for(owner)
    assert client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100]}, format="json").status_code == 413
    assert client.delete("/api/v1/storage/").status_code == 202
    assert client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100]}, format="json").status_code == 201


def test_a_resume_at_the_storage_quota_is_a_413_that_changes_nothing(stored, owner, client_for, settings, media):
    settings.JOB_STORAGE_QUOTA_BYTES = 1600
    before, files = counts(), written(media)
    tiles = list(JobTile.objects.filter(job=stored).order_by("pk").values_list("status", "output_path", "output_size"))
    response = client_for(owner).post(f"/api/v1/jobs/{stored.pk}/resume/", {}, format="json")
    assert response.status_code == 413
    assert response.json() == {"detail": QUOTA_MESSAGE.format(stored=1600, quota=1600)}
    job = Job.objects.get(pk=stored.pk)
    assert (job.status, job.attempt, job.outputs_size) == (JobStatus.CANCELED, stored.attempt, 1000)
    assert list(JobTile.objects.filter(job=stored).order_by("pk").values_list("status", "output_path", "output_size")) == tiles
    assert counts() == before and written(media) == files
    settings.JOB_STORAGE_QUOTA_BYTES = 1601
    assert client_for(owner).post(f"/api/v1/jobs/{stored.pk}/resume/", {}, format="json").status_code == 200


def test_submits_beyond_the_jobs_kept_are_a_429_and_no_job_is_pruned(index, owner, client_for, settings, media):
    settings.MAX_JOBS_PER_USER = 3
    jobs = [job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]) for _ in range(3)]
    for job in jobs:
        job_cancel(job=job)
    before, files = counts(), written(media)
    client = client_for(owner)
    response = client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100]}, format="json")
    assert response.status_code == 429
    assert response.json() == {"detail": "you have 3 jobs and the limit is 3 jobs per user; "
                                         "delete finished jobs to submit more"}
    assert counts() == before and written(media) == files
    assert sorted(Job.objects.filter(owner=owner).values_list("pk", flat=True)) == sorted(j.pk for j in jobs)
    assert client.delete(f"/api/v1/jobs/{jobs[0].pk}/").status_code == 204
    assert client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": [100]}, format="json").status_code == 201


def test_the_old_pipeline_and_the_dashboard_say_so_too(stored, owner, client, client_for, settings):
    settings.JOB_STORAGE_QUOTA_BYTES = 1600
    legacy = client_for(owner).get("/start_job?tile_ids=100&type=slope")
    assert legacy.status_code == 413 and legacy.json()["message"] == QUOTA_MESSAGE.format(stored=1600, quota=1600)
    client.force_login(owner)
    page = client.post("/jobs/new/", {"type": "slope", "tile_ids": "100", "param_scale": "1", "param_units": "degree",
                                      "param_algorithm": "Horn"})
    assert page.status_code == 200 and "your jobs store 1600 bytes" in page.content.decode()
    resumed = client.post(f"/jobs/{stored.pk}/resume/", {"confirm": "yes"}, follow=True)
    assert "your jobs store 1600 bytes" in resumed.content.decode()
    assert Job.objects.get(pk=stored.pk).status == JobStatus.CANCELED


def test_the_checks_cost_the_same_queries_however_many_jobs_a_user_keeps(index, owner):
    def submit_queries():
        with CaptureQueriesContext(connection) as queries:
            job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])
        return len(queries)

    job_cancel(job=job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2]))  # the scheduler knows the user
    first = submit_queries()
    for _ in range(20):
        job_cancel(job=job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2]))
    assert submit_queries() == first


def test_the_storage_answer_shows_the_figures_and_the_limits(stored, owner, staff, client_for, settings):
    settings.JOB_STORAGE_QUOTA_BYTES, settings.MAX_JOBS_PER_USER = 5000, 7
    body = client_for(owner).get("/api/v1/storage/").json()
    assert (body["job_bytes"], body["jobs"]) == (1600, 1)
    assert body["limits"] == {"job_bytes": 5000, "jobs": 7, "active_jobs": settings.MAX_ACTIVE_JOBS_PER_USER,
                              "data_bytes": settings.DATAFILE_QUOTA_BYTES}
    users = {u["username"]: u for u in client_for(staff).get("/api/v1/storage/").json()["users"]}
    assert (users["owner"]["job_bytes"], users["owner"]["jobs"]) == (1600, 1)
