"""The calc job type: band math over bands of one or several collections, equal to the same
arithmetic on the whole rasters, and every expression that is not plain arithmetic refused."""

import re

import numpy as np
import pytest
from django.core.management import call_command
from osgeo import gdal

from jobs.models import Job, JobStatus, JobTile
from jobs.raster import calc
from jobs.raster.io import crs_wkt_from_epsg
from jobs.services.submit import job_submit
from jobsite.exceptions import Rejected

from .conftest import EPSG, NODATA, ORIGIN, PIXEL
from .test_execution import merged_pixels, run


@pytest.mark.parametrize("expression,problem", [
    ("(nir - red", "is not an expression"),
    ("nir + blue", "'blue', which is not an input; the inputs are nir, red"),
    ("__import__('os')", "may not call __import__()"),
    ("__import__('os').system('id')", "may not call attributes (.system)"),
    ("nir.real", "may not use attributes (.real)"),
    ("nir[0]", "may not use subscripts"),
    ("(lambda: 1)()", "may not call lambda"),
    ("'text'", "may not use the constant 'text'"),
    ("nir if red else 1", "may not use if/else (use where())"),
    ("nir and red", "may not use and/or"),
    ("red < nir < 3", "may not chain comparisons"),
    ("where(nir, red, x=1)", "takes no keyword arguments"),
    ("sum(nir)", "may not call sum()"),
    ("nir + " * 300 + "red", "characters long"),
    ("", "must be a non-empty expression"),
])
def test_an_expression_that_is_not_plain_arithmetic_is_refused(expression, problem):
    with pytest.raises(calc.ExpressionError, match=re.escape(problem)):
        calc.check_expression(expression, {"nir", "red"})


def test_the_allowed_functions_and_operators_pass():
    used = calc.check_expression("where((nir > 0) & ~(red < 0), sqrt(abs(nir - red)) ** 2 % 7, -1.5e3)", {"nir", "red"})
    assert used == {"nir", "red"}


def test_division_by_zero_and_values_an_integer_type_cannot_hold_are_nodata():
    a = np.array([[1.0, 2.0, 300.0, 0.0]])
    valid = np.array([[True, True, True, False]])
    assert calc.evaluate("a / (a - a)", {"a": a}, valid, "Float32", -9999.0).tolist() == [[-9999.0] * 4]
    assert calc.evaluate("a * 1.4", {"a": a}, valid, "Byte", 255.0).tolist() == [[1, 3, 255, 255]]
    assert calc.evaluate("2", {"a": a}, valid, "Int16", -32768.0).tolist() == [[2, 2, 2, -32768]]


def write_tiles(folder, bands, geotransform, size, wkt, nodata=None, first=100):
    """A raster of `bands` (2-D arrays of one shape) cut into tiles of `size` pixels, numbered
    first + 10 * row + col; returns the whole raster's path."""
    folder.mkdir(parents=True)
    height, width = bands[0].shape
    gdal_type = gdal.GDT_Float32

    def write(path, x, y, w, h):
        ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, len(bands), gdal_type)
        ds.SetGeoTransform((geotransform[0] + x * geotransform[1], geotransform[1], 0.0,
                            geotransform[3] + y * geotransform[5], 0.0, geotransform[5]))
        ds.SetProjection(wkt)
        for number, band in enumerate(bands, start=1):
            if nodata is not None:
                ds.GetRasterBand(number).SetNoDataValue(nodata)
            ds.GetRasterBand(number).WriteArray(band[y:y + h, x:x + w])

    for row, y in enumerate(range(0, height, size)):
        for col, x in enumerate(range(0, width, size)):
            write(folder / f"t_{first + row * 10 + col}.tif", x, y, min(size, width - x), min(size, height - y))
    whole = folder.parent / f"{folder.name}-whole.tif"
    write(whole, 0, 0, width, height)
    return whole


@pytest.fixture
def multispectral(db, tmp_path):
    """A collection `ms` of 120 x 90 pixels with 3 bands (red, green, nir) in tiles of 50."""
    rng = np.random.default_rng(4)
    red, green, nir = (rng.uniform(0, 1000, (90, 120)).astype(np.float32) for _ in range(3))
    red[10:20, 10:20] = 0.0
    nir[10:20, 10:20] = 0.0  # nir + red is 0 there
    red[0, :5] = -1.0  # nodata
    whole = write_tiles(tmp_path / "ms", [red, green, nir], (500000.0, 10.0, 0.0, 6000000.0, 0.0, -10.0), 50,
                        crs_wkt_from_epsg(32632), nodata=-1.0)
    call_command("load_tiles", str(tmp_path / "ms"), "--collection", "ms")
    return whole


