"""What job files take, and deleting the interim results of ended jobs."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from jobsite.media import media_path
from jobs import storage

from jobs.services.control import job_resume
from jobs.services.submit import job_submit
from jobs.models import Job, JobStatus, JobTile, Tile

from .test_execution import run


@pytest.fixture
def jobs(index, owner, other, media, django_capture_on_commit_callbacks):
    """owner: one succeeded job (outputs only), two failed ones (interim results), one old; other: one failed."""
    gone = str(media / "gone.tif")
    made = {}
    with django_capture_on_commit_callbacks(execute=True):
        made["done"] = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2]))
        Tile.objects.filter(number=index.id_at(2, 3)).update(path=gone)
        for name, user in [("recent", owner), ("old", owner), ("theirs", other)]:
            made[name] = run(job_submit(owner=user, job_type="slope",
                                        tile_ids=[index.id_at(0, 0), index.id_at(2, 3)]))
    Job.objects.filter(pk=made["old"].pk).update(finished=timezone.now() - timedelta(days=10))
    return made


def interim_of(job):
    return sum(JobTile.objects.filter(job=job).exclude(output_path="").values_list("output_size", flat=True))


def test_usage_of_the_caller(jobs, owner, client_for):
    body = client_for(owner).get("/api/v1/storage/").json()
    interim = interim_of(jobs["recent"]) + interim_of(jobs["old"])
    assert interim > 0 and body["interim_bytes"] == interim
    assert body["output_bytes"] == jobs["done"].outputs_size > 0
    assert body["total_bytes"] == interim + jobs["done"].outputs_size and "users" not in body


def test_staff_see_usage_per_user(jobs, staff, client_for):
    body = client_for(staff).get("/api/v1/storage/").json()
    users = {u["username"]: u for u in body["users"]}
    assert users["other"]["interim_bytes"] == interim_of(jobs["theirs"]) and users["other"]["output_bytes"] == 0
    assert body["total_bytes"] == sum(u["total_bytes"] for u in body["users"])


def test_delete_older_than_takes_only_old_ended_jobs_of_the_caller(jobs, owner, client_for,
                                                                   django_capture_on_commit_callbacks):
    old_files = [media_path(p) for p in JobTile.objects.filter(job=jobs["old"]).exclude(output_path="")
                 .values_list("output_path", flat=True)]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).delete("/api/v1/storage/?older_than=7")
    assert response.status_code == 202
    assert len(old_files) == 1
    assert response.json() == {"jobs": 1, "files": 1, "bytes": old_files[0].stat().st_size}  # removed by a task later
    assert interim_of(jobs["old"]) == 0 and interim_of(jobs["recent"]) > 0 and interim_of(jobs["theirs"]) > 0
    old = Job.objects.get(pk=jobs["old"].pk)
    assert old.interim_deleted is not None
    assert client_for(owner).get(f"/api/v1/jobs/{old.pk}/").json()["interim_deleted"] is not None


def test_the_files_go_in_background_tasks(jobs, owner, client_for, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    before = OrmQ.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        client_for(owner).delete("/api/v1/storage/")
    assert OrmQ.objects.count() == before + 1  # both jobs' files in one removal task


def test_a_cleaned_job_resumes_by_recomputing_everything(jobs, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        storage.cleanup(owner=owner)
    _, to_run = job_resume(job=Job.objects.get(pk=jobs["recent"].pk), by=owner)
    assert to_run == 2


@pytest.mark.parametrize("query", ["older_than=abc", "older_than=-1", "older_than=1.5"])
def test_a_bad_older_than_is_a_400(db, owner, client_for, query):
    response = client_for(owner).delete(f"/api/v1/storage/?{query}")
    assert response.status_code == 400 and response.json()["detail"].startswith("older_than: ")


def test_the_command_does_the_same_for_everybody(jobs, capsys, django_capture_on_commit_callbacks):
    files = [media_path(p) for p in JobTile.objects.exclude(output_path="").filter(
        job__status=JobStatus.FAILED).values_list("output_path", flat=True)]
    with django_capture_on_commit_callbacks(execute=True):
        call_command("cleanup_storage", "--older-than", "0")
    assert "deleted the interim results of 3 jobs: 3 files" in capsys.readouterr().out
    assert not any(f.exists() for f in files)


def test_the_command_refuses_bad_arguments(db):
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("cleanup_storage", "--user", "nobody")
    with pytest.raises(CommandError, match="--older-than must be 0 or more"):
        call_command("cleanup_storage", "--older-than", "-3")
