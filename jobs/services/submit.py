"""Submitting jobs: checking every field of a request (`plan_job`, which estimates share), and
creating the job and its tiles in one transaction, within the owner's limits.

`job_submit` is the entry point of every way to submit (REST API, dashboard, admin, legacy API).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from datafiles.formats import Unreadable
from datafiles.models import DataFile

from .. import chains, lifecycle, runners, storage, tileindex
from . import latetiles, quotas, tilechoice
from jobsite import outbound
from jobsite.exceptions import Conflict, LimitExceeded, Rejected, TooLarge, id_list, quoted
from ..jobtypes import get_job_type
from ..models import (JOB_WEBHOOKS, Collection, InterimResults, Job, JobInput, JobStatus, JobTile, Label,
                      Priority, Start, Tile, TileStatus)
from .waiting import unfit_input

def _clean_labels(labels):
    if labels is None:
        return []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise Rejected({"labels": "must be a list of strings"})
    clean = []
    for label in labels:
        label = label.strip()
        if not label or len(label) > Label.MAX_NAME or not label.isprintable():
            raise Rejected({"labels": f"{quoted(label)} is not a label: 1 to {Label.MAX_NAME} printable characters"})
        if label not in clean:
            clean.append(label)
    if len(clean) > Job.MAX_LABELS:
        raise Rejected({"labels": f"at most {Job.MAX_LABELS} labels, not {len(clean)}"})
    return clean


def _clean_webhooks(raw):
    """{name: URL} of the job's own webhooks, each URL checked as at send time; Rejected names each
    bad one."""
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise Rejected({"webhooks": f"must be an object of names ({', '.join(JOB_WEBHOOKS)}) to URLs"})
    errors = {}
    for name, url in raw.items():
        if name not in JOB_WEBHOOKS:
            errors[f"webhooks.{name}"] = f"unknown webhook; the webhooks are {', '.join(JOB_WEBHOOKS)}"
            continue
        try:
            outbound.check_url_and_host(url)
        except outbound.UnsafeURL as exc:
            errors[f"webhooks.{name}"] = str(exc)
    if errors:
        raise Rejected(errors)
    return dict(raw)


@dataclass(frozen=True)
class JobPlan:
    """A submit's request, checked and resolved: what job_submit creates, and job_estimate prices."""

    kind: object
    params: dict
    collection: object
    town: object
    tile_ids: list  # the tiles' keys
    files: dict  # input name: (file name, its DataFile or None while it has not arrived)
    missing_tiles: list  # the numbers of its tiles that its collection does not have yet
    start: str  # Start: when a job that waits for tiles starts
    labels: list
    interim_results: str
    wait_seconds: int
    webhooks: dict
    priority: int
    pixels: int  # of its tiles together

    @property
    def waiting_for(self):
        return [name for name, datafile in self.files.values() if datafile is None]

    @property
    def waits(self):
        """Whether the job is created waiting: for data files, or for tiles before it starts."""
        return bool(self.waiting_for or self.missing_tiles and self.start != Start.AS_AVAILABLE)


def plan_job(*, owner, job_type=None, tile_ids=None, town_id=None, params=None, labels=None, interim_results=None,
             inputs=None, wait_timeout=None, collection=None, webhooks=None, wait_for_files=True, priority=None,
             steps=None, wait_for_tiles=None, start=None):
    """Check every field of a submit and resolve what it names, writing nothing: a JobPlan, or
    Rejected naming every bad field.

    The tiles are `tile_ids`, or a town's (`town_id`), or, for types that read polygons, those the
    polygons overlap, all in `collection` (the default collection without one). `inputs` names the
    owner's data files the type reads; a file that has not been uploaded yet is waited for (at most
    `wait_timeout` seconds), or, without `wait_for_files`, refused; so are tile ids not loaded yet
    with `wait_for_tiles`, the job starting as `start` says (jobs.services.latetiles). `priority` is low, normal
    (without it) or, for staff only, high. `webhooks` are the job's own ({"update": URL,
    "finished": URL}). `steps` instead of `job_type`, `params` and `inputs` makes a chain
    (jobs.chains), each step naming its type, params and inputs.
    """
    kind, params, inputs = _kind(job_type, steps, params, inputs)
    problems = {}  # every check runs, so that one refusal names every bad field
    clean_params = _checked(problems, kind.clean_params, params)
    layer = _checked(problems, _job_collection, kind, clean_params, collection) if kind.uses_tiles else None
    if not kind.uses_tiles and collection is not None:
        problems["collection"] = f"{kind.name} runs over no tiles; leave collection out"
    clean_labels = _checked(problems, _clean_labels, labels)
    interim_results = interim_results or settings.INTERIM_RESULTS_DEFAULT
    if interim_results not in InterimResults.values:
        problems["interim_results"] = f"must be one of {', '.join(InterimResults.values)}"
    files = _checked(problems, lambda: _input_files(owner, kind, kind.clean_inputs(inputs), wait_for_files))
    wait_seconds = _checked(problems, _clean_wait_timeout, wait_timeout)
    clean_webhooks = _checked(problems, _clean_webhooks, webhooks)
    clean_priority = _checked(problems, _clean_priority, owner, priority)
    may_wait, clean_start = _checked(problems, latetiles.clean_wait_for_tiles, wait_for_tiles, start, town_id) or (False, None)
    tiles_from_file = tile_ids is None and town_id is None and kind.tiles_from
    chosen = None if (layer is None and kind.uses_tiles) or (files is None and tiles_from_file) else _checked(
        problems, tilechoice.choose_tiles, kind, files, tile_ids, town_id, layer, may_wait)
    if problems:
        raise Rejected(problems)
    town, ids, missing = chosen
    pixels = ((Tile.objects.filter(pk__in=ids).aggregate(n=Sum(F("width") * F("height")))["n"] or 0) if ids else 0)
    pixels = (pixels + (latetiles.pixels_of_missing(layer.pk, len(missing)) if missing else 0)) * kind.passes
    return JobPlan(kind, clean_params, layer, town, ids, files, missing, clean_start, clean_labels, interim_results,
                   wait_seconds, clean_webhooks, clean_priority, pixels)


