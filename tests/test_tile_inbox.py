"""Tile inboxes: GeoTIFFs delivered to a collection's folder join it once complete, read first in a
confined child (a GeoTIFF reading nothing outside itself), on the collection's grid only; refused
files land in rejected/ with the reason, and jobs that waited for the tiles start. On a real
cluster: tiles delivered while it was stopped are taken at its start, a file written slowly is not
taken before it is complete (stable and marker modes), and hostile files are refused."""

import os
import shutil
import time

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from datafiles.inbox import CLAIMED, REJECTED, scan_inboxes
from jobs.models import Job, JobStatus, Tile
from jobs.raster.io import crs_wkt_from_epsg, write_raster
from jobs.services.submit import job_submit
from jobsite.environment import envinboxes

from .conftest import EPSG, NODATA, ORIGIN, PIXEL, assert_same_pixels, wait_for, wait_until_final, whole_area
from .test_execution import merged_pixels
from .test_late_tiles import folder_of, grid6x5, row_ids  # noqa: F401 (grid6x5: a fixture)
from .test_security_drivers import SECRET, raw_vrt


@pytest.fixture
def tile_inbox(settings, tmp_path):
    folder = tmp_path / "tile-inbox"
    folder.mkdir()
    settings.TILE_INBOXES = [(str(folder), "default")]
    settings.TILE_STORE = str(tmp_path / "tile-store")
    return folder


@pytest.fixture
def first_rows(db, grid6x5, tmp_path):  # noqa: F811
    from django.core.management import call_command

    call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "first", {0, 1, 2})), verbosity=0)
    return folder_of(grid6x5, tmp_path, "later", {3, 4})


def deliver(later, inbox, tile_ids):
    """Copy tiles in under a temporary name and rename them, as rsync does."""
    for tile_id in tile_ids:
        shutil.copy(later / f"dem_{tile_id}.tif", inbox / f".dem_{tile_id}.tif.partial")
        os.rename(inbox / f".dem_{tile_id}.tif.partial", inbox / f"dem_{tile_id}.tif")


def rejected(inbox):
    """{file name: the reason beside it} of the refused files."""
    folder = inbox / REJECTED
    return {path.name: (folder / f"{path.name}.error.txt").read_text().strip()
            for path in folder.iterdir() if not path.name.endswith(".error.txt")} if folder.exists() else {}


def test_a_tile_renamed_into_the_inbox_joins_its_collection_and_starts_the_job_that_waited(
        grid6x5, first_rows, tile_inbox, owner, media, django_capture_on_commit_callbacks):  # noqa: F811
    job = job_submit(owner=owner, job_type="slope", tile_ids=row_ids(grid6x5, 2, 3), wait_for_tiles=True)
    deliver(first_rows, tile_inbox, [130, 131, 132])
    with django_capture_on_commit_callbacks(execute=True):
        assert scan_inboxes() == {"stored": 3, "rejected": 0}
    assert Job.objects.get(pk=job.pk).waiting_for_tiles == [133, 134, 135]
    tile = Tile.objects.get(number=131)
    store = tile_inbox.parent / "tile-store" / "default"
    assert os.path.dirname(tile.path) == os.path.realpath(store) and tile.path.endswith("-dem_131.tif")
    assert (tile.col, tile.row) == (32, 96) and not list((tile_inbox / CLAIMED).iterdir())
    deliver(first_rows, tile_inbox, [133, 134, 135])
    with django_capture_on_commit_callbacks(execute=True):
        assert scan_inboxes() == {"stored": 3, "rejected": 0}
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    assert sorted(p.name for p in tile_inbox.iterdir()) == [CLAIMED]