NDVI = {"expression": "(nir - red) / (nir + red)", "inputs": {"nir": {"collection": "ms", "band": 3},
                                                             "red": {"collection": "ms", "band": 1}}}


def test_ndvi_over_two_bands_of_one_collection_equals_numpy_on_the_whole_raster(multispectral, owner, media):
    job = run(job_submit(owner=owner, job_type="calc", tile_ids=[100, 101, 102, 110, 111, 112], params=NDVI))
    assert job.status == JobStatus.SUCCEEDED and job.collection_id == "ms"
    whole = gdal.Open(str(multispectral)).ReadAsArray().astype(np.float64)
    red, nir = whole[0], whole[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / (nir + red)
    expected = np.where((red != -1.0) & (nir != -1.0) & np.isfinite(ndvi), ndvi, -9999.0).astype(np.float32)
    result = merged_pixels(job)
    assert result.dtype == np.float32 and np.array_equal(result, expected)
    assert (result[10:20, 10:20] == -9999.0).all() and (result[0, :5] == -9999.0).all()


@pytest.fixture
def coarse(index, tmp_path):
    """A collection `dem10` of the same ground as `index` at 10 m (the 5 m DEM averaged), in tiles
    of 40 pixels: the same tile numbers as `index` may recur."""
    averaged = gdal.Translate("", str(index.whole), format="MEM", xRes=10, yRes=10, resampleAlg="average")
    pixels = averaged.ReadAsArray()
    write_tiles(tmp_path / "dem10", [pixels], averaged.GetGeoTransform(), 40, crs_wkt_from_epsg(EPSG), nodata=NODATA)
    call_command("load_tiles", str(tmp_path / "dem10"), "--collection", "dem10")
    return tmp_path / "dem10-whole.tif"


@pytest.mark.parametrize("resampling", ["near", "bilinear", "cubic"])
def test_calc_over_two_collections_with_different_pixel_sizes_equals_one_whole_warp(
        index, coarse, owner, media, resampling):
    # PostgreSQL's jsonb stores "c" before "finegrid": the job still runs over the first input's grid.
    params = {"expression": "finegrid - c", "resampling": resampling, "output_type": "Float64",
              "inputs": {"finegrid": {"collection": "default"}, "c": {"collection": "dem10"}}}
    job = run(job_submit(owner=owner, job_type="calc", tile_ids=index.ids, params=params))
    assert job.status == JobStatus.SUCCEEDED and job.collection_id == "default"
    fine = gdal.Open(str(index.whole)).ReadAsArray().astype(np.float64)
    height, width = fine.shape
    onto = gdal.Warp("", str(coarse), format="MEM", outputBounds=(ORIGIN[0], ORIGIN[1] - height * PIXEL,
                                                                   ORIGIN[0] + width * PIXEL, ORIGIN[1]),
                     width=width, height=height, resampleAlg=resampling, errorThreshold=0, outputType=gdal.GDT_Float64,
                     workingType=gdal.GDT_Float64, dstNodata=float("nan")).ReadAsArray()
    expected = np.where((fine != NODATA) & ~np.isnan(onto), fine - onto, -9999.0)
    assert np.array_equal(merged_pixels(job), expected)


def test_every_bad_calc_request_is_refused_naming_the_field_and_writes_nothing(multispectral, index, owner):
    cases = [
        ({**NDVI, "expression": "nir / blue"}, "expression", "'blue', which is not an input"),
        ({**NDVI, "inputs": {"nir": {"collection": "nosuch", "band": 1}}}, "inputs.nir", "unknown collection 'nosuch'"),
        ({**NDVI, "inputs": {"nir": {"collection": "ms", "band": 4}, "red": {"collection": "ms"}}}, "inputs.nir",
         "collection ms has 3 band(s), not 4"),
        ({**NDVI, "inputs": {"Bad-Name": {"collection": "ms"}}}, "inputs.Bad-Name", "is not an input name: it must be"),
        ({**NDVI, "inputs": {"where": {"collection": "ms"}}}, "inputs.where", "it is a function name"),
        ({**NDVI, "inputs": {"max": {"collection": "ms"}}}, "inputs.max", "it is a function name"),
        ({**NDVI, "inputs": {"in": {"collection": "ms"}}}, "inputs.in", "Python keyword"),
        ({**NDVI, "inputs": {"nir": {"collection": ["ms"]}}}, "inputs.nir", "collection must be a string"),
        ({**NDVI, "expression": "nir + 7**10**7"}, "expression", "a constant part of it is too large"),
        ({**NDVI, "expression": "nir & red"}, "expression", "numexpr has no such operation"),
        ({**NDVI, "expression": "arctan2(nir)"}, "expression", "numexpr has no such operation"),
        ({**NDVI, "nodata": 1e39}, "nodata", "is not a value of Float32"),
        ({**NDVI, "inputs": {"nir": {"collection": "ms", "band": 0}}}, "inputs.nir", "band must be at least 1"),
        ({**NDVI, "inputs": {"nir": "ms"}}, "inputs.nir", "must be an object"),
        ({**NDVI, "inputs": {"nir": {"collection": "ms", "bands": 1}}}, "inputs.nir", "takes only collection, band"),
        ({**NDVI, "inputs": {"nir": {"band": 1}}}, "inputs.nir", "needs collection"),
        ({**NDVI, "inputs": {f"b{n}": {"collection": "ms"} for n in range(9)}}, "inputs", "must have at most 8"),
        ({**NDVI, "inputs": {}}, "inputs", "must have at least 1 entry"),
        ({**NDVI, "inputs": [1]}, "inputs", "must be an object"),
        ({**NDVI, "output_type": "Complex64"}, "output_type", "must be one of"),
        ({**NDVI, "output_type": "Byte", "nodata": -1}, "nodata", "-1 is not a value of Byte"),
        ({"inputs": NDVI["inputs"]}, "expression", "is required"),
    ]
    for params, field, problem in cases:
        with pytest.raises(Rejected) as refused:
            job_submit(owner=owner, job_type="calc", tile_ids=[100], params=params)
        assert problem in refused.value.errors["params"][field], (params, refused.value.errors)
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="calc", tile_ids=[100], params=NDVI, collection="default")
    assert "first input's collection, ms" in refused.value.errors["collection"]
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="calc", tile_ids=[999], params=NDVI)
    assert "unknown tile ids: 999 (in collection ms)" in refused.value.errors["tile_ids"]
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="slope", tile_ids=[100], params={"band": 2})
    assert refused.value.errors["params"]["band"] == "collection default has 1 band, not 2"
    assert not Job.objects.exists() and not JobTile.objects.exists()


