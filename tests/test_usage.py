"""What jobs use: each tile's CPU seconds, peak memory and bytes written, a job's sums, and each
user's usage per day and job type."""

import datetime

import pytest

from jobs.models import JobStatus, JobTile
from jobs.services.submit import job_submit
from jobsite.media import media_path

from .test_execution import run


@pytest.fixture
def jobs(index, owner, other, media):
    """A finished job of the owner's and of another user's."""
    mine = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:4]))
    theirs = run(job_submit(owner=other, job_type="slope", tile_ids=index.ids[:2]))
    assert mine.status == theirs.status == JobStatus.SUCCEEDED
    return mine, theirs


def test_each_tile_records_what_its_work_used(jobs):
    mine, _ = jobs
    tiles = list(JobTile.objects.filter(job=mine))
    assert len(tiles) == 4
    for tile in tiles:
        assert 0 < tile.cpu_seconds < 60
        assert tile.peak_memory > 10 * 1024 * 1024  # a Python process with GDAL: tens of megabytes at least
        assert tile.peak_memory < 2 * 1024 ** 3
        assert tile.bytes_written > 0 and tile.output_path == ""  # interim outputs are not kept on success
    kept = run(job_submit(owner=mine.owner, job_type="hillshade", tile_ids=[tiles[0].tile.number],
                          interim_results="always"))
    tile = JobTile.objects.get(job=kept)
    assert tile.bytes_written == tile.output_size == media_path(tile.output_path).stat().st_size


def test_a_job_shows_its_sums_to_its_owner_and_on_its_page(jobs, owner, other, client_for):
    mine, _ = jobs
    client = client_for(owner)
    usage = client.get(f"/api/v1/jobs/{mine.pk}/usage/").json()
    tiles = JobTile.objects.filter(job=mine)
    assert usage["cpu_seconds"] == pytest.approx(sum(t.cpu_seconds for t in tiles), abs=0.001)
    assert usage["peak_memory"] == max(t.peak_memory for t in tiles)
    assert usage["tile_bytes"] == sum(t.bytes_written for t in tiles) and usage["output_bytes"] == mine.outputs_size > 0
    assert client_for(other).get(f"/api/v1/jobs/{mine.pk}/usage/").status_code == 404
    tile = client.get(f"/api/v1/jobs/{mine.pk}/tiles/").json()["results"][0]
    assert tile["cpu_seconds"] > 0 and tile["peak_memory"] > 0 and tile["bytes_written"] > 0
    client.force_login(owner)
    assert "CPU seconds, peak memory" in client.get(f"/jobs/{mine.pk}/").content.decode()


def test_usage_per_day_and_type_is_each_users_own_and_staff_see_everybodys(jobs, owner, other, staff, client_for):
    mine, theirs = jobs
    [row] = client_for(owner).get("/api/v1/usage/").json()
    assert row["user"] == "owner" and row["type"] == "hillshade" and row["tiles"] == 4
    assert row["day"] == mine.finished.astimezone(datetime.timezone.utc).date().isoformat()
    assert row["tile_bytes"] == sum(JobTile.objects.filter(job=mine).values_list("bytes_written", flat=True))
    assert row["cpu_seconds"] > 0 and row["peak_memory"] > 0
    assert [r["type"] for r in client_for(other).get("/api/v1/usage/").json()] == ["slope"]
    everybody = client_for(staff).get("/api/v1/usage/").json()
    assert sorted((r["user"], r["type"]) for r in everybody) == [("other", "slope"), ("owner", "hillshade")]
    assert [r["user"] for r in client_for(staff).get("/api/v1/usage/?user=other").json()] == ["other"]


@pytest.mark.parametrize("query,field", [("days=0", "days"), ("days=367", "days"), ("days=x", "days"),
                                         ("user=other", "user")])
def test_bad_usage_queries_are_400s_naming_the_parameter(db, owner, client_for, query, field):
    response = client_for(owner).get(f"/api/v1/usage/?{query}")
    assert response.status_code == 400 and field in response.json()["errors"]