def test_hostile_and_unfit_files_land_in_rejected_with_their_reason_and_leave_nothing_behind(
        grid6x5, first_rows, tile_inbox, tmp_path, owner):  # noqa: F811
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET * 40)
    (tile_inbox / "dem_130.tif").write_bytes(raw_vrt(secret))  # a VRT that reads another file
    os.symlink(first_rows / "dem_131.tif", tile_inbox / "dem_131.tif")
    os.link(first_rows / "dem_132.tif", tile_inbox / "dem_132.tif")
    write_raster(tile_inbox / "dem_133.tif", np.full((32, 32), 100.0, dtype="float32"),
                 (ORIGIN[0] + PIXEL / 2, PIXEL, 0, ORIGIN[1] - 96 * PIXEL, 0, -PIXEL), crs_wkt_from_epsg(EPSG),
                 nodata=NODATA)
    shutil.copy(first_rows.parent / "first" / "dem_120.tif", tile_inbox / "dem_120.tif")  # a tile it has
    (tile_inbox / "dem_134.png").write_bytes(b"\x89PNG\r\n")
    shutil.copy(first_rows / "dem_135.tif", tile_inbox / "no-number.tif")
    shutil.copy(first_rows / "dem_135.tif", tile_inbox / "dem_20240115120000.tif")  # a time, not a tile number
    assert scan_inboxes() == {"stored": 0, "rejected": 8}
    reasons = rejected(tile_inbox)
    assert "not a GeoTIFF" in reasons["dem_130.tif"] and SECRET not in reasons["dem_130.tif"]
    assert reasons["dem_131.tif"] == "it is a symbolic link; only regular files are read"
    assert reasons["dem_132.tif"] == "it has other hard links; only a file of its own is read"
    assert "not aligned with the pixel grid" in reasons["dem_133.tif"]
    assert "tiles 120 of collection default are already loaded" in reasons["dem_120.tif"]
    assert reasons["dem_134.png"] == "a tile inbox takes GeoTIFFs (.tif, .tiff) only"
    assert "no tile number" in reasons["no-number.tif"]
    assert "tile number 20240115120000 is larger than 2147483647" in reasons["dem_20240115120000.tif"]
    assert Tile.objects.count() == 18
    store = tile_inbox.parent / "tile-store" / "default"
    assert not store.exists() or list(store.iterdir()) == []


@pytest.mark.parametrize("value,problem", [("/srv/tiles", "is not an absolute PATH=COLLECTION"),
                                           ("/srv/tiles=../etc", "'../etc' is not a collection name")])
def test_tile_inboxes_must_name_a_collection(monkeypatch, value, problem):
    monkeypatch.setenv("JOBSITE_TILE_INBOXES", value)
    with pytest.raises(ImproperlyConfigured, match=problem):
        envinboxes("JOBSITE_TILE_INBOXES", owner="COLLECTION", owner_pattern=r"[a-z0-9][a-z0-9_-]{0,63}")


def test_on_a_real_cluster_tiles_delivered_while_it_was_stopped_are_taken_at_its_start_and_finish_the_job(
        transactional_db, start_cluster, grid6x5, tmp_path, owner, media):  # noqa: F811
    from django.core.management import call_command

    call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "first", {0, 1, 2})), verbosity=0)
    inbox = tmp_path / "tile-inbox"
    inbox.mkdir()
    job = job_submit(owner=owner, job_type="slope", tile_ids=grid6x5.ids, wait_for_tiles=True, start="as_available")
    deliver(folder_of(grid6x5, tmp_path, "later", {3, 4}), inbox, row_ids(grid6x5, 3, 4))
    start_cluster(JOBSITE_TILE_INBOXES=f"{inbox}=default", JOBSITE_TILE_STORE=str(tmp_path / "store"))
    job = wait_until_final(job.pk, timeout=120)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert_same_pixels(whole_area(grid6x5.whole, "slope"), merged_pixels(job))


