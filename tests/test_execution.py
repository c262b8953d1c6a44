"""Running a job's tiles and merge in this process, one step at a time, as a worker would."""

import pytest
from django.utils import timezone
from osgeo import gdal

from jobsite.media import media_path
from jobs import tileindex

from jobs.lifecycle import job_log
from jobs.services.control import job_cancel, job_resume
from jobs.services.finish import job_finish_tiles, job_merge
from jobs.services.submit import job_submit
from jobs.services.claims import TileWatch, claim_tiles
from jobs.services.worker import run_tile, run_tiles
from jobsite.exceptions import Conflict
from jobs.models import Job, JobLog, JobStatus, JobTile, Runner, TileStatus

from .conftest import assert_same_pixels, whole_area, window_of


def run(job):
    run_tiles(worker="test-worker", only_job=job.pk)
    job.refresh_from_db()
    if job.status == JobStatus.MERGING:
        job_merge(job_id=job.pk)
        job.refresh_from_db()
    return job


def merged_pixels(job):
    return gdal.Open(str(media_path(job.outputs[0]["path"]))).ReadAsArray()


@pytest.mark.parametrize("job_type,params,options", [
    ("hillshade", {}, {}),
    ("hillshade", {"mode": "multidirectional", "z_factor": 2}, {"multiDirectional": True, "zFactor": 2}),
    ("slope", {"units": "percent"}, {"slopeFormat": "percent"}),
    ("aspect", {}, {}),
])
def test_the_merged_result_equals_the_whole_area_at_once(index, owner, media, job_type, params, options):
    job = run(job_submit(owner=owner, job_type=job_type, tile_ids=index.ids, params=params))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert_same_pixels(whole_area(index.whole, job_type, **options), merged_pixels(job))


def test_a_part_of_the_index_equals_the_same_part_of_the_whole(index, owner, media):
    ids = [index.id_at(1, 1), index.id_at(1, 2), index.id_at(2, 1), index.id_at(2, 2)]
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=ids))
    expected = window_of(whole_area(index.whole, "slope"), index, ids)
    assert_same_pixels(expected, merged_pixels(job))


def test_a_successful_job_records_its_outputs_timings_and_logs(index, owner, media):
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2], interim_results="always"))
    assert [o["name"] for o in job.outputs] == ["hillshade.tif", "thumbnail.png"]
    assert job.outputs_size == sum(o["size"] for o in job.outputs)
    for output in job.outputs:
        assert media_path(output["path"]).stat().st_size == output["size"]
    assert job.created <= job.started <= job.finished <= job.updated and job.error == ""
    tiles = JobTile.objects.filter(job=job)
    assert {t.status for t in tiles} == {TileStatus.SUCCEEDED} and {t.attempts for t in tiles} == {1}
    assert all(media_path(t.output_path).stat().st_size == t.output_size for t in tiles)
    messages = list(JobLog.objects.filter(job=job).values_list("message", flat=True))
    assert messages[1:] == ["running on test-worker", "all tiles done; merging", messages[-1]]
    assert messages[-1].startswith("succeeded: merged 2 tiles into hillshade.tif")


def break_tile(tile_id, media):
    from jobs.models import Tile

    Tile.objects.filter(number=tile_id).update(path=str(media / "missing.tif"))


def test_a_failing_tile_fails_the_job_with_gdals_error_and_no_merge_runs(index, owner, media):
    broken, apart = index.id_at(0, 0), [index.id_at(0, 2), index.id_at(2, 2)]
    job = job_submit(owner=owner, job_type="hillshade", tile_ids=[broken, *apart])
    break_tile(broken, media)
    job = run(job)
    assert job.status == JobStatus.FAILED
    assert job.error == f"1 of its tiles failed: {broken}"
    failed = JobTile.objects.get(job=job, tile__number=broken)
    assert failed.status == TileStatus.FAILED
    assert failed.error == "missing.tif: No such file or directory"  # the folders of the site's storage are not shown
    assert JobLog.objects.filter(job=job, tile__number=broken, level="error", message__contains="No such file").exists()
    assert JobTile.objects.filter(job=job, status=TileStatus.SUCCEEDED).count() == 2
    assert job.outputs == [] and not (media / "jobs" / str(job.pk) / "out").exists()


def test_a_tile_fails_when_a_neighbour_it_needs_is_unreadable(index, owner, media):
    job = job_submit(owner=owner, job_type="slope", tile_ids=[index.id_at(0, 0)])
    break_tile(index.id_at(0, 1), media)  # not in the job, but inside its halo
    job = run(job)
    assert job.status == JobStatus.FAILED
    assert "missing.tif: No such file or directory" in JobTile.objects.get(job=job).error


def test_a_repeated_delivery_does_nothing(index, owner, media):
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2]))
    finished = job.finished
    run_tiles(worker="late-worker")
    job_merge(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.finished == finished
    assert set(JobTile.objects.filter(job=job).values_list("attempts", flat=True)) == {1}


def test_exactly_one_finisher_starts_the_merge(index, owner, media):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    run_tiles(worker="w1")
    job_finish_tiles(job_id=job.pk)  # a second worker arriving after the last tile
    assert JobLog.objects.filter(job=job, message="all tiles done; merging").count() == 1


def test_cancel_stops_a_running_gdal_call_through_its_progress_callback(index, owner, media, monkeypatch):
    job = job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2])
    monkeypatch.setattr(TileWatch, "__init__", _watch_every_call)
    calls = []
    original = TileWatch.__call__

    def cancel_midway(watch, fraction):
        calls.append(fraction)
        if len(calls) == 5:
            job_cancel(job=job, by="a test")
        return original(watch, fraction)

    monkeypatch.setattr(TileWatch, "__call__", cancel_midway)
    job = run(job)
    assert job.status == JobStatus.CANCELED
    assert len(calls) == 5  # GDAL stopped at the first look after the cancel, the one that made it
    assert sorted(JobTile.objects.filter(job=job).values_list("status", flat=True)) == [TileStatus.CANCELED] * 2
    tiles_dir = media / "jobs" / str(job.pk) / "tiles"
    assert not tiles_dir.exists() or not any(tiles_dir.iterdir())
    assert JobLog.objects.filter(job=job, message="stopped: the tile is no longer running").exists()
    assert "1 pending tiles will not run, 1 running tiles are stopping" in JobLog.objects.filter(job=job)[2].message


