"""Tiles that arrive later: load_tiles --append (on the collection's grid only), jobs that wait for
tiles not loaded yet and start when the last arrives, or run each tile as soon as it and the
neighbours its halo reads are there (as_available); deadlines that name the tiles that never came."""

import shutil
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs.models import Job, JobStatus, JobTile, Tile, TileStatus
from jobs.services.control import job_resume
from jobs.services.repair import jobs_fail_overdue
from jobs.services.submit import job_submit
from jobs.raster.io import crs_wkt_from_epsg, write_raster
from jobsite.exceptions import Conflict, Rejected

from .conftest import (EPSG, NODATA, ORIGIN, PIXEL, assert_same_pixels, wait_for, wait_until_final, whole_area,
                       write_tileset)
from .test_execution import merged_pixels, run


@pytest.fixture(scope="module")
def grid6x5(tmp_path_factory):
    """192 x 160 pixels in 30 tiles of 32 (6 columns, 5 rows): ids 100-105, 110-115, ... 140-145."""
    return write_tileset(tmp_path_factory.mktemp("late"), 192, 160, 32)


def folder_of(tileset, tmp_path, name, rows, leave_out=()):
    """A folder holding the tiles of `rows` of the tile set but those `leave_out` names (copies:
    tiles are files of their own)."""
    folder = tmp_path / name
    folder.mkdir()
    for tile_id in tileset.ids:
        if (tile_id - 100) // 10 in rows and tile_id not in leave_out:
            shutil.copy(tileset.folder / f"dem_{tile_id}.tif", folder)
    return folder


def row_ids(tileset, *rows):
    return [tile_id for tile_id in tileset.ids if (tile_id - 100) // 10 in rows]


@pytest.fixture
def first_rows(db, grid6x5, tmp_path):
    """The collection with the first three rows of tiles; rows 3 and 4 arrive later."""
    call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "first", {0, 1, 2})), verbosity=0)
    return folder_of(grid6x5, tmp_path, "later", {3, 4})


def statuses(job):
    return dict(JobTile.objects.filter(job=job).values_list("tile__number", "status"))


def test_a_job_that_waits_for_tiles_starts_when_the_last_is_appended_and_equals_the_whole_area(
        grid6x5, first_rows, owner, media, django_capture_on_commit_callbacks):
    job = job_submit(owner=owner, job_type="hillshade", tile_ids=grid6x5.ids, wait_for_tiles=True, wait_timeout=3600)
    assert job.status == JobStatus.WAITING and job.tiles_total == 30
    assert job.waiting_for_tiles == row_ids(grid6x5, 3, 4) and job.wait_deadline is not None
    assert JobTile.objects.filter(job=job).count() == 18
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_tiles", str(first_rows), append=True, verbosity=0)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.waiting_for_tiles == []
    assert JobTile.objects.filter(job=job, status=TileStatus.PENDING).count() == 30
    assert "tiles 130, 131, 132, 133, 134, 135, 140, 141, 142, 143, 144, 145 arrived; all its tiles are there" in \
        " ".join(job.logs.values_list("message", flat=True))
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED
    assert_same_pixels(whole_area(grid6x5.whole, "hillshade"), merged_pixels(job))


def test_as_available_runs_the_tiles_whose_neighbours_are_there_first_and_merges_the_same_mosaic(
        grid6x5, first_rows, owner, media, tmp_path, django_capture_on_commit_callbacks):
    job = job_submit(owner=owner, job_type="slope", tile_ids=grid6x5.ids, wait_for_tiles=True, start="as_available")
    assert job.status == JobStatus.QUEUED
    # Of the first three rows, only row 1 within the edge has every neighbour: row 0 and the edge
    # columns reach past the collection's tiles (where a tile may arrive), row 2 borders row 3.
    early = [111, 112, 113, 114]
    assert {n for n, status in statuses(job).items() if status == TileStatus.PENDING} == set(early)
    assert sum(status == TileStatus.WAITING for status in statuses(job).values()) == 14
    job = run(job)
    assert job.status == JobStatus.RUNNING, "no merge while tiles are missing"
    assert {n for n, status in statuses(job).items() if status == TileStatus.SUCCEEDED} == set(early)
    loaded = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_tiles", str(first_rows), append=True, verbosity=0)
    job.refresh_from_db()
    assert job.waiting_for_tiles == [] and set(statuses(job).values()) == {TileStatus.PENDING, TileStatus.SUCCEEDED}
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED
    finished = dict(JobTile.objects.filter(job=job).values_list("tile__number", "finished"))
    assert max(finished[n] for n in early) < loaded < min(t for n, t in finished.items() if n not in early)
    assert_same_pixels(whole_area(grid6x5.whole, "slope"), merged_pixels(job))


