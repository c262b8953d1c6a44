"""GET /api/v1/health/ (only ok or failing for anybody, each check for staff) and `manage.py check_cluster`."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_q.models import OrmQ

from jobs.models import ClusterHeartbeat

from .conftest import wait_for


def test_anybody_learns_only_whether_the_service_is_healthy(db, other, client_for):
    for client in (client_for(), client_for(other)):  # no credentials needed; a user who is not staff
        response = client.get("/api/v1/health/")
        assert response.status_code == 503 and response.json() == {"status": "failing"}
    ClusterHeartbeat.objects.create(key="q:abc", host="worker-1", pid=42)
    for client in (client_for(), client_for(other)):
        response = client.get("/api/v1/health/")
        assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_bad_credentials_are_an_anonymous_caller_not_a_401(db, client_for):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.get("/api/v1/health/")
    assert response.status_code == 503 and response.json() == {"status": "failing"}


def test_without_a_cluster_the_health_is_failing_and_says_why_to_staff(db, staff, client_for):
    response = client_for(staff).get("/api/v1/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing" and body["database"]["ok"] and body["broker"]["ok"]
    assert body["cluster"] == {"ok": False, "alive": [], "waiting_s": None}
    with pytest.raises(CommandError, match="no cluster has been alive in the last 60 s"):
        call_command("check_cluster")


def test_a_recent_heartbeat_is_a_live_cluster(db, staff, client_for, capsys):
    ClusterHeartbeat.objects.create(key="q:abc", host="worker-1", pid=42)
    ClusterHeartbeat.objects.create(key="q:old", host="worker-2", pid=7, seen=timezone.now() - timedelta(minutes=5))
    body = client_for(staff).get("/api/v1/health/").json()
    assert body["status"] == "ok" and [c["host"] for c in body["cluster"]["alive"]] == ["worker-1"]
    assert set(body) == {"status", "database", "broker", "cluster"} and "secret" not in str(body).lower()
    call_command("check_cluster")
    assert "cluster alive on worker-1 (pid 42)" in capsys.readouterr().out


def test_a_cluster_that_no_longer_takes_tasks_is_failing(db, staff, client_for):
    ClusterHeartbeat.objects.create(key="q:abc", host="worker-1", pid=42)
    OrmQ.objects.create(key="jobsite", payload="x", lock=timezone.now() - timedelta(minutes=5))
    assert client_for().get("/api/v1/health/").json() == {"status": "failing"}
    body = client_for(staff).get("/api/v1/health/").json()
    assert body["status"] == "failing" and body["cluster"]["waiting_s"] >= 300
    with pytest.raises(CommandError, match="work has waited 300 s with nothing done: the clusters no longer take tasks"):
        call_command("check_cluster")


def test_pending_tiles_nobody_touches_while_a_cluster_lives_are_failing(index, owner, staff, client_for, settings):
    from jobs.services.submit import job_submit
    from jobs.models import Job

    ClusterHeartbeat.objects.create(key="q:abc", host="worker-1", pid=42)
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])
    OrmQ.objects.all().delete()  # its tasks were taken off the broker by a cluster that then wedged
    assert client_for().get("/api/v1/health/").json()["status"] == "ok"  # just submitted
    Job.objects.filter(pk=job.pk).update(woken=timezone.now() - timedelta(minutes=3))
    assert client_for().get("/api/v1/health/").json() == {"status": "failing"}
    body = client_for(staff).get("/api/v1/health/").json()
    assert body["status"] == "failing" and body["cluster"]["waiting_s"] >= 180


@pytest.mark.cluster
def test_a_running_cluster_reports_itself_within_seconds(cluster, client_for):
    wait_for(lambda: client_for().get("/api/v1/health/").status_code == 200, 20, interval=0.2,
             message="the cluster's heartbeat")
    beat = ClusterHeartbeat.objects.get()
    assert beat.pid != cluster.process.pid  # the guard process of the cluster, not the command
    call_command("check_cluster")
