"""Load: 20 clients submitting, cancelling and resuming jobs at once against a real cluster.

At the end every job is final, each job's counts (as the API gives them) equal its tiles'
statuses, no tile was seen being written by two attempts at once, and no answer was a 5xx.
LOAD_SECONDS sets how long the clients run (default 20; a longer soak, say 600, finds rarer races).
"""

import os
import random
import re
import threading
import time
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.test import APIClient

from jobsite.media import media_path
from jobs.models import Job, JobStatus, JobTile, TileStatus

from .conftest import wait_for

pytestmark = pytest.mark.cluster

CLIENTS = 20
PART = re.compile(r"^\.(\d+)_(\d+)\.tif\.[0-9a-f]+\.part$")  # a tile output being written


class Client(threading.Thread):
    """One API user doing random things until `deadline`; counts answers by status code."""

    def __init__(self, number, tile_ids, deadline):
        super().__init__(daemon=True)
        self.number, self.tile_ids, self.deadline = number, tile_ids, deadline
        self.codes, self.jobs, self.failure = Counter(), [], None

    def call(self, method, path, body=None):
        answer = getattr(self.client, method)(path, body, format="json")
        self.codes[answer.status_code] += 1
        return answer

    def run(self):
        chance = random.Random(self.number)
        try:
            user = User.objects.create_user(f"client{self.number}")
            self.client = APIClient(raise_request_exception=False)
            self.client.force_authenticate(user)
            while time.monotonic() < self.deadline:
                action = chance.random()
                if action < 0.4 or not self.jobs:
                    tiles = chance.sample(self.tile_ids, chance.randint(1, len(self.tile_ids)))
                    answer = self.call("post", "/api/v1/jobs/", {"type": chance.choice(["slope", "hillshade"]),
                                                               "tile_ids": tiles})
                    if answer.status_code == 201:
                        self.jobs.append(answer.json()["id"])
                elif action < 0.7:
                    self.call("post", f"/api/v1/jobs/{chance.choice(self.jobs)}/cancel/")
                elif action < 0.9:
                    self.call("post", f"/api/v1/jobs/{chance.choice(self.jobs)}/resume/")
                else:
                    self.call("get", f"/api/v1/jobs/{chance.choice(self.jobs)}/")
                time.sleep(chance.uniform(0, 0.05))
        except Exception as exc:  # reported by the test
            self.failure = exc
        finally:
            connection.close()


def watch_writes(media, stop, overlaps):
    """Scan the tile folders while the load runs: two attempts of one tile being written at once
    would be a tile processed twice at the same time."""
    while not stop.is_set():
        seen = {}
        for folder in (media / "jobs").glob("*/tiles"):
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                match = PART.match(name)
                if match:
                    key = (folder.parent.name, match.group(1))
                    seen.setdefault(key, set()).add(match.group(2))
        overlaps.extend((key, attempts) for key, attempts in seen.items() if len(attempts) > 1)
        time.sleep(0.002)


def test_twenty_clients_submit_cancel_and_resume_at_once(start_cluster, index, media):
    start_cluster()
    seconds = float(os.environ.get("LOAD_SECONDS", 20))
    deadline = time.monotonic() + seconds
    clients = [Client(number, index.ids, deadline) for number in range(CLIENTS)]
    stop, overlaps = threading.Event(), []
    watcher = threading.Thread(target=watch_writes, args=(media, stop, overlaps), daemon=True)
    watcher.start()
    for client in clients:
        client.start()
    for client in clients:
        client.join(seconds + 60)
    stop.set()
    watcher.join(5)

    assert [c.failure for c in clients if c.failure] == []
    codes = sum((c.codes for c in clients), Counter())
    print(f"{sum(codes.values())} requests in {seconds:.0f} s by {CLIENTS} clients: {dict(sorted(codes.items()))}")
    assert not [code for code in codes if code >= 500], codes
    job_ids = [job for c in clients for job in c.jobs]
    active = [JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.MERGING]
    wait_for(lambda: not Job.objects.filter(pk__in=job_ids, status__in=active).exists(), 180, interval=0.5,
             message="every job to end")

    staff = APIClient()
    staff.force_authenticate(User.objects.create_user("auditor", is_staff=True))
    statuses = Counter()
    for job_id in job_ids:
        job = staff.get(f"/api/v1/jobs/{job_id}/").json()
        tiles = Counter(JobTile.objects.filter(job_id=job_id).values_list("status", flat=True))
        statuses[job["status"]] += 1
        assert job["tiles_total"] == sum(tiles.values())
        assert (job["tiles_done"], job["tiles_failed"]) == (tiles[TileStatus.SUCCEEDED], tiles[TileStatus.FAILED]), (job, tiles)
        assert not tiles[TileStatus.PENDING] and not tiles[TileStatus.RUNNING], (job, tiles)
        if job["status"] == JobStatus.SUCCEEDED:
            assert tiles[TileStatus.SUCCEEDED] == job["tiles_total"] and job["progress"] == 100
            assert media_path(Job.objects.get(pk=job_id).outputs[0]["path"]).is_file()
        else:  # failed or canceled: resumable
            assert job["status"] in (JobStatus.CANCELED, JobStatus.FAILED) and job["links"]["resume"], job
    print(f"{len(job_ids)} jobs: {dict(statuses)}; writes of one tile by two attempts at once: {len(overlaps)}")
    assert overlaps == []
