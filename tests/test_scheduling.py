"""The scheduler: which job's tiles a worker claims next, by priority, fair share and age.

The order tests drive workers by hand on a simulated clock: each claimed tile "runs" for a fixed
time and succeeds, and the worker that is free first records its batch and claims the next, through
the same transaction the cluster's workers use. Everything but the raster work is real.
"""

import heapq
import json
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django_q.models import OrmQ

from jobs import lifecycle
from jobs.models import Job, JobStatus, JobTile, Priority, Share, TileStatus, UserLimits
from jobs.services import control
from jobs.services.submit import job_submit
from jobs.services.worker import _record_and_claim
from jobs.tileload import load_tiles
from jobsite.exceptions import Rejected

from .conftest import write_tileset

TILE_SECONDS = 1.0


@pytest.fixture(scope="session")
def hundred_tiles(tmp_path_factory):
    return write_tileset(tmp_path_factory.mktemp("hundred"), 80, 80, 8)


@pytest.fixture
def big_index(db, hundred_tiles):
    """100 tiles (their raster work is simulated here)."""
    load_tiles(hundred_tiles.folder)
    return hundred_tiles


@pytest.fixture
def users(db):
    return {name: User.objects.create_user(name, password="pw-" + name) for name in ("ann", "bob", "cy", "dee")}


class Site:
    """`workers` workers on a simulated clock; each tile takes TILE_SECONDS and succeeds."""

    def __init__(self, workers, batch=1):
        self.now = 0.0
        self.batch = batch
        self.free = [(0.0, n, None, []) for n in range(workers)]  # (free at, worker, job run, claimed tiles)
        self.served = []  # (start, end, owner name, job id) of each batch
        self.running_peak = {}

    def step(self):
        """The first free worker records its batch and claims the next; False when it found none."""
        at, worker, last, batch = heapq.heappop(self.free)
        self.now = max(self.now, at)
        done = [lifecycle.TileDone(job_tile, f"fake/{job_tile.pk}.tif", 0) for job_tile in batch]
        claim = _record_and_claim(last, done, TILE_SECONDS * len(batch), f"w{worker}", lambda job_id: self.batch)
        if claim.finish is not None:  # all its tiles done: the merge is not simulated
            lifecycle.move_job(claim.finish, "merge", message="all tiles done")
            heapq.heappush(self.free, (self.now, worker, None, []))
            return True
        if claim.job_id is None:
            heapq.heappush(self.free, (self.now + 1000, worker, None, []))
            return False
        job = Job.objects.select_related("owner").get(pk=claim.job_id)
        end = self.now + TILE_SECONDS * len(claim.batch)
        self.served.append((self.now, end, job.owner.username, job.pk))
        for owner, count in _running_per_owner().items():
            self.running_peak[owner] = max(self.running_peak.get(owner, 0), count)
        heapq.heappush(self.free, (end, worker, SimpleNamespace(job=job), claim.batch))
        return True

    def run(self, until=None):
        """Until `until` (the batches ending later have not been recorded), or until no worker has work."""
        while until is None or self.free[0][0] < until:
            if not self.step() and all(last is None for _, _, last, _ in self.free):
                break
        if until is not None:
            self.now = until

    def worker_seconds(self, start, end):
        """Worker seconds each user had between `start` and `end`."""
        totals = {}
        for begin, finish, owner, _ in self.served:
            overlap = min(finish, end) - max(begin, start)
            if overlap > 0:
                totals[owner] = totals.get(owner, 0) + overlap
        return totals

    def first_start(self, job_id):
        return min(begin for begin, _, _, job in self.served if job == job_id)

    def last_end(self, job_id):
        return max(finish for _, finish, _, job in self.served if job == job_id)


def _running_per_owner():
    counts = {}
    for owner in JobTile.objects.filter(status=TileStatus.RUNNING).values_list("job__owner__username", flat=True):
        counts[owner] = counts.get(owner, 0) + 1
    return counts


def submit(owner, tiles, index, **options):
    return job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:tiles], **options)


def test_three_users_at_once_get_equal_shares_of_the_workers(big_index, users):
    jobs = [submit(users[name], 60, big_index) for name in ("ann", "bob", "cy")]
    site = Site(workers=2)
    site.run()
    all_three = min(site.last_end(job.pk) for job in jobs)  # until the first of them ends
    shares = site.worker_seconds(0, all_three)
    assert set(shares) == {"ann", "bob", "cy"}
    fair = sum(shares.values()) / 3
    assert all(abs(share - fair) <= 0.1 * fair for share in shares.values()), shares
    assert all(Job.objects.get(pk=job.pk).status == JobStatus.MERGING for job in jobs)