def test_a_tile_that_arrives_releases_only_the_neighbours_it_completes(grid6x5, tmp_path, db, owner, media,
                                                                       django_capture_on_commit_callbacks):
    call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "most", {0, 1, 2, 3})), verbosity=0)
    complete = job_submit(owner=owner, job_type="slope", tile_ids=row_ids(grid6x5, 2, 3), wait_for_tiles=True,
                          start="as_available")
    assert complete.waiting_for_tiles == [] and set(statuses(complete).values()) == {TileStatus.PENDING}
    job = job_submit(owner=owner, job_type="slope", tile_ids=row_ids(grid6x5, 2, 3, 4), wait_for_tiles=True,
                     start="as_available")
    held = {n for n, status in statuses(job).items() if status == TileStatus.WAITING}
    assert held == {120, 125, 130, 131, 132, 133, 134, 135}  # the edge columns, and the row above the gap
    with django_capture_on_commit_callbacks(execute=True):  # the last row but its corner, 145
        call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "last", {4}, leave_out={145})), append=True,
                     verbosity=0)
    job.refresh_from_db()
    assert job.waiting_for_tiles == [145]
    held = {n for n, status in statuses(job).items() if status == TileStatus.WAITING}
    # 131-133 have all their neighbours now; 134 touches 145, and the rest lie at the edge.
    assert held == {120, 125, 130, 134, 135, 140, 141, 142, 143, 144}
    assert "tiles 140, 141, 142, 143, 144 arrived; 3 tiles whose neighbours are all there now may run; waiting for " \
           "tiles 145" in job.logs.values_list("message", flat=True)


def test_appended_tiles_must_lie_on_the_collections_grid(grid6x5, first_rows, tmp_path, owner):
    wkt = crs_wkt_from_epsg(EPSG)
    bad = tmp_path / "bad"
    bad.mkdir()
    origin_x, origin_y = ORIGIN
    pixels = np.full((32, 32), 100.0, dtype="float32")
    cases = {
        "half a pixel off": ((origin_x + 0.5 * PIXEL, PIXEL, 0, origin_y - 96 * PIXEL, 0, -PIXEL), wkt, "float32",
                             "not aligned with the pixel grid"),
        "another pixel size": ((origin_x, PIXEL * 2, 0, origin_y - 96 * PIXEL, 0, -PIXEL * 2), wkt, "float32",
                               "pixel size"),
        "another CRS": ((origin_x, PIXEL, 0, origin_y - 96 * PIXEL, 0, -PIXEL), crs_wkt_from_epsg(3857), "float32",
                        "its CRS"),
        "another data type": ((origin_x, PIXEL, 0, origin_y - 96 * PIXEL, 0, -PIXEL), wkt, "int16", "data type"),
    }
    for name, (geotransform, crs, dtype, problem) in cases.items():
        folder = bad / name.replace(" ", "_")
        folder.mkdir()
        write_raster(folder / "dem_130.tif", pixels.astype(dtype), geotransform, crs, nodata=NODATA,
                     creation_options=())
        with pytest.raises(CommandError, match=problem):
            call_command("load_tiles", str(folder), append=True, verbosity=0)
    assert not Tile.objects.filter(number=130).exists() and Tile.objects.count() == 18


