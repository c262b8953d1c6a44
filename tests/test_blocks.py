"""Blocks: adjacent tiles of a batch run as one window into one shared file, with the same pixels,
per-tile records and resumption as tiles run one by one."""

import itertools
import logging

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from osgeo import gdal

from datafiles import services as datafiles
from jobsite.media import media_path
from jobs import storage, tileindex
from jobs.jobtypes import DemJobType, get_job_type
from jobs.models import Job, JobLog, JobStatus, JobTile, Tile, TileStatus
from jobs.raster import blocks, dem
from jobs.raster.io import GridTile
from jobs.services import claims, worker
from jobs.services.claims import claim_tiles
from jobs.services.control import job_cancel, job_resume
from jobs.services.submit import job_submit

from .conftest import assert_same_pixels, whole_area, window_of
from .test_execution import merged_pixels, run


def grid_of(columns, rows, size=64, last_width=None, last_height=None):
    """GridTiles of a grid, row by row; the last column and row may be narrower."""
    tiles = []
    for row in range(rows):
        for col in range(columns):
            width = last_width if last_width and col == columns - 1 else size
            height = last_height if last_height and row == rows - 1 else size
            tiles.append(GridTile(f"t{row}-{col}", col * size, row * size, width, height))
    return tiles


def rectangle(block):
    area = blocks.area(block)
    return area.col, area.row, area.width, area.height


def covers_exactly(block):
    """Whether the block's tiles cover its area once each, with its top left tile first."""
    area = blocks.area(block)
    cover = np.zeros((area.height, area.width), dtype=int)
    for tile in block:
        if tile.col < area.col or tile.row < area.row:
            return False
        cover[tile.row - area.row:tile.row - area.row + tile.height, tile.col - area.col:tile.col - area.col + tile.width] += 1
    top_left = min(block, key=lambda t: (t.row, t.col))
    return (cover == 1).all() and block[0] == top_left and block == sorted(block, key=lambda t: (t.row, t.col))


def test_a_whole_grid_is_one_block_with_its_top_left_tile_first():
    tiles = grid_of(4, 3, last_width=58, last_height=62)
    (block,) = blocks.blocks(list(reversed(tiles)))
    assert block == tiles  # row-major
    assert blocks.area(block) == GridTile("t0-0", 0, 0, 250, 190)


def test_tiles_that_do_not_touch_make_separate_blocks_and_every_tile_is_in_one():
    tiles = grid_of(5, 4)
    chosen = [t for i, t in enumerate(tiles) if i not in (2, 7, 12, 17)]  # the middle column left out
    found = blocks.blocks(chosen)
    assert sorted(t.path for block in found for t in block) == sorted(t.path for t in chosen)
    assert all(covers_exactly(block) for block in found)
    assert sorted(rectangle(block) for block in found) == [(0, 0, 128, 256), (192, 0, 128, 256)]


def test_a_row_and_a_half_makes_two_blocks():
    tiles = grid_of(4, 3)[:6]  # a batch in claim order: row 0 and half of row 1
    found = blocks.blocks(tiles)
    assert all(covers_exactly(block) for block in found)
    assert sorted(rectangle(block) for block in found) == [(0, 0, 256, 64), (0, 64, 128, 64)]


def test_a_block_stays_within_its_pixel_bound():
    tiles = grid_of(8, 8)
    found = blocks.blocks(tiles, max_pixels=64 * 64 * 6)
    assert all(covers_exactly(block) and len(block) <= 6 for block in found)
    assert sum(len(block) for block in found) == 64


@pytest.mark.parametrize("processing", ["hillshade", "slope", "TRI"])
def test_a_block_writes_what_its_tiles_write_one_by_one(index, media, processing):
    grid = tileindex.index_grid()
    tiles = list(Tile.objects.order_by("row", "col"))
    places = [tileindex.grid_tile(t) for t in tiles]
    around = tileindex.neighbours(tiles, 1, grid)
    block = [p for p in places if p.row >= 64]  # the lower two rows: the index's bottom and right edges, and nodata
    neighbours = [n for t in tiles if t.row >= 64 for n in around[t.id] if n.row < 64]
    dem.process_block(tiles=block, neighbours=list(dict.fromkeys(neighbours)), grid=grid, halo=1,
                      processing=processing, options={}, out_path=media / "block.tif")
    shared = gdal.Open(str(media / "block.tif"))
    assert (shared.RasterXSize, shared.RasterYSize) == (250, 126)
    for tile, place in zip(tiles, places, strict=True):
        if place.row < 64:
            continue
        one = media / f"{tile.number}.tif"
        dem.process_tile(tile=place, neighbours=around[tile.id], grid=grid, halo=1, processing=processing, options={},
                         out_path=one)
        alone = gdal.Open(str(one))
        x0, px, _, y0, _, py = shared.GetGeoTransform()
        assert alone.GetGeoTransform() == pytest.approx((x0 + place.col * px, px, 0, y0 + (place.row - 64) * py, 0, py))
        assert_same_pixels(alone.ReadAsArray(),
                           shared.ReadAsArray(place.col, place.row - 64, place.width, place.height))