def test_a_small_job_submitted_into_a_big_one_runs_at_once_on_a_worker_of_its_own(big_index, users):
    big = submit(users["ann"], 60, big_index)
    site = Site(workers=2)
    site.run(until=10)
    small = submit(users["bob"], 4, big_index)
    submitted = site.now
    site.run()
    assert site.first_start(small.pk) <= submitted + TILE_SECONDS  # within one batch
    assert site.last_end(small.pk) <= submitted + 5 * TILE_SECONDS  # one worker of two: 4 tiles, 4 s
    # The big job lost no more than the small job's work.
    assert site.last_end(big.pk) <= 60 / 2 * TILE_SECONDS + 4 / 2 * TILE_SECONDS + TILE_SECONDS


def test_a_high_priority_job_overtakes_normal_ones_within_one_batch_and_low_ones_wait(big_index, users):
    users["dee"].is_staff = True
    users["dee"].save()
    normal = [submit(users[name], 30, big_index) for name in ("ann", "bob")]
    low = submit(users["cy"], 10, big_index, priority="low")
    site = Site(workers=2, batch=3)
    site.run(until=6)
    high = submit(users["dee"], 12, big_index, priority="high")
    submitted = site.now
    site.run()
    served_after = [batch for batch in site.served if batch[0] >= submitted]
    # Each worker's next batch is the high job's, once its current batch (3 tiles) ends.
    assert site.first_start(high.pk) <= submitted + 3 * TILE_SECONDS
    assert {job for _, _, _, job in served_after[:4]} == {high.pk}
    assert site.first_start(low.pk) >= max(site.last_end(job.pk) for job in normal) - 3 * TILE_SECONDS


def test_a_user_at_their_limit_of_running_tiles_gets_no_more_workers(big_index, users, settings):
    settings.MAX_RUNNING_TILES_PER_USER = 2
    UserLimits.objects.create(user=users["ann"], max_running_tiles=1)
    ann, bob = submit(users["ann"], 20, big_index), submit(users["bob"], 20, big_index)
    site = Site(workers=4, batch=4)
    site.run()
    assert site.running_peak == {"ann": 1, "bob": 2}
    assert Job.objects.get(pk=ann.pk).status == Job.objects.get(pk=bob.pk).status == JobStatus.MERGING


def test_a_user_who_had_much_recently_goes_after_those_who_had_less(big_index, users):
    first = submit(users["ann"], 20, big_index)
    site = Site(workers=1)
    site.run()  # ann alone: her share's served grows
    assert Job.objects.get(pk=first.pk).status == JobStatus.MERGING
    again, newcomer = submit(users["ann"], 6, big_index), submit(users["bob"], 6, big_index)
    site.free = [(site.now, 0, None, [])]
    site.run()
    # bob starts from where ann stood, not from nothing: they take turns rather than bob running alone.
    owners = [owner for _, _, owner, _ in site.served[20:26]]
    assert owners.count("ann") == 3 and owners.count("bob") == 3
    assert Share.objects.get(user=users["bob"], priority=Priority.NORMAL).served >= 20 * TILE_SECONDS
    assert Job.objects.get(pk=again.pk).status == Job.objects.get(pk=newcomer.pk).status == JobStatus.MERGING


def test_the_oldest_job_of_a_user_runs_first(big_index, users):
    older, newer = submit(users["ann"], 3, big_index), submit(users["ann"], 3, big_index)
    site = Site(workers=1)
    site.run()
    assert [job for _, _, _, job in site.served] == [older.pk] * 3 + [newer.pk] * 3


def test_runners_follow_the_workers_not_the_jobs(big_index, users, settings, django_capture_on_commit_callbacks):
    settings.MAX_ACTIVE_JOBS_PER_USER = 50
    before = OrmQ.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(40):
            submit(users[("ann", "bob", "cy", "dee")[n % 4]], 2, big_index)
    assert OrmQ.objects.count() - before == settings.WORKERS


def test_priority_high_is_for_staff_and_a_bad_name_is_refused(big_index, users):
    with pytest.raises(Rejected) as refused:
        submit(users["ann"], 1, big_index, priority="high")
    assert refused.value.errors == {"priority": "only staff may ask for high priority"}
    with pytest.raises(Rejected) as refused:
        submit(users["ann"], 1, big_index, priority="urgent")
    assert refused.value.errors == {"priority": "'urgent' is not a priority; the priorities are low, normal, high"}
    assert not Job.objects.exists()


def test_setting_the_priority_of_jobs_changes_those_not_yet_merging(big_index, users):
    queued, merging = submit(users["ann"], 2, big_index), submit(users["ann"], 2, big_index)
    Job.objects.filter(pk=merging.pk).update(status=JobStatus.MERGING)
    assert control.jobs_set_priority(Job.objects.all(), Priority.HIGH) == 1
    assert Job.objects.get(pk=queued.pk).priority == Priority.HIGH
    assert Job.objects.get(pk=merging.pk).priority == Priority.NORMAL
    assert Share.objects.get(user=users["ann"], priority=Priority.HIGH).runnable
    assert queued.logs.filter(message="priority set to high").exists()