_watch_init = TileWatch.__init__


def _watch_every_call(watch, job_tile, lease=None, interval=0.5):
    _watch_init(watch, job_tile, lease, interval=0)
    watch.checked = 0


def test_the_watch_renews_the_lease_and_stops_a_tile_given_to_another_worker(index, owner):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    JobTile.objects.filter(job=job).update(status=TileStatus.RUNNING, attempts=1)
    job_tile = JobTile.objects.get(job=job)
    watch = TileWatch([job_tile], interval=0)
    assert watch(0.5) is True
    assert JobTile.objects.get(pk=job_tile.pk).lease_expires is not None
    JobTile.objects.filter(pk=job_tile.pk).update(attempts=2)  # claimed again by someone else
    assert watch(0.6) is False


def test_a_stale_attempt_neither_records_nor_removes_a_newer_attempts_output(index, owner, media):
    """A worker that lost its tile (canceled and resumed, or lease expired) while still working must
    not mark it succeeded, and may only remove its own file."""
    from jobs.jobtypes import JOB_TYPES

    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    stale = claim_tiles(job.pk, "stale-worker", 1)[0]
    JobTile.objects.filter(pk=stale.pk).update(status=TileStatus.PENDING, lease_expires=timezone.now())  # its lease ran out
    fresh = claim_tiles(job.pk, "fresh-worker", 1)[0]
    assert (stale.attempts, fresh.attempts) == (1, 2)
    kind = JOB_TYPES["slope"]
    run_tile(job, fresh, kind, {}, tileindex.index_grid())
    run_tile(job, stale, kind, {}, tileindex.index_grid())
    done = JobTile.objects.get(pk=fresh.pk)
    assert done.status == TileStatus.SUCCEEDED and done.attempts == 2 and done.output_path.endswith("_2.tif")
    assert media_path(done.output_path).is_file()
    assert sorted(p.name for p in media_path(done.output_path).parent.iterdir()) == [f"{index.ids[0]}_2.tif"]
    assert JobLog.objects.filter(job=job, message__contains="its output was discarded").count() == 1


def test_a_runner_hands_its_slot_over_to_a_fresh_task_when_its_time_budget_is_used(index, owner, media, settings,
                                                                                    django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    settings.TILE_TASK_BUDGET = 0
    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    slot = Runner.objects.get(slot=0)
    queued = OrmQ.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        run_tiles(worker="w", slot=0, token=slot.token)
    assert JobTile.objects.filter(job=job, status=TileStatus.SUCCEEDED).count() == 1
    fresh = Runner.objects.get(slot=0)
    assert fresh.token != slot.token and fresh.holder == "" and OrmQ.objects.count() == queued + 1
    run_tiles(worker="w", slot=0, token=slot.token)  # the old message, delivered again, runs nothing
    assert JobTile.objects.filter(job=job, status=TileStatus.SUCCEEDED).count() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    settings.TILE_TASK_BUDGET = 120
    assert run(job).status == JobStatus.SUCCEEDED


def test_cancel_refuses_a_finished_job(index, owner, media):
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1]))
    with pytest.raises(Conflict, match="is already succeeded"):
        job_cancel(job=job, by="owner")


def test_cancel_of_a_queued_job_cancels_its_pending_tiles(index, owner):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    job_cancel(job=job, by="owner")
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELED and job.finished is not None
    assert set(JobTile.objects.filter(job=job).values_list("status", flat=True)) == {TileStatus.CANCELED}
    run_tiles(worker="w")  # a late delivery runs nothing
    assert not JobTile.objects.filter(job=job, attempts__gt=0).exists()


def test_log_messages_are_cut_to_1000_characters(index, owner):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    log = job_log(job.pk, "x" * 5000)
    log.refresh_from_db()
    assert len(log.message) == 1000


def test_deleting_a_job_deletes_its_tiles_and_logs(index, owner):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    Job.objects.filter(pk=job.pk).delete()
    assert JobTile.objects.count() == 0 and JobLog.objects.count() == 0


def test_a_resumed_tile_waits_until_the_worker_that_was_stopping_it_lets_go(index, owner, media):
    """Cancel and resume at once must not hand a tile to a second worker while the first is still
    on it: the stopping worker's lease holds until it lets go, so no tile runs twice at a time."""
    from jobs.jobtypes import JOB_TYPES

    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:1])
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    first = claim_tiles(job.pk, "first-worker", 1)[0]
    job_cancel(job=job, by="a test")
    job_resume(job=Job.objects.get(pk=job.pk))
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    assert claim_tiles(job.pk, "second-worker", 1) == []  # the first still holds it
    run_tile(job, first, JOB_TYPES["slope"], {}, tileindex.index_grid())  # finds it no longer its own
    assert JobLog.objects.filter(job=job, message__contains="its output was discarded").count() == 1
    second = claim_tiles(job.pk, "second-worker", 1)
    assert [t.pk for t in second] == [first.pk] and second[0].attempts == 2