def test_a_band_given_as_a_whole_float_is_stored_as_an_integer(multispectral, owner):
    job = job_submit(owner=owner, job_type="calc", tile_ids=[100], params={
        **NDVI, "inputs": {"nir": {"collection": "ms", "band": 3.0}, "red": {"collection": "ms", "band": 2}}})
    assert job.params["inputs"]["nir"]["band"] == 3 and isinstance(job.params["inputs"]["nir"]["band"], int)


def test_a_single_band_operation_reads_the_band_it_is_given(multispectral, owner, media):
    job = run(job_submit(owner=owner, job_type="slope", tile_ids=[100, 101], params={"band": 2}, collection="ms"))
    assert job.status == JobStatus.SUCCEEDED
    green = gdal.Translate("", str(multispectral), format="MEM", bandList=[2])
    expected = gdal.DEMProcessing("", green, "slope", format="MEM").ReadAsArray()[:50, :100]
    assert np.array_equal(merged_pixels(job), expected)


def test_resuming_a_job_stored_before_band_existed_with_band_1_changes_nothing(index, owner):
    from jobs.models import JobLog
    from jobs.services.control import job_cancel, job_resume

    job = job_cancel(job=job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2]), by="owner")
    old = {name: value for name, value in job.params.items() if name != "band"}
    Job.objects.filter(pk=job.pk).update(params=old)
    job_resume(job=Job.objects.get(pk=job.pk), params={"band": 1})
    assert not JobLog.objects.filter(job=job, message__contains="parameters changed").exists()
