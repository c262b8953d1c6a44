"""Runners: the tile tasks on the broker, as many as the clusters have workers.

A runner is not bound to a job: it claims the batch that the scheduler says should run next, from
any job (jobs.scheduling), until none is left. Each runner has a slot, a row of the Runner table,
so that a thousand queued jobs are a few broker messages rather than thousands:

- `wake` fills the free slots below the number of workers that the live clusters report (or
  JOBSITE_WORKERS while none is alive) and sends one task for each, named by a fresh token. Submits,
  resumes and the sweep call it; extra calls are harmless.
- The task `start`s by taking its slot under its token, so a message delivered twice, or one sent
  again for a slot whose lease ran out, runs once. It holds the slot under a lease of
  TILE_LEASE_SECONDS, which it renews while it works (`RunnerLease.keep`).
- With nothing left to claim it `release`s the slot, then looks once more, so that work that
  arrived meanwhile is either seen by it or finds the slot free.
- At the end of its time budget it `hand_over`s the slot to a fresh task.

A slot whose task has not started after START_SECONDS is sent again (`resend_unstarted`, from
each cluster's guard loop, every second), then after twice as long, and so on: a cluster takes
tasks ahead into its own queue while its workers are busy, and a task sent again goes to a
cluster with a worker free (the first one, when it starts, finds its token gone). A slot whose
task was lost is sent again once its lease runs out (STALE_WAKEUP_SECONDS for a task not yet
started; TILE_LEASE_SECONDS for one that died while it ran); a cluster that starts, and a worker
process that replaces a dead one, free at once the slots that died with this host's workers.
"""

import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from . import queue
from .models import ClusterHeartbeat, Runner

# A cluster counts as alive while its heartbeat (jobs.broker, every 10 s) is this recent.
ALIVE_SECONDS = 30
# A runner's task not started this long after it was sent is sent again, then after twice as long...
START_SECONDS = 1
MAX_RESENDS = 8


def wanted():
    """How many runners the site has workers for: those of the live clusters, or JOBSITE_WORKERS
    while none is alive (the tasks then wait on the broker for a cluster to start)."""
    recent = timezone.now() - timedelta(seconds=ALIVE_SECONDS)
    workers = ClusterHeartbeat.objects.filter(seen__gte=recent).aggregate(n=Sum("workers"))["n"]
    return workers or settings.WORKERS


def _free(now):
    return Q(lease_expires__isnull=True) | Q(lease_expires__lt=now)


def wake():
    """Send a runner for each free slot below `wanted()`; returns how many were sent."""
    count = wanted()
    if Runner.objects.filter(slot__lt=count).count() < count:
        Runner.objects.bulk_create([Runner(slot=slot) for slot in range(count)], ignore_conflicts=True)
    now = timezone.now()
    sent = 0
    for slot in Runner.objects.filter(_free(now), slot__lt=count).values_list("slot", flat=True):
        if _send(Runner.objects.filter(_free(now), slot=slot), slot, now):
            sent += 1
    return sent


def resend_unstarted():
    """Send again the runners whose task has not started in time (see above); returns how many."""
    now = timezone.now()
    resent = 0
    for slot, token, sent, sends in Runner.objects.filter(holder="", lease_expires__gt=now, sends__lt=MAX_RESENDS).exclude(
            token="").values_list("slot", "token", "sent", "sends"):
        if sent is not None and sent < now - timedelta(seconds=START_SECONDS * 2 ** sends):
            resent += _send(Runner.objects.filter(slot=slot, token=token, holder=""), slot, now, sends + 1)
    return resent


def _send(rows, slot, now, sends=0):
    token = secrets.token_hex(8)
    if not rows.update(token=token, holder="", sent=now, sends=sends,
                       lease_expires=now + timedelta(seconds=settings.STALE_WAKEUP_SECONDS)):
        return False
    transaction.on_commit(lambda: queue.send_runner(slot, token))
    return True


def _held_until():
    return timezone.now() + timedelta(seconds=settings.TILE_LEASE_SECONDS)


class RunnerLease:
    """A running task's hold on its slot."""

    def __init__(self, slot, token, worker):
        self.slot, self.token, self.worker = slot, token, worker
        self.kept = time.monotonic()
        self.lost = False  # the slot went to a fresh task: this one stops after its batch

    def _mine(self):
        return Runner.objects.filter(slot=self.slot, token=self.token, holder=self.worker)

    def start(self):
        """Take the slot; False when this task's message is stale (or delivered again)."""
        self.kept = time.monotonic()
        return bool(Runner.objects.filter(slot=self.slot, token=self.token, holder="").update(
            holder=self.worker, lease_expires=_held_until()))

    def keep(self):
        """Renew the lease once a quarter of it has passed; False once the slot is no longer this
        task's (its lease ran out and a fresh task was sent for it)."""
        if self.lost or time.monotonic() - self.kept < settings.TILE_LEASE_SECONDS / 4:
            return not self.lost
        if self._mine().update(lease_expires=_held_until()):
            self.kept = time.monotonic()
        else:
            self.lost = True
        return not self.lost

    def release(self):
        self._mine().update(token="", holder="", lease_expires=None)

    def retake(self):
        """Take the slot again after `release`, unless a fresh task already has it."""
        self.token = secrets.token_hex(8)
        self.kept = time.monotonic()
        self.lost = not Runner.objects.filter(_free(timezone.now()), slot=self.slot).update(
            token=self.token, holder=self.worker, sent=timezone.now(), sends=0, lease_expires=_held_until())
        return not self.lost

    def hand_over(self):
        """Give the slot to a fresh task (this one's budget is used, or it is about to merge)."""
        if not self.lost:
            _send(self._mine(), self.slot, timezone.now())
            self.lost = True


def free_slots_of(holders_gone, unstarted=False):
    """Free the slots whose holder `holders_gone(holder)` says is gone, and with `unstarted` those
    whose task has not started (a cluster that starts may have lost them); `wake` sends them again."""
    freed = 0
    for slot, token, holder in Runner.objects.exclude(lease_expires__isnull=True).values_list("slot", "token", "holder"):
        if (holder and holders_gone(holder)) or (unstarted and not holder):
            freed += Runner.objects.filter(slot=slot, token=token, holder=holder).update(
                token="", holder="", lease_expires=None)
    return freed
