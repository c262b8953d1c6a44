"""The interim results policy: which tile outputs are kept, and when they go."""

import pytest

from jobsite.media import media_path
from jobs import storage, tileindex

from jobs.jobtypes import get_job_type
from jobs.services.control import job_cancel, job_resume
from jobs.services.submit import job_submit
from jobs.services.claims import claim_tiles
from jobs.services.worker import run_tile
from jobs.models import JobStatus, JobTile, Tile

from .test_execution import run


def tile_files(job):
    folder = storage.job_dir(job.pk) / "tiles"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def recorded(job):
    return list(JobTile.objects.filter(job=job).exclude(output_path="").values_list("output_path", flat=True))


@pytest.mark.parametrize("policy,kept", [("always", True), ("on_error", False), ("never", False)])
def test_after_success(index, owner, media, django_capture_on_commit_callbacks, policy, kept):
    with django_capture_on_commit_callbacks(execute=True):
        job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3], interim_results=policy))
    assert job.status == JobStatus.SUCCEEDED
    assert (len(recorded(job)) == 3) is kept and bool(tile_files(job)) is kept
    # Adjacent tiles may share a block's file: every file kept is a recorded output.
    assert tile_files(job) == sorted({path.rsplit("/", 1)[1] for path in recorded(job)})
    assert media_path(job.outputs[0]["path"]).is_file()


@pytest.mark.parametrize("policy,kept", [("always", True), ("on_error", True), ("never", False)])
def test_after_failure(index, owner, media, django_capture_on_commit_callbacks, policy, kept):
    Tile.objects.filter(number=index.id_at(2, 3)).update(path=str(media / "gone.tif"))
    with django_capture_on_commit_callbacks(execute=True):
        job = run(job_submit(owner=owner, job_type="slope", tile_ids=[index.id_at(0, 0), index.id_at(2, 3)],
                             interim_results=policy))
    assert job.status == JobStatus.FAILED
    assert (tile_files(job) == [f"{index.id_at(0, 0)}_1.tif"]) is kept


def test_never_drops_them_on_cancel_and_a_resume_recomputes_everything(index, owner, media,
                                                                      django_capture_on_commit_callbacks):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2], interim_results="never")
    from jobs.models import Job

    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    slope = get_job_type("slope")
    run_tile(job, claim_tiles(job.pk, "w", 1)[0], slope, {},
             tileindex.index_grid())
    with django_capture_on_commit_callbacks(execute=True):
        job_cancel(job=job, by="owner")
    assert tile_files(job) == [] and recorded(job) == []
    _, to_run = job_resume(job=Job.objects.get(pk=job.pk), by=owner)
    assert to_run == 2


def test_the_default_policy_comes_from_settings(index, owner, settings):
    settings.INTERIM_RESULTS_DEFAULT = "always"
    assert job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]).interim_results == "always"


def test_a_succeeded_job_sweeps_the_temporary_files_of_killed_writers(index, owner, media,
                                                                      django_capture_on_commit_callbacks):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1], interim_results="always")
    leftover = storage.job_dir(job.pk) / "tiles" / ".100_1.tif.0123456789ab.part"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a tiff")
    with django_capture_on_commit_callbacks(execute=True):
        run(job)
    assert not leftover.exists() and tile_files(job) == ["100_1.tif"]