@pytest.mark.parametrize("mode", ["stable", "marker"])
def test_on_a_real_cluster_a_tile_written_slowly_is_taken_only_once_complete(
        transactional_db, start_cluster, grid6x5, tmp_path, owner, media, mode):  # noqa: F811
    from django.core.management import call_command

    call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "first", {0, 1, 2})), verbosity=0)
    inbox = tmp_path / "tile-inbox"
    inbox.mkdir()
    running = start_cluster(JOBSITE_TILE_INBOXES=f"{inbox}=default", JOBSITE_TILE_STORE=str(tmp_path / "store"),
                            JOBSITE_INBOX_COMPLETE=mode, JOBSITE_INBOX_STABLE_SECONDS="2",
                            JOBSITE_INBOX_SCAN_SECONDS="1")
    wait_for(lambda: "the inbox watcher watches 1 inbox folder(s)" in running.log_path.read_text(), timeout=30)
    job = job_submit(owner=owner, job_type="slope", tile_ids=[130], wait_for_tiles=True)
    data = (grid6x5.folder / "dem_130.tif").read_bytes()
    with open(inbox / "dem_130.tif", "wb") as out:  # in pieces, under its own name, 4 s long
        for start in range(0, len(data), len(data) // 8 + 1):
            out.write(data[start:start + len(data) // 8 + 1])
            out.flush()
            time.sleep(0.5)
            assert not Tile.objects.filter(number=130).exists(), "a tile taken before it was complete"
    written = time.monotonic()
    if mode == "marker":
        time.sleep(3)  # longer than a stable file waits: the marker alone decides
        assert not Tile.objects.filter(number=130).exists()
        (inbox / "dem_130.tif.done").touch()
        written = time.monotonic()
    wait_for(lambda: Tile.objects.filter(number=130).exists(), timeout=30)
    print(f"tile inbox, {mode}: taken {time.monotonic() - written:.2f} s after it was complete")
    assert wait_until_final(job.pk, timeout=60).status == JobStatus.SUCCEEDED
    assert not rejected(inbox)


def test_on_a_real_cluster_hostile_tiles_are_refused_and_read_nothing_outside_themselves(
        transactional_db, start_cluster, grid6x5, tmp_path, owner, media):  # noqa: F811
    from django.core.management import call_command

    call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "first", {0, 1, 2})), verbosity=0)
    inbox = tmp_path / "tile-inbox"
    inbox.mkdir()
    start_cluster(JOBSITE_TILE_INBOXES=f"{inbox}=default", JOBSITE_TILE_STORE=str(tmp_path / "store"))
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET * 40)
    (inbox / ".dem_130.tif.part").write_bytes(raw_vrt(secret))
    os.rename(inbox / ".dem_130.tif.part", inbox / "dem_130.tif")
    os.symlink(grid6x5.folder / "dem_131.tif", inbox / "dem_131.tif")
    wait_for(lambda: len(rejected(inbox)) == 2, timeout=30)
    reasons = rejected(inbox)
    assert "not a GeoTIFF" in reasons["dem_130.tif"] and SECRET not in reasons["dem_130.tif"]
    assert "symbolic link" in reasons["dem_131.tif"]
    assert not Tile.objects.filter(number__in=[130, 131]).exists()


def test_on_a_real_cluster_a_tile_renamed_into_the_inbox_starts_its_waiting_job_within_a_second(
        transactional_db, start_cluster, grid6x5, tmp_path, owner, media):  # noqa: F811
    from django.core.management import call_command

    call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "first", {0, 1, 2})), verbosity=0)
    inbox = tmp_path / "tile-inbox"
    inbox.mkdir()
    running = start_cluster(JOBSITE_TILE_INBOXES=f"{inbox}=default", JOBSITE_TILE_STORE=str(tmp_path / "store"))
    wait_for(lambda: "the inbox watcher watches 1 inbox folder(s)" in running.log_path.read_text(), timeout=30)
    job = job_submit(owner=owner, job_type="hillshade", tile_ids=[130], wait_for_tiles=True)
    shutil.copy(grid6x5.folder / "dem_130.tif", inbox / "dem_130.tif.part")
    delivered = time.monotonic()
    os.rename(inbox / "dem_130.tif.part", inbox / "dem_130.tif")
    wait_for(lambda: Job.objects.get(pk=job.pk).status != JobStatus.WAITING, timeout=30, interval=0.02)
    latency = time.monotonic() - delivered
    print(f"tile inbox latency, notifications on: {latency:.2f} s")
    assert latency < 1.0
    assert wait_until_final(job.pk).status == JobStatus.SUCCEEDED
