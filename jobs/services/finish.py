"""Finishing: once a job's last tile has ended, either the merge of its tile results into its
outputs or the job's failure, naming the tiles that failed.

`job_finish_tiles` runs after a worker's last tile, and in repair; `job_merge` is the merge task's
entry point (or runs at once in the worker that did the last tile).
"""

import logging
import time

from django.db import DatabaseError
from django.db.models import Exists, OuterRef, Q

from jobsite import media
from datafiles.formats import without_paths
from jobsite.gdalpolicy import thread_config

from .. import lifecycle, queue, storage, tileindex
from . import footprints, maps, quotas, usage
from .claims import Watch

from jobsite.exceptions import Rejected, id_list
from ..chains import job_type_of
from ..models import Job, JobLog, JobStatus, JobTile, TileStatus
from ..raster.io import Cancelled, RasterError

logger = logging.getLogger(__name__)


def job_finish_tiles(*, job_id, merge_here=False, before_merge=None):
    """Once no tile is waiting, pending or running and the job waits for no tile: merge if all
    succeeded, else fail naming the failed tiles.
    With `merge_here` (a worker that did the last tile) the merge runs in this process at once,
    after `before_merge()` if given, else as a task of its own. Returns whether it merged here."""
    unfinished = JobTile.objects.filter(job=OuterRef("pk"), status__in=[TileStatus.WAITING, TileStatus.PENDING,
                                                                       TileStatus.RUNNING])
    failed_tiles = JobTile.objects.filter(job=OuterRef("pk"), status=TileStatus.FAILED)
    # A job that waits for tiles still (jobs.services.latetiles) merges once they have arrived and run.
    if lifecycle.move_job(job_id, "merge", where=~Exists(unfinished) & ~Exists(failed_tiles) & Q(waiting_for_tiles=[]),
                          message="all tiles done; merging"):
        if merge_here:
            if before_merge is not None:
                before_merge()
            job_merge(job_id=job_id)
            return True
        queue.enqueue_merge(job_id)
        return False
    failed = list(JobTile.objects.filter(job_id=job_id, status=TileStatus.FAILED).order_by("tile__number").values_list("tile__number", flat=True))
    if not failed:
        return False
    error = f"{len(failed)} of its tiles failed: {id_list(failed)}"
    lifecycle.move_job(job_id, "fail", only_from=[JobStatus.RUNNING], where=~Exists(unfinished) & Exists(failed_tiles),
                       error=error, message=f"failed: {error}", level=JobLog.Level.ERROR)
    return False


class MergeWatch(Watch):
    """The progress callback of a merge: False once the job is no longer merging (canceled) or
    merges again in another task, asked of the database at most every `interval` seconds."""

    def __init__(self, job, interval=0.5):
        super().__init__(interval)
        self.job_id, self.merge_started = job.pk, job.merge_started

    def __call__(self, fraction):
        if not self.due():
            return True
        # A merge run again (merge_again) has a later start: this one gives way to it.
        return Job.objects.filter(pk=self.job_id, status=JobStatus.MERGING, merge_started=self.merge_started).exists()


def job_merge(*, job_id):
    """Merge the tile results of a merging job into its outputs (a COG and a thumbnail for rasters).
    The CPU seconds it used count in its owner's usage of the day (jobs.services.quotas)."""
    job = Job.objects.filter(pk=job_id, status=JobStatus.MERGING).first()
    if job is None:
        return
    measure = usage.TileMeasure()
    try:
        _merge(job)
    finally:
        try:
            quotas.record(job.owner_id, cpu_seconds=measure.done()[0])
        except DatabaseError:
            logger.warning("job %s: the merge's CPU seconds could not be recorded", job.pk)


def _merge(job):
    job_id = job.pk
    kind = job_type_of(job)
    relpaths = list(job.tiles.filter(status=TileStatus.SUCCEEDED).order_by("tile__number").values_list("output_path", flat=True))
    tiles = len(relpaths)
    relpaths = list(dict.fromkeys(relpaths))  # a block's tiles share its file
    out_dir = media.media_path(storage.output_relpath(job.id, ""))
    started = time.monotonic()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with thread_config(GDAL_NUM_THREADS="ALL_CPUS"):
            written, results = kind.merge(tile_paths=[media.media_path(p) for p in relpaths], out_dir=out_dir,
                                          params=job.params, inputs=job.input_files(),
                                          crs_wkt=tileindex.index_crs_wkt(job.collection_id) if kind.uses_tiles else None,
                                          progress=MergeWatch(job))
    except Cancelled:
        logger.info("job %s merge stopped: the job is no longer merging", job_id)
        return
    except DatabaseError:
        raise  # the database away: the sweep runs the merge again (merge_again)
    except Exception as exc:
        if isinstance(exc, (RasterError, OSError, Rejected, tileindex.LoadError)):
            logger.warning("job %s merge: %s", job_id, exc)  # with the paths, for the operator
            error = f"merge failed: {without_paths(str(exc))}"
        else:  # a job type's own merge (a site's Python type) that breaks: the job fails, not the task
            logger.exception("job %s merge", job_id)
            error = "merge failed: an error in the job type's merge (the cluster's log has it)"
        lifecycle.move_job(job_id, "fail", only_from=[JobStatus.MERGING], error=error, message=error,
                           level=JobLog.Level.ERROR)
        return
    outputs = [maps.described({"name": name, "path": storage.output_relpath(job.id, name), "content_type": content_type,
                               "size": (out_dir / name).stat().st_size}) for name, content_type in written]
    size = sum(output["size"] for output in outputs)
    names = ", ".join(output["name"] for output in outputs)
    if not lifecycle.move_job(job_id, "succeed", outputs=outputs, outputs_size=size, results=results,
                              **footprints.result_extent(job, outputs),
                              message=f"succeeded: merged {tiles} tiles into {names} ({size} bytes) "
                                      f"in {time.monotonic() - started:.1f} s"):
        media.remove_files([output["path"] for output in outputs])
