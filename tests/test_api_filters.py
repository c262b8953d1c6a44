"""Filtering, ordering and paging of the job list."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.services.submit import job_submit
from jobs.api.pagination import Pagination
from jobs.jobtypes import JOB_TYPES
from jobs.models import Job

NOW = timezone.now()


def make(owner, tile_ids, status="queued", labels=(), error="", started=None, finished=None, created=None, town_id=None,
         job_type="slope"):
    job = job_submit(owner=owner, job_type=job_type, tile_ids=None if town_id else tile_ids, town_id=town_id,
                     labels=list(labels))
    Job.objects.filter(pk=job.pk).update(status=status, error=error, started=started, finished=finished,
                                         created=created or job.created)
    return job.pk


@pytest.fixture
def jobs(index, town, owner, other):
    ids = index.ids
    return {
        "flood": make(owner, ids[:1], "succeeded", ["flood", "2024"], started=NOW - timedelta(hours=3),
                      finished=NOW - timedelta(hours=2), created=NOW - timedelta(days=3)),
        "fire": make(owner, ids[1:3], "failed", ["fire", "2024"], error="tile 101: disk on fire",
                     started=NOW - timedelta(hours=2), finished=NOW - timedelta(minutes=90),
                     created=NOW - timedelta(days=2), job_type="hillshade"),
        "town": make(owner, None, "running", ["flood"], started=NOW - timedelta(minutes=5), town_id=town.id,
                     created=NOW - timedelta(days=1)),
        "theirs": make(other, ids[:1], "queued", ["flood"]),
    }


def ids_for(client, query):
    response = client.get(f"/api/v1/jobs/?{query}")
    assert response.status_code == 200, response.json()
    return [job["id"] for job in response.json()["results"]]


@pytest.mark.parametrize("query,expected", [
    ("status=succeeded", ["flood"]),
    ("status=succeeded,failed", ["fire", "flood"]),
    ("type=hillshade", ["fire"]),
    ("label=flood", ["town", "flood"]),
    ("label=fire,flood", ["town", "fire", "flood"]),
    ("label_all=flood,2024", ["flood"]),
    ("label_all=flood,fire", []),
    ("tile=101", ["town", "fire"]),  # the town's tiles include 101
    ("town=11850", ["town"]),
    ("search=disk", ["fire"]),
    ("search=FLO", ["town", "flood"]),
    ("finished_before={}", ["flood"]),
    ("started_after={}", ["town", "fire"]),
    ("created_before={}", ["fire", "flood"]),
])
def test_it_filters_the_owners_jobs(jobs, owner, client_for, query, expected):
    moment = {"finished_before": NOW - timedelta(minutes=100), "started_after": NOW - timedelta(hours=2, minutes=30),
              "created_before": NOW - timedelta(hours=30)}
    key = query.split("=")[0]
    if key in moment:
        query = query.format(moment[key].isoformat().replace("+", "%2B"))
    assert ids_for(client_for(owner), query) == [jobs[name] for name in expected]


def test_staff_filter_by_owner_and_others_only_see_their_own(jobs, owner, other, staff, client_for):
    assert ids_for(client_for(staff), "owner=other") == [jobs["theirs"]]
    assert ids_for(client_for(owner), "owner=other") == []
    assert ids_for(client_for(other), "label=flood") == [jobs["theirs"]]


@pytest.mark.parametrize("ordering,expected", [
    ("created", ["flood", "fire", "town"]),
    ("-created", ["town", "fire", "flood"]),
    ("duration", ["fire", "flood", "town"]),
    ("status", ["fire", "town", "flood"]),
])
def test_it_orders(jobs, owner, client_for, ordering, expected):
    assert ids_for(client_for(owner), f"ordering={ordering}") == [jobs[name] for name in expected]


def test_jobs_without_a_value_come_last_in_both_directions(jobs, owner, client_for):
    client = client_for(owner)
    assert ids_for(client, "ordering=finished") == [jobs["flood"], jobs["fire"], jobs["town"]]
    assert ids_for(client, "ordering=-finished") == [jobs["fire"], jobs["flood"], jobs["town"]]
    assert ids_for(client, "ordering=-duration") == [jobs["flood"], jobs["fire"], jobs["town"]]


@pytest.mark.parametrize("query,field", [
    ("status=lost", "status"),
    ("type=nosuch", "type"),
    ("created_after=yesterday", "created_after"),
    ("created_before=yesterday", "created_before"),
    ("created_after=0001-01-01T00:30:00%2B05:00", "created_after"),  # before year 1 in UTC
    ("started_after=2024-01-01T00:00:00Z&started_before=later", "started_before"),
    ("finished_after=soon", "finished_after"),
    ("ordering=owner", "ordering"),
    ("tile=abc", "tile"),
    ("town=x", "town"),
])
def test_a_bad_filter_is_a_400_naming_it(jobs, owner, client_for, query, field):
    """By the query parameter's own name: `created_after`, not the field `created` it bounds."""
    response = client_for(owner).get(f"/api/v1/jobs/?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"].startswith(f"{field}: ") and list(body["errors"]) == [field]


def test_a_bad_moment_says_what_a_moment_looks_like(jobs, owner, client_for):
    response = client_for(owner).get("/api/v1/jobs/?created_after=yesterday")
    assert response.json()["errors"] == {"created_after": ["must be an ISO 8601 date-time, such as 2026-01-31T12:00:00Z"]}


def test_a_moment_bounds_its_field_inclusively_on_both_sides(jobs, owner, client_for):
    created = Job.objects.get(pk=jobs["fire"]).created.isoformat().replace("+", "%2B")
    assert ids_for(client_for(owner), f"created_after={created}&created_before={created}") == [jobs["fire"]]


def test_an_empty_type_filters_nothing(jobs, owner, client_for):
    assert ids_for(client_for(owner), "type=") == [jobs["town"], jobs["fire"], jobs["flood"]]


def test_any_valid_utc_offset_is_accepted(jobs, owner, client_for):
    """PostgreSQL itself refuses offsets beyond 15:59; ISO 8601 allows up to 23:59."""
    assert ids_for(client_for(owner), "created_before=2999-12-15T08:37:46%2B23:38") == [
        jobs["town"], jobs["fire"], jobs["flood"]]


def test_lists_are_paged_with_a_total_and_links(jobs, owner, client_for):
    client = client_for(owner)
    first = client.get("/api/v1/jobs/?limit=2").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["previous"] is None
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None


def test_a_page_size_above_the_maximum_is_clamped(jobs, owner, client_for, monkeypatch):
    monkeypatch.setattr(Pagination, "max_limit", 2)
    response = client_for(owner).get("/api/v1/jobs/?limit=100000")
    assert response.status_code == 200 and len(response.json()["results"]) == 2


def test_the_schema_lists_each_filter_by_its_query_parameter_with_its_choices(db, client):
    parameters = {p["name"]: p for p in client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
                  ["paths"]["/api/v1/jobs/"]["get"]["parameters"]}
    assert {"created_after", "created_before", "started_after", "finished_before"} <= set(parameters)
    assert "created" not in parameters
    assert parameters["type"]["schema"]["enum"] == sorted([*JOB_TYPES, "chain"])
