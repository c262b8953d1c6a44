"""Chains whose steps are not gdal.DEMProcessing operations: calc as the first step (its inputs read
from the job's collection and from another one, on another grid), and command-line types that an
operator declares (gdaldem, SAGA) as any step. Each equals the steps run one after the other over
the whole raster, with the tools themselves."""

import subprocess

import numpy as np
import pytest
from osgeo import gdal

from jobs.jobtypes import JOB_TYPES
from jobs.models import Job, JobStatus, JobTile
from jobs.raster.io import crs_wkt_from_epsg, write_raster
from jobs.services.submit import job_submit
from jobsite.exceptions import Rejected

from .conftest import EPSG, NODATA, ORIGIN, PIXEL, assert_same_pixels
from .test_calc import coarse  # noqa: F401 (a fixture)
from .test_declared_types import EXAMPLE, declare, whole_saga, write_yaml
from .test_execution import merged_pixels, run


def written(array, path, nodata):
    """`array` as a GeoTIFF over the test index's ground, as a whole-area step leaves it."""
    write_raster(path, array, (ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL), crs_wkt_from_epsg(EPSG), nodata=nodata)
    return path


def whole_calc(whole, function, tmp_path, output_type=np.float32, nodata=-9999.0):
    """calc's result over the whole index: `function` of its pixels as float64, nodata where the
    input is nodata, as a file."""
    dem = gdal.Open(str(whole)).ReadAsArray().astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = function(dem)
    keep = (dem != NODATA) & np.isfinite(result)
    return written(np.where(keep, result, nodata).astype(output_type), tmp_path / "whole-calc.tif", nodata)


def dem_steps(path, steps):
    result = gdal.Open(str(path))
    for processing, options in steps:
        result = gdal.DEMProcessing("", result, processing, format="MEM", **options)
    return result


def gdaldem_file(source, processing, out):
    subprocess.run(["gdaldem", processing, str(source), str(out), "-of", "GTiff", "-q"], check=True)
    return out


CALC = {"type": "calc", "params": {"expression": "where(dem > 100, dem * 2 - 150, dem / 2)",
                                   "inputs": {"dem": {"collection": "default"}}}}


def test_hillshade_of_a_calc_result_equals_calc_then_hillshade_over_the_whole_raster(index, owner, media, tmp_path):
    job = run(job_submit(owner=owner, tile_ids=index.ids, steps=[CALC, {"type": "hillshade", "params": {"z_factor": 2}}]))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.collection_id == "default" and job.params["steps"][0]["type"] == "calc"
    calc = whole_calc(index.whole, lambda dem: np.where(dem > 100, dem * 2 - 150, dem / 2), tmp_path)
    assert_same_pixels(dem_steps(calc, [("hillshade", {"zFactor": 2})]).ReadAsArray(), merged_pixels(job))


def test_a_calc_over_two_collections_then_slope_over_part_of_the_index(index, coarse, owner, media, tmp_path):  # noqa: F811
    params = {"expression": "fine - c", "resampling": "bilinear", "output_type": "Float64",
              "inputs": {"fine": {"collection": "default"}, "c": {"collection": "dem10"}}}
    inner = [index.id_at(1, 1), index.id_at(1, 2), index.id_at(2, 1), index.id_at(2, 2)]  # rows 64-190, columns 64-192
    job = run(job_submit(owner=owner, tile_ids=inner, steps=[{"type": "calc", "params": params}, {"type": "slope"}]))
    assert job.status == JobStatus.SUCCEEDED, job.error
    fine = gdal.Open(str(index.whole)).ReadAsArray().astype(np.float64)
    height, width = fine.shape
    onto = gdal.Warp("", str(coarse), format="MEM", outputBounds=(ORIGIN[0], ORIGIN[1] - height * PIXEL,
                                                                   ORIGIN[0] + width * PIXEL, ORIGIN[1]),
                     width=width, height=height, resampleAlg="bilinear", errorThreshold=0, outputType=gdal.GDT_Float64,
                     workingType=gdal.GDT_Float64, dstNodata=float("nan")).ReadAsArray()
    calc = written(np.where((fine != NODATA) & ~np.isnan(onto), fine - onto, -9999.0), tmp_path / "calc.tif", -9999.0)
    whole = dem_steps(calc, [("slope", {})]).ReadAsArray()
    assert_same_pixels(whole[64:190, 64:192], merged_pixels(job))


