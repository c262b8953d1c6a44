"""Resumption and self-healing with a real `manage.py qcluster`."""

import os
import signal

import pytest
from osgeo import gdal

from jobsite.media import media_path
from jobs import storage

from jobs.models import JobLog, JobStatus, JobTile, Tile, TileStatus

from .conftest import assert_same_pixels, wait_for, wait_until_final, whole_area

pytestmark = pytest.mark.cluster


def pixels(job):
    return gdal.Open(str(media_path(job.outputs[0]["path"]))).ReadAsArray()


def attempts(job_id):
    return dict(JobTile.objects.filter(job_id=job_id).values_list("tile__number", "attempts"))


def test_a_failed_job_resumed_after_repair_recomputes_only_what_it_must(cluster, index, owner, client_for, media):
    good = Tile.objects.get(number=111).path
    Tile.objects.filter(number=111).update(path=str(media / "missing.tif"))
    client = client_for(owner)
    job_id = client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": index.ids}, format="json").json()["id"]
    job = wait_until_final(job_id)
    assert job.status == JobStatus.FAILED and "111" in job.error
    failed = set(JobTile.objects.filter(job_id=job_id).exclude(status=TileStatus.SUCCEEDED).values_list("tile__number", flat=True))

    Tile.objects.filter(number=111).update(path=good)
    response = client.post(f"/api/v1/jobs/{job_id}/resume/")
    assert response.status_code == 200 and response.json()["tiles_to_run"] == len(failed)
    job = wait_until_final(job_id)
    assert job.status == JobStatus.SUCCEEDED and job.attempt == 2
    assert attempts(job_id) == {tile_id: 2 if tile_id in failed else 1 for tile_id in index.ids}
    assert_same_pixels(whole_area(index.whole, "slope"), pixels(job))


def test_a_canceled_job_resumes_and_ends_as_a_clean_run_would(cluster, large_index, owner, client_for):
    client = client_for(owner)
    job_id = client.post("/api/v1/jobs/", {"type": "hillshade", "tile_ids": large_index.ids}, format="json").json()["id"]
    wait_for(lambda: JobTile.objects.filter(job_id=job_id, status=TileStatus.SUCCEEDED).count() >= 4, 60,
             interval=0.02, message="some tiles to finish")
    assert client.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 200
    wait_for(lambda: not JobTile.objects.filter(job_id=job_id, status=TileStatus.RUNNING).exists(), 10)
    done_before = set(JobTile.objects.filter(job_id=job_id, status=TileStatus.SUCCEEDED).values_list("tile__number", flat=True))
    body = client.post(f"/api/v1/jobs/{job_id}/resume/").json()
    assert body["tiles_to_run"] == len(large_index.ids) - len(done_before)
    job = wait_until_final(job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert {t for t, n in attempts(job_id).items() if n == 1} >= done_before
    assert_same_pixels(whole_area(large_index.whole, "hillshade"), pixels(job))


def test_a_worker_killed_in_the_middle_of_a_tile_costs_one_tile_not_the_job(start_cluster, large_index, owner,
                                                                            client_for):
    cluster = start_cluster(JOBSITE_TILE_LEASE_SECONDS="2")
    client = client_for(owner)
    job_id = client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": large_index.ids}, format="json").json()["id"]
    victim = wait_for(lambda: JobTile.objects.filter(job_id=job_id, status=TileStatus.RUNNING).exclude(
        lease_owner="").first(), 60, interval=0.01, message="a tile to be running")
    worker_pid = int(victim.lease_owner.rsplit(":", 1)[1])
    os.kill(worker_pid, signal.SIGKILL)

    job = wait_until_final(job_id, timeout=120)
    assert job.status == JobStatus.SUCCEEDED, (job.error, cluster.output()[-3000:])
    tile = JobTile.objects.get(pk=victim.pk)
    assert tile.attempts == 2 and tile.lease_owner != victim.lease_owner
    assert JobLog.objects.filter(job_id=job_id, tile=victim.tile_id,
                                 message__startswith=f"worker {victim.lease_owner} stopped answering").exists()
    assert sum(attempts(job_id).values()) == len(large_index.ids) + 1  # one tile's time lost, no more
    assert_same_pixels(whole_area(large_index.whole, "slope"), pixels(job))
    assert not [p for p in storage.job_dir(job_id).rglob(".*")]  # no half-written file left
