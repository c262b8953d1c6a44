"""calc (a band-math expression, jobs.raster.calc) as a step of a chain (jobs.raster.chain). Knows
nothing of Django: the warp of another collection's band onto the window comes with the step.

Its inputs are bands of the job's collection, read over the window from the tiles; bands of another
collection, warped onto the window's pixels; and, after the first step, results of earlier steps
(`{"step": k}`), cropped to the window. As the first step it reads its window itself (`read`); later
it runs on the window the step before left (`run`), seeing the chain through a ChainView.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import calc
from .chain import in_memory
from .io import read_area


@dataclass(frozen=True)
class CalcStep:
    name: str
    params: dict
    resampled: object  # (input spec, geotransform, size (.width, .height), CRS WKT, resampling, progress) -> (pixels, valid)
    halo = 0

    @property
    def reads_steps(self):
        return frozenset(spec["step"] for spec in self.params["inputs"].values() if "step" in spec)

    def read(self, area, sources, grid, halo):
        """The first step: its result over the area grown by `halo`, as a HaloWindow."""
        own = sorted({spec["band"] for spec in self._used().values() if spec.get("collection") == grid.collection})
        windows = {band: read_area(area, sources, grid, halo, band) for band in own or [1]}
        window = windows[(own or [1])[0]]
        pixels, nodata = self._evaluate(window.pixels.shape, window.geotransform, grid,
                                        lambda band: (windows[band].pixels, windows[band].nodata), None)
        return dataclasses.replace(window, pixels=pixels, nodata=nodata)

    def run(self, source, callback, progress, view):
        """A later step: its result over the window the step before left."""
        pixels, nodata = self._evaluate((source.RasterYSize, source.RasterXSize), view.geotransform, view.grid,
                                        view.band, view.step_result)
        return in_memory(pixels, view.geotransform, view.grid.crs_wkt, nodata)

    def _used(self):
        used = calc.check_expression(self.params["expression"], set(self.params["inputs"]))
        return {name: self.params["inputs"][name] for name in sorted(used)}

    def _evaluate(self, shape, geotransform, grid, own_band, step_result):
        params = self.params
        nodata = params["nodata"] if params.get("nodata") is not None else calc.type_nodata(params["output_type"])
        arrays, valid = {}, np.ones(shape, dtype=bool)
        for name, spec in self._used().items():
            if "step" in spec or spec["collection"] == grid.collection:
                pixels, missing = step_result(spec["step"]) if "step" in spec else own_band(spec["band"])
                pixels = pixels.astype(np.float64)
                ok = ~np.isnan(pixels) if missing is None else (pixels != missing) & ~np.isnan(pixels)
            else:
                pixels, ok = self.resampled(spec, geotransform, _Size(shape[1], shape[0]), grid.crs_wkt,
                                            params["resampling"], None)
            arrays[name] = pixels
            valid &= ok
        return calc.evaluate(params["expression"], arrays, valid, params["output_type"], nodata), nodata


@dataclass(frozen=True)
class _Size:
    width: int
    height: int
