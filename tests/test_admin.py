import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import storage
from jobs.lifecycle import job_log
from jobs.services.submit import job_submit
from jobs.admin import JobAdmin
from jobs.models import Job, JobLog, JobTile, Label, Tile

from .test_execution import run


@pytest.fixture
def job(index, owner):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2], labels=["flood"])
    job_log(job.pk, "a tile note", tile_id=Tile.objects.get(number=index.ids[0]).pk)
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
    second = run(job_submit(owner=owner, job_type="aspect", tile_ids=index.ids[:1]))
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
    done = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
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


# Jobs are made only by the submit service; what history depends on is not edited here.

def test_the_admin_adds_no_job(job, admin_client):
    assert admin_client.get("/admin/jobs/job/add/").status_code == 403
    response = admin_client.post("/admin/jobs/job/add/", {"type": "slope", "owner": job.owner_id, "status": "queued",
                                                          "params": "{}", "interim_results": "on_error"})
    assert response.status_code == 403 and Job.objects.count() == 1
    assert "/admin/jobs/job/add/" not in admin_client.get("/admin/jobs/job/").content.decode()


def test_posting_changed_read_only_fields_of_a_job_changes_nothing(job, other, town, admin_client):
    run(job)
    job.refresh_from_db()
    fields = [name for name in JobAdmin.readonly_fields if not hasattr(JobAdmin, name)]  # not the admin's own displays
    before = {name: getattr(job, name) for name in fields}
    tiles_before = list(JobTile.objects.filter(job=job).values_list("tile__number", "status", "output_size"))
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert 'name="interim_results"' in page and 'name="labels"' in page
    for name in ("type", "owner", "params", "town", "status", "outputs", "tiles_total", "started", "finished"):
        assert f'name="{name}"' not in page, name
    label = Label.objects.create(name="checked")
    response = admin_client.post(f"/admin/jobs/job/{job.pk}/change/", {
        "type": "aspect", "owner": other.pk, "params": '{"scale": 9}', "town": town.pk, "status": "queued",
        "tiles_total": 99, "attempt": 7, "outputs": "[]", "outputs_size": 0, "error": "edited", "waiting_for": '["x"]',
        "created": "2020-01-01 00:00:00", "finished": "", "started": "", "labels": [label.pk],
        "interim_results": "always",
        "tiles-TOTAL_FORMS": "0", "tiles-INITIAL_FORMS": "0", "inputs-TOTAL_FORMS": "0", "inputs-INITIAL_FORMS": "0",
        "logs-TOTAL_FORMS": "0", "logs-INITIAL_FORMS": "0",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    job.refresh_from_db()
    assert {name: getattr(job, name) for name in fields if name != "updated"} == {
        name: value for name, value in before.items() if name != "updated"}
    assert list(JobTile.objects.filter(job=job).values_list("tile__number", "status", "output_size")) == tiles_before
    assert job.interim_results == "always" and list(job.labels.values_list("name", flat=True)) == ["checked"]


def test_saving_a_job_in_the_admin_writes_only_the_edited_columns(job, admin_client):
    """A whole-row save would write back the status read when the form was posted over a worker's."""
    with CaptureQueriesContext(connection) as queries:
        admin_client.post(f"/admin/jobs/job/{job.pk}/change/", {
            "labels": [], "interim_results": "never", "tiles-TOTAL_FORMS": "0", "tiles-INITIAL_FORMS": "0",
            "inputs-TOTAL_FORMS": "0", "inputs-INITIAL_FORMS": "0", "logs-TOTAL_FORMS": "0", "logs-INITIAL_FORMS": "0"})
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "jobs_job"')]
    assert len(updates) == 1 and '"interim_results"' in updates[0]
    assert '"status"' not in updates[0] and '"tiles_total"' not in updates[0] and '"params"' not in updates[0]
    assert Job.objects.get(pk=job.pk).interim_results == "never"


def test_tiles_of_the_index_are_only_shown(index, admin_client):
    tile = Tile.objects.get(number=index.ids[0])
    assert admin_client.get("/admin/jobs/tile/add/").status_code == 403
    page = admin_client.get(f"/admin/jobs/tile/{tile.pk}/change/")
    assert page.status_code == 200 and 'name="path"' not in page.content.decode()  # a view, no form
    response = admin_client.post(f"/admin/jobs/tile/{tile.pk}/change/", {"path": "/etc/passwd", "width": 1})
    assert response.status_code == 403 and Tile.objects.get(pk=tile.pk).path == tile.path
    assert admin_client.get(f"/admin/jobs/tile/{tile.pk}/delete/").status_code == 403


def test_job_logs_are_neither_added_nor_edited(job, admin_client):
    log = JobLog.objects.get(message="a tile note")
    assert admin_client.get("/admin/jobs/joblog/add/").status_code == 403
    assert admin_client.post("/admin/jobs/joblog/add/", {"job": job.pk, "message": "forged", "level": "info"}
                             ).status_code == 403
    page = admin_client.get(f"/admin/jobs/joblog/{log.pk}/change/")
    assert page.status_code == 200 and 'name="message"' not in page.content.decode()
    response = admin_client.post(f"/admin/jobs/joblog/{log.pk}/change/", {"job": job.pk, "message": "rewritten",
                                                                          "level": "error"})
    assert response.status_code == 403 and JobLog.objects.get(pk=log.pk).message == "a tile note"
    assert not JobLog.objects.filter(message="forged").exists()
