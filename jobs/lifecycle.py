"""The life cycle of jobs and their tiles: every allowed change of status, and the one mechanism
that makes it.

`JOB_TRANSITIONS` and `TILE_TRANSITIONS` are the whole state machine as data: each transition
has a name, the states it may leave, the state it enters and the fields it stamps. Nothing else
in jobsite writes a status: `move_job` and `move_tiles` (and `tiles_succeeded`, the batched form
of the tile's `succeed`) are the only writers.

A job just submitted queued, and tiles back to pending, make their owner's share runnable for the
scheduler (jobs.scheduling) in the same transaction; so do the callers of the job transitions
`queue` and `resume`, once they have moved the job's tiles (row locks are taken in the order user,
job, tiles, shares).

A transition is one conditional UPDATE whose row count says who won, so repeated task deliveries
and racing cancels do no harm; nothing reads a status, decides in Python and writes it back. A job
transition also writes its JobLog line, and a job that ends runs the end-of-job effects in the
same transaction (see `_ended`). Every committed transition sends one signal, `job_changed` or
`tiles_changed`, once the transaction commits and never for one that rolls back: notifications
and live status subscribe to those and need not know where transitions happen. A job's
transition also sends `job_changing` inside its transaction, for what must be recorded with it
(the events that webhooks deliver).
"""

import functools
import logging
from dataclasses import dataclass
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Count, F
from django.dispatch import Signal
from django.utils import timezone

from . import scheduling, storage
from .models import InterimResults, Job, JobLog, JobStatus, JobTile, Tile, TileStatus

logger = logging.getLogger(__name__)

# Sent once a job's transition has committed, with job_id, old (None for a job just created), new
# and transition (its name in JOB_TRANSITIONS, or "submit"). Receivers connect in an
# AppConfig.ready: a transition is announced only if the signal has receivers when it is made.
job_changed = Signal()
# Sent with the same arguments inside the transaction of a job's transition, after its UPDATE
# (the row is locked), for receivers that must record it with it: what they write commits or rolls
# back with the transition, in the order of the transitions. They run in a savepoint: one that
# raises is logged, its writes are undone, and the transition goes on.
job_changing = Signal()
# Sent once a transition of some of a job's tiles has committed, with job_id, transition, count
# (tiles moved) and counts: a function that returns {tile status: number of the job's tiles}, read
# once when first called (one query, which the worker pays only for receivers that ask).
# Receivers run after the commit in the process that made the transition; one that raises is
# logged and does not disturb that process's work.
tiles_changed = Signal()

NOW = "now"  # a field stamped with the time of the transition


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset
    target: str
    stamps: tuple = ()  # (field, value) pairs; NOW stands for the time of the transition
    help: str = ""

    def fields(self, now):
        return {field: now if value == NOW else value for field, value in self.stamps}


def _table(*transitions):
    return {transition.name: transition for transition in transitions}


J, T = JobStatus, TileStatus
ACTIVE = frozenset(JobStatus.active())

JOB_TRANSITIONS = _table(
    Transition("queue", frozenset({J.WAITING}), J.QUEUED, (("waiting_for", []), ("woken", NOW)),
               "its data files have all arrived"),
    Transition("start", frozenset({J.QUEUED}), J.RUNNING, (("started", NOW), ("woken", NOW)),
               "the first worker takes a tile"),
    Transition("merge", frozenset({J.RUNNING}), J.MERGING, (("merge_started", NOW),),
               "no tile is left to run and none failed"),
    Transition("merge_again", frozenset({J.MERGING}), J.MERGING, (("merge_started", NOW),),
               "the sweep: a merge outlived the task timeout"),
    Transition("succeed", frozenset({J.MERGING}), J.SUCCEEDED, (("finished", NOW), ("error", "")),
               "the merged outputs are written"),
    Transition("fail", frozenset({J.WAITING, J.QUEUED, J.RUNNING, J.MERGING}), J.FAILED,
               (("finished", NOW), ("waiting_for", [])),
               "a data file or tile never arrived or a file arrived unfit, a tile or the merge failed"),
    Transition("cancel", ACTIVE, J.CANCELED, (("finished", NOW), ("waiting_for", [])),
               "a user or an admin cancels"),
    Transition("resume", frozenset({J.FAILED, J.CANCELED}), J.QUEUED,
               (("attempt", F("attempt") + 1), ("error", ""), ("started", None), ("finished", None),
                ("merge_started", None), ("outputs", []), ("outputs_size", 0), ("interim_deleted", None),
                ("woken", NOW)),
               "a user resumes, keeping the tiles whose outputs are intact"),
)

