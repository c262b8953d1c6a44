import pytest
from django_q.models import OrmQ

from jobs.services.submit import job_submit
from jobsite.exceptions import Rejected
from jobs.models import Job, JobLog, JobStatus, JobTile, Label, TileStatus


def submit(owner, **kwargs):
    kwargs.setdefault("job_type", "hillshade")
    return job_submit(owner=owner, **kwargs)


def test_it_creates_the_job_and_all_its_tiles(index, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = submit(owner, tile_ids=[index.id_at(1, 1), index.id_at(0, 0)], params={"azimuth": 200}, labels=["flood", "2024"])
    assert job.status == JobStatus.QUEUED and job.tiles_total == 2
    assert job.params["azimuth"] == 200.0 and job.params["altitude"] == 45.0
    assert sorted(job.labels.values_list("name", flat=True)) == ["2024", "flood"]
    assert sorted(JobTile.objects.filter(job=job).values_list("tile__number", "status")) == [
        (index.id_at(0, 0), TileStatus.PENDING), (index.id_at(1, 1), TileStatus.PENDING)]
    assert "owner submitted hillshade over 2 tiles" in JobLog.objects.get(job=job).message
    assert OrmQ.objects.count() == 2  # one wake-up per worker, not one per tile


def test_it_queues_work_only_once_the_transaction_commits(index, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        submit(owner, tile_ids=[index.id_at(0, 0)])
    assert OrmQ.objects.count() == 0 and len(callbacks) == 1


def test_a_town_job_takes_the_towns_tiles(town, owner):
    job = submit(owner, town_id=town.id)
    assert job.town == town and job.tiles_total == 4


def test_labels_are_shared_between_jobs(index, owner):
    submit(owner, tile_ids=[index.id_at(0, 0)], labels=["a"])
    submit(owner, tile_ids=[index.id_at(0, 0)], labels=["a", "b", "a"])
    assert list(Label.objects.values_list("name", flat=True)) == ["a", "b"]


@pytest.mark.parametrize("kwargs,field,problem", [
    ({}, "tile_ids", "give exactly one of tile_ids and town_id"),
    ({"tile_ids": [100], "town_id": 11850}, "town_id", "give exactly one of tile_ids and town_id"),
    ({"tile_ids": []}, "tile_ids", "must not be empty"),
    ({"tile_ids": [100, 101, 100]}, "tile_ids", "duplicate tile ids: 100"),
    ({"tile_ids": [100, 5, 6]}, "tile_ids", "unknown tile ids: 5, 6"),
    ({"tile_ids": "100,101"}, "tile_ids", "must be a list of integer tile ids"),
    ({"town_id": 4}, "town_id", "unknown town id: 4"),
    ({"tile_ids": [100, 2**40]}, "tile_ids", f"unknown tile ids: {2**40}"),
    ({"town_id": -2**70}, "town_id", f"unknown town id: {-2**70}"),
    ({"tile_ids": [100], "job_type": "erosion"}, "type", "unknown job type 'erosion'"),
    ({"tile_ids": [100], "labels": ["ok", ""]}, "labels", "is not a label"),
    ({"tile_ids": [100], "labels": "flood"}, "labels", "must be a list of strings"),
    ({"tile_ids": [100], "interim_results": "sometimes"}, "interim_results", "must be one of always, on_error, never"),
])
def test_it_rejects_bad_input_and_writes_nothing(town, owner, kwargs, field, problem):
    with pytest.raises(Rejected) as caught:
        submit(owner, **kwargs)
    assert problem in caught.value.errors[field]
    assert Job.objects.count() == 0 and JobTile.objects.count() == 0 and JobLog.objects.count() == 0


def test_bad_parameters_are_named(index, owner):
    with pytest.raises(Rejected) as caught:
        submit(owner, tile_ids=[100], params={"azimuth": 400})
    assert caught.value.errors == {"params": {"azimuth": "must be at most 360"}}
    assert Job.objects.count() == 0


def test_more_tiles_than_the_limit_are_rejected(index, owner, settings, town):
    settings.MAX_TILES_PER_JOB = 3
    with pytest.raises(Rejected, match="4 tiles is more than the limit of 3 tiles per job"):
        submit(owner, tile_ids=index.ids[:4])
    with pytest.raises(Rejected, match="4 tiles is more than the limit of 3"):
        submit(owner, town_id=town.id)
    assert Job.objects.count() == 0


def test_a_town_without_tiles_is_rejected(index, owner):
    from jobs.models import Town

    Town.objects.create(id=7, name="Nowhere", geometry_wkt="POLYGON EMPTY")
    with pytest.raises(Rejected, match="town 7 \\(Nowhere\\) has no tiles"):
        submit(owner, town_id=7)
