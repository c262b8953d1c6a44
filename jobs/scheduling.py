"""Which job a worker serves next: by priority first, then fair share between users, then age.

Every worker that needs work asks `claim_next`, in the transaction that records its last batch:

1. the highest priority that has a runnable share;
2. at that priority, the user whose share is served least among those with no tile running, or
   else the one with the fewest tiles running (a user at their limit of running tiles is passed
   over): two workers serve two users, not one;
3. that user's oldest job of that priority with a tile to claim, whose tiles are claimed under a
   lease (jobs.services.worker.claim_tiles).

Each step walks an index (`share_runnable_idx`, `job_schedulable_idx`, the tiles' own) and stops
at the first fit, so the cost does not grow with the jobs queued or their tiles: it grows only with
the users and jobs passed over, those with tiles running (a few per worker) or with nothing left to
claim, which the walk marks so.

A user's `served` grows by the worker seconds of each batch recorded. A user who becomes runnable
starts no lower than the least served runnable user (or, on an idle site, than the most served
user): worker time saved up while idle buys no turn later, and a user who had much recently goes
after those who had less.
"""

from django.conf import settings
from django.db.models import Exists, F, Max, Min, OuterRef, Q, Subquery
from django.db.models.functions import Greatest
from django.utils import timezone

from .models import Job, JobStatus, JobTile, Share, TileStatus, UserLimits


def claimable_tiles():
    """Pending tiles no worker holds: a stopping tile that a resume made pending keeps the lease of
    its worker until that lets go (see lifecycle._ended)."""
    free = Q(lease_expires__isnull=True) | Q(lease_expires__lt=timezone.now())
    return JobTile.objects.filter(free, status=TileStatus.PENDING)


def mark_runnable(owner_id, priority):
    """In the transaction that gives a job of (owner, priority) work to do (a submit, a resume, a
    waiting job queued, tiles back to pending): the scheduler looks at this share again."""
    shares = Share.objects.filter(user_id=owner_id)
    rows = list(shares.values_list("priority", "served", "runnable"))
    if priority not in {row[0] for row in rows}:  # served is the same on all of the user's rows
        Share.objects.bulk_create([Share(user_id=owner_id, priority=priority, served=max((row[1] for row in rows), default=0.0))],
                                  ignore_conflicts=True)
    becoming = not any(row[2] for row in rows)
    if becoming:  # start no lower than where the others at this priority stand now
        floor = Share.objects.filter(runnable=True, priority=priority).aggregate(n=Min("served"))["n"]
        if floor is None:
            floor = Share.objects.aggregate(n=Max("served"))["n"]
        shares.update(served=Greatest(F("served"), floor or 0.0))
    shares.filter(priority=priority).update(runnable=True, version=F("version") + 1,
                                            since=timezone.now() if becoming else F("since"))


def mark_job_runnable(job_id):
    """mark_runnable for the owner and priority of a job."""
    row = Job.objects.filter(pk=job_id).values_list("owner_id", "priority").first()
    if row is not None:
        mark_runnable(*row)


def charge(owner_id, seconds):
    """Count `seconds` of worker time against a user's share, at every priority."""
    if seconds > 0:
        Share.objects.filter(user_id=owner_id).update(served=F("served") + seconds)


def running_tiles_per_user():
    """{user id: tiles of theirs running now}: read from the running tiles alone (a few per worker)."""
    counts = {}
    for owner_id in JobTile.objects.filter(status=TileStatus.RUNNING).order_by().values_list("job__owner_id", flat=True):
        counts[owner_id] = counts.get(owner_id, 0) + 1
    return counts


def _runnable_job(owner_id, priority, skip):
    """(id, status, attempt) of the user's oldest job of `priority` that is queued (its first worker
    starts it) or running with a tile to claim; None if there is none."""
    pending = claimable_tiles().filter(job=OuterRef("pk"))
    jobs = (Job.objects.filter(owner_id=owner_id, priority=priority, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
            .filter(Q(status=JobStatus.QUEUED) | Exists(pending)).exclude(pk__in=skip).order_by("created", "id"))
    return jobs.values_list("id", "status", "attempt").first()


def _unmark(share_id, version):
    """The share has no job to run: clear it, unless it was made runnable again meanwhile, or is
    being written now (then it is looked at again next time; no worker waits for its lock)."""
    free = Share.objects.filter(pk=share_id, version=version).select_for_update(skip_locked=True).values("pk")
    Share.objects.filter(pk__in=free).update(runnable=False)


def candidates():
    """(job id, status, attempt, owner id, the owner's limit of running tiles or None) in the order
    the scheduler serves them, read lazily: the caller stops at the first job it can claim from,
    counting the owner's running tiles afresh where there is a limit."""
    limits = Subquery(UserLimits.objects.filter(user_id=OuterRef("user_id")).values("max_running_tiles")[:1])
    default = settings.MAX_RUNNING_TILES_PER_USER or None
    shares = Share.objects.filter(runnable=True).order_by("-priority", "served", "since", "user_id").annotate(limit=limits)
    only = list(shares.values_list("id", "user_id", "version", "priority", "limit")[:2])
    if len(only) == 1 and only[0][4] is None and default is None:
        # One share to serve, of a user without a limit: no order to find, and no tiles to count
        # (a scan of the running tiles' index, which grows with a large job's dead row versions).
        yield from _jobs_of(*only[0])
        return
    running = running_tiles_per_user()
    page_size = len(running) + 16
    seen, busy, priority = [], [], None
    while True:
        page = list(shares.exclude(pk__in=seen).values_list("id", "user_id", "version", "priority", "limit")[:page_size])
        for share_id, owner_id, version, at, limit in page:
            seen.append(share_id)
            if at != priority:
                yield from _busy_users(busy, running)  # the last priority's users with tiles running
                busy, priority = [], at
            limit = default if limit is None else limit
            if owner_id in running:
                busy.append((share_id, owner_id, version, at, limit))
            else:
                yield from _jobs_of(share_id, owner_id, version, at, limit)
        if len(page) < page_size:
            break
    yield from _busy_users(busy, running)


def _busy_users(busy, running):
    """Users with tiles running, the fewest first (least served among equals), within their limits."""
    for share_id, owner_id, version, priority, limit in sorted(busy, key=lambda share: running[share[1]]):
        if limit is None or running[owner_id] < limit:
            yield from _jobs_of(share_id, owner_id, version, priority, limit)


def _jobs_of(share_id, owner_id, version, priority, limit):
    tried = []
    while (found := _runnable_job(owner_id, priority, tried)) is not None:
        tried.append(found[0])
        yield *found, owner_id, limit
    if not tried:
        _unmark(share_id, version)