@pytest.fixture
def whole_batches(monkeypatch):
    """Batches as large as they go, however long the first tile took on this machine."""
    monkeypatch.setattr(claims, "BATCH_SECONDS", 60.0)


def block_files(job):
    """{file: [(tile number, recorded size)]} of a job's recorded tile outputs."""
    shared = {}
    for number, path, size in JobTile.objects.filter(job=job).exclude(output_path="").values_list(
            "tile__number", "output_path", "output_size"):
        shared.setdefault(path, []).append((number, size))
    return shared


def test_a_job_runs_its_tiles_in_blocks_that_share_a_file_each(index, owner, media, whole_batches):
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids, interim_results="always"))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert_same_pixels(whole_area(index.whole, "hillshade"), merged_pixels(job))
    shared = block_files(job)
    assert len(shared) < len(index.ids) and max(len(tiles) for tiles in shared.values()) > 1
    for path, tiles in shared.items():  # each tile records its share: the shares add up to the file
        assert media_path(path).stat().st_size == sum(size for _, size in tiles)
    assert sorted(p.name for p in (storage.job_dir(job.pk) / "tiles").iterdir()) == sorted(
        path.rsplit("/", 1)[1] for path in shared)
    assert JobLog.objects.filter(job=job, message__startswith=f"succeeded: merged {len(index.ids)} tiles").exists()
    assert set(JobTile.objects.filter(job=job).values_list("attempts", flat=True)) == {1}


def first_batches(job):
    """The number of tiles in each of the job's batches, in the order they were claimed."""
    starts = JobTile.objects.filter(job=job).order_by("started").values_list("started", flat=True)
    return [len(list(group)) for _, group in itertools.groupby(starts)]


def test_a_job_starts_at_the_batch_size_its_types_last_batch_measured(index, owner, media, whole_batches):
    first = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids))
    assert first_batches(first) == [1, len(index.ids) - 1]  # measured on one tile, then the rest at once
    again = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids, params={"z_factor": 2}))
    assert first_batches(again) == [len(index.ids)]
    assert again.status == JobStatus.SUCCEEDED
    assert_same_pixels(whole_area(index.whole, "hillshade", zFactor=2), merged_pixels(again))
    other = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids))  # another type: measured anew
    assert first_batches(other)[0] == 1
    claims.forget_speeds()
    assert first_batches(run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids)))[0] == 1


def test_a_batch_whose_tiles_failed_does_not_size_the_next_jobs_first_batch(index, owner, media, whole_batches):
    """Tiles that fail at once (their files gone) would make the next job of the type start at a
    whole batch, however long its own tiles take."""
    paths = dict(Tile.objects.values_list("pk", "path"))
    Tile.objects.update(path=str(media / "missing.tif"))
    failed = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids))
    assert failed.status == JobStatus.FAILED and first_batches(failed) == [1, len(index.ids) - 1]
    assert claims.known_seconds_per_tile(("slope", failed.type_version, failed.collection_id)) is None
    for pk, path in paths.items():
        Tile.objects.filter(pk=pk).update(path=path)
    good = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids))
    assert good.status == JobStatus.SUCCEEDED and first_batches(good) == [1, len(index.ids) - 1]


def test_dropping_interim_results_counts_and_removes_a_shared_file_once(index, owner, media, whole_batches,
                                                                        django_capture_on_commit_callbacks):
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids, interim_results="always"))
    shared = block_files(job)
    size = sum(media_path(path).stat().st_size for path in shared)
    with django_capture_on_commit_callbacks(execute=True):
        assert storage.drop_interim_results([job.pk]) == (len(shared), size)
    assert not any((storage.job_dir(job.pk) / "tiles").iterdir())


