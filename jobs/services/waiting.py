"""Data files and the jobs that read them: waiting jobs start once their files have all arrived
(or fail on one that arrived unfit), and a file in use by a job is not replaced or deleted.

`jobs_start_waiting` runs after an upload (the `datafile_stored` signal) and in the sweep.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from datafiles import services as datafiles
from datafiles.formats import Unreadable
from datafiles.models import DataFile

from .. import lifecycle, runners, scheduling
from ..chains import job_type_of
from ..models import Job, JobInput, JobLog, JobStatus, Start


def jobs_start_waiting(*, owner_id=None):
    """Waiting jobs whose data files have all arrived are queued (unless they wait for tiles too:
    jobs.services.latetiles); a file of the wrong kind fails the job. For one owner's jobs (after an upload) or everybody's (the sweep)."""
    waiting = Job.objects.filter(status=JobStatus.WAITING)
    if owner_id is not None:
        waiting = waiting.filter(owner_id=owner_id)
    for job in waiting.prefetch_related("inputs"):
        _read_arrived_tables(job)
        with transaction.atomic():
            # Its row first, as jobs.services.latetiles takes it: a tile and a file that arrive
            # together are seen one after the other, and the later queues the job.
            if not list(Job.objects.select_for_update(no_key=True).filter(pk=job.pk, status=JobStatus.WAITING)
                        .values_list("pk", flat=True)):
                continue
            missing, wrong = link_arrived_inputs(job)
            if wrong:
                error = "; ".join(wrong)
                lifecycle.move_job(job.pk, "fail", only_from=[JobStatus.WAITING], error=error,
                                   message=f"failed: {error}", level=JobLog.Level.ERROR)
            elif missing:
                Job.objects.filter(pk=job.pk, status=JobStatus.WAITING).update(waiting_for=missing)
            # Unless it waits for tiles still: a condition of the UPDATE, which sees the tiles that
            # jobs.services.latetiles has just given it.
            elif lifecycle.move_job(job.pk, "queue", where=Q(waiting_for_tiles=[]) | Q(start=Start.AS_AVAILABLE),
                                    message="its data files have all arrived; queued"):
                scheduling.mark_job_runnable(job.pk)
                transaction.on_commit(runners.wake)
            else:
                Job.objects.filter(pk=job.pk, status=JobStatus.WAITING).update(waiting_for=[])


def link_arrived_inputs(job):
    """Link each input of `job` that has no data file yet to the owner's file of its name, if that
    has arrived and fits. Returns (file names still missing, problems of files that arrived unfit)."""
    missing, wrong = [], []
    for job_input in job.inputs.all():
        if job_input.datafile_id is not None:
            continue
        datafile = DataFile.objects.filter(owner_id=job.owner_id, name=job_input.file_name).first()
        needed = next((i for i in job_type_of(job).inputs if i.name == job_input.name), None)
        if needed is None:  # a resumed chain no longer reads it
            continue
        if datafile is None:
            missing.append(job_input.file_name)
            continue
        try:
            problem = unfit_input(datafile, needed)
        except Unreadable:  # it could not be read just now: the job waits for the next try (the sweep)
            missing.append(job_input.file_name)
            continue
        if problem:
            wrong.append(f"{job_input.file_name} arrived, but {problem}")
        else:
            JobInput.objects.filter(pk=job_input.pk).update(datafile=datafile)
    return missing, wrong


def _read_arrived_tables(job):
    """Have GDAL read the colour tables that arrived for `job` before the job's rows are locked (the
    answer is kept with each file), so that the locked part only reads the answer."""
    tables = {i.name for i in job_type_of(job).inputs if i.reads_as == "color_table"}
    for job_input in job.inputs.all():
        if job_input.datafile_id is None and job_input.name in tables:
            datafile = DataFile.objects.filter(owner_id=job.owner_id, name=job_input.file_name, kind="text").first()
            try:
                if datafile is not None:
                    datafiles.color_table_problem(datafile)
            except Unreadable:
                pass  # the locked part keeps the job waiting


def unfit_input(datafile, needed):
    """What makes `datafile` unfit as the input `needed` (a job type's Input), or None: another kind
    of file, more polygons than MAX_ZONES (from the metadata read at upload), or a text that GDAL
    cannot read as the colour table the input is. Raises Unreadable when that could not be told
    just now."""
    if datafile.kind != needed.kind:
        return f"{datafile.name} is a {datafile.kind} file; {needed.name} needs a {needed.kind} file"
    layers = datafile.metadata.get("layers") or [{}]
    features = layers[0].get("feature_count") or 0
    if needed.kind == "vector" and features > settings.MAX_ZONES:
        return f"{datafile.name} has {features:,} features; the limit is {settings.MAX_ZONES:,} (JOBSITE_MAX_ZONES)"
    if needed.reads_as == "color_table" and (problem := datafiles.color_table_problem(datafile)):
        return f"{datafile.name} is not a colour table that GDAL can read: {problem}"
    return None


def start_jobs_waiting_for(sender, datafile, **kwargs):
    """The `datafile_stored` signal: the owner's waiting jobs may have all their files now."""
    jobs_start_waiting(owner_id=datafile.owner_id)


def jobs_reading(sender, datafile, **kwargs):
    """The `datafile_in_use` signal: the queued, running or merging jobs that read the file."""
    return (JobInput.objects.filter(datafile=datafile, job__status__in=[JobStatus.QUEUED, JobStatus.RUNNING,
                                                                        JobStatus.MERGING])
            .values_list("job_id", flat=True).distinct())