@pytest.mark.parametrize("others", [0, 1])
def test_with_one_user_to_serve_a_claim_does_not_count_the_running_tiles(big_index, users, settings, others):
    """Their count scans an index that a large job fills with dead row versions until a vacuum; it
    orders users, and one user needs no order."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobs.services.claims import claim_next

    settings.MAX_RUNNING_TILES_PER_USER = 0
    for name in ["ann", "bob"][:1 + others]:
        submit(users[name], 4, big_index)
    with CaptureQueriesContext(connection) as queries:
        claim = claim_next("w1", lambda job_id: 2)
    assert len(claim.batch) == 2
    counted = [q["sql"] for q in queries.captured_queries if 'AS "job__owner_id"' in q["sql"]]
    assert len(counted) == others


def _rows_read(plan):
    """The rows the scans of a PostgreSQL JSON plan read: those returned and those filtered out."""
    node = plan["Plan"] if "Plan" in plan else plan
    scans_rows = "Scan" in node["Node Type"] and node["Node Type"] != "Bitmap Index Scan"  # its heap scan counts them
    own = ((node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * node.get("Actual Loops", 1)
           if scans_rows else 0)
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


def test_a_claim_reads_only_the_tiles_above_the_last_whatever_the_statistics_say(db, users):
    """Near the end of a large job, on statistics taken at its start, a worker's claim reads a
    batch of pending tiles and no more: PostgreSQL's planner walked the primary key from the
    table's first row, through every earlier job's tiles and every claimed tile of this job. A
    tile that comes back to pending below the last claim is claimed once none is left above."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobs.models import Tile
    from jobs.services.claims import claim_tiles, has_pending

    count, batch = 3000, 64
    tiles = Tile.objects.bulk_create([Tile(number=n, path=f"t{n}.tif", col=64 * (n % 50), row=64 * (n // 50), width=64,
                                           height=64, minx=0, miny=0, maxx=1, maxy=1) for n in range(count)])
    done, running = (Job.objects.create(type="hillshade", owner=users["ann"], status=status, tiles_total=count)
                     for status in (JobStatus.SUCCEEDED, JobStatus.RUNNING))
    JobTile.objects.bulk_create([JobTile(job=done, tile=tile, status=TileStatus.SUCCEEDED) for tile in tiles[:count // 10]])
    JobTile.objects.bulk_create([JobTile(job=running, tile=tile) for tile in tiles])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_jobtile" if connection.vendor == "postgresql" else "ANALYZE")
    ids = list(JobTile.objects.filter(job=running).order_by("id").values_list("id", flat=True))
    claimed = []
    while len(claimed) < count - 2 * batch:  # the statistics still say pending
        claimed += [t.pk for t in claim_tiles(running.pk, "worker", batch)]
    assert claimed == ids[:len(claimed)]

    with CaptureQueriesContext(connection) as queries:
        last = claim_tiles(running.pk, "worker", batch)
    assert [t.pk for t in last] == ids[len(claimed):len(claimed) + batch]
    [select] = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT") and f"LIMIT {batch}" in q["sql"]]
    JobTile.objects.filter(pk__in=[t.pk for t in last]).update(status=TileStatus.PENDING)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {select}")
            plan = cursor.fetchone()[0][0]
            assert _rows_read(plan) <= 2 * batch, json.dumps(plan, indent=1)  # the batch and the next claim's, no more
        else:
            steps = " ".join(str(step) for step in cursor.execute(f"EXPLAIN QUERY PLAN {select}").fetchall())
            assert "jobtile_job_status_id_idx" in steps and "id>?" in steps and "SCAN jobs_jobtile" not in steps, steps

    JobTile.objects.filter(pk__in=[t.pk for t in last]).update(status=TileStatus.RUNNING)
    with CaptureQueriesContext(connection) as queries:  # the question a worker asks after each batch
        assert has_pending(running.pk)
    if connection.vendor == "postgresql":
        [check] = [q["sql"] for q in queries.captured_queries]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {check}")
            plan = cursor.fetchone()[0][0]
        assert _rows_read(plan) <= 2 * batch, json.dumps(plan, indent=1)
    JobTile.objects.filter(pk=claimed[5]).update(status=TileStatus.PENDING, lease_owner="", lease_expires=None)  # lost
    rest = [t.pk for t in claim_tiles(running.pk, "worker", batch)]
    assert rest == ids[len(claimed) + batch:]
    assert [t.pk for t in claim_tiles(running.pk, "worker", batch)] == [claimed[5]]
    assert claim_tiles(running.pk, "worker", batch) == [] and not has_pending(running.pk)