def test_a_resume_reruns_the_tiles_of_a_lost_block_file_and_keeps_the_others(index, owner, media, whole_batches,
                                                                               django_capture_on_commit_callbacks):
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids, interim_results="always"))
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)  # as if its merge had failed
    shared = block_files(job)
    lost_path, lost_tiles = max(shared.items(), key=lambda item: len(item[1]))
    cut_path = next(path for path in shared if path != lost_path)
    media_path(lost_path).unlink()
    with open(media_path(cut_path), "r+b") as cut:  # cut short: its tiles run again, and the file goes
        cut.truncate(100)
    with django_capture_on_commit_callbacks(execute=True):
        job, to_run = job_resume(job=Job.objects.get(pk=job.pk), by=owner)
    assert to_run == len(lost_tiles) + len(shared[cut_path])
    assert not media_path(cut_path).exists()
    kept = JobTile.objects.filter(job=job, status=TileStatus.SUCCEEDED)
    assert set(kept.values_list("output_path", flat=True)) == set(shared) - {lost_path, cut_path}
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED
    assert_same_pixels(whole_area(index.whole, "slope"), merged_pixels(job))
    attempts = dict(JobTile.objects.filter(job=job).values_list("tile__number", "attempts"))
    again = {number for number, _ in lost_tiles + shared[cut_path]}
    assert {number for number, attempt in attempts.items() if attempt == 2} == again


def test_a_block_that_fails_runs_tile_by_tile_so_each_failure_is_its_own(index, owner, media, whole_batches, caplog):
    broken = index.id_at(2, 3)  # the bottom right corner: its neighbours read its halo
    ids = [index.id_at(row, col) for row in (1, 2) for col in range(4)]
    job = job_submit(owner=owner, job_type="slope", tile_ids=ids)
    Tile.objects.filter(number=broken).update(path=str(media / "missing.tif"))
    with caplog.at_level(logging.INFO, logger="jobs.services.worker"):
        job = run(job)
    assert job.status == JobStatus.FAILED
    assert any("a block of" in record.getMessage() and "its tiles run one by one" in record.getMessage()
               for record in caplog.records)
    failed = set(JobTile.objects.filter(job=job, status=TileStatus.FAILED).values_list("tile__number", flat=True))
    assert failed == {broken, index.id_at(1, 2), index.id_at(1, 3), index.id_at(2, 2)}  # the tile and those around it
    for tile in JobTile.objects.filter(job=job, status=TileStatus.FAILED):
        assert tile.error == "missing.tif: No such file or directory"
    assert JobTile.objects.filter(job=job, status=TileStatus.SUCCEEDED).count() == len(ids) - 4


def test_a_canceled_block_stops_all_its_tiles_and_leaves_no_file(index, owner, media, monkeypatch):
    job = job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:4])
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    batch = claim_tiles(job.pk, "block-worker", 4)
    job_cancel(job=job, by="a test")
    monkeypatch.setattr(claims.TileWatch, "__init__", _watch_every_call)
    grid = tileindex.index_grid()
    around = tileindex.neighbours([t.tile for t in batch], 1, grid)
    (block,) = worker._blocks(get_job_type("hillshade"), batch)
    assert worker._process_block(job, block, get_job_type("hillshade"), {}, grid, around) == []
    assert set(JobTile.objects.filter(job=job).values_list("status", "lease_owner")) == {(TileStatus.CANCELED, "")}
    assert not any((storage.job_dir(job.pk) / "tiles").glob("*"))
    assert JobLog.objects.filter(job=job, message="stopped: the tile is no longer running").count() == 4


_watch_init = claims.TileWatch.__init__


def _watch_every_call(watch, job_tiles, lease=None, interval=0.5):
    _watch_init(watch, job_tiles, lease, interval=0)
    watch.checked = 0


def test_a_part_of_the_index_chosen_out_of_order_runs_in_rows(index, owner, media):
    ids = [index.id_at(2, 1), index.id_at(1, 2), index.id_at(1, 1), index.id_at(2, 2)]
    job = job_submit(owner=owner, job_type="slope", tile_ids=ids)
    assert list(JobTile.objects.filter(job=job).order_by("id").values_list("tile__number", flat=True)) == [
        index.id_at(1, 1), index.id_at(1, 2), index.id_at(2, 1), index.id_at(2, 2)]
    job = run(job)
    assert_same_pixels(window_of(whole_area(index.whole, "slope"), index, ids), merged_pixels(job))


