"""Fault tests with real clusters: killed workers and clusters, SIGTERM, two clusters at once, a
tile that outlives the task timeout, PostgreSQL restarted, a full disk.

Each ends with the job succeeded with the pixels of whole-area processing, or failed with a
message and then resumed to success; never stuck.
"""

import io
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from osgeo import gdal

from jobsite.media import media_path
from jobs import storage

from jobs.models import ClusterHeartbeat, Job, JobLog, JobStatus, JobTile, Tile, TileStatus

from .conftest import assert_same_pixels, wait_for, wait_until_final, whole_area

pytestmark = pytest.mark.cluster


def submit(client, ids, job_type="slope"):
    return client.post("/api/v1/jobs/", {"type": job_type, "tile_ids": ids}, format="json").json()["id"]


def assert_correct(job, large_index, job_type="slope"):
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = gdal.Open(str(media_path(job.outputs[0]["path"]))).ReadAsArray()
    assert_same_pixels(whole_area(large_index.whole, job_type), result)
    assert not list(storage.job_dir(job.pk).rglob(".*")), "a half-written file was left behind"



def test_an_idle_worker_killed_the_health_check_restarts_a_wedged_cluster(start_cluster, large_index, owner,
                                                                          client_for, settings):
    """django-q2 issue #23: a worker killed while idle can leave the cluster taking no more tasks.
    The test plays the service manager: it runs check_cluster every second and restarts the
    cluster when it fails. The job must end right either way."""
    settings.CLUSTER_STUCK_SECONDS = 10
    cluster = start_cluster()
    client = client_for(owner)
    first = wait_until_final(submit(client, large_index.ids[:8]))
    assert first.status == JobStatus.SUCCEEDED
    workers = {int(o.rsplit(":", 1)[1]) for o in JobTile.objects.filter(job=first).values_list("lease_owner", flat=True) if o}
    os.kill(sorted(workers)[0], signal.SIGKILL)  # idle: its job is done
    time.sleep(2)
    job_id = submit(client, large_index.ids)
    restarts, deadline = 0, time.monotonic() + 180
    while not Job.objects.get(pk=job_id).is_final and time.monotonic() < deadline:
        try:
            call_command("check_cluster", stdout=io.StringIO())
        except CommandError:
            cluster.stop(signal.SIGKILL)
            beats = ClusterHeartbeat.objects.count()
            cluster = start_cluster()
            restarts += 1
            # like a service manager, give the new cluster time to start: its first heartbeat
            wait_for(lambda beats=beats: ClusterHeartbeat.objects.count() > beats, 30, interval=0.2, message="a new heartbeat")
        time.sleep(1)
    job = Job.objects.get(pk=job_id)
    print(f"cluster restarts by the health check: {restarts}")
    assert_correct(job, large_index)


def _stop_mid_job(start_cluster, large_index, owner, client_for, sig):
    """Start a job, hit the whole cluster's process group with `sig` while tiles run, start a new
    cluster, and check the job it finishes."""
    cluster = start_cluster()
    client = client_for(owner)
    job_id = submit(client, large_index.ids, "hillshade")
    wait_for(lambda: JobTile.objects.filter(job_id=job_id, status=TileStatus.SUCCEEDED).count() >= 3, 60, interval=0.02,
             message="some tiles to finish")
    os.killpg(cluster.process.pid, sig)
    try:
        cluster.process.wait(10)
    except subprocess.TimeoutExpired:  # as a service manager does after its stop timeout
        os.killpg(cluster.process.pid, signal.SIGKILL)
        cluster.process.wait(10)
    stopped = Job.objects.get(pk=job_id)
    assert not stopped.is_final  # the job was cut off in the middle
    held = JobTile.objects.filter(job_id=job_id, status=TileStatus.RUNNING).count()
    start_cluster()
    job = wait_until_final(job_id, timeout=180)
    assert_correct(job, large_index, "hillshade")
    # The stop charged one attempt to each tile its workers held (the one running and the rest of
    # its batch, which go back to pending), and to no other.
    attempts = list(JobTile.objects.filter(job=job).values_list("attempts", flat=True))
    print(f"the stopped workers held {held} tiles")
    assert 0 < held and sum(attempts) == len(large_index.ids) + held and max(attempts) == 2


def test_the_whole_cluster_killed_mid_job_then_started_again(start_cluster, large_index, owner, client_for):
    _stop_mid_job(start_cluster, large_index, owner, client_for, signal.SIGKILL)


def test_sigterm_to_the_clusters_process_group_then_started_again(start_cluster, large_index, owner, client_for):
    _stop_mid_job(start_cluster, large_index, owner, client_for, signal.SIGTERM)