def test_append_refuses_tiles_it_has_unless_replaced_and_then_not_under_a_running_job(
        grid6x5, first_rows, tmp_path, owner):
    again = folder_of(grid6x5, tmp_path, "again", {2})
    with pytest.raises(CommandError, match=r"tiles 120, 121, 122, 123, 124, 125 of collection default are already "
                                           r"loaded; use --append --replace-tiles"):
        call_command("load_tiles", str(again), append=True, verbosity=0)
    with pytest.raises(CommandError, match="give it with --append"):
        call_command("load_tiles", str(again), replace_tiles=True, verbosity=0)
    with pytest.raises(CommandError, match="give one of them"):
        call_command("load_tiles", str(again), append=True, replace=True, verbosity=0)
    with pytest.raises(CommandError, match="no tiles to append to"):
        call_command("load_tiles", str(again), collection="empty", append=True, verbosity=0)
    job = job_submit(owner=owner, job_type="slope", tile_ids=[121])
    with pytest.raises(CommandError, match=rf"would change under jobs {job.pk}"):
        call_command("load_tiles", str(again), append=True, replace_tiles=True, verbosity=0)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    call_command("load_tiles", str(again), append=True, replace_tiles=True, verbosity=0)
    assert Tile.objects.get(number=121).path == str((again / "dem_121.tif").resolve())


