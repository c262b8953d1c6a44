"""django-q2's brokers, with a heartbeat of the clusters that use them.

A cluster's guard loop saves its statistics through the broker every half second; these brokers
also record, at most every HEARTBEAT_SECONDS, that the cluster is alive in the ClusterHeartbeat
table, which the health endpoint and `manage.py check_cluster` read from any host, and every
DEADLINE_SECONDS fail the waiting jobs past their wait deadline, and every second make the calls
other apps registered with `every_second`: django-q2's scheduler looks at its schedules only
every 30 s, too late for a deadline or a webhook's retry.
"""

import logging
import os
import time

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
DEADLINE_SECONDS = 1
_last_beat = {}
_last_deadline_check = [0.0]
# Calls that other apps make every second from the guard loop (notifications: owed webhooks).
GUARD_CALLS = []
_last_guard_calls = [0.0]


def every_second(call):
    """Have the cluster's guard loop call `call()` about every second; what it raises is logged."""
    if call not in GUARD_CALLS:
        GUARD_CALLS.append(call)


def run_guard_calls():
    now = time.monotonic()
    if now - _last_guard_calls[0] < 1 or not GUARD_CALLS:
        return
    _last_guard_calls[0] = now
    for call in GUARD_CALLS:
        try:
            close_old_connections()
            call()
        except Exception:  # never stop the guard loop
            logger.exception("the guard loop's call %s failed", getattr(call, "__qualname__", call))


def beat(key):
    now = time.monotonic()
    if now - _last_beat.get(key, 0) < HEARTBEAT_SECONDS:
        return
    _last_beat[key] = now
    from .models import ClusterHeartbeat

    try:
        _, created = ClusterHeartbeat.objects.update_or_create(
            key=key, defaults={"host": settings.HOST_NAME, "pid": os.getpid(), "seen": timezone.now(),
                               "workers": settings.Q_CLUSTER["workers"]})
        if created:
            from .services.repair import cluster_started

            cluster_started()
    except Exception:  # a heartbeat must never stop the cluster's guard loop
        logger.exception("could not record the cluster's heartbeat")


def fail_overdue_jobs():
    now = time.monotonic()
    if now - _last_deadline_check[0] < DEADLINE_SECONDS:
        return
    _last_deadline_check[0] = now
    from .services.repair import jobs_fail_overdue

    try:
        close_old_connections()  # a connection the database dropped (a restart) is opened afresh
        jobs_fail_overdue()
    except Exception:  # nor must a deadline check
        logger.exception("could not fail the jobs past their wait deadline")


class HeartbeatMixin:
    def set_stat(self, key, value, timeout):
        beat(key)
        fail_overdue_jobs()
        run_guard_calls()
        return super().set_stat(key, value, timeout)


class ORMBroker(HeartbeatMixin, ORM):
    pass


class RedisBroker(HeartbeatMixin, Redis):
    pass
