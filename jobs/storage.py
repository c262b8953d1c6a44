"""Where job files live, how much they take, and removing them.

Paths are built from ids only, never from user text, and stored relative to MEDIA_ROOT (which may
be mounted elsewhere on other hosts). The database records every tile output it relies on; files
are removed only after the transaction that forgot them has committed.
"""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from jobsite.media import remove_files_on_commit

from .models import Job, JobStatus, JobTile

CHUNK = 500


def job_dir(job_id):
    return Path(settings.MEDIA_ROOT) / "jobs" / str(int(job_id))


def tile_output_relpath(job_id, tile_id, attempt, suffix=".tif"):
    """Each attempt writes its own file, so a stale worker can only ever remove its own output."""
    return f"jobs/{int(job_id)}/tiles/{int(tile_id)}_{int(attempt)}{suffix}"


def block_output_relpath(job_id, first_tile_id, last_tile_id, attempt, suffix=".tif"):
    """A block's file (jobs.raster.blocks), shared by its tiles: named by its first and last tile,
    at the attempt of its first, which no other claim of that tile writes."""
    return f"jobs/{int(job_id)}/tiles/{int(first_tile_id)}-{int(last_tile_id)}_{int(attempt)}{suffix}"


def step_output_relpath(job_id, first_tile_id, last_tile_id, attempt, step):
    """The interim result of a chain's step (jobs.chains) for a tile or a block of tiles."""
    return f"jobs/{int(job_id)}/steps/{int(step)}/{int(first_tile_id)}-{int(last_tile_id)}_{int(attempt)}.tif"


def output_relpath(job_id, name):
    return f"jobs/{int(job_id)}/out/{name}"


def remove_leftovers(job_id):
    """Temporary files of writers that were killed before they could rename them into place."""
    for leftover in job_dir(job_id).rglob(".*.part"):
        leftover.unlink(missing_ok=True)


def drop_interim_results(job_ids, remove=remove_files_on_commit):
    """Forget the tile outputs and the chain steps' interim results of these jobs and remove the
    files once committed.

    Returns (files, bytes). Only for jobs no worker writes to any more: ended or succeeded ones.
    The tiles of a block share its file, each recording its share of the bytes.
    """
    job_ids = list(job_ids)
    files, size = drop_tile_outputs(job_ids, remove)
    for start in range(0, len(job_ids), CHUNK):
        step_files, step_bytes = drop_step_outputs(JobTile.objects.filter(job_id__in=job_ids[start:start + CHUNK]),
                                                   remove=remove)
        files, size = files + step_files, size + step_bytes
    return files, size


def drop_tile_outputs(job_ids, remove=remove_files_on_commit):
    """drop_interim_results for the tiles' outputs alone (of a chain, its last step's)."""
    files, size = 0, 0
    job_ids = list(job_ids)
    for start in range(0, len(job_ids), CHUNK):
        tiles = JobTile.objects.filter(job_id__in=job_ids[start:start + CHUNK]).exclude(output_path="")
        rows = list(tiles.values_list("output_path", "output_size"))
        tiles.update(output_path="", output_size=None)
        paths = list(dict.fromkeys(path for path, _ in rows))
        remove(paths)
        files += len(paths)
        size += sum(s or 0 for _, s in rows)
    return files, size


def drop_step_outputs(tiles, remove=remove_files_on_commit):
    """Forget the interim results of the chain steps of these tiles (a JobTile queryset of whole
    jobs: a block's file is shared only within its job) and remove their files once committed.
    Returns (files, bytes)."""
    changed, dropped, size = [], set(), 0
    for job_tile in tiles.filter(steps_size__gt=0).only("id", "steps", "steps_size").iterator(chunk_size=CHUNK):
        dropped.update(output[0] for output in job_tile.steps.get("outputs", []) if output)
        size += job_tile.steps_size
        job_tile.steps, job_tile.steps_size = {**job_tile.steps, "outputs": []}, 0
        changed.append(job_tile)
    JobTile.objects.bulk_update(changed, ["steps", "steps_size"], batch_size=CHUNK)
    remove(sorted(dropped))
    return len(dropped), size