TILE_TRANSITIONS = _table(
    Transition("claim", frozenset({T.PENDING}), T.RUNNING,
               (("attempts", F("attempts") + 1), ("started", NOW), ("finished", None), ("error", ""),
                ("bytes_written", None), ("cpu_seconds", None), ("peak_memory", None)),
               "a worker takes the tile under a lease"),
    Transition("succeed", frozenset({T.RUNNING}), T.SUCCEEDED, (("finished", NOW), ("lease_expires", None)),
               "its output is written"),
    Transition("retry", frozenset({T.RUNNING}), T.PENDING, (("lease_owner", ""), ("lease_expires", None)),
               "an error that may pass, or a lost worker, with attempts left"),
    Transition("fail", frozenset({T.RUNNING}), T.FAILED, (("finished", NOW), ("lease_expires", None)),
               "an error that will not pass, or no attempts left"),
    Transition("stop", frozenset({T.RUNNING}), T.CANCELED, (("finished", NOW),),
               "its job ended; the worker keeps the lease until it lets go"),
    Transition("release", frozenset({T.WAITING}), T.PENDING, (),
               "the neighbours that its halo reads have arrived, or its job waits for no more tiles"),
    Transition("skip", frozenset({T.PENDING, T.WAITING}), T.CANCELED, (),
               "its job ended before the tile ran"),
    Transition("forget", frozenset({T.SUCCEEDED}), T.PENDING, (("output_path", ""), ("output_size", None)),
               "a resume finds its output gone or changed"),
    Transition("rerun", frozenset({T.PENDING, T.RUNNING, T.SUCCEEDED, T.FAILED, T.CANCELED}), T.PENDING,
               (("error", ""), ("started", None), ("finished", None)),
               "a resume runs the tile again (a stopping one once its worker lets go of its lease)"),
)


class NotAllowed(ValueError):
    """A transition that the table does not have, or from a state it does not leave."""


def job_log(job_id, message, level=JobLog.Level.INFO, tile_id=None):
    """One line of a job's log (about the tile of key `tile_id`, if given), also sent to the Python
    log, where the tile goes by its number as everywhere users see it."""
    message = str(message)
    if len(message) > JobLog.MAX_MESSAGE:
        message = message[: JobLog.MAX_MESSAGE - 1] + "…"
    number = Tile.objects.filter(pk=tile_id).values_list("number", flat=True).first() if tile_id else None
    logger.log(logging.getLevelName(level.upper()), "job %s%s: %s", job_id, f" tile {number}" if tile_id else "", message)
    return JobLog.objects.create(job_id=job_id, tile_id=tile_id, level=level, message=message)


def job_created(job, message):
    """Log and announce a job that `jobs.services.submit` has just created, waiting or queued."""
    job_log(job.pk, message)
    if job.status == JobStatus.QUEUED:
        scheduling.mark_runnable(job.owner_id, job.priority)
    _announce_job(job.pk, None, job.status, "submit")


def move_job(job_id, name, *, only_from=None, where=None, message=None, level=JobLog.Level.INFO, **fields):
    """Make the job transition `name`, if the job is in one of its source states (narrowed to
    `only_from`) and matches `where` (a Q on the job). Sets the transition's stamps and `fields`,
    writes `message` to the job's log, runs the end-of-job effects and announces the change once
    committed. Returns the state the job left when this caller won, None when it did not.

    A transition with one source state is one conditional UPDATE. With several, the job's row is
    locked and read, and the UPDATE is conditional on the state read, so the signal names exactly
    the state left. `message` is required for a transition that ends the job (its log line says
    what the end did to the tiles); elsewhere None leaves the log line to the caller, in the same
    transaction.
    """
    transition = _job_transition(name)
    sources = transition.sources if only_from is None else transition.sources & frozenset(only_from)
    if not sources or (only_from is not None and not frozenset(only_from) <= transition.sources):
        raise NotAllowed(f"a job cannot {name} from {', '.join(sorted(only_from))}")
    ends = transition.target in JobStatus.final()
    if ends and message is None:
        raise NotAllowed(f"{name} ends the job: its log line is required")
    changes = {**transition.fields(timezone.now()), **fields, "status": transition.target}
    jobs = Job.objects.filter(pk=job_id)
    if where is not None:
        jobs = jobs.filter(where)
    with transaction.atomic(savepoint=False):
        old = _update_job(jobs, sources, changes)
        if old is None:
            return None
        _announce_job(job_id, old, transition.target, name)
        ended = _ended(job_id, name, transition.target) if ends else ""
        if message is not None:
            job_log(job_id, message + ended, level)
    return old


