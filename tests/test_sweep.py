"""The periodic sweep: no tile stays running after its worker died, and no job stays stuck."""

import os
import socket
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from jobs import queue
from jobs.services.repair import return_lost_tiles, sweep
from jobs.services.submit import job_submit
from jobs.models import Job, JobLog, JobStatus, JobTile, Runner, TileStatus

from .test_execution import run

PAST = timezone.now() - timedelta(minutes=5)


@pytest.fixture
def job(index, owner):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    return job


def lose(job, tile_id, attempts=1, expires=PAST):
    """A worker claimed the tile and died: its lease is no longer renewed."""
    JobTile.objects.filter(job=job, tile__number=tile_id).update(status=TileStatus.RUNNING, attempts=attempts,
                                                           lease_owner="host:4242", lease_expires=expires)


def test_it_is_installed_at_every_migrate(db):
    schedule = Schedule.objects.get(func=queue.SWEEP)
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_a_tile_whose_lease_expired_goes_back_to_pending_and_runners_are_sent(job, index,
                                                                              django_capture_on_commit_callbacks):
    lose(job, index.ids[0])
    before = OrmQ.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        sweep()
    tile = JobTile.objects.get(job=job, tile__number=index.ids[0])
    assert (tile.status, tile.attempts, tile.error) == (TileStatus.PENDING, 1, "worker host:4242 stopped answering")
    assert JobLog.objects.filter(job=job, tile__number=index.ids[0], level="warning",
                                 message__startswith="worker host:4242 stopped answering during attempt 1 of 3").exists()
    assert OrmQ.objects.count() > before


def test_a_live_lease_is_left_alone(job, index):
    lose(job, index.ids[0], expires=timezone.now() + timedelta(minutes=1))
    sweep()
    assert JobTile.objects.get(job=job, tile__number=index.ids[0]).status == TileStatus.RUNNING


def test_past_the_attempt_limit_the_tile_and_then_the_job_fail(job, index, media):
    for tile_id in index.ids[1:3]:
        JobTile.objects.filter(job=job, tile__number=tile_id).update(status=TileStatus.SUCCEEDED)
    lose(job, index.ids[0], attempts=3)
    sweep()
    job.refresh_from_db()
    assert JobTile.objects.get(job=job, tile__number=index.ids[0]).status == TileStatus.FAILED
    assert job.status == JobStatus.FAILED and job.error == f"1 of its tiles failed: {index.ids[0]}"
    assert "its worker stopped answering on each of 3 attempts (killed, or still working after the task timeout" in JobLog.objects.filter(job=job, level="error")[0].message


def test_a_running_job_whose_last_finisher_died_moves_on(job, media):
    JobTile.objects.filter(job=job).update(status=TileStatus.SUCCEEDED)
    sweep()
    assert Job.objects.get(pk=job.pk).status == JobStatus.MERGING


def test_a_runner_whose_task_was_lost_is_sent_again_once_its_lease_runs_out(index, owner, settings,
                                                                             django_capture_on_commit_callbacks):
    before = OrmQ.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    assert OrmQ.objects.count() == before + settings.WORKERS  # a runner per worker, not per tile or job
    with django_capture_on_commit_callbacks(execute=True):
        job_submit(owner=owner, job_type="slope", tile_ids=index.ids[3:6])
        sweep()
    assert OrmQ.objects.count() == before + settings.WORKERS  # the runners serve every job
    Runner.objects.filter(slot=1).update(lease_expires=PAST)  # its message was lost
    with django_capture_on_commit_callbacks(execute=True):
        sweep()
    assert OrmQ.objects.count() == before + settings.WORKERS + 1


def test_a_queued_job_of_no_tiles_is_sent_a_runner_by_the_sweep_and_runs(owner, media, django_capture_on_commit_callbacks):
    echo = job_submit(owner=owner, job_type="echo", params={"message": "hi"})  # its runners are never sent here
    before = OrmQ.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        sweep()
    assert OrmQ.objects.count() > before
    assert run(echo).status == JobStatus.SUCCEEDED


def test_a_merge_that_outlived_the_timeout_is_queued_again(job, settings):
    Job.objects.filter(pk=job.pk).update(status=JobStatus.MERGING, merge_started=timezone.now() - timedelta(hours=2))
    before = OrmQ.objects.count()
    sweep()
    assert OrmQ.objects.count() == before + 1
    assert JobLog.objects.filter(job=job, message="the merge did not finish in time; it runs again").exists()


def test_a_tile_task_takes_over_the_tiles_of_a_dead_worker_of_its_job(job, index, media):
    lose(job, index.ids[0])
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED
    assert JobTile.objects.get(job=job, tile__number=index.ids[0]).attempts == 2


def test_a_tile_whose_worker_process_is_gone_from_this_host_returns_at_once(job, index):
    gone = subprocess.Popen(["true"])
    gone.wait()
    in_an_hour = timezone.now() + timedelta(hours=1)
    lose(job, index.ids[0], expires=in_an_hour)
    lose(job, index.ids[1], expires=in_an_hour)
    JobTile.objects.filter(job=job, tile__number=index.ids[0]).update(lease_owner=f"{socket.gethostname()}:{gone.pid}")
    JobTile.objects.filter(job=job, tile__number=index.ids[1]).update(lease_owner=f"{socket.gethostname()}:{os.getpid()}")
    assert return_lost_tiles(job.pk) == {job.pk}
    assert JobTile.objects.get(job=job, tile__number=index.ids[0]).status == TileStatus.PENDING
    assert JobTile.objects.get(job=job, tile__number=index.ids[1]).status == TileStatus.RUNNING
