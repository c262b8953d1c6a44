"""Submitting jobs: checking every field of a request, creating the job and its tiles in one
transaction, and starting jobs that wait for data files once those arrive.

`job_submit` is the entry point of every way to submit (REST API, dashboard, admin, legacy API);
`jobs_start_waiting` runs after an upload and in the sweep.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from datafiles.formats import Unreadable
from datafiles.models import DataFile

from .. import lifecycle, queue, storage, tileindex, towns, vector
from jobsite import outbound
from jobsite.exceptions import Conflict, LimitExceeded, Rejected, TooLarge, id_list, quoted
from ..jobtypes import get_job_type, read_polygons
from ..models import JOB_WEBHOOKS, MAX_ID, Collection, InterimResults, Job, JobInput, JobLog, JobStatus, JobTile, Label, Tile, Town

EXACTLY_ONE = {"tile_ids": "give exactly one of tile_ids and town_id", "town_id": "give exactly one of tile_ids and town_id"}


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


def _clean_tile_ids(tile_ids, collection):
    if not isinstance(tile_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in tile_ids):
        raise Rejected({"tile_ids": "must be a list of integer tile ids"})
    if not tile_ids:
        raise Rejected({"tile_ids": "must not be empty"})
    seen, duplicates = set(), set()
    for tile_id in tile_ids:
        (duplicates if tile_id in seen else seen).add(tile_id)
    if duplicates:
        raise Rejected({"tile_ids": f"duplicate tile ids: {', '.join(map(str, sorted(duplicates)))}"})
    _check_tile_limit("tile_ids", len(tile_ids))
    known = dict(Tile.objects.filter(collection=collection, number__in=[i for i in tile_ids if 0 <= i <= MAX_ID])
                 .values_list("number", "id"))
    unknown = [tile_id for tile_id in tile_ids if tile_id not in known]
    if unknown:
        shown = ", ".join(map(str, unknown[:50])) + (f" and {len(unknown) - 50} more" if len(unknown) > 50 else "")
        raise Rejected({"tile_ids": f"unknown tile ids: {shown}" + (
            "" if collection.pk == settings.DEFAULT_COLLECTION else f" (in collection {collection.pk})")})
    return [known[number] for number in sorted(tile_ids)]


def _numbers(keys, limit=20):
    """The tile numbers of tile keys, as a message lists them."""
    numbers = list(Tile.objects.filter(id__in=keys[:limit]).order_by("number").values_list("number", flat=True))
    return id_list(numbers) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _check_tile_limit(field, count):
    if count > settings.MAX_TILES_PER_JOB:
        raise Rejected({field: f"{count} tiles is more than the limit of {settings.MAX_TILES_PER_JOB} tiles per job"})


def _town_tile_ids(town_id, collection):
    if not isinstance(town_id, int) or isinstance(town_id, bool):
        raise Rejected({"town_id": "must be an integer town id"})
    town = Town.objects.filter(pk=town_id).first() if 0 <= town_id <= MAX_ID else None
    if town is None:
        raise Rejected({"town_id": f"unknown town id: {town_id}"})
    tile_ids = list(town.tiles.filter(collection=collection).order_by("number").values_list("id", flat=True))
    if not tile_ids:
        raise Rejected({"town_id": f"town {town_id} ({town.name}) has no tiles in the index" + (
            "" if collection.pk == settings.DEFAULT_COLLECTION else f" collection {collection.pk}")})
    _check_tile_limit("town_id", len(tile_ids))
    return town, tile_ids


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


def job_submit(*, owner, job_type, tile_ids=None, town_id=None, params=None, labels=None, interim_results=None,
               inputs=None, wait_timeout=None, collection=None, webhooks=None, wait_for_files=True):
    """Create a job and all its tiles in one transaction, then queue its work once committed.

    The tiles are `tile_ids`, or a town's (`town_id`), or, for types that read polygons, those the
    polygons overlap, all in `collection` (the default collection without one). `inputs` names the owner's data files the type reads; a job naming a file
    that has not been uploaded yet waits for it (at most `wait_timeout` seconds), or, without
    `wait_for_files`, is refused. The files it reads are held until the job is created: one deleted
    meanwhile is a Conflict, not a job reading nothing. `webhooks` are
    the job's own ({"update": URL, "finished": URL}), signed with a secret made for the job. Raises Rejected
    for any bad input, LimitExceeded or TooLarge at the owner's limits, writing nothing.
    """
    kind = get_job_type(job_type)
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
    tiles_from_file = tile_ids is None and town_id is None and kind.tiles_from
    chosen = None if (layer is None and kind.uses_tiles) or (files is None and tiles_from_file) else _checked(
        problems, _choose_tiles, kind, files, tile_ids, town_id, layer)
    if problems:
        raise Rejected(problems)
    town, ids = chosen
    waiting_for = [name for name, datafile in files.values() if datafile is None]
    deadline = timezone.now() + timedelta(seconds=wait_seconds)

    with transaction.atomic():
        _check_active_jobs(owner)
        _check_kept(owner)
        _hold_files([datafile.pk for _, datafile in files.values() if datafile is not None])
        job = Job.objects.create(type=kind.name, type_version=kind.version, owner=owner, params=clean_params, town=town, collection=layer,
                                 status=JobStatus.WAITING if waiting_for else JobStatus.QUEUED, waiting_for=waiting_for,
                                 wait_deadline=deadline if waiting_for else None, interim_results=interim_results,
                                 tiles_total=len(ids), woken=None if waiting_for else timezone.now(),
                                 webhooks=clean_webhooks, webhook_secret=outbound.new_secret() if clean_webhooks else "")
        if clean_labels:
            Label.objects.bulk_create([Label(name=name) for name in clean_labels], ignore_conflicts=True)
            job.labels.set(Label.objects.filter(name__in=clean_labels))
        JobInput.objects.bulk_create([JobInput(job=job, name=name, file_name=file_name, datafile=datafile)
                                      for name, (file_name, datafile) in files.items()])
        JobTile.objects.bulk_create([JobTile(job=job, tile_id=tile_id) for tile_id in ids], batch_size=2000)
        where = (f" over {len(ids)} tiles of town {town.id} ({town.name})" if town
                 else f" over {len(ids)} tiles of tiles {_numbers(ids)}" if ids else "")
        lifecycle.job_created(job, f"{owner} submitted {kind.name}{where}"
                                   + (f"; waiting for {', '.join(waiting_for)}" if waiting_for else ""))
        if not waiting_for:
            transaction.on_commit(lambda: queue.enqueue_tiles(job.id, len(ids)))
    return job


def check_before_files(*, owner, job_type, params):
    """What job_submit refuses that costs nothing to check, for a request that must fetch files
    before it can submit: the type, its parameters, and the owner's limits of jobs."""
    get_job_type(job_type).clean_params(params)
    active = Job.objects.filter(owner=owner, status__in=JobStatus.active()).count()
    if active >= settings.MAX_ACTIVE_JOBS_PER_USER:
        raise LimitExceeded(f"you have {active} active jobs and the limit is {settings.MAX_ACTIVE_JOBS_PER_USER}; "
                            "wait for one to finish or cancel one")
    _check_kept(owner)


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
    wanted = {i.name: i.kind for i in kind.inputs}
    errors = {name: problem for name, file_name in names.items() if file_name in found
              and (problem := unfit_input(found[file_name], name, wanted[name]))}
    if not wait_for_files:
        errors.update({name: f"you have no data file named {quoted(file_name)}" for name, file_name in names.items()
                       if file_name not in found})
    if errors:
        raise Rejected({"inputs": errors})
    return {name: (file_name, found.get(file_name)) for name, file_name in names.items()}


