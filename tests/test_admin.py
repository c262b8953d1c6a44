import pytest

from jobs import services, storage
from jobs.models import Job, JobLog, JobTile

from .test_execution import run


@pytest.fixture
def job(index, owner):
    job = services.job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2], labels=["flood"])
    services.job_log(job.pk, "a tile note", tile_id=index.ids[0])
    return job


@pytest.mark.parametrize("url", [
    "/admin/jobs/job/", "/admin/jobs/job/?status__exact=queued", "/admin/jobs/job/?q=flood", "/admin/jobs/tile/",
    "/admin/jobs/town/", "/admin/jobs/joblog/", "/admin/jobs/label/",
])
def test_staff_see_the_lists(job, town, admin_client, url):
    assert admin_client.get(url).status_code == 200


def test_a_job_page_shows_its_tiles_and_logs_read_only(job, admin_client):
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert "a tile note" in page and "Job tiles" in page
    assert 'name="tiles-0-status"' not in page  # read-only inline: no form field


def test_deleting_a_job_in_the_admin_deletes_its_tiles_logs_and_files(job, admin_client, media,
                                                                       django_capture_on_commit_callbacks):
    run(job)
    assert storage.job_dir(job.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/jobs/job/{job.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Job.objects.exists()
    assert not JobTile.objects.exists() and not JobLog.objects.exists()
    assert not storage.job_dir(job.pk).exists()


def test_the_delete_action_removes_the_files_of_each_job(job, index, owner, admin_client, media,
                                                         django_capture_on_commit_callbacks):
    run(job)
    second = run(services.job_submit(owner=owner, job_type="aspect", tile_ids=index.ids[:1]))
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/jobs/job/", {"action": "delete_selected", "_selected_action": [job.pk, second.pk],
                                               "post": "yes"})
    assert not Job.objects.exists() and not storage.job_dir(second.pk).exists()


def test_the_admin_needs_staff(job, client, owner):
    client.force_login(owner)
    assert client.get("/admin/jobs/job/").status_code == 302


def test_the_admin_offers_no_delete_for_a_job_that_has_not_finished(job, admin_client):
    assert admin_client.get(f"/admin/jobs/job/{job.pk}/delete/").status_code == 403
    assert f"/admin/jobs/job/{job.pk}/delete/" not in admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    response = admin_client.post("/admin/jobs/job/", {"action": "delete_selected", "_selected_action": [job.pk],
                                                      "post": "yes"})
    assert response.status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()


def test_admin_actions_cancel_and_resume_the_selected_jobs(job, index, owner, admin_client):
    done = run(services.job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    response = admin_client.post("/admin/jobs/job/", {"action": "cancel_jobs", "_selected_action": [job.pk, done.pk]},
                                 follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert f"job {done.pk} is already succeeded" in shown[0] and shown[-1] == "1 jobs canceled."
    assert Job.objects.get(pk=job.pk).status == "canceled"
    admin_client.post("/admin/jobs/job/", {"action": "resume_jobs", "_selected_action": [job.pk]})
    assert Job.objects.get(pk=job.pk).status == "queued" and Job.objects.get(pk=job.pk).attempt == 2


def test_data_files_in_the_admin_with_a_download_link(owner, media, admin_client, client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from datafiles.services import datafile_store

    datafile, _ = datafile_store(owner=owner, upload=SimpleUploadedFile("a.csv", b"x,y\n1,2\n"))
    page = admin_client.get(f"/admin/datafiles/datafile/{datafile.pk}/change/").content.decode()
    assert "&quot;columns&quot;: [&quot;x&quot;, &quot;y&quot;]" in page
    assert f"/staff/datafiles/{datafile.pk}/download/" in page
    assert b"".join(admin_client.get(f"/staff/datafiles/{datafile.pk}/download/").streaming_content) == b"x,y\n1,2\n"
    client.force_login(owner)
    assert client.get(f"/staff/datafiles/{datafile.pk}/download/").status_code == 302  # staff only