def usage(user):
    """Bytes of interim results, outputs and data files, and jobs kept, with the limits per user: the
    user's own, or everybody's and per user for staff."""
    from datafiles.models import DataFile

    jobs = Job.objects.all() if user.is_staff else Job.objects.filter(owner=user)
    files = DataFile.objects.all() if user.is_staff else DataFile.objects.filter(owner=user)
    count, output, interim = _jobs_usage(jobs)
    answer = {**_totals(interim=interim, output=output, data=files.aggregate(n=Sum("size"))["n"], jobs=count),
              "limits": limits()}
    if user.is_staff:
        per_user = {}
        for key, rows in (
            ("interim", JobTile.objects.values_list("job__owner__username").annotate(n=Sum("output_size"))),
            ("steps", JobTile.objects.filter(steps_size__gt=0).values_list("job__owner__username")
             .annotate(n=Sum("steps_size"))),
            ("output", Job.objects.values_list("owner__username").annotate(n=Sum("outputs_size"))),
            ("jobs", Job.objects.values_list("owner__username").annotate(n=Count("id"))),
            ("data", DataFile.objects.values_list("owner__username").annotate(n=Sum("size"))),
        ):
            for name, n in rows:
                per_user.setdefault(name, {})[key] = n
        for counts in per_user.values():
            counts["interim"] = (counts.get("interim") or 0) + (counts.pop("steps", 0) or 0)
        answer["users"] = [{"username": name, **_totals(**per_user[name])} for name in sorted(per_user)]
    return answer


def limits():
    """What each user may keep (the quotas job_submit, job_resume and datafile_store check)."""
    return {"job_bytes": settings.JOB_STORAGE_QUOTA_BYTES, "jobs": settings.MAX_JOBS_PER_USER,
            "active_jobs": settings.MAX_ACTIVE_JOBS_PER_USER, "data_bytes": settings.DATAFILE_QUOTA_BYTES}


def job_usage(owner):
    """(jobs, bytes) of the owner's jobs: how many there are, and what their outputs and the interim
    results still on disk take. Two aggregate queries, however many jobs."""
    count, output, interim = _jobs_usage(Job.objects.filter(owner=owner))
    return count, output + interim


def _jobs_usage(jobs):
    """(jobs, output bytes, interim bytes) of a queryset of jobs."""
    totals = jobs.aggregate(jobs=Count("id"), output=Sum("outputs_size"))
    interim = JobTile.objects.filter(job__in=jobs).aggregate(
        tiles=Sum("output_size", filter=~Q(output_path="")), steps=Sum("steps_size"))
    return totals["jobs"], totals["output"] or 0, (interim["tiles"] or 0) + (interim["steps"] or 0)


def _totals(interim=0, output=0, data=0, jobs=0):
    interim, output, data = interim or 0, output or 0, data or 0
    return {"interim_bytes": interim, "output_bytes": output, "job_bytes": interim + output, "data_bytes": data,
            "total_bytes": interim + output + data, "jobs": jobs or 0}


def cleanup(*, owner=None, older_than_days=None, remove=remove_files_on_commit):
    """Delete the interim results of jobs that ended failed or canceled more than `older_than_days`
    days ago (any time ago without it), of `owner` or of everybody. Those jobs can then only be
    resumed by recomputing every tile, and say so (`interim_deleted`).

    Returns (jobs, files, bytes). The files go once the transaction commits.
    """
    jobs = Job.objects.filter(status__in=[JobStatus.FAILED, JobStatus.CANCELED], interim_deleted__isnull=True)
    if owner is not None:
        jobs = jobs.filter(owner=owner)
    if older_than_days is not None:
        jobs = jobs.filter(finished__lt=timezone.now() - timedelta(days=older_than_days))
    with transaction.atomic():
        # Locked, so a resume waiting on one of these jobs sees its interim results gone.
        job_ids = list(jobs.select_for_update(no_key=True).values_list("id", flat=True))
        now = timezone.now()
        for start in range(0, len(job_ids), CHUNK):
            Job.objects.filter(id__in=job_ids[start:start + CHUNK]).update(interim_deleted=now)
        files, size = drop_interim_results(job_ids, remove)
    return len(job_ids), files, size