def _hold_files(ids):
    """Lock the rows of the data files a job is about to read, so that none is deleted before the
    job's inputs refer to it; Conflict if one has been deleted since it was looked up."""
    held = list(DataFile.objects.select_for_update(no_key=True).filter(pk__in=ids).values_list("pk", flat=True))
    if len(held) != len(set(ids)):
        raise Conflict("a data file this job reads was deleted meanwhile; submit the job again")


def unfit_input(datafile, name, needed):
    """What makes `datafile` unfit as the input `name`, which needs a `needed` file, or None:
    another kind of file, or more polygons than MAX_ZONES (from the metadata read at upload)."""
    if datafile.kind != needed:
        return f"{datafile.name} is a {datafile.kind} file; {name} needs a {needed} file"
    layers = datafile.metadata.get("layers") or [{}]
    features = layers[0].get("feature_count") or 0
    if needed == "vector" and features > settings.MAX_ZONES:
        return f"{datafile.name} has {features:,} features; the limit is {settings.MAX_ZONES:,} (JOBSITE_MAX_ZONES)"
    return None


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


def _choose_tiles(kind, files, tile_ids, town_id, collection):
    if not kind.uses_tiles:
        given = [name for name, value in (("tile_ids", tile_ids), ("town_id", town_id)) if value is not None]
        if given:
            raise Rejected({given[0]: f"{kind.name} runs over no tiles; leave tile_ids and town_id out"})
        return None, []
    if tile_ids is not None and town_id is not None:
        raise Rejected(EXACTLY_ONE)
    if town_id is not None:
        return _town_tile_ids(town_id, collection)
    if tile_ids is not None:
        return None, _clean_tile_ids(tile_ids, collection)
    if not kind.tiles_from:
        raise Rejected(EXACTLY_ONE)
    file_name, datafile = files[kind.tiles_from]
    if datafile is None:
        raise Rejected({"tile_ids": f"give tile_ids or town_id: the tiles cannot be chosen by {file_name}, "
                                    "which has not been uploaded yet"})
    try:
        polygons = read_polygons(datafile.stored, tileindex.index_crs_wkt(collection.pk))
    except (vector.VectorError, tileindex.LoadError, Unreadable) as exc:
        raise Rejected({"inputs": {kind.tiles_from: str(exc)}}) from None
    ids = towns.tiles_overlapping(polygons, collection.pk)
    if not ids:
        raise Rejected({"inputs": {kind.tiles_from: f"the polygons of {file_name} overlap no tile of the index"}})
    _check_tile_limit("tile_ids", len(ids))
    return None, ids