def _update_job(jobs, sources, changes):
    if len(sources) == 1:
        (old,) = sources
        return old if jobs.filter(status=old).update(**changes) else None
    # Locking the row first makes a transition that races another wait for it, as a plain
    # conditional UPDATE would, and then see the state the other one left.
    # FOR NO KEY UPDATE: a transition changes no key, so it need not wait for, nor hold up, the
    # foreign key checks of rows that refer to the job (a worker's log line, at its COMMIT).
    old = jobs.select_for_update(no_key=True).values_list("status", flat=True).first()
    if old not in sources:
        return None
    return old if jobs.filter(status=old).update(**changes) else None


def _ended(job_id, name, status):
    """The end-of-job effects, in the transaction that ends the job, on every path that ends one.

    A failed or canceled job's pending tiles are skipped and its running tiles stopped, so that no
    worker can claim or finish a tile of a finished job; a stopping tile keeps its lease until its
    worker lets go of it (or the lease expires), so that a resume cannot hand it to a second worker
    while the first still works on it. Interim results go as the job's policy says: `never` at
    any end, `on_error` once it succeeded. Returns what to add to the log line.
    """
    policy = Job.objects.filter(pk=job_id).values_list("interim_results", flat=True).first()
    if status == JobStatus.SUCCEEDED:
        if policy != InterimResults.ALWAYS:
            storage.drop_interim_results([job_id])
        transaction.on_commit(lambda: storage.remove_leftovers(job_id))
        return ""
    tiles = JobTile.objects.filter(job_id=job_id)
    skipped = move_tiles(job_id, "skip", tiles)
    stopping = move_tiles(job_id, "stop", tiles)
    if policy == InterimResults.NEVER:
        storage.drop_interim_results([job_id])
    if not (skipped or stopping or name == "cancel"):
        return ""
    return f"; {skipped} pending tiles will not run" + (f", {stopping} running tiles are stopping" if stopping else "")


def move_tiles(job_id, name, tiles, **fields):
    """Make the tile transition `name` for those of `tiles` (a JobTile queryset, of the job
    `job_id`) in its source states, setting its stamps and `fields`. Returns how many moved."""
    transition = _tile_transition(name)
    changes = {**transition.fields(timezone.now()), **fields, "status": transition.target}
    moving = tiles.filter(status__in=transition.sources)
    with transaction.atomic(savepoint=False):
        # The rows are locked in the order of their ids (PostgreSQL; SQLite writes one at a time),
        # as every multi-row tile update does: two of them (a resume and a worker's batch) that
        # locked in the orders of their scans could each wait for the other, a deadlock.
        locked = moving.order_by("id").select_for_update(no_key=True).values("id")
        moved = JobTile.objects.filter(pk__in=locked).update(**changes)
        if moved and transition.target == TileStatus.PENDING:
            scheduling.mark_job_runnable(job_id)
        if moved:
            _announce_tiles(job_id, name, moved)
    return moved


def tiles_arrived(job_id, count):
    """Announce (tiles_changed, transition "arrive") that `count` tiles the job waited for have
    arrived in its collection and joined it, as jobs.services.latetiles has just inserted them."""
    _announce_tiles(job_id, "arrive", count)


class TileDone(NamedTuple):
    """A tile's work that succeeded: its output, and what the work used (None: not measured)."""

    job_tile: object
    relpath: str
    size: int
    cpu_seconds: float | None = None
    peak_memory: int | None = None


