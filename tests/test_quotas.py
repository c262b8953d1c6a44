"""Quotas: pixels and CPU seconds per day, job storage per user, refused with the quota, the usage and
when it resets; GET /api/v1/quotas/; a ledger that outlives the jobs."""

from datetime import datetime, timezone as tz

import pytest
from django.db.models import Sum

from jobs.models import DailyUsage, Job, JobStatus, JobTile, UserLimits
from jobs.services import control, quotas
from jobs.services.submit import job_submit
from jobsite.exceptions import QuotaExceeded

from .test_execution import run

ROW = 3 * 64 * 64  # the pixels of the first three tiles of the test index


def post(client, ids, **body):
    return client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": ids, **body}, format="json")


def test_a_submit_over_the_pixels_of_the_day_is_a_429_naming_quota_usage_and_reset(index, owner, client_for, settings):
    settings.PIXELS_PER_DAY = 2 * ROW
    client = client_for(owner)
    assert post(client, index.ids[:3]).status_code == 201
    refused = post(client, index.ids[:3] + index.ids[4:5])
    assert refused.status_code == 429
    body, resets = refused.json(), quotas.resets()
    assert body["quota"] == {"name": "pixels_per_day", "limit": 2 * ROW, "used": ROW, "requested": ROW + 64 * 64,
                             "resets": resets.isoformat().replace("+00:00", "Z")}
    assert body["detail"] == (f"this job has {ROW + 4096:,} pixels to process, and your jobs have processed {ROW:,} of "
                              f"your {2 * ROW:,} pixels today (UTC); the quota resets at {body['quota']['resets']}")
    assert 0 < int(refused["Retry-After"]) <= 24 * 3600
    assert Job.objects.count() == 1
    assert post(client, index.ids[:3]).status_code == 201  # exactly up to the quota
    UserLimits.objects.create(user=owner, pixels_per_day=10 * ROW)  # the admin gives this user more
    assert post(client, index.ids[:3]).status_code == 201


def test_once_the_cpu_seconds_of_the_day_are_used_up_submits_are_refused(index, owner, client_for, settings):
    settings.CPU_SECONDS_PER_DAY = 100
    quotas.record(owner.pk, cpu_seconds=100.5)
    refused = post(client_for(owner), index.ids[:1])
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith("your jobs have used 100 of your 100 CPU seconds today (UTC); the quota resets at ")
    assert refused.json()["quota"]["name"] == "cpu_seconds_per_day" and not Job.objects.exists()
    estimate = client_for(owner).post("/api/v1/jobs/estimate/", {"type": "slope", "tile_ids": index.ids[:1]}, format="json")
    assert estimate.json()["allowed"]["ok"] is False and "CPU seconds" in estimate.json()["allowed"]["problems"][0]


def test_a_users_own_job_storage_quota_is_a_413(index, owner, other, client_for):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    Job.objects.filter(pk=job.pk).update(outputs_size=5000, status=JobStatus.SUCCEEDED)
    UserLimits.objects.create(user=owner, job_storage_bytes=4000)
    refused = post(client_for(owner), index.ids[:1])
    assert refused.status_code == 413
    assert refused.json()["detail"] == ("your jobs store 5000 bytes; your quota is 4000 bytes; delete finished jobs or "
                                        "their interim results")
    assert post(client_for(other), index.ids[:1]).status_code == 201  # the site's quota for the others


def test_a_resume_counts_the_pixels_it_will_process_again_and_is_refused_over_the_quota(index, owner, media, settings):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    control.job_cancel(job=job)
    settings.PIXELS_PER_DAY = ROW + 100
    control.job_resume(job=job)  # its tiles never ran: counted at submit, not again
    assert quotas.used_today(owner.pk) == {"jobs": 2, "pixels": ROW, "cpu_seconds": 0.0}
    control.job_cancel(job=job)
    JobTile.objects.filter(job=job).update(attempts=1)  # they ran, and were stopped
    with pytest.raises(QuotaExceeded, match=f"this job has {ROW:,} pixels to process"):
        control.job_resume(job=job)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED and job.attempt == 2  # nothing of the refused resume is kept
    settings.PIXELS_PER_DAY = 2 * ROW
    control.job_resume(job=job)
    assert quotas.used_today(owner.pk) == {"jobs": 3, "pixels": 2 * ROW, "cpu_seconds": 0.0}


def test_the_ledger_counts_tiles_and_merge_cpu_and_outlives_the_job(index, owner, media, client_for):
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:4]))
    assert job.status == JobStatus.SUCCEEDED
    used = quotas.used_today(owner.pk)
    tiles_cpu = JobTile.objects.filter(job=job).aggregate(n=Sum("cpu_seconds"))["n"]
    assert tiles_cpu > 0 and used["cpu_seconds"] > tiles_cpu  # the merge's CPU counts too
    assert used["pixels"] == sum(t.width * t.height for t in job.tiles.select_related("tile").all() for t in [t.tile])
    control.job_delete(job=job)
    assert quotas.used_today(owner.pk) == used
    answer = client_for(owner).get("/api/v1/quotas/").json()
    assert answer["pixels_per_day"] == {"limit": None, "used": used["pixels"]}
    assert answer["cpu_seconds_per_day"]["used"] == pytest.approx(used["cpu_seconds"], abs=0.001)
    assert answer["jobs_today"] == 1 and answer["active_jobs"]["used"] == 0 and answer["jobs"]["used"] == 0
    assert DailyUsage.objects.get(user=owner).day == datetime.now(tz.utc).date()


def test_the_quotas_answer_gives_each_limit_with_its_usage(index, owner, staff, client_for, settings):
    settings.PIXELS_PER_DAY, settings.MAX_RUNNING_TILES_PER_USER = 10 * ROW, 4
    UserLimits.objects.create(user=owner, cpu_seconds_per_day=3600)
    job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    answer = client_for(owner).get("/api/v1/quotas/")
    assert answer.status_code == 200
    body = answer.json()
    assert body["pixels_per_day"] == {"limit": 10 * ROW, "used": ROW}
    assert body["cpu_seconds_per_day"] == {"limit": 3600.0, "used": 0.0}
    assert body["active_jobs"] == {"limit": settings.MAX_ACTIVE_JOBS_PER_USER, "used": 1}
    assert body["running_tiles"] == {"limit": 4, "used": 0}
    assert body["job_storage_bytes"]["limit"] == settings.JOB_STORAGE_QUOTA_BYTES
    assert body["resets"].endswith("T00:00:00Z") and body["day"] == datetime.now(tz.utc).date().isoformat()
    assert client_for(staff).get("/api/v1/quotas/?user=owner").json()["pixels_per_day"]["used"] == ROW
    refused = client_for(owner).get("/api/v1/quotas/?user=staff")
    assert refused.status_code == 400 and refused.json()["errors"] == {"user": ["only staff may see another user's quotas"]}
