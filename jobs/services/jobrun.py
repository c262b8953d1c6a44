"""What a worker keeps about a job whose tiles it runs (JobRun): its type, input files and
collection's grid (read again when a load changes it), and how long its tiles took."""

from .. import tileindex
from ..chains import job_type_of
from . import claims


class JobRun:
    """What a worker keeps about a job whose tiles it runs: the job, its type, input files and grid,
    and how long its tiles took."""

    def __init__(self, job):
        self.job, self.kind = job, job_type_of(job)
        self.inputs = job.input_files()
        self.grid, self.grid_stamp = None, None
        self.refresh_grid()
        self.speed_key = (job.type, job.type_version, job.collection_id)
        self.seconds_per_tile = claims.known_seconds_per_tile(self.speed_key)

    def measured(self, seconds, batch, succeeded):
        """Take in the `seconds` a `batch` of claimed tiles took, `succeeded` of them. Only a batch
        whose tiles all succeeded speaks for the next job of the type: tiles that failed or stopped
        at once would make it start at too large a batch."""
        self.seconds_per_tile = seconds / len(batch)
        if succeeded == len(batch):
            claims.remember_seconds_per_tile(self.speed_key, self.seconds_per_tile)

    def batch_size(self):
        return claims.batch_size(self.seconds_per_tile)

    def refresh_grid(self):
        """Read the collection's grid again if a load has changed it since (tiles appended beyond
        its extent, or before its origin), all of one moment: the collection's stamp (its
        `updated`) the same before and after."""
        if not self.kind.uses_tiles:
            return
        stamp = claims.grid_stamp(self.job.collection_id)
        while self.grid is None or stamp != self.grid_stamp:
            grid = tileindex.index_grid(self.job.collection_id)
            stamp, before = claims.grid_stamp(self.job.collection_id), stamp
            if stamp == before:
                self.grid, self.grid_stamp = grid, stamp

    def placed(self, batch):
        """The neighbours of a claimed batch's tiles, with the grid and the tiles' places of one
        moment. A load that changed the collection's grid after the claim (the tiles carry the
        stamp they were read with, jobs.services.claims) makes them be read again, and so does one
        that commits while the neighbours are read."""
        while True:
            claimed = getattr(batch[0].tile, "grid_stamp", self.grid_stamp)
            if claimed != self.grid_stamp:
                self.refresh_grid()
                if claimed != self.grid_stamp:  # the tiles' places may have moved since the claim
                    fresh = claims.tiles_with_stamp([job_tile.tile_id for job_tile in batch])
                    for job_tile in batch:
                        job_tile.tile = fresh[job_tile.tile_id]
                    continue
            around = tileindex.neighbours([job_tile.tile for job_tile in batch],
                                          self.kind.tile_halo(self.job.params, self.grid), self.grid)
            if claims.grid_stamp(self.job.collection_id) == self.grid_stamp:
                return around
