"""Colour tables that GDAL cannot read: GDAL's colour relief only prints its complaint and goes on
with no colours, so a job would succeed with black pixels. A table is read by GDAL in the sandbox's
child before any job reads it, and a bad one is refused naming the input and GDAL's reason: at
submit (one type or a chain's step), when a waiting job's table arrives, and at a resume."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from datafiles import sandbox
from datafiles import services as datafiles
from datafiles.models import DataFile
from jobs.models import Job, JobInput, JobStatus, JobTile
from jobs.services.submit import job_submit
from jobs.services.waiting import jobs_start_waiting
from jobsite.exceptions import Rejected

from .datafile_samples import COLOR_TABLE
from .test_execution import merged_pixels, run

BAD_TABLES = {
    "an unknown colour name": ("60 20 60 180\n300 notacolour\n", "Unknown color : notacolour"),
    "no entries": ("# only a comment\n", "No color association found in ramp.txt"),
    "a colour short of a component": ("60 20 60 180\n300 60 160\n", "Unknown color : 60"),
}


def store(owner, content, name="ramp.txt"):
    return datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile(name, content.encode()))[0]


@pytest.mark.parametrize("case", BAD_TABLES)
def test_a_table_gdal_cannot_read_is_refused_at_submit_naming_the_input_and_gdals_reason(index, owner, media, case):
    content, reason = BAD_TABLES[case]
    store(owner, content)
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids, inputs={"color_table": "ramp.txt"})
    assert refused.value.errors == {"inputs": {
        "color_table": f"ramp.txt is not a colour table that GDAL can read: {reason}"}}
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, tile_ids=index.ids, steps=[
            {"type": "slope"}, {"type": "color-relief", "inputs": {"color_table": "ramp.txt"}}])
    assert refused.value.errors == {
        "steps[1].inputs.color_table": f"ramp.txt is not a colour table that GDAL can read: {reason}"}
    assert not Job.objects.exists() and not JobTile.objects.exists() and not JobInput.objects.exists()


def uploaded_before_the_check(datafile):
    """The file as one uploaded before uploads read colour tables: its metadata without the answer."""
    metadata = {key: value for key, value in datafile.metadata.items() if key != "color_table"}
    DataFile.objects.filter(pk=datafile.pk).update(metadata=metadata)


def test_the_upload_reads_the_table_and_a_file_uploaded_before_is_read_once_when_a_job_names_it(
        index, owner, media, monkeypatch):
    ramp = store(owner, COLOR_TABLE)
    assert DataFile.objects.get(pk=ramp.pk).metadata["color_table"] == {"readable": True}  # read with the upload
    uploaded_before_the_check(ramp)
    job = run(job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:2],
                         inputs={"color_table": "ramp.txt"}))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert merged_pixels(job).any()
    assert DataFile.objects.get(pk=ramp.pk).metadata["color_table"] == {"readable": True}

    def no_child(*args, **kwargs):
        raise AssertionError("read again")

    monkeypatch.setattr(sandbox, "color_table", no_child)
    job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1], inputs={"color_table": "ramp.txt"})


def test_a_bad_table_that_arrives_for_a_waiting_job_fails_it_naming_the_reason(
        index, owner, media, django_capture_on_commit_callbacks):
    job = job_submit(owner=owner, tile_ids=index.ids, steps=[
        {"type": "slope"}, {"type": "color-relief", "inputs": {"color_table": "ramp.txt"}}])
    assert job.status == JobStatus.WAITING
    with django_capture_on_commit_callbacks(execute=True):
        store(owner, BAD_TABLES["an unknown colour name"][0])
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == ("ramp.txt arrived, but ramp.txt is not a colour table that GDAL can read: "
                         "Unknown color : notacolour")


def test_a_table_the_reader_could_not_judge_in_time_is_refused_for_now_and_asked_again(index, owner, media, settings):
    ramp = store(owner, COLOR_TABLE)
    uploaded_before_the_check(ramp)
    waiting = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1], inputs={"color_table": "late.txt"})
    uploaded_before_the_check(store(owner, COLOR_TABLE, name="late.txt"))  # arrived; the waiting jobs are looked at below
    settings.DATAFILE_INSPECT_SECONDS = 0  # the child's time is up at once

    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids, inputs={"color_table": "ramp.txt"})
    assert refused.value.errors == {"inputs": {"color_table": "ramp.txt could not be checked just now (reading ramp.txt "
                                                              "took longer than 0 s); try again"}}
    assert "color_table" not in DataFile.objects.get(pk=ramp.pk).metadata
    assert list(Job.objects.values_list("pk", flat=True)) == [waiting.pk]

    # a waiting job whose table cannot be read just now waits on, and starts once it can be read
    jobs_start_waiting()
    waiting.refresh_from_db()
    assert waiting.status == JobStatus.WAITING
    settings.DATAFILE_INSPECT_SECONDS = 60
    jobs_start_waiting()
    waiting.refresh_from_db()
    assert waiting.status == JobStatus.QUEUED


def test_the_api_answers_400_naming_the_steps_input(index, owner, media, client_for):
    store(owner, BAD_TABLES["no entries"][0])
    answer = client_for(owner).post("/api/v1/jobs/", {"tile_ids": index.ids, "steps": [
        {"type": "hillshade"}, {"type": "color-relief", "inputs": {"color_table": "ramp.txt"}}]}, format="json")
    assert answer.status_code == 400, answer.json()
    assert answer.json()["errors"]["steps[1].inputs.color_table"] == [
        "ramp.txt is not a colour table that GDAL can read: No color association found in ramp.txt"]
    assert not Job.objects.exists()