def test_colour_relief_runs_tile_by_tile_for_its_percentages_are_of_each_tiles_range(index, owner, media,
                                                                                       whole_batches):
    assert get_job_type("hillshade").runs_blocks and not get_job_type("color-relief").runs_blocks
    datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("pct.txt", b"0% 0 0 255\n100% 255 0 0\nnv 0 0 0\n"))
    job = run(job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids, inputs={"color_table": "pct.txt"},
                         interim_results="always"))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert all(len(tiles) == 1 for tiles in block_files(job).values())


class OwnTiles(DemJobType):
    """A site's type that redefines only how a tile is processed."""

    def process_tile(self, **kwargs):
        return super().process_tile(**kwargs)


def test_a_type_that_redefines_process_tile_alone_runs_tile_by_tile():
    hillshade = get_job_type("hillshade")
    own = OwnTiles(**{f: getattr(hillshade, f) for f in hillshade.__dataclass_fields__})
    assert hillshade.runs_blocks and not own.runs_blocks


def test_the_watch_renews_every_tile_of_a_block_and_stops_only_when_none_is_left(index, owner):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    block = claim_tiles(job.pk, "w", 3)
    JobTile.objects.filter(job=job).update(lease_expires=None)
    watch = claims.TileWatch(block, interval=0)
    assert watch(0.1) is True
    assert JobTile.objects.filter(job=job, lease_expires__isnull=False).count() == 3
    JobTile.objects.filter(pk=block[0].pk).update(attempts=2)  # one tile claimed again elsewhere: the block goes on
    assert watch(0.2) is True
    JobTile.objects.filter(job=job).update(status=TileStatus.CANCELED)
    assert watch(0.3) is False


def test_a_block_recorded_in_part_keeps_its_file_and_lets_go_of_the_tile_taken_from_it(index, owner, media):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    batch = claim_tiles(job.pk, "block-worker", 3)
    grid = tileindex.index_grid()
    around = tileindex.neighbours([t.tile for t in batch], 1, grid)
    (block,) = worker._blocks(get_job_type("slope"), batch)
    done = worker._process_block(job, block, get_job_type("slope"), {}, grid, around)
    JobTile.objects.filter(pk=block[1].pk).update(status=TileStatus.PENDING, lease_owner="other", attempts=2)
    worker._record_succeeded(job.pk, done)
    path = done[0].relpath
    assert media_path(path).is_file()
    assert sorted(JobTile.objects.filter(job=job, status=TileStatus.SUCCEEDED).values_list("output_path", flat=True)) \
        == [path, path]
    assert JobLog.objects.filter(job=job, tile__number=block[1].tile.number,
                                 message__contains="its output was discarded").count() == 1


def test_a_batchs_neighbours_are_read_through_the_grid_index_only(db):
    """Two windows (a batch that spans two grid rows) read two ranges of the grid index, not the
    whole collection: SQLite did the latter while the query was ordered by tile number."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    Tile.objects.bulk_create([Tile(number=n, path=f"t{n}.tif", col=64 * (n % 20), row=64 * (n // 20), width=64,
                                   height=64, minx=0, miny=0, maxx=1, maxy=1) for n in range(400)])
    grid = tileindex.IndexGrid(20 * 64, 20 * 64, "", 64, 64)
    batch = list(Tile.objects.filter(number__in=range(218, 224)).order_by("number"))  # rows 10 and 11
    with CaptureQueriesContext(connection) as queries:
        around = tileindex.neighbours(batch, 1, grid)
    expected = {tile.number: {n for n in range(400) if n != tile.number and abs(n % 20 - tile.number % 20) <= 1
                              and abs(n // 20 - tile.number // 20) <= 1} for tile in batch}
    numbers = {t.path: int(t.path[1:-4]) for t in Tile.objects.all()}
    assert {tile.number: {numbers[n.path] for n in around[tile.pk]} for tile in batch} == expected
    [query] = queries.captured_queries
    assert "ORDER BY" not in query["sql"]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            plan = " ".join(str(step) for step in cursor.execute(f"EXPLAIN QUERY PLAN {query['sql']}").fetchall())
        assert "tile_grid_idx" in plan and "autoindex" not in plan, plan