def test_calc_reads_earlier_steps_and_the_collection_mid_chain_and_a_step_after_it_sees_across_tiles(
        index, owner, media, tmp_path):
    calc = {"type": "calc", "params": {
        "expression": "where(dem > 150, h, s * 3)", "output_type": "Float32",
        "inputs": {"s": {"step": 0}, "h": {"step": 1}, "dem": {"collection": "default"}}}}
    job = run(job_submit(owner=owner, tile_ids=index.ids, steps=[
        {"type": "slope"}, {"type": "hillshade"}, calc, {"type": "slope"}]))
    assert job.status == JobStatus.SUCCEEDED, job.error
    dem = gdal.Open(str(index.whole)).ReadAsArray().astype(np.float64)
    slope_ds = dem_steps(index.whole, [("slope", {})])
    s = slope_ds.ReadAsArray().astype(np.float64)
    h = gdal.DEMProcessing("", slope_ds, "hillshade", format="MEM").ReadAsArray().astype(np.float64)
    keep = (dem != NODATA) & (s != -9999.0) & (h != 0)
    mixed = written(np.where(keep, np.where(dem > 150, h, s * 3), -9999.0).astype(np.float32),
                    tmp_path / "mixed.tif", -9999.0)
    assert_same_pixels(dem_steps(mixed, [("slope", {})]).ReadAsArray(), merged_pixels(job))


def test_declared_command_types_run_as_steps_of_a_chain(index, owner, media, monkeypatch, tmp_path):
    declare(monkeypatch, EXAMPLE)
    job = run(job_submit(owner=owner, tile_ids=index.ids, steps=[
        {"type": "slope"}, {"type": "tpi"}, {"type": "hillshade"}]))
    assert job.status == JobStatus.SUCCEEDED, job.error
    slope = tmp_path / "slope.tif"
    gdal.Translate(str(slope), dem_steps(index.whole, [("slope", {})]))
    tpi = gdaldem_file(slope, "TPI", tmp_path / "tpi.tif")
    assert_same_pixels(dem_steps(tpi, [("hillshade", {})]).ReadAsArray(), merged_pixels(job))


def test_a_saga_tool_reads_a_calc_result_as_its_step(index, owner, media, monkeypatch, tmp_path):
    declare(monkeypatch, EXAMPLE)
    corner = [index.id_at(0, 0), index.id_at(0, 1), index.id_at(1, 0), index.id_at(1, 1)]  # rows and columns 0-128
    job = run(job_submit(owner=owner, tile_ids=corner, steps=[CALC, {"type": "saga-slope", "params": {"method": "6"}}]))
    assert job.status == JobStatus.SUCCEEDED, job.error
    calc = whole_calc(index.whole, lambda dem: np.where(dem > 100, dem * 2 - 150, dem / 2), tmp_path)
    expected = whole_saga(calc, ["ta_morphometry", "0", "-ELEVATION", "{input}", "-SLOPE", "{output}",
                                 "-METHOD", "6", "-UNIT_SLOPE", "1"])
    assert np.array_equal(merged_pixels(job), expected[:128, :128])


