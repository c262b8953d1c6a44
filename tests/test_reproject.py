"""The reproject job type: tiles warped onto another CRS and pixel size, merged, equal to one
gdal.Warp of the whole collection; and its bad requests refused."""

import numpy as np
import pytest
from osgeo import gdal

from jobs.models import Job, JobStatus, JobTile
from jobs.services.submit import job_submit
from jobsite.exceptions import Rejected

from .conftest import NODATA
from .test_execution import merged_pixels, run


def whole_warp(whole, geotransform, width, height, epsg, resampling):
    """One gdal.Warp of the whole raster onto the grid (geotransform, width, height)."""
    x0, px, _, y0, _, py = geotransform
    return gdal.Warp("", str(whole), format="MEM", dstSRS=f"EPSG:{epsg}", resampleAlg=resampling, errorThreshold=0,
                     outputBounds=(x0, y0 + height * py, x0 + width * px, y0), width=width, height=height,
                     srcNodata=NODATA, dstNodata=NODATA).ReadAsArray()


@pytest.mark.parametrize("epsg,resolution,resampling", [
    (4326, 0.00005, "near"),
    (3857, 7.0, "bilinear"),
    (3857, 20.0, "average"),
    (32632, 4.0, "cubic"),
])
def test_the_merged_result_equals_one_warp_of_the_whole_collection(index, owner, media, epsg, resolution, resampling):
    job = run(job_submit(owner=owner, job_type="reproject", tile_ids=index.ids,
                         params={"dst_crs": epsg, "resolution": resolution, "resampling": resampling}))
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = gdal.Open(str(media.joinpath(job.outputs[0]["path"])))
    assert job.outputs[0]["name"] == "reproject.tif" and str(epsg) in result.GetProjection()
    gt = result.GetGeoTransform()
    assert (gt[1], gt[5]) == pytest.approx((resolution, -resolution))
    assert gt[0] / resolution == pytest.approx(round(gt[0] / resolution)), "aligned on multiples of the resolution"
    expected = whole_warp(index.whole, gt, result.RasterXSize, result.RasterYSize, epsg, resampling)
    pixels = merged_pixels(job)
    assert (pixels != NODATA).sum() > 0.5 * pixels.size
    if resampling == "near":
        assert np.array_equal(pixels, expected)
    else:
        assert np.array_equal(pixels == NODATA, expected == NODATA)
        assert np.array_equal(pixels, expected)


def test_a_job_over_some_tiles_gives_that_part_of_the_whole_warp(index, owner, media):
    some = [index.id_at(0, 0), index.id_at(0, 1), index.id_at(1, 0), index.id_at(1, 1)]
    job = run(job_submit(owner=owner, job_type="reproject", tile_ids=some, params={"dst_crs": 3857, "resolution": 6.0}))
    result = gdal.Open(str(media.joinpath(job.outputs[0]["path"])))
    gt = result.GetGeoTransform()
    expected = whole_warp(index.whole, gt, result.RasterXSize, result.RasterYSize, 3857, "near")
    pixels = merged_pixels(job)
    inside = pixels != NODATA
    assert inside.sum() > 1000 and np.array_equal(pixels[inside], expected[inside])


@pytest.mark.parametrize("params,field,problem", [
    ({"resolution": 5}, "dst_crs", "is required"),
    ({"dst_crs": 999999, "resolution": 5}, "dst_crs", "EPSG:999999 is not a CRS that PROJ knows"),
    ({"dst_crs": 3857, "resolution": 0}, "resolution", "must be greater than 0"),
    ({"dst_crs": 3857, "resolution": 0.001}, "resolution", "per pixel of the collection"),
    ({"dst_crs": 3857, "resolution": 5, "resampling": "sinc"}, "resampling", "must be one of near, bilinear"),
    ({"dst_crs": 3857, "resolution": 5, "band": 2}, "band", "collection default has 1 band, not 2"),
    ({"dst_crs": 3857, "resolution": 1}, "resolution", "per pixel of the collection"),
])
def test_a_bad_reprojection_is_refused_naming_the_parameter_and_writes_nothing(index, owner, params, field, problem):
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="reproject", tile_ids=index.ids[:1], params=params)
    assert problem in refused.value.errors["params"][field]
    assert not Job.objects.exists() and not JobTile.objects.exists()


def test_a_resolution_so_coarse_that_tiles_would_read_far_around_them_is_refused(index, owner, monkeypatch):
    from jobs import crosscollection

    monkeypatch.setattr(crosscollection, "MAX_HALO", 100)
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="reproject", tile_ids=index.ids[:1],
                   params={"dst_crs": 3857, "resolution": 2000, "resampling": "bilinear"})
    assert "would read more than 100 pixels around it" in refused.value.errors["params"]["resolution"]
    job_submit(owner=owner, job_type="reproject", tile_ids=index.ids[:1], params={"dst_crs": 3857, "resolution": 20})