def job_submit(*, owner, **request):
    """Create a job and all its tiles in one transaction, then queue its work once committed.

    `request` holds plan_job's fields, checked there. The files the job reads are held until it is
    created: one deleted meanwhile is a Conflict, not a job reading nothing. The job's own webhooks
    are signed with a secret made for it. Raises Rejected for any bad input, LimitExceeded or
    TooLarge at the owner's limits, writing nothing.
    """
    plan = plan_job(owner=owner, **request)
    kind, town, ids, files, waiting_for = plan.kind, plan.town, plan.tile_ids, plan.files, plan.waiting_for
    missing = plan.missing_tiles
    held = set(latetiles.tiles_to_hold(kind, plan.params, plan.collection.pk, ids)
               if missing and plan.start == Start.AS_AVAILABLE else [])
    deadline = timezone.now() + timedelta(seconds=plan.wait_seconds)

    with transaction.atomic():
        _check_active_jobs(owner)
        check_kept(owner)
        quotas.check_daily(owner.pk, plan.pixels)
        _hold_files([datafile.pk for _, datafile in files.values() if datafile is not None])
        job = Job.objects.create(type=kind.name, type_version=kind.version, owner=owner, params=plan.params, town=town,
                                 collection=plan.collection, priority=plan.priority,
                                 status=JobStatus.WAITING if plan.waits else JobStatus.QUEUED, waiting_for=waiting_for,
                                 waiting_for_tiles=missing, start=plan.start,
                                 wait_deadline=deadline if waiting_for or missing else None,
                                 interim_results=plan.interim_results, tiles_total=len(ids) + len(missing),
                                 woken=None if plan.waits else timezone.now(),
                                 webhooks=plan.webhooks, webhook_secret=outbound.new_secret() if plan.webhooks else "")
        if plan.labels:
            Label.objects.bulk_create([Label(name=name) for name in plan.labels], ignore_conflicts=True)
            job.labels.set(Label.objects.filter(name__in=plan.labels))
        JobInput.objects.bulk_create([JobInput(job=job, name=name, file_name=file_name, datafile=datafile)
                                      for name, (file_name, datafile) in files.items()])
        JobTile.objects.add_pending(job.pk, [key for key in ids if key not in held])
        JobTile.objects.add_pending(job.pk, sorted(held), status=TileStatus.WAITING)  # their neighbours may arrive
        where = (f" over {len(ids)} tiles of town {town.id} ({town.name})" if town
                 else f" over {len(ids)} tiles of tiles {tilechoice.numbers(ids)}" if ids else "")
        what = f"a chain ({kind.description})" if isinstance(kind, chains.Chain) else kind.name
        lifecycle.job_created(job, f"{owner} submitted {what}{where}"
                                   + (f"; waiting for {', '.join(waiting_for)}" if waiting_for else "")
                                   + (f"; waiting for tiles {id_list(missing)}" if missing else ""))
        quotas.record(owner.pk, jobs=1, pixels=plan.pixels)
        if missing:  # tiles loaded since they were looked for: their load's signal did not see this job
            transaction.on_commit(lambda: latetiles.take_arrived_tiles(plan.collection.pk), robust=True)
        if not plan.waits:
            transaction.on_commit(runners.wake)
    return job


def _kind(job_type, steps, params, inputs):
    """The job type a request names, with its params and inputs: a chain's come from its steps."""
    if steps is None:
        if job_type is None:
            raise Rejected({"type": "give a job type, or steps for a chain"})
        return get_job_type(job_type), params, inputs
    given = [name for name, value in (("type", job_type), ("params", params), ("inputs", inputs)) if value is not None]
    if given:
        raise Rejected({name: "give it in each step, or give type, params and inputs without steps" for name in given})
    chain, inputs = chains.chain_from_request(steps)
    return chain, None, inputs


def _clean_priority(owner, priority):
    if priority is None:
        return Priority.NORMAL
    names = Priority.by_name()
    if priority not in names:
        raise Rejected({"priority": f"{quoted(priority)} is not a priority; the priorities are {', '.join(names)}"})
    if names[priority] == Priority.HIGH and not owner.is_staff:
        raise Rejected({"priority": "only staff may ask for high priority"})
    return names[priority]


