"""Is the service healthy: the database answers, the broker answers, and a cluster is alive and
taking tasks. Read by GET /api/v1/health/ and `manage.py check_cluster`."""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ

from .models import ClusterHeartbeat

ALIVE_SECONDS = 60


def database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:
        return {"ok": False, "vendor": connection.vendor, "error": type(exc).__name__}


def broker():
    kind = "orm" if settings.Q_BROKER == "orm" else "redis"
    try:
        queued = get_broker().queue_size()
        return {"ok": True, "kind": kind, "queued": queued}
    except Exception as exc:
        return {"ok": False, "kind": kind, "error": type(exc).__name__}


def oldest_waiting_task_age():
    """Seconds the oldest task of the ORM broker has waited to be taken (None: none, or Redis)."""
    if settings.Q_BROKER != "orm":
        return None
    oldest = OrmQ.objects.filter(key=settings.Q_CLUSTER["name"], lock__lte=timezone.now()).order_by("lock").first()
    return (timezone.now() - oldest.lock).total_seconds() if oldest else None


def clusters():
    since = timezone.now() - timedelta(seconds=ALIVE_SECONDS)
    alive = [{"host": c.host, "pid": c.pid, "seen": c.seen.isoformat()}
             for c in ClusterHeartbeat.objects.filter(seen__gte=since).order_by("host", "pid")]
    waited = oldest_waiting_task_age()
    return {"ok": bool(alive) and not (waited is not None and waited > settings.CLUSTER_STUCK_SECONDS), "alive": alive,
            "oldest_waiting_task_s": None if waited is None else round(waited, 1)}


def report():
    checks = {"database": database()}
    checks["broker"] = broker() if checks["database"]["ok"] else {"ok": False, "error": "no database"}
    checks["cluster"] = clusters() if checks["database"]["ok"] else {"ok": False, "alive": []}
    return all(check["ok"] for check in checks.values()), checks
