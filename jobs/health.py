"""Is the service healthy: the database answers, the broker answers, and a cluster is alive and
doing the work there is. Read by GET /api/v1/health/ and `manage.py check_cluster`."""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Max, Min
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ

from .models import ClusterHeartbeat, Job, JobStatus, JobTile, TileStatus

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


def untouched_work_age():
    """Seconds that pending tiles of queued or running jobs have waited while no worker claimed or
    finished any tile (None: no such work). A wedged cluster still takes tasks off the broker,
    so only our own tables show that nothing is being done."""
    active = [JobStatus.QUEUED, JobStatus.RUNNING]
    since = Job.objects.filter(status__in=active, tiles__status=TileStatus.PENDING).aggregate(t=Min(Coalesce("woken", "created")))["t"]
    if since is None:
        return None
    activity = JobTile.objects.filter(job__status__in=active).aggregate(s=Max("started"), f=Max("finished"))
    latest = max([t for t in (since, activity["s"], activity["f"]) if t is not None])
    return (timezone.now() - latest).total_seconds()


def clusters():
    since = timezone.now() - timedelta(seconds=ALIVE_SECONDS)
    alive = [{"host": c.host, "pid": c.pid, "seen": c.seen.isoformat()}
             for c in ClusterHeartbeat.objects.filter(seen__gte=since).order_by("host", "pid")]
    waits = [w for w in (oldest_waiting_task_age(), untouched_work_age()) if w is not None]
    waited = max(waits) if waits else None
    return {"ok": bool(alive) and not (waited is not None and waited > settings.CLUSTER_STUCK_SECONDS), "alive": alive,
            "waiting_s": None if waited is None else round(waited, 1)}


def report():
    checks = {"database": database()}
    checks["broker"] = broker() if checks["database"]["ok"] else {"ok": False, "error": "no database"}
    checks["cluster"] = clusters() if checks["database"]["ok"] else {"ok": False, "alive": []}
    return all(check["ok"] for check in checks.values()), checks
