"""Lists cost a constant number of queries, whatever the page size (no N+1)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from jobs.models import Job, JobTile, Label, Tile


def test_listing_500_jobs_costs_as_many_queries_as_listing_5(index, owner, client_for):
    labels = Label.objects.bulk_create([Label(name=f"label-{i}") for i in range(3)])
    jobs = Job.objects.bulk_create([Job(type="slope", owner=owner, tiles_total=2) for _ in range(500)])
    Job.labels.through.objects.bulk_create([Job.labels.through(job=job, label=label) for job in jobs for label in labels])
    JobTile.objects.bulk_create([JobTile(job=job, tile=tile, status="succeeded")
                                 for job in jobs for tile in Tile.objects.filter(number__in=index.ids[:2])])
    client = client_for(owner)
    counts = {}
    for limit in (5, 500):
        with CaptureQueriesContext(connection) as queries:
            body = client.get(f"/api/v1/jobs/?limit={limit}").json()
        assert len(body["results"]) == limit and body["results"][0]["tiles_done"] == 2
        assert len(body["results"][0]["labels"]) == 3
        counts[limit] = len(queries)
    print(f"queries for 5 jobs: {counts[5]}, for 500 jobs: {counts[500]}")
    assert counts[5] == counts[500] <= 5, counts


def test_a_job_without_inputs_reads_in_three_queries(index, owner, client_for):
    """The status that clients poll: the caller's token, the job with its tile counts and owner's
    name, its labels; no query for inputs when its type takes none."""
    job = Job.objects.create(type="slope", owner=owner, tiles_total=2)
    job.labels.add(Label.objects.create(name="survey"))
    JobTile.objects.bulk_create([JobTile(job=job, tile=tile, status="succeeded") for tile in Tile.objects.filter(number__in=index.ids[:2])])
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    with CaptureQueriesContext(connection) as queries:
        body = client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert (body["owner"], body["labels"], body["inputs"], body["tiles_done"]) == (owner.username, ["survey"], {}, 2)
    assert len(queries) == 3, [query["sql"] for query in queries]