def check_before_files(*, owner, job_type, params):
    """What job_submit refuses that costs nothing to check, for a request that must fetch files
    before it can submit: the type, its parameters, and the owner's limits of jobs."""
    get_job_type(job_type).clean_params(params)
    check_active_jobs(owner)
    check_kept(owner)
    quotas.check_daily(owner.pk, 0)


def _checked(problems, check, *args):
    """check(*args), or None when it is Rejected, its errors added to `problems`."""
    try:
        return check(*args)
    except Rejected as exc:
        for field, problem in exc.errors.items():
            if isinstance(problem, dict) and isinstance(problems.get(field), dict):
                problems[field] = {**problems[field], **problem}
            else:
                problems.setdefault(field, problem)
        return None


def _input_files(owner, kind, names, wait_for_files=True):
    """{input: (file name, the owner's DataFile or None if not uploaded yet)}; Rejected for a file of
    the wrong kind, or one not uploaded yet when the job may not wait for it."""
    found = {f.name: f for f in DataFile.objects.filter(owner=owner, name__in=names.values())}
    wanted = {i.name: i for i in kind.inputs}
    errors = {}
    for name, file_name in names.items():
        try:
            problem = unfit_input(found[file_name], wanted[name]) if file_name in found else None
        except Unreadable as exc:
            problem = f"{file_name} could not be checked just now ({exc}); try again"
        if problem:
            errors[name] = problem
    if not wait_for_files:
        errors.update({name: f"you have no data file named {quoted(file_name)}" for name, file_name in names.items()
                       if file_name not in found})
    if errors:
        raise Rejected(kind.input_errors(errors))
    return {name: (file_name, found.get(file_name)) for name, file_name in names.items()}


def _hold_files(ids):
    """Lock the rows of the data files a job is about to read, so that none is deleted before the
    job's inputs refer to it; Conflict if one has been deleted since it was looked up."""
    held = list(DataFile.objects.select_for_update(no_key=True).filter(pk__in=ids).values_list("pk", flat=True))
    if len(held) != len(set(ids)):
        raise Conflict("a data file this job reads was deleted meanwhile; submit the job again")


def _clean_wait_timeout(value):
    if value is None:
        return settings.WAIT_TIMEOUT_SECONDS
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= Job.MAX_WAIT_SECONDS:
        raise Rejected({"wait_timeout": f"must be a whole number of seconds from 1 to {Job.MAX_WAIT_SECONDS}"})
    return value


def _collection(name):
    """The collection a job names, or the default collection; Rejected if it does not exist."""
    if name is not None and not isinstance(name, str):
        raise Rejected({"collection": "must be the name of a collection"})
    try:
        return tileindex.collection_of(name)
    except tileindex.LoadError:
        known = ", ".join(Collection.objects.values_list("id", flat=True)[:50]) or "none"
        raise Rejected({"collection": f"unknown collection {quoted(name or settings.DEFAULT_COLLECTION)}; "
                                      f"the collections are: {known}"}) from None


def _job_collection(kind, clean_params, name):
    """The collection the job runs over: the one its parameters decide (calc), or the one it names."""
    decided = kind.collection_of(clean_params) if clean_params is not None else None
    if decided is not None and name is not None and name != decided:
        raise Rejected({"collection": f"{kind.name} runs over the tiles of its first input's collection, {decided}; "
                                      f"leave collection out or give {decided}"})
    collection = _collection(decided or name)
    if clean_params is not None:
        kind.check_collection(collection, clean_params)
    return collection


def _check_active_jobs(owner):
    """Refuse a new job to a user at the limit of active jobs. Locking the user's row makes
    concurrent submits of one user count one after the other."""
    get_user_model().objects.select_for_update(no_key=True).filter(pk=owner.pk).first()
    check_active_jobs(owner)


def check_active_jobs(owner):
    active = Job.objects.filter(owner=owner, status__in=JobStatus.active()).count()
    if active >= settings.MAX_ACTIVE_JOBS_PER_USER:
        raise LimitExceeded(f"you have {active} active jobs and the limit is {settings.MAX_ACTIVE_JOBS_PER_USER}; "
                            "wait for one to finish or cancel one")


def check_kept(owner):
    """Refuse a new job to a user who keeps MAX_JOBS_PER_USER jobs (finished ones count until they
    are deleted: none is pruned behind their back) or whose jobs store their quota."""
    jobs, stored = storage.job_usage(owner)
    check_job_storage(owner.pk, stored)
    if jobs >= settings.MAX_JOBS_PER_USER:
        raise LimitExceeded(f"you have {jobs} jobs and the limit is {settings.MAX_JOBS_PER_USER} jobs per user; "
                            "delete finished jobs to submit more")


def check_job_storage(owner_id, stored):
    quota = quotas.limits_of(owner_id)["job_storage_bytes"]
    if stored >= quota:
        raise TooLarge(f"your jobs store {stored} bytes; your quota is {quota} bytes; "
                       "delete finished jobs or their interim results")