def test_a_python_type_that_defines_its_step_runs_in_a_chain_and_one_that_does_not_is_refused(
        index, owner, media, monkeypatch, tmp_path):
    from jobs.declared import load_python

    for name, kind in load_python(["tests.python_job_type.OFFSET", "tests.python_job_type.PAUSE"],
                                  taken=JOB_TYPES).items():
        monkeypatch.setitem(JOB_TYPES, name, kind)
    job = run(job_submit(owner=owner, tile_ids=index.ids, steps=[
        {"type": "offset", "params": {"amount": 40}}, {"type": "slope"}, {"type": "offset"}]))
    assert job.status == JobStatus.SUCCEEDED, job.error
    whole = gdal.Open(str(index.whole)).ReadAsArray()
    offset = written(np.where(whole != NODATA, whole + 40, NODATA).astype(np.float32), tmp_path / "offset.tif", NODATA)
    slope = dem_steps(offset, [("slope", {})]).ReadAsArray()
    assert_same_pixels(np.where(slope != NODATA, slope + 1, NODATA).astype(np.float32), merged_pixels(job))
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, tile_ids=index.ids, steps=[{"type": "slope"}, {"type": "pause"}])
    assert refused.value.errors["steps[1].type"].startswith("'pause' cannot be a step of a chain")


def test_a_failing_tool_names_its_step(index, owner, media, monkeypatch, tmp_path):
    declare(monkeypatch, write_yaml(tmp_path, """
        job_types:
          - name: breaks
            version: "1"
            halo: 1
            command: [sh, -c, "echo no such thing >&2; exit 3", sh, "{input}", "{output}"]
    """))
    job = run(job_submit(owner=owner, tile_ids=index.ids[:1], steps=[{"type": "slope"}, {"type": "breaks"}]))
    assert job.status == JobStatus.FAILED
    error = JobTile.objects.get(job=job).error
    assert error.startswith("step 2 of 2 (breaks): sh exited with status 3: no such thing"), error


@pytest.mark.parametrize("steps,field,problem", [
    ([{"type": "slope"}, CALC], "steps[1].params.inputs",
     'a step after the first reads the result of a step before it: give an input {"step": 0}'),
    ([{"type": "calc", "params": {"expression": "x", "inputs": {"x": {"step": 0}}}}], "steps[0].params.inputs.x",
     "is the result of a chain's step: only a step after the first of a chain reads one"),
    ([{"type": "slope"}, {"type": "calc", "params": {"expression": "x", "inputs": {"x": {"step": 1}}}}],
     "steps[1].params.inputs.x", "steps[1] is not a step before this one; it may read steps[0] to steps[0]"),
    ([{"type": "slope"}, {"type": "calc", "params": {"expression": "x", "inputs": {"x": {"step": 0, "band": 2}}}}],
     "steps[1].params.inputs.x", "a step's result has one band: leave band out"),
    ([{"type": "slope"}, {"type": "calc", "params": {"expression": "x", "inputs": {"x": {"step": 0,
                                                                                         "collection": "default"}}}}],
     "steps[1].params.inputs.x", "names both a collection and a step: an input is one of them"),
    ([{"type": "calc", "params": {"expression": "x", "inputs": {"x": {"collection": "nowhere"}}}}, {"type": "slope"}],
     "steps[0].params.inputs.x", "unknown collection 'nowhere'"),
    ([{"type": "slope"}, {"type": "whole-only"}], "steps[1].type", "'whole-only' cannot be a step of a chain"),
    ([{"type": "slope"}, {"type": "reproject", "params": {"dst_crs": 4326}}], "steps[1].type",
     "'reproject' cannot be a step of a chain"),
])
def test_steps_that_cannot_stand_where_they_are_are_refused(index, owner, media, monkeypatch, tmp_path, steps, field,
                                                            problem):
    declare(monkeypatch, write_yaml(tmp_path, """
        job_types:
          - name: whole-only
            version: "1"
            tiled: false
            command: [gdal_translate, "{input}", "{output}", -q]
    """))
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, tile_ids=index.ids, steps=steps)
    assert refused.value.errors[field].startswith(problem), refused.value.errors
    assert not Job.objects.exists()
