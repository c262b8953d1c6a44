"""Controlling jobs that exist: cancel, resume and delete, each one public entry point that every
caller (REST API, dashboard, admin, legacy API) goes through."""

import shutil

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Sum

from jobsite import media
from .. import lifecycle, runners, scheduling, storage, tileindex
from . import chainruns, quotas

from jobsite.exceptions import Conflict, Rejected, id_list
from ..chains import chain_of, input_field, is_chain, job_type_of
from ..models import Job, JobStatus, JobTile, Priority, Tile, TileStatus
from .submit import check_job_storage
from .waiting import link_arrived_inputs


def job_cancel(*, job, by=None):
    """Cancel a job that has not finished. Running GDAL calls notice within about a second."""
    if not lifecycle.move_job(job.pk, "cancel", message=f"canceled by {by or 'the system'}"):
        status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        raise Conflict(f"job {job.pk} is already {status}; only waiting, queued, running or merging jobs can be canceled")
    job.refresh_from_db()
    return job


def jobs_set_priority(jobs, priority):
    """Give jobs that have not started merging (waiting, queued or running) another priority; the
    scheduler serves their next batches by it. Returns how many changed."""
    with transaction.atomic():
        chosen = Job.objects.filter(pk__in=list(jobs.values_list("id", flat=True)))
        ids = list(chosen.filter(status__in=[JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING])
                   .exclude(priority=priority).select_for_update(no_key=True).values_list("id", flat=True))
        changed = Job.objects.filter(pk__in=ids).update(priority=priority)
        for owner_id in set(Job.objects.filter(pk__in=ids).exclude(status=JobStatus.WAITING)
                            .values_list("owner_id", flat=True)):
            scheduling.mark_runnable(owner_id, priority)
        for job_id in ids:
            lifecycle.job_log(job_id, f"priority set to {Priority(priority).label}")
        transaction.on_commit(runners.wake)
    return changed


def job_resume(*, job, by=None, params=None):
    """Run a failed or canceled job again, keeping the tiles whose output is still on disk.

    1. `params` (optional) are changes to the job's parameters, checked like a new job's. An owner
       whose jobs store their quota is refused (TooLarge), before anything is written. Data files
       that arrived after the job stopped waiting for them are linked now; a file still missing or
       unfit is a Conflict.
    2. The transition `resume` moves the job from failed or canceled to queued: 409 otherwise,
       and for the loser of two concurrent resumes.
    3. If the parameters changed the result, every tile runs again. Otherwise succeeded tiles
       whose output exists with the size recorded when it was written are kept, the rest go back
       to pending. The merge then runs over all tiles.

    Returns (job, number of tiles that will run).
    """
    kind = job_type_of(job)
    new_params = job.params if params is None else kind.clean_params({**job.params, **_as_dict(params)})
    if is_chain(job):  # the chain as it runs now, which must read no data file the job does not name
        kind = chain_of(new_params)
        named = set(job.inputs.values_list("name", flat=True))
        unnamed = {input_field(i.name): "the chain's steps changed to read it, but the job does not name a file for it"
                   for i in kind.inputs if i.name not in named}
        if unnamed:
            raise Rejected(unnamed)
    elif job.type_version != kind.version:  # the new definition's parameters, checked by its own rules
        known = {param.name for param in kind.params}
        new_params = kind.clean_params({name: value for name, value in new_params.items() if name in known})
    if params is not None:
        kind.check_collection(job.collection, new_params)
    # A parameter added to the type after the job was stored had its default then.
    before = {**{param.name: param.default for param in kind.params}, **job.params}
    changes = {name: (before.get(name), value) for name, value in new_params.items() if before.get(name) != value}
    check_job_storage(job.owner_id, storage.job_usage(job.owner_id)[1])
    missing, wrong = link_arrived_inputs(job)  # a job that waited in vain runs once its files are there
    if missing or wrong:
        raise Conflict(f"job {job.pk} cannot run yet: "
                       + "; ".join([*(f"{name} has not been uploaded" for name in missing), *wrong]))
    arrived = dict(Tile.objects.filter(collection_id=job.collection_id, number__in=job.waiting_for_tiles)
                   .values_list("number", "id"))
    if len(arrived) < len(job.waiting_for_tiles):  # it waited in vain for tiles: those must be there now
        never = [number for number in job.waiting_for_tiles if number not in arrived]
        raise Conflict(f"job {job.pk} cannot run yet: tiles {id_list(never)} of collection {job.collection_id} "
                       "have not been loaded")
    with transaction.atomic():
        # The owner's row first: resumes and submits of one user check the daily quotas one after the other.
        get_user_model().objects.select_for_update(no_key=True).filter(pk=job.owner_id).first()
        redefined = job.type_version != kind.version and not (is_chain(job) and changes)
        if not lifecycle.move_job(job.pk, "resume", params=new_params, type_version=kind.version):
            status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
            raise Conflict(f"job {job.pk} is {status}; only failed or canceled jobs can be resumed")
        storage.remove_files_on_commit(output["path"] for output in job.outputs)
        if arrived:  # the tiles it waited for in vain, loaded since
            JobTile.objects.add_pending(job.pk, [arrived[number] for number in sorted(arrived)])
            Job.objects.filter(pk=job.pk).update(waiting_for_tiles=[])
        if is_chain(job):  # the data files of steps the chain no longer has
            job.inputs.exclude(name__in=[i.name for i in kind.inputs]).delete()
        tiles = JobTile.objects.filter(job_id=job.pk)
        changed = None  # a chain's first step that runs again for every tile
        if is_chain(job) and (changes or job.type_version != kind.version):
            changed = chainruns.first_changed(job.params["steps"], new_params["steps"]) if changes else 0
            if not chainruns.same_versions(job.type_version, kind, changed):  # a kept step's type is new
                changed = 0
            storage.drop_tile_outputs([job.pk])
            rerun = tiles
        elif changes or redefined:
            storage.drop_interim_results([job.pk])
            rerun = tiles
        else:
            _forget_lost_outputs(job.pk)
            rerun = tiles.exclude(status=TileStatus.SUCCEEDED)
        starts = None
        if is_chain(job):  # the rows locked in id order first, as every multi-row tile update does
            list(rerun.order_by("id").select_for_update(no_key=True).values_list("id", flat=True))
            starts = chainruns.plan_starts(job, kind, rerun, changed, tileindex.index_grid(job.collection_id))
        to_run = lifecycle.move_tiles(job.pk, "rerun", rerun)
        # Tiles that never ran were counted when the job was submitted (or resumed before).
        pixels = (tiles.filter(status=TileStatus.PENDING, attempts__gt=0)
                  .aggregate(n=Sum(F("tile__width") * F("tile__height")))["n"] or 0) * kind.passes
        quotas.check_daily(job.owner_id, pixels)  # refused: nothing of the above is kept
        quotas.record(job.owner_id, jobs=1, pixels=pixels)
        scheduling.mark_job_runnable(job.pk)  # the job's tiles moved first (see lifecycle)
        kept = tiles.filter(status=TileStatus.SUCCEEDED).count()
        attempt = job.attempt + 1
        if is_chain(job):  # the steps, which the log lists per step below
            why = [f"the steps changed from step {changed + 1} ({kind.steps[changed].kind.name})"] if changes else []
        else:
            why = [f"parameters changed ({'; '.join(f'{name} {old!r} -> {new!r}' for name, (old, new) in changes.items())})"
                   ] if changes else []
        if redefined:
            why.append(f"{kind.name} is defined anew since it ran (version {job.type_version} -> {kind.version})")
        lifecycle.job_log(job.pk, f"resumed by {by or 'the system'} (attempt {attempt}): "
                                  + (f"{'; '.join(why)}, every tile runs again" if why
                                     else f"{kept} tiles kept from before") + f"; {to_run} tiles to run"
                                  + (f"; per step: {chainruns.describe(kind, starts)}" if starts else ""))
        transaction.on_commit(runners.wake)
    job.refresh_from_db()
    return job, to_run


