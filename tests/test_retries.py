"""Errors that may pass are tried again up to the attempt limit; bad data fails at once."""

import errno
import os

import pytest
from django.db import OperationalError

from jobs.raster import io as raster_io
from jobs.services.submit import job_submit
from jobs.services.worker import may_pass
from jobs.models import JobLog, JobStatus, JobTile, Tile, TileStatus

from .test_execution import run


@pytest.fixture
def flaky_disk(monkeypatch):
    """The disk fails the first `failures` renames of a tile output into place, as an NFS mount may."""
    real_replace, state = os.replace, {"failures": 0}

    def replace(src, dst):
        if state["failures"] > 0 and str(dst).endswith(".tif") and "/tiles/" in str(dst):
            state["failures"] -= 1
            raise OSError(errno.EIO, "Input/output error", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(raster_io.os, "replace", replace)
    return state


def test_an_io_error_is_tried_again_and_logged(index, owner, media, flaky_disk):
    flaky_disk["failures"] = 1
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    assert job.status == JobStatus.SUCCEEDED
    assert JobTile.objects.get(job=job).attempts == 2
    warning = JobLog.objects.get(job=job, level="warning").message
    assert warning.startswith("attempt 1 of 3 failed, will try again: [Errno 5] Input/output error")
    assert not [p for p in (media / "jobs" / str(job.pk) / "tiles").iterdir() if p.name.startswith(".")]


def test_an_error_that_keeps_coming_fails_after_the_last_attempt(index, owner, media, flaky_disk, settings):
    settings.TILE_MAX_ATTEMPTS = 2
    flaky_disk["failures"] = 5
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    assert job.status == JobStatus.FAILED
    tile = JobTile.objects.get(job=job)
    assert tile.attempts == 2 and tile.error.startswith("failed 2 times, the last time: [Errno 5]")


def test_bad_data_fails_at_once(index, owner, media):
    broken = media / "broken.tif"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"II*\x00garbage that is no TIFF")
    Tile.objects.filter(number=index.ids[0]).update(path=str(broken))
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    tile = JobTile.objects.get(job=job)
    assert (job.status, tile.status, tile.attempts) == (JobStatus.FAILED, TileStatus.FAILED, 1)
    assert "broken.tif" in tile.error


@pytest.mark.parametrize("exc,passes", [
    (OSError(errno.EIO, "Input/output error"), True),
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OperationalError("server closed the connection unexpectedly"), True),
    (raster_io.RasterError("TIFFReadEncodedTile() failed", transient=True), True),
    (raster_io.RasterError("not recognized as a supported file format"), False),
    (ValueError("a bug"), False),
])
def test_which_errors_may_pass(exc, passes):
    assert may_pass(exc) is passes
