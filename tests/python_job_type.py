"""A job type written in Python, as a site would register it with JOBSITE_PYTHON_JOB_TYPES: the
interface is jobs.jobschema.JobType (parameters, halo, process one tile, and the merge, by default
a mosaic of the tile rasters)."""

from dataclasses import dataclass

import numpy as np

from jobs.jobschema import JobType, Param
from jobs.raster.io import open_tile, tile_layout, write_gtiff, written_atomically


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


OFFSET = Offset("offset", "Every valid pixel plus an amount.",
                (Param("amount", "number", 1.0, "What is added to each pixel"),), version="2")
NOT_A_TYPE = "offset"
