"""The life cycle table: every transition it allows works and is announced once, every other one is
refused, a job that ends leaves no tile to claim, and the README shows the code's table."""

import re
import threading
from pathlib import Path

import pytest
from django.db import connection, transaction

from jobsite.media import media_path
from datafiles import services as datafiles
from django.core.files.uploadedfile import SimpleUploadedFile
from jobs import lifecycle, storage

from jobsite.exceptions import Conflict
from jobs.models import InterimResults, Job, JobInput, JobLog, JobStatus, JobTile, Tile, TileStatus
from jobs.services.control import job_cancel, job_resume
from jobs.services.submit import job_submit
from jobs.services.claims import claim_tiles
from jobs.services.worker import run_tile, run_tiles
from jobs.jobtypes import get_job_type
from jobs import tileindex

README = Path(__file__).resolve().parent.parent / "README.md"
JOB_STATES, TILE_STATES = list(JobStatus.values), list(TileStatus.values)


@pytest.fixture
def heard():
    """The signals sent, as (signal name, its keyword arguments)."""
    sent = []

    def job_changed(sender, **kwargs):
        sent.append(("job_changed", kwargs))

    def tiles_changed(sender, **kwargs):
        sent.append(("tiles_changed", kwargs))

    lifecycle.job_changed.connect(job_changed)
    lifecycle.tiles_changed.connect(tiles_changed)
    yield sent
    lifecycle.job_changed.disconnect(job_changed)
    lifecycle.tiles_changed.disconnect(tiles_changed)


@pytest.fixture
def job(index, owner, media):
    return job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])


def put(job, status, **fields):
    Job.objects.filter(pk=job.pk).update(status=status, **fields)


