"""Several cluster hosts on one database and one MEDIA_ROOT, simulated on this machine by a host name
of their own (JOBSITE_HOST_NAME): they split the tiles of the jobs and keep fair shares, and when
one host's cluster dies whole, the other takes over its tiles once their leases run out."""

import signal
import time

import numpy as np
import pytest
from osgeo import gdal

from jobs.declared import load_python
from jobs.jobtypes import JOB_TYPES
from jobs.models import ClusterHeartbeat, JobLog, JobStatus, JobTile
from jobsite.media import media_path

from .conftest import assert_same_pixels, wait_for, wait_until_final

PAUSE = "tests.python_job_type.PAUSE"
LEASE_SECONDS = 3


@pytest.fixture
def pause_type(monkeypatch):
    for name, kind in load_python([PAUSE], taken=JOB_TYPES).items():
        monkeypatch.setitem(JOB_TYPES, name, kind)


def start_hosts(start_cluster, **settings):
    hosts = {name: start_cluster(JOBSITE_HOST_NAME=name, JOBSITE_PYTHON_JOB_TYPES=PAUSE, **settings)
             for name in ("host-a", "host-b")}
    wait_for(lambda: set(ClusterHeartbeat.objects.values_list("host", flat=True)) == set(hosts), 30, interval=0.2,
             message="both hosts' heartbeats")
    return hosts


def submit_pause(client, ids, seconds):
    answer = client.post("/api/v1/jobs/", {"type": "pause", "tile_ids": ids, "params": {"seconds": seconds}}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()["id"]


def hosts_of(job_id):
    return {owner.split(":")[0] for owner in JobTile.objects.filter(job_id=job_id).values_list("lease_owner", flat=True)}


def assert_unchanged(job, large_index):
    """A pause job's result is its tiles as they are: the whole area's pixels."""
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = gdal.Open(str(media_path(job.outputs[0]["path"]))).ReadAsArray()
    assert_same_pixels(gdal.Open(str(large_index.whole)).ReadAsArray().astype(np.float32), result)


def test_two_hosts_split_the_tiles_and_keep_fair_shares(start_cluster, large_index, owner, other, client_for,
                                                        pause_type):
    start_hosts(start_cluster)
    alone = wait_until_final(submit_pause(client_for(owner), large_index.ids, 0.2), timeout=120)
    assert_unchanged(alone, large_index)
    assert hosts_of(alone.pk) == {"host-a", "host-b"}  # one job's tiles on both hosts
    # Two users at once: each keeps the workers it has (the user with fewer tiles running goes
    # first), so each job may stay on one host; together they use both, in equal shares.
    jobs = [submit_pause(client_for(user), large_index.ids, 0.1) for user in (owner, other)]
    finished = [wait_until_final(job_id, timeout=120) for job_id in jobs]
    for job in finished:
        assert_unchanged(job, large_index)
    assert hosts_of(jobs[0]) | hosts_of(jobs[1]) == {"host-a", "host-b"}
    # Worker time of each user while both ran, from the tiles' claim and end times (a batch once).
    until = min(job.merge_started for job in finished)
    time_of = {}
    for owner_id, began, ended in {(row[0], row[2], row[3]) for row in JobTile.objects.filter(job_id__in=jobs).values_list(
            "job__owner_id", "lease_owner", "started", "finished")}:
        time_of[owner_id] = time_of.get(owner_id, 0.0) + max(0.0, (min(ended, until) - began).total_seconds())
    assert min(time_of.values()) >= 0.75 * max(time_of.values()), time_of


def test_a_host_whose_cluster_dies_whole_has_its_tiles_taken_over_once_their_leases_expire(
        start_cluster, large_index, owner, client_for, pause_type):
    hosts = start_hosts(start_cluster, JOBSITE_TILE_LEASE_SECONDS=str(LEASE_SECONDS))
    job_id = submit_pause(client_for(owner), large_index.ids, 0.3)
    on_a = JobTile.objects.filter(job_id=job_id, status="running", lease_owner__startswith="host-a:")
    wait_for(lambda: on_a.exists() and JobTile.objects.filter(job_id=job_id, status="succeeded").exists(), 60,
             interval=0.05, message="tiles running on host-a")
    hosts["host-a"].stop(sig=signal.SIGKILL)  # the main process, then its whole process group
    killed = time.monotonic()
    stranded = set(on_a.values_list("tile_id", flat=True))
    wait_for(lambda: not on_a.exists(), 60, interval=0.05, message="host-a's tiles taken back")
    taken_back = time.monotonic() - killed
    job = wait_until_final(job_id, timeout=120)
    assert_unchanged(job, large_index)
    taken_over = JobTile.objects.filter(job_id=job_id, tile_id__in=stranded)
    assert stranded and all(tile.attempts == 2 and tile.lease_owner.startswith("host-b:") for tile in taken_over)
    assert JobLog.objects.filter(job_id=job_id, message__contains="stopped answering").count() == len(stranded)
    # Not before their leases ran out (host-b cannot see host-a's processes; a lease was renewed at
    # most half a second before the kill), and within a second or two of that (the guard loops).
    assert LEASE_SECONDS - 0.6 <= taken_back <= LEASE_SECONDS + 3, taken_back
