"""A job type written in Python, as a site would register it with JOBSITE_PYTHON_JOB_TYPES: the
interface is jobs.jobschema.JobType (parameters, halo, process one tile, and the merge, by default
a mosaic of the tile rasters)."""

import time
from dataclasses import dataclass

import numpy as np

from jobs.jobschema import JobType, Param
from jobs.raster.chain import in_memory
from jobs.raster.io import Cancelled, open_tile, tile_layout, write_gtiff, written_atomically


@dataclass(frozen=True)
class Offset(JobType):
    """Every valid pixel plus `amount` (a per-pixel operation: no halo)."""

    def process_tile(self, *, tile, neighbours, grid, params, inputs, out_path, progress):
        ds = open_tile(tile.path)
        band = ds.GetRasterBand(1)
        pixels, nodata = band.ReadAsArray().astype(np.float32), band.GetNoDataValue()
        valid = pixels != nodata if nodata is not None else np.ones(pixels.shape, dtype=bool)
        pixels[valid] += params["amount"]
        with written_atomically(out_path) as tmp:
            write_gtiff(tmp, pixels, ds.GetGeoTransform(), grid.crs_wkt, nodata, tile_layout(tile.width, tile.height))
        return out_path.stat().st_size

    in_chains = "any"

    def chain_step(self, params, inputs, grid):
        return OffsetStep(self.name, params["amount"])


@dataclass(frozen=True)
class OffsetStep:
    """Offset as a step of a chain: the same sum over the window the step before left."""

    name: str
    amount: float
    halo = 0

    def run(self, source, callback, progress):
        band = source.GetRasterBand(1)
        pixels, nodata = band.ReadAsArray().astype(np.float32), band.GetNoDataValue()
        valid = pixels != nodata if nodata is not None else np.ones(pixels.shape, dtype=bool)
        pixels[valid] += self.amount
        return in_memory(pixels, source.GetGeoTransform(), source.GetProjection(), nodata)


OFFSET = Offset("offset", "Every valid pixel plus an amount.",
                (Param("amount", "number", 1.0, "What is added to each pixel"),), version="2")
NOT_A_TYPE = "offset"


@dataclass(frozen=True)
class Pause(Offset):
    """Takes `seconds` per tile (asking its progress callback meanwhile, as GDAL does), then writes
    the tile as it is: a tile of known length, for tests of scheduling and failover. Its own
    process_tile keeps it out of chains: its parent's step is not its work."""

    def process_tile(self, *, params, progress, **kwargs):
        end = time.monotonic() + params["seconds"]
        while time.monotonic() < end:
            if not progress(0.5):
                raise Cancelled("stopped")
            time.sleep(0.01)
        return super().process_tile(params={"amount": 0.0}, progress=progress, **kwargs)


PAUSE = Pause("pause", "Each tile as it is, after a pause.",
              (Param("seconds", "number", 0.1, "How long each tile takes", minimum=0, maximum=10),))