def tiles_succeeded(job_id, done, lease_owner):
    """The tile transition `succeed` for a batch of TileDone (or tuples of its fields), in one
    UPDATE that matches each tile only while it still runs under `lease_owner`'s claim. Returns the
    number recorded."""
    if not done:
        return 0
    done = [TileDone(*item) for item in done]
    transition = TILE_TRANSITIONS["succeed"]
    (source,) = transition.sources
    # UPDATE ... FROM (VALUES ...), which both databases speak: the ORM would compile a CASE per
    # column and tile, and that costs more than the database's work for a batch of small tiles.
    stamps = {**transition.fields(connection.ops.adapt_datetimefield_value(timezone.now())),
              "status": transition.target}
    table = connection.ops.quote_name(JobTile._meta.db_table)
    sets = ", ".join(f"{connection.ops.quote_name(field)} = %s" for field in stamps)
    # Typed in the first row, so that a NULL there does not leave the column's type unknown.
    values = ", ".join(["(%s, %s, %s, CAST(%s AS DOUBLE PRECISION), CAST(%s AS BIGINT))"] + ["(%s, %s, %s, %s, %s)"]
                       * (len(done) - 1))
    params = [*stamps.values()]
    params += [value for item in done
               for value in (item.job_tile.pk, item.relpath, item.size, item.cpu_seconds, item.peak_memory)]
    params += [source, lease_owner]
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # the rows in the order of their ids (see move_tiles)
            ids = sorted(item.job_tile.pk for item in done)
            cursor.execute(f"SELECT id FROM {table} WHERE id IN ({', '.join(['%s'] * len(ids))}) ORDER BY id FOR NO KEY UPDATE",
                           ids)
        cursor.execute(
            f"UPDATE {table} SET {sets}, output_path = v.column2, output_size = v.column3, "
            f"bytes_written = v.column3, cpu_seconds = v.column4, peak_memory = v.column5 "
            f"FROM (VALUES {values}) AS v WHERE {table}.id = v.column1 AND {table}.status = %s "
            f"AND {table}.lease_owner = %s", params)
        recorded = cursor.rowcount
        if recorded:
            _announce_tiles(job_id, "succeed", recorded)
    return recorded


def claimed(job_tile_id, attempt):
    """The tile, if it still runs under this claim (its attempt). Every condition is on the JobTile
    row itself: a join would become a subquery that PostgreSQL does not re-check against a row
    that a concurrent transaction has just changed."""
    return JobTile.objects.filter(pk=job_tile_id, status=TileStatus.RUNNING, attempts=attempt)


def claimed_tiles(job_tile_ids, attempt):
    """`claimed` for several tiles claimed at the same attempt: those that still run under it."""
    return JobTile.objects.filter(pk__in=list(job_tile_ids), status=TileStatus.RUNNING, attempts=attempt)


def renew_leases(job_tile_ids, attempt, until):
    """Extend to `until` the leases of the tiles still claimed at `attempt`; returns how many.
    Several rows are locked in the order of their ids, as in move_tiles."""
    claimed = claimed_tiles(job_tile_ids, attempt)
    if len(job_tile_ids) == 1:
        return claimed.update(lease_expires=until)
    with transaction.atomic(savepoint=False):
        locked = claimed.order_by("id").select_for_update(no_key=True).values("id")
        return JobTile.objects.filter(pk__in=locked).update(lease_expires=until)


def _job_transition(name):
    try:
        return JOB_TRANSITIONS[name]
    except KeyError:
        raise NotAllowed(f"jobs have no transition {name!r}") from None


def _tile_transition(name):
    try:
        return TILE_TRANSITIONS[name]
    except KeyError:
        raise NotAllowed(f"tiles have no transition {name!r}") from None


def _announce_job(job_id, old, new, name):
    if job_changing.has_listeners(Job):
        try:
            with transaction.atomic():
                job_changing.send(sender=Job, job_id=job_id, old=old, new=new, transition=name)
        except Exception:
            logger.exception("job %s: a job_changing receiver failed; what it wrote is undone", job_id)
    if job_changed.has_listeners(Job):
        transaction.on_commit(lambda: job_changed.send(sender=Job, job_id=job_id, old=old, new=new, transition=name),
                              robust=True)


def _announce_tiles(job_id, name, count):
    if not tiles_changed.has_listeners(JobTile):
        return

    @functools.cache
    def counts():
        return dict(JobTile.objects.filter(job_id=job_id).order_by().values_list("status")
                    .annotate(n=Count("id")).values_list("status", "n"))

    transaction.on_commit(lambda: tiles_changed.send(sender=JobTile, job_id=job_id, transition=name, count=count,
                                                     counts=counts), robust=True)


def table_rows():
    """The transition tables as the README shows them: (object, transition, from, to, stamps)."""
    for kind, table in (("job", JOB_TRANSITIONS), ("tile", TILE_TRANSITIONS)):
        for transition in table.values():
            yield (kind, transition.name, ", ".join(sorted(transition.sources)), transition.target,
                   ", ".join(field for field, _ in transition.stamps))