@pytest.mark.parametrize("complete", ["rename", "marker"])
def test_tiles_left_of_the_collection_move_its_origin_only_while_no_tile_over_it_is_worked_on(
        grid6x5, tmp_path, db, owner, settings, django_capture_on_commit_callbacks, complete):
    call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "right", {0, 1}, leave_out={100, 110})), verbosity=0)
    left = folder_of(grid6x5, tmp_path, "left", {2}, leave_out=row_ids(grid6x5, 2)[1:])  # 120, left of them all
    job = job_submit(owner=owner, job_type="slope", tile_ids=[111, 120], wait_for_tiles=True, start="as_available")
    JobTile.objects.filter(job=job).update(status=TileStatus.RUNNING)  # a worker places 111 by the grid
    with pytest.raises(CommandError, match=rf"moves the origin of its grid, and tiles of jobs {job.pk} are being "
                                           "worked on over it; try again once they are done"):
        call_command("load_tiles", str(left), append=True, verbosity=0)
    assert Tile.objects.get(number=101).col == 0
    # A tile inbox puts such a file back, to be taken once it can be.
    inbox = tmp_path / "tile-inbox"
    inbox.mkdir()
    settings.TILE_INBOXES, settings.TILE_STORE = [(str(inbox), "default")], str(tmp_path / "store")
    settings.INBOX_COMPLETE = complete
    shutil.copy(left / "dem_120.tif", inbox)
    if complete == "marker":
        (inbox / "dem_120.tif.done").touch()
    from datafiles.inbox import scan_inboxes
    assert scan_inboxes() == {"stored": 0, "rejected": 0} and (inbox / "dem_120.tif").exists()
    assert complete != "marker" or (inbox / "dem_120.tif.done").exists(), "a file put back keeps its marker"
    JobTile.objects.filter(job=job).update(status=TileStatus.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        assert scan_inboxes() == {"stored": 1, "rejected": 0}
    assert Tile.objects.get(number=101).col == 32 and Tile.objects.get(number=120).col == 0
    assert Job.objects.get(pk=job.pk).waiting_for_tiles == []


def test_a_job_past_its_deadline_fails_naming_the_tiles_that_never_arrived(grid6x5, first_rows, owner):
    waiting = job_submit(owner=owner, job_type="slope", tile_ids=[120, 130, 131], wait_for_tiles=True)
    early = job_submit(owner=owner, job_type="slope", tile_ids=[111, 140], wait_for_tiles=True, start="as_available")
    Job.objects.filter(pk__in=[waiting.pk, early.pk]).update(wait_deadline=timezone.now() - timedelta(seconds=1))
    jobs_fail_overdue()
    waiting.refresh_from_db()
    early.refresh_from_db()
    assert waiting.status == early.status == JobStatus.FAILED
    assert waiting.error == "waited in vain for tiles 130, 131 of collection default, which never arrived"
    assert early.error == "waited in vain for tiles 140 of collection default, which never arrived"
    assert set(statuses(early).values()) == {TileStatus.CANCELED}
    with pytest.raises(Conflict, match="tiles 130, 131 of collection default have not been loaded"):
        job_resume(job=waiting)


def test_a_job_that_waited_in_vain_runs_once_its_tiles_are_loaded_and_resumed(grid6x5, first_rows, owner, media):
    job = job_submit(owner=owner, job_type="hillshade", tile_ids=[124, 125, 134, 135], wait_for_tiles=True)
    Job.objects.filter(pk=job.pk).update(wait_deadline=timezone.now() - timedelta(seconds=1))
    jobs_fail_overdue()
    call_command("load_tiles", str(first_rows), append=True, verbosity=0)  # no job waits for them now
    job, to_run = job_resume(job=Job.objects.get(pk=job.pk))
    assert to_run == 4 and job.waiting_for_tiles == []
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED


def test_bad_requests_to_wait_for_tiles_are_refused_naming_the_field(grid6x5, first_rows, owner, client_for):
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="slope", tile_ids=[120, 130])
    assert refused.value.errors == {"tile_ids": "unknown tile ids: 130"}
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="slope", town_id=1, wait_for_tiles=True)
    assert "give tile_ids, not town_id" in refused.value.errors["wait_for_tiles"]
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="slope", tile_ids=[120], wait_for_tiles=True, start="soon")
    assert refused.value.errors == {"start": "must be one of all_arrived, as_available"}
    client = client_for(owner)
    answer = client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": [120, 130], "wait_for_tiles": "maybe"},
                         format="json")
    assert answer.status_code == 400 and answer.json()["errors"] == {"wait_for_tiles": ["Must be a valid boolean."]}
    answer = client.post("/api/v1/jobs/", {"type": "slope", "tile_ids": [120, 130], "wait_for_tiles": True,
                                           "start": "as_available"}, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["waiting_for_tiles"] == [130] and answer.json()["start"] == "as_available"
    assert answer.json()["waiting_for"] == ["tile 130"]
    estimate = client.post("/api/v1/jobs/estimate/", {"type": "slope", "tile_ids": [120, 130], "wait_for_tiles": True},
                           format="json").json()
    assert estimate["waiting_for_tiles"] == [130] and estimate["pixels"] == 2 * 32 * 32
    assert estimate["waiting_for"] == ["tile 130"]
    assert not Job.objects.filter(status=JobStatus.WAITING).exists()


def test_on_a_real_cluster_appended_tiles_start_the_job_that_waited_for_them(
        transactional_db, grid6x5, tmp_path, owner, cluster):
    call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "first", {0, 1, 2})), verbosity=0)
    waiting = job_submit(owner=owner, job_type="slope", tile_ids=grid6x5.ids, wait_for_tiles=True)
    early = job_submit(owner=owner, job_type="slope", tile_ids=grid6x5.ids, wait_for_tiles=True, start="as_available")
    wait_for(lambda: JobTile.objects.filter(job=early, status=TileStatus.SUCCEEDED).count() == 4, 60,
             message="the four tiles whose neighbours are there")
    assert Job.objects.get(pk=waiting.pk).status == JobStatus.WAITING
    assert Job.objects.get(pk=early.pk).status == JobStatus.RUNNING
    call_command("load_tiles", str(folder_of(grid6x5, tmp_path, "later", {3, 4})), append=True, verbosity=0)
    expected = whole_area(grid6x5.whole, "slope")
    for job_id in (waiting.pk, early.pk):
        job = wait_until_final(job_id, timeout=120)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert_same_pixels(expected, merged_pixels(job))


