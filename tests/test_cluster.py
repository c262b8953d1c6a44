"""End to end with a real `manage.py qcluster` process working on the test database."""

import time

import pytest
from osgeo import gdal

from jobsite.media import media_path
from jobs.models import Job, JobStatus, JobTile, Tile, TileStatus
from jobs.raster.io import read_info
from jobsite.georef import epsg_of

from .conftest import EPSG, PIXEL, assert_same_pixels, wait_for, wait_until_final, whole_area, window_of

pytestmark = pytest.mark.cluster


def test_a_town_job_submitted_through_the_api_ends_in_a_correct_cog(cluster, town, index, owner, client_for, media):
    client = client_for(owner)
    response = client.post("/api/v1/jobs/", {"type": "hillshade", "town_id": town.id, "params": {"z_factor": 2}}, format="json")
    assert response.status_code == 201
    job = wait_until_final(response.json()["id"], timeout=60)
    assert job.status == JobStatus.SUCCEEDED, (job.error, cluster.output()[-3000:])

    body = client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert (body["progress"], body["tiles_done"], body["tiles_failed"]) == (100, 4, 0)
    cog_path = media_path(job.outputs[0]["path"])
    info = gdal.Info(str(cog_path), format="json")
    assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"
    corner = Tile.objects.get(number=index.id_at(0, 0))
    tile_info = read_info(corner.path)
    assert tuple(info["geoTransform"]) == tile_info.geotransform
    assert epsg_of(info["coordinateSystem"]["wkt"]) == EPSG and tile_info.pixel_size == (PIXEL, -PIXEL)
    expected = window_of(whole_area(index.whole, "hillshade", zFactor=2), index, list(town.tiles.values_list("number", flat=True)))
    assert_same_pixels(expected, gdal.Open(str(cog_path)).ReadAsArray())
    assert gdal.Open(str(media_path(job.outputs[1]["path"]))).GetDriver().ShortName == "PNG"
    workers = set(JobTile.objects.filter(job=job).values_list("lease_owner", flat=True))
    assert workers and all(":" in worker for worker in workers)


def test_cancel_stops_a_running_job_and_no_output_is_written_after_it(cluster, large_index, owner, client_for, media):
    client = client_for(owner)
    job_id = client.post("/api/v1/jobs/", {"type": "hillshade", "tile_ids": large_index.ids,
                                           "params": {"mode": "multidirectional"}}, format="json").json()["id"]
    wait_for(lambda: JobTile.objects.filter(job_id=job_id, status=TileStatus.SUCCEEDED).exists(), 60,
             interval=0.02, message="a first tile to finish")
    response = client.post(f"/api/v1/jobs/{job_id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    canceled_at = time.time()

    time.sleep(1.5)  # the workers notice within half a second; anything still to be written shows up now
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.CANCELED and job.outputs == []
    tiles = JobTile.objects.filter(job_id=job_id)
    succeeded = {t.tile.number for t in tiles.select_related("tile") if t.status == TileStatus.SUCCEEDED}
    assert 0 < len(succeeded) < len(large_index.ids)
    assert {t.status for t in tiles} == {TileStatus.SUCCEEDED, TileStatus.CANCELED}
    # Nothing succeeded once the cancel had returned (a tile may finish while the cancel commits).
    assert all(t.finished.timestamp() <= canceled_at for t in tiles if t.status == TileStatus.SUCCEEDED)
    tiles_dir = media / "jobs" / str(job_id) / "tiles"
    assert {int(p.name.split("_")[0]) for p in tiles_dir.iterdir()} == succeeded  # no temporary or late files
    assert not (media / "jobs" / str(job_id) / "out").exists()
    # Tiles that were running stopped (or threw their output away) within about a second.
    late = job.logs.filter(tile__isnull=False, created__gt=job.finished)
    assert late.exists()
    assert max(log.created.timestamp() for log in late) - canceled_at < 1.0