def _as_dict(params):
    if not isinstance(params, dict):
        raise Rejected({"params": "must be an object of parameter names to values"})
    return params


def _forget_lost_outputs(job_id):
    """Succeeded tiles whose output is gone or not the size recorded when it was written lose
    their succeeded status, so that they run again. The tiles of a block share its file, each
    recording its share of the bytes: they are kept or run again together, and a file that is
    not intact is removed once no tile refers to it."""
    shared = {}
    for pk, relpath, size in JobTile.objects.filter(job_id=job_id, status=TileStatus.SUCCEEDED).values_list(
            "pk", "output_path", "output_size").iterator():
        shared.setdefault(relpath, []).append((pk, size or 0))
    lost, broken = [], []
    for relpath, tiles in shared.items():
        try:
            intact = bool(relpath) and media.media_path(relpath).stat().st_size == sum(size for _, size in tiles)
        except FileNotFoundError:
            intact = False
        except OSError:  # unreadable now (the storage's error): run the tiles again, but leave the file be
            lost.extend(pk for pk, _ in tiles)
            continue
        if not intact:
            lost.extend(pk for pk, _ in tiles)
            broken.append(relpath)
    for start in range(0, len(lost), storage.CHUNK):
        lifecycle.move_tiles(job_id, "forget", JobTile.objects.filter(pk__in=lost[start:start + storage.CHUNK]))
    storage.remove_files_on_commit(relpath for relpath in broken if relpath)


def job_delete(*, job):
    """Delete a finished job with its tiles and logs, and its files once the deletion is committed."""
    job_id = job.pk
    with transaction.atomic():
        finished = Job.objects.select_for_update().filter(pk=job_id, status__in=JobStatus.final()).first()
        if finished is None:
            status = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
            raise Conflict(f"job {job_id} is {status}; cancel it first, only finished jobs can be deleted")
        finished.delete()
        transaction.on_commit(lambda: shutil.rmtree(storage.job_dir(job_id), ignore_errors=True))