def test_the_readme_shows_the_codes_table():
    text = README.read_text()
    start = text.index("<!-- transitions:")
    rows = []
    for line in text[start:].splitlines()[3:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append((cells[0], cells[1].strip("`"), cells[2], cells[3], cells[4], cells[5]))
    tables = {"job": lifecycle.JOB_TRANSITIONS, "tile": lifecycle.TILE_TRANSITIONS}
    assert rows == [(*row, tables[row[0]][row[1]].help) for row in lifecycle.table_rows()]


def test_the_readmes_diagram_draws_every_transition_and_no_other():
    """Each line of the diagram is `[tile:] a | b --name--> c [--name--> d ...]`."""
    text = README.read_text()
    diagram = text[text.index("## How a job runs"):].split("```")[1]
    drawn = set()
    for line in filter(None, (line.strip() for line in diagram.splitlines())):
        kind, line = ("tile", line.removeprefix("tile:")) if line.startswith("tile:") else ("job", line)
        parts = [part.strip() for part in re.split(r"--(\w+)-->", line)]
        for at in range(1, len(parts), 2):
            drawn.add((kind, parts[at], frozenset(parts[at - 1].split(" | ")), parts[at + 1]))
    assert drawn == {(kind, t.name, t.sources, t.target)
                     for kind, table in (("job", lifecycle.JOB_TRANSITIONS), ("tile", lifecycle.TILE_TRANSITIONS))
                     for t in table.values()}


@pytest.mark.parametrize("name", list(lifecycle.JOB_TRANSITIONS))
def test_every_job_transition_moves_from_each_of_its_states_stamps_logs_and_announces(
        job, name, heard, django_capture_on_commit_callbacks):
    transition = lifecycle.JOB_TRANSITIONS[name]
    for source in sorted(transition.sources):
        put(job, source, started=None, finished=None, merge_started=None, woken=None)
        heard.clear()
        with django_capture_on_commit_callbacks(execute=True):
            assert lifecycle.move_job(job.pk, name, message=f"{name} from {source}") == source
        moved = Job.objects.get(pk=job.pk)
        assert moved.status == transition.target
        for field, value in transition.stamps:
            if value == lifecycle.NOW:
                assert getattr(moved, field) is not None, field
        assert JobLog.objects.filter(job=job, message__startswith=f"{name} from {source}").count() == 1
        assert [kwargs for signal, kwargs in heard if signal == "job_changed"] == [
            {"signal": lifecycle.job_changed, "job_id": job.pk, "old": source, "new": transition.target,
             "transition": name}]


@pytest.mark.parametrize("name", list(lifecycle.JOB_TRANSITIONS))
def test_every_job_transition_from_another_state_is_refused(job, name, heard, django_capture_on_commit_callbacks):
    transition = lifecycle.JOB_TRANSITIONS[name]
    for state in sorted(set(JOB_STATES) - transition.sources):
        put(job, state)
        logs = JobLog.objects.filter(job=job).count()
        with django_capture_on_commit_callbacks(execute=True):
            assert lifecycle.move_job(job.pk, name, message="must not be written") is None
        assert Job.objects.get(pk=job.pk).status == state
        assert JobLog.objects.filter(job=job).count() == logs
    assert heard == []


def test_names_and_states_outside_the_table_are_errors(job):
    with pytest.raises(lifecycle.NotAllowed):
        lifecycle.move_job(job.pk, "explode")
    with pytest.raises(lifecycle.NotAllowed):
        lifecycle.move_job(job.pk, "start", only_from=[JobStatus.RUNNING])
    with pytest.raises(lifecycle.NotAllowed):
        lifecycle.move_tiles(job.pk, "explode", JobTile.objects.filter(job=job))


@pytest.mark.parametrize("name", list(lifecycle.TILE_TRANSITIONS))
def test_every_tile_transition_moves_exactly_the_tiles_in_its_states(
        job, name, heard, django_capture_on_commit_callbacks):
    transition = lifecycle.TILE_TRANSITIONS[name]
    tiles = JobTile.objects.filter(job=job)
    for state in TILE_STATES:
        tiles.update(status=state, lease_owner="w")
        heard.clear()
        with django_capture_on_commit_callbacks(execute=True):
            if name == "succeed":
                done = [(tile, f"jobs/{job.pk}/tiles/{tile.tile_id}.tif", 10) for tile in tiles]
                moved = lifecycle.tiles_succeeded(job.pk, done, "w")
            else:
                moved = lifecycle.move_tiles(job.pk, name, tiles)
        if state in transition.sources:
            assert moved == 3 and set(tiles.values_list("status", flat=True)) == {transition.target}
            ((signal, kwargs),) = heard
            counts = kwargs.pop("counts")
            assert (signal, kwargs) == ("tiles_changed", {"signal": lifecycle.tiles_changed, "job_id": job.pk,
                                                          "transition": name, "count": 3})
            assert counts() == {transition.target: 3}
        else:
            assert moved == 0 and set(tiles.values_list("status", flat=True)) == {state}
            assert heard == []


def test_claimed_tiles_stamp_an_attempt_and_succeeded_ones_record_their_output(job):
    (claimed,) = claim_tiles(job.pk, "w", 1)
    assert JobTile.objects.get(pk=claimed.pk).attempts == 1 and claimed.lease_owner == "w"
    assert lifecycle.tiles_succeeded(job.pk, [(claimed, "jobs/x.tif", 7)], "someone else") == 0
    assert lifecycle.tiles_succeeded(job.pk, [(claimed, "jobs/x.tif", 7)], "w") == 1
    tile = JobTile.objects.get(pk=claimed.pk)
    assert (tile.status, tile.output_path, tile.output_size, tile.lease_expires) == (TileStatus.SUCCEEDED, "jobs/x.tif", 7,
                                                                                    None)


def test_a_transition_rolled_back_announces_nothing(job, heard, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            assert lifecycle.move_job(job.pk, "cancel", message="canceled") == JobStatus.QUEUED
            raise RuntimeError("the caller fails after the transition")
    assert callbacks == [] and heard == []
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    assert set(JobTile.objects.filter(job=job).values_list("status", flat=True)) == {TileStatus.PENDING}


def test_a_whole_run_announces_each_transition_once(index, owner, media, heard, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])
    with django_capture_on_commit_callbacks(execute=True):
        run_tiles(worker="w")
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED
    assert [(kwargs["old"], kwargs["new"]) for signal, kwargs in heard if signal == "job_changed"] == [
        (None, "queued"), ("queued", "running"), ("running", "merging"), ("merging", "succeeded")]
    moved = [(kwargs["transition"], kwargs["count"]) for signal, kwargs in heard if signal == "tiles_changed"]
    assert sum(count for name, count in moved if name == "claim") == 2
    assert sum(count for name, count in moved if name == "succeed") == 2
    last = [kwargs for signal, kwargs in heard if signal == "tiles_changed"][-1]
    assert last["counts"]() == {"succeeded": 2}


def assert_nothing_left_to_claim(job):
    statuses = set(JobTile.objects.filter(job=job).values_list("status", flat=True))
    assert not statuses & {TileStatus.PENDING, TileStatus.RUNNING}, statuses
    assert claim_tiles(job.pk, "late-worker", 10) == []


def test_a_job_failed_inside_the_tile_loop_leaves_no_tile_and_under_never_no_interim_file(
        index, owner, media, django_capture_on_commit_callbacks):
    datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("ramp.txt", b"0 0 0 0\n1000 255 255 255\n"))
    job = job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:4], inputs={"color_table": "ramp.txt"},
                     interim_results=InterimResults.NEVER)
    kind, grid = get_job_type("color-relief"), tileindex.index_grid()
    lifecycle.move_job(job.pk, "start")
    first, second = claim_tiles(job.pk, "w1", 1)[0], claim_tiles(job.pk, "w2", 1)[0]
    run_tile(Job.objects.get(pk=job.pk), first, kind, Job.objects.get(pk=job.pk).input_files(), grid)
    interim = media_path(JobTile.objects.get(pk=first.pk).output_path)
    assert interim.exists()
    JobInput.objects.filter(job=job).update(datafile=None)  # its data file is gone: the next worker fails the job
    with django_capture_on_commit_callbacks(execute=True):
        run_tiles(worker="w3")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "ramp.txt is gone" in job.error
    assert_nothing_left_to_claim(job)
    assert JobTile.objects.get(pk=second.pk).status == TileStatus.CANCELED  # the other worker's TileWatch stops it
    assert not interim.exists() and not JobTile.objects.exclude(output_path="").filter(job=job).exists()