def jobs_start_waiting(*, owner_id=None):
    """Waiting jobs whose data files have all arrived are queued; a file of the wrong kind fails the
    job. For one owner's jobs (after an upload) or everybody's (the sweep)."""
    waiting = Job.objects.filter(status=JobStatus.WAITING)
    if owner_id is not None:
        waiting = waiting.filter(owner_id=owner_id)
    for job in waiting.prefetch_related("inputs"):
        with transaction.atomic():
            missing, wrong = link_arrived_inputs(job)
            if wrong:
                error = "; ".join(wrong)
                lifecycle.move_job(job.pk, "fail", only_from=[JobStatus.WAITING], error=error,
                                   message=f"failed: {error}", level=JobLog.Level.ERROR)
            elif missing:
                Job.objects.filter(pk=job.pk, status=JobStatus.WAITING).update(waiting_for=missing)
            elif lifecycle.move_job(job.pk, "queue", message="its data files have all arrived; queued"):
                transaction.on_commit(lambda job=job: queue.enqueue_tiles(job.pk, job.tiles_total))


def link_arrived_inputs(job):
    """Link each input of `job` that has no data file yet to the owner's file of its name, if that
    has arrived and fits. Returns (file names still missing, problems of files that arrived unfit)."""
    missing, wrong = [], []
    for job_input in job.inputs.all():
        if job_input.datafile_id is not None:
            continue
        datafile = DataFile.objects.filter(owner_id=job.owner_id, name=job_input.file_name).first()
        needed = next(i.kind for i in get_job_type(job.type).inputs if i.name == job_input.name)
        if datafile is None:
            missing.append(job_input.file_name)
        elif problem := unfit_input(datafile, job_input.name, needed):
            wrong.append(f"{job_input.file_name} arrived, but {problem}")
        else:
            JobInput.objects.filter(pk=job_input.pk).update(datafile=datafile)
    return missing, wrong


def _check_active_jobs(owner):
    """Refuse a new job to a user at the limit of active jobs. Locking the user's row makes
    concurrent submits of one user count one after the other."""
    get_user_model().objects.select_for_update(no_key=True).filter(pk=owner.pk).first()
    active = Job.objects.filter(owner=owner, status__in=JobStatus.active()).count()
    if active >= settings.MAX_ACTIVE_JOBS_PER_USER:
        raise LimitExceeded(f"you have {active} active jobs and the limit is {settings.MAX_ACTIVE_JOBS_PER_USER}; "
                            "wait for one to finish or cancel one")


def _check_kept(owner):
    """Refuse a new job to a user who keeps MAX_JOBS_PER_USER jobs (finished ones count until they
    are deleted: none is pruned behind their back) or whose jobs store their quota."""
    jobs, stored = storage.job_usage(owner)
    check_job_storage(stored)
    if jobs >= settings.MAX_JOBS_PER_USER:
        raise LimitExceeded(f"you have {jobs} jobs and the limit is {settings.MAX_JOBS_PER_USER} jobs per user; "
                            "delete finished jobs to submit more")


def check_job_storage(stored):
    if stored >= settings.JOB_STORAGE_QUOTA_BYTES:
        raise TooLarge(f"your jobs store {stored} bytes; your quota is {settings.JOB_STORAGE_QUOTA_BYTES} bytes; "
                       "delete finished jobs or their interim results")


def start_jobs_waiting_for(sender, datafile, **kwargs):
    """The `datafile_stored` signal: the owner's waiting jobs may have all their files now."""
    jobs_start_waiting(owner_id=datafile.owner_id)


def jobs_reading(sender, datafile, **kwargs):
    """The `datafile_in_use` signal: the queued, running or merging jobs that read the file."""
    return (JobInput.objects.filter(datafile=datafile, job__status__in=[JobStatus.QUEUED, JobStatus.RUNNING,
                                                                        JobStatus.MERGING])
            .values_list("job_id", flat=True).distinct())
