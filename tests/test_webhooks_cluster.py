"""Webhooks delivered by a real cluster's sender process, kept running by its guard loop, and
nothing lost when the cluster is killed with deliveries owed."""

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from jobs.models import JobStatus
from notifications.models import Delivery

from .conftest import wait_for, wait_until_final
from .webhook_receiver import Receiver

CLUSTER_ENV = {"JOBSITE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "JOBSITE_WEBHOOK_RETRY_SECONDS": ",".join(["1"] * 30),
               "JOBSITE_WEBHOOK_TIMEOUT_SECONDS": "1", "JOBSITE_WEBHOOK_PROGRESS_SECONDS": "1"}


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    running = Receiver().start()
    yield running
    running.stop()


@pytest.mark.cluster
def test_a_cluster_killed_with_deliveries_owed_sends_them_all_after_restart(index, owner, client_for, start_cluster,
                                                                            receiver):
    api = client_for(owner)
    subscription = api.post("/api/v1/webhooks/", {"url": f"{receiver.url}/all"}, format="json").json()
    receiver.answers = [503] * 10_000  # down
    first = start_cluster(**CLUSTER_ENV)
    created = api.post("/api/v1/jobs/", {"type": "slope", "tile_ids": index.ids,
                                         "webhooks": {"finished": f"{receiver.url}/finished"}}, format="json")
    assert created.status_code == 201, created.json()
    secret = created.json()["webhook_secret"]
    job = wait_until_final(created.json()["id"], timeout=60)
    assert job.status == JobStatus.SUCCEEDED
    wait_for(lambda: len(receiver.received) >= 4, timeout=30, message="tries at the receiver while it is down")
    first.stop(sig=signal.SIGKILL)  # kill -9, deliveries owed
    owed = Delivery.objects.filter(status=Delivery.Status.PENDING).count()
    assert owed >= 4
    receiver.answers = []  # up again
    tried_before = len(receiver.received)
    start_cluster(**CLUSTER_ENV)
    wait_for(lambda: not Delivery.objects.filter(status=Delivery.Status.PENDING).exists(), timeout=60,
             message="every owed delivery sent")
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.DELIVERED}
    answered = receiver.received[tried_before:]
    # Each message arrives once more at most: a try that was under way when the cluster died.
    assert max(Counter(r.headers["webhook-id"] for r in answered).values()) <= 2
    assert len({r.headers["webhook-id"] for r in answered}) == Delivery.objects.count()
    finished = [r for r in receiver.received if r.path == "/finished" and r.payload["type"] == "job.succeeded"]
    assert finished and finished[-1].verify(secret)["data"]["status"] == "succeeded"
    # In the order they happened: the deliveries' ids (webhook-id) rise, a repeated try aside.
    ids = [int(r.headers["webhook-id"].removeprefix("msg_")) for r in answered if r.path == "/all"]
    assert [i for n, i in enumerate(ids) if n == 0 or i != ids[n - 1]] == sorted(set(ids))
    kinds = [r.verify(subscription["secret"])["type"] for r in answered if r.path == "/all"]
    assert kinds[0] == "job.created" and kinds[-1] == "job.succeeded"


def senders_of(cluster):
    """The pids of the live `send_webhooks` processes that the cluster started."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and not ended(int(entry.name)) and cluster.process.pid in ancestors(int(entry.name))]


def state_and_parent(pid):
    """A process's state letter and its parent's pid, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def ancestors(pid):
    found = []
    while pid > 1:
        try:
            pid = state_and_parent(pid)[1]
        except (OSError, IndexError, ValueError):
            break
        found.append(pid)
    return found


def ended(pid):
    """Whether `pid` is no (or no longer a live) webhook sender."""
    try:
        return b"send_webhooks" not in Path(f"/proc/{pid}/cmdline").read_bytes() or state_and_parent(pid)[0] == "Z"
    except (OSError, IndexError, ValueError):
        return True


def ping_arrives(client, receiver):
    subscription = client.post("/api/v1/webhooks/", {"url": f"{receiver.url}/hook"}, format="json").json()
    assert client.post(f"/api/v1/webhooks/{subscription['id']}/test/").status_code == 202
    wait_for(lambda: receiver.received, timeout=30, message="the ping")
    assert receiver.received[0].verify(subscription["secret"])["type"] == "ping"


@pytest.mark.cluster
def test_the_cluster_keeps_a_sender_process_which_ends_with_it(owner, client_for, start_cluster, receiver):
    cluster = start_cluster(**CLUSTER_ENV)
    first = wait_for(lambda: senders_of(cluster), timeout=30, message="the sender to start")
    assert len(first) == 1
    os.kill(first[0], signal.SIGKILL)
    again = wait_for(lambda: [pid for pid in senders_of(cluster) if pid not in first], timeout=30,
                     message="another sender")
    ping_arrives(client_for(owner), receiver)
    os.kill(cluster.process.pid, signal.SIGTERM)  # the cluster stops; the kernel tells its sender
    cluster.process.wait(30)
    wait_for(lambda: ended(again[0]), timeout=30, message="the sender to end")


@pytest.mark.cluster
def test_a_stalled_sender_is_killed_and_another_started(owner, client_for, start_cluster, receiver):
    cluster = start_cluster(**CLUSTER_ENV, JOBSITE_WEBHOOK_SENDER_STALL_SECONDS="8")
    first = wait_for(lambda: senders_of(cluster), timeout=30, message="the sender to start")
    os.kill(first[0], signal.SIGSTOP)  # alive, but it does nothing: as one stuck in a call would
    try:
        again = wait_for(lambda: [pid for pid in senders_of(cluster) if pid not in first], timeout=30,
                         message="another sender")
        assert ended(first[0])
    finally:
        if not ended(first[0]):
            os.kill(first[0], signal.SIGKILL)
    ping_arrives(client_for(owner), receiver)
    assert senders_of(cluster) == again
    assert "has not beaten for 8 s" in cluster.output()


@pytest.mark.cluster
def test_ctrl_c_at_the_clusters_terminal_stops_the_cluster_and_then_its_sender(start_cluster):
    cluster = start_cluster(**CLUSTER_ENV)
    sender = wait_for(lambda: senders_of(cluster), timeout=30, message="the sender to start")
    assert os.getpgid(sender[0]) != os.getpgid(cluster.process.pid)  # so a terminal's Ctrl-C is the cluster's alone
    time.sleep(1)  # the cluster's workers are up and handle the signal
    os.killpg(cluster.process.pid, signal.SIGINT)  # what a terminal sends its foreground group
    cluster.process.wait(30)
    wait_for(lambda: ended(sender[0]), timeout=30, message="the sender to end")
    assert "webhook sender ended" not in cluster.output()  # it was not stopped before the cluster and restarted