def test_a_job_whose_tile_fails_for_good_drops_its_interim_results_under_never(
        index, owner, media, django_capture_on_commit_callbacks):
    broken, apart = index.id_at(0, 0), [index.id_at(0, 2), index.id_at(2, 2)]
    job = job_submit(owner=owner, job_type="slope", tile_ids=[broken, *apart], interim_results=InterimResults.NEVER)
    Tile.objects.filter(number=broken).update(path=str(media / "missing.tif"))
    with django_capture_on_commit_callbacks(execute=True):
        run_tiles(worker="w")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error == f"1 of its tiles failed: {broken}"
    assert_nothing_left_to_claim(job)
    assert not JobTile.objects.exclude(output_path="").filter(job=job).exists()
    assert not any(storage.job_dir(job.pk).rglob("*.tif"))


@pytest.mark.django_db(transaction=True)
def test_concurrent_cancel_and_resume_end_consistent(index, owner, media):
    """Resume and cancel of one canceled job at once: whichever order the database picks, the job
    and its tiles agree (a canceled job has no tile left to claim, a queued one runs them all)."""
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:4])
    job_cancel(job=job, by="owner")
    resumes = 0
    for _ in range(8):
        start, outcomes = threading.Barrier(2), []

        def act(action, start=start, outcomes=outcomes):
            start.wait()
            try:
                action()
                outcomes.append(action.__name__)
            except Conflict:
                outcomes.append("409")
            finally:
                connection.close()

        def resume():
            job_resume(job=Job.objects.get(pk=job.pk), by=owner)

        def cancel():
            job_cancel(job=Job.objects.get(pk=job.pk), by="owner")

        threads = [threading.Thread(target=act, args=(action,)) for action in (resume, cancel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        current = Job.objects.get(pk=job.pk)
        statuses = set(JobTile.objects.filter(job=job).values_list("status", flat=True))
        if current.status == JobStatus.CANCELED:
            assert sorted(outcomes) == ["cancel", "resume"]  # resumed, then canceled
            assert not statuses & {TileStatus.PENDING, TileStatus.RUNNING} and current.finished is not None
        else:
            assert sorted(outcomes) == ["409", "resume"]  # the cancel came first and found nothing to cancel
            assert current.status == JobStatus.QUEUED and statuses == {TileStatus.PENDING}
            assert current.finished is None
            job_cancel(job=current, by="owner")
        resumes += outcomes.count("resume")
    assert JobLog.objects.filter(job=job, message__startswith="resumed").count() == resumes == 8


def test_a_receiver_that_fails_harms_neither_the_transition_nor_its_caller(job, client_for, owner,
                                                                          django_capture_on_commit_callbacks):
    def broken(sender, **kwargs):
        raise RuntimeError("a receiver's bug")

    lifecycle.job_changed.connect(broken)
    lifecycle.tiles_changed.connect(broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(owner).post(f"/api/v1/jobs/{job.pk}/cancel/")
    finally:
        lifecycle.job_changed.disconnect(broken)
        lifecycle.tiles_changed.disconnect(broken)
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert not JobTile.objects.filter(job=job, status=TileStatus.PENDING).exists()


def test_a_transition_that_ends_a_job_must_say_why(job):
    with pytest.raises(lifecycle.NotAllowed):
        lifecycle.move_job(job.pk, "cancel")
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