def test_the_job_page_shows_what_it_waits_for_and_the_arrival_is_an_event_of_the_job(
        grid6x5, first_rows, owner, media, client_for, django_capture_on_commit_callbacks):
    from notifications.models import Event

    job = job_submit(owner=owner, job_type="slope", tile_ids=row_ids(grid6x5, 2, 3), wait_for_tiles=True,
                     start="as_available")
    client = client_for(owner)
    client.force_login(owner)
    state = client.get(f"/jobs/{job.pk}/live/").json()["parts"]["state"]
    assert ("waiting for tiles 130, 131, 132, 133, 134, 135 to arrive in collection default (6 tiles wait for "
            "those neighbours)") in state
    assert client.get(f"/jobs/{job.pk}/live/").json()["tiles"]["120"] == "waiting"
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_tiles", str(first_rows), append=True, verbosity=0)
    state = client.get(f"/jobs/{job.pk}/live/").json()["parts"]["state"]
    assert "waiting for tiles" not in state and "0 of 12 tiles done" in state
    progress = Event.objects.filter(job_id=job.pk, type="job.progress").last()
    assert progress.payload["data"]["waiting_for_tiles"] == []


def test_the_new_job_form_submits_a_job_that_waits_for_tiles_and_names_a_bad_start(
        grid6x5, first_rows, owner, client_for):
    from .test_job_form import rendered_form

    client = client_for(owner)
    client.force_login(owner)
    data = {**rendered_form(client, "slope").values, "tile_ids": "120, 130"}
    html = client.post("/jobs/new/", data).content.decode()
    assert "unknown tile ids: 130" in html and not Job.objects.exists()
    html = client.post("/jobs/new/", {**data, "wait_for_tiles": "on", "start": "later"}).content.decode()
    assert "Select a valid choice. later is not one of the available choices." in html and not Job.objects.exists()
    response = client.post("/jobs/new/", {**data, "wait_for_tiles": "on", "start": "as_available"})
    assert response.status_code == 302, response.content.decode()
    job = Job.objects.get(owner=owner)
    assert job.waiting_for_tiles == [130] and job.start == "as_available" and job.status == JobStatus.QUEUED


def test_a_worker_reads_the_grid_again_once_tiles_have_grown_the_collection(grid6x5, first_rows, owner):
    from jobs.services.jobrun import JobRun

    run = JobRun(job_submit(owner=owner, job_type="slope", tile_ids=[120]))
    assert (run.grid.width, run.grid.height) == (192, 96)
    call_command("load_tiles", str(first_rows), append=True, verbosity=0)
    run.refresh_grid()
    assert (run.grid.width, run.grid.height) == (192, 160)


def test_appended_tiles_join_the_towns_they_lie_in_and_the_others_keep_theirs(grid6x5, first_rows, tmp_path):
    from jobs import vector
    from jobs.models import Town

    from .test_load_towns import box

    towns = tmp_path / "towns.geojson"
    vector.write_polygons(towns, [(1, "Across rows 2 and 3", box(400100, 5699500, 400200, 5699530)),
                                  (2, "In row 0", box(400010, 5699900, 400100, 5699990))], crs_wkt_from_epsg(EPSG))
    call_command("load_towns", str(towns), "--id-field", "id", "--name-field", "name", verbosity=0)
    assert sorted(Town.objects.get(id=1).tiles.values_list("number", flat=True)) == [120, 121]
    call_command("load_tiles", str(first_rows), append=True, verbosity=0)
    assert sorted(Town.objects.get(id=1).tiles.values_list("number", flat=True)) == [120, 121, 130, 131]
    assert list(Town.objects.get(id=2).tiles.values_list("number", flat=True)) == [100]


def test_an_ogc_api_execution_may_wait_for_tiles_and_its_status_names_them(grid6x5, first_rows, owner, client_for):
    api = client_for(owner)
    response = api.post("/ogcapi/processes/slope/execution",
                        {"inputs": {"tile_ids": [120, 130], "wait_for_tiles": True, "wait_timeout": 600}},
                        format="json", headers={"Prefer": "respond-async"})
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "accepted" and response.json()["message"] == "waiting for tiles 130"
    job = Job.objects.get()
    assert job.status == JobStatus.WAITING and job.waiting_for_tiles == [130]
    refused = api.post("/ogcapi/processes/slope/execution",
                       {"inputs": {"tile_ids": [120, 130], "wait_for_tiles": True, "start": "never"}}, format="json")
    assert refused.status_code == 400 and "start" in refused.json()["detail"]
    described = api.get("/ogcapi/processes/slope").json()["inputs"]
    assert described["start"]["schema"]["enum"] == ["all_arrived", "as_available"]