def _first_tile_window(large_index, job_type):
    """Whole-area processing cut to the first tile (1024 x 1024 at the top left)."""
    return whole_area(large_index.whole, job_type)[:1024, :1024]


def test_a_tile_that_outlives_the_task_timeout_fails_after_its_attempts_naming_the_tile(
        start_cluster, large_index, owner, client_for, tmp_path):
    """The tile's file hangs every read (a named pipe nobody writes to, as storage that stopped
    answering): each attempt's worker is killed by the cluster at the task timeout, the
    replacement worker takes the tile back at once, and after the attempt limit the tile and the
    job fail saying so. Once the storage answers again, a resume succeeds."""
    slow = Path(Tile.objects.get(number=large_index.ids[0]).path)
    kept = tmp_path / "kept.tif"
    os.replace(slow, kept)
    os.mkfifo(slow)
    start_cluster(JOBSITE_TASK_TIMEOUT="10", JOBSITE_TILE_MAX_ATTEMPTS="2")
    client = client_for(owner)
    started = time.monotonic()
    job = wait_until_final(submit(client, large_index.ids[:1], "hillshade"), timeout=120)
    elapsed = time.monotonic() - started
    tile = JobTile.objects.get(job=job)
    assert job.status == JobStatus.FAILED and job.error == f"1 of its tiles failed: {large_index.ids[0]}"
    assert (tile.status, tile.attempts) == (TileStatus.FAILED, 2)
    assert "task timeout of 10 s" in tile.error, tile.error
    assert JobLog.objects.filter(job=job, tile=tile.tile_id, level="warning", message__contains="during attempt 1 of 2").exists()
    print(f"2 attempts of 10 s ended in failure {elapsed:.1f} s after submit")

    os.replace(kept, slow)  # the storage answers again
    answer = client.post(f"/api/v1/jobs/{job.pk}/resume/", format="json")
    assert answer.status_code == 200, answer.json()
    job = wait_until_final(job.pk, timeout=60)
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = gdal.Open(str(media_path(job.outputs[0]["path"]))).ReadAsArray()
    assert_same_pixels(_first_tile_window(large_index, "hillshade"), result)


def _pg_ctlcluster(action):
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True,
                   capture_output=True, timeout=120)


needs_local_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql" or not shutil.which("pg_ctlcluster") or not os.path.isdir("/etc/postgresql"),
    reason="restarts the local PostgreSQL server")


@needs_local_postgresql
def test_postgresql_restarted_in_the_middle_of_a_job(start_cluster, large_index, owner, client_for):
    start_cluster()
    client = client_for(owner)
    job_id = submit(client, large_index.ids)
    wait_for(lambda: JobTile.objects.filter(job_id=job_id, status=TileStatus.SUCCEEDED).count() >= 2, 60, interval=0.02,
             message="some tiles to finish")
    connection.close()
    started = time.monotonic()
    _pg_ctlcluster("restart")
    print(f"PostgreSQL was restarted in {time.monotonic() - started:.1f} s")
    job = wait_until_final(job_id, timeout=180)
    assert_correct(job, large_index)
    assert sum(JobTile.objects.filter(job=job).values_list("attempts", flat=True)) <= len(large_index.ids) + 4


@needs_local_postgresql
@pytest.mark.parametrize("limit,what", [(2 * 1024 * 1024, "tile"), (8 * 1024 * 1024, "mosaic")])
def test_a_full_disk_fails_the_job_with_a_message_and_leaves_no_partial_file(
        start_cluster, large_index, owner, client_for, limit, what):
    """The workers may write no file larger than `limit` (as on a full disk: the write fails with
    an I/O error): a tile output of 4 MB, or the mosaic of 48 of them. The job fails naming the
    problem, nothing half-written is left, and once there is room a resume succeeds."""
    cluster = start_cluster(file_size_limit=limit)
    client = client_for(owner)
    job = wait_until_final(submit(client, large_index.ids), timeout=120)
    assert job.status == JobStatus.FAILED
    print(f"{what}: {job.error}")
    reason = job.error if what == "mosaic" else JobTile.objects.filter(job=job).values_list("error", flat=True)[0]
    assert f"files may not grow beyond {limit} bytes" in reason, reason
    leftovers = [p for p in storage.job_dir(job.pk).rglob("*") if p.name.startswith(".") or p.suffix == ".part"]
    assert leftovers == [], leftovers
    assert not (storage.job_dir(job.pk) / "out").exists() or not any((storage.job_dir(job.pk) / "out").iterdir())

    cluster.stop()
    start_cluster()  # room again
    answer = client.post(f"/api/v1/jobs/{job.pk}/resume/", format="json")
    assert answer.status_code == 200, answer.json()
    assert_correct(wait_until_final(job.pk, timeout=120), large_index)
