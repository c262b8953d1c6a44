"""Map tiles of job outputs: GDAL's warp of the COG to each tile's bounds, coloured as the output
asks, with nodata transparent; TileJSON, values under a point, caching and visibility."""

import uuid

import numpy as np
import pytest
from osgeo import gdal

from jobs.raster import maptiles, mosaic, render
from jobs.raster.io import crs_wkt_from_epsg, write_raster
from jobs.services.finish import job_merge
from jobs.services.submit import job_submit
from jobs.services.worker import run_tiles
from jobs.models import JobStatus
from jobsite.media import media_path

from .conftest import NODATA

HALF_WORLD = 20037508.342789244


def formula_bounds(z, x, y):
    """The WebMercatorQuad tile's bounds as OGC 17-083r4 defines them, independently of the code under test."""
    size = 2 * HALF_WORLD / 2 ** z
    return (-HALF_WORLD + x * size, HALF_WORLD - (y + 1) * size, -HALF_WORLD + (x + 1) * size, HALF_WORLD - y * size)


def gdal_warp(path, z, x, y):
    """GDAL's own warp of the raster to the tile, with the coverage as an alpha band."""
    return gdal.Warp("", str(path), format="MEM", outputBounds=formula_bounds(z, x, y), dstSRS="EPSG:3857",
                     width=256, height=256, resampleAlg="bilinear", dstAlpha=True).ReadAsArray()


def tile_at(lon, lat, z):
    """The x, y of the tile holding (lon, lat) at zoom z, from the spherical Mercator formula."""
    x = int((lon + 180) / 360 * 2 ** z)
    lat_rad = np.radians(lat)
    y = int((1 - np.log(np.tan(lat_rad) + 1 / np.cos(lat_rad)) / np.pi) / 2 * 2 ** z)
    return x, y


def decode(image):
    """The RGBA pixels (4, h, w) of a PNG or WebP."""
    name = f"/vsimem/{uuid.uuid4().hex}"
    gdal.FileFromMemBuffer(name, image)
    try:
        return gdal.Open(name).ReadAsArray()
    finally:
        gdal.Unlink(name)


@pytest.fixture(scope="module")
def large_cog(tmp_path_factory):
    """A 3,000 x 2,000 float COG with overviews, nodata in one corner."""
    folder = tmp_path_factory.mktemp("cog")
    rows, cols = np.indices((2000, 3000))
    values = (np.sin(rows / 97.0) * 300 + np.cos(cols / 131.0) * 200 + 600).astype(np.float32)
    values[:300, :400] = NODATA
    write_raster(folder / "part.tif", values, (400000.0, 2.0, 0.0, 5700000.0, 0.0, -2.0), crs_wkt_from_epsg(25832),
                 nodata=NODATA)
    mosaic.merge_to_cog([folder / "part.tif"], folder / "result.tif", folder / "thumbnail.png")
    return folder / "result.tif"


def test_a_tile_is_gdals_warp_of_the_cog_at_every_zoom(large_cog):
    source = maptiles.TileSource(large_cog)
    facts = maptiles.describe(large_cog)
    assert source.ds.GetRasterBand(1).GetOverviewCount() >= 2
    levels = set()
    west, south, east, north = facts["bbox"]
    checked = 0
    for z in range(facts["minzoom"] - 1, facts["maxzoom"] + 2):
        for lon, lat in (((west + east) / 2, (south + north) / 2), (east - 0.001, south + 0.001)):
            x, y = tile_at(lon, lat, z)
            tile = maptiles.read_tile(source, z, x, y)
            levels.add(source.overview_for(2 * HALF_WORLD / 2 ** z / 256))
            expected = gdal_warp(large_cog, z, x, y)  # with the warper's own choice of overview
            assert np.array_equal(tile.valid, expected[1] > 0), (z, x, y)
            # The same to float32 rounding: the two bounds differ in their last digits.
            assert np.allclose(tile.bands[0][tile.valid], expected[0][tile.valid], rtol=0, atol=1e-3), (z, x, y)
            assert tile.valid.any()
            checked += 1
    assert checked >= 10
    assert {None, 0, 1} <= levels  # the full resolution and overviews were read
    # The corner of nodata is transparent, not a value.
    x, y = tile_at(west + 0.0005, north - 0.0005, facts["maxzoom"])
    assert not maptiles.read_tile(source, facts["maxzoom"], x, y).valid.all()


def test_a_tile_outside_the_raster_is_none_and_a_bad_address_is_refused(large_cog):
    source = maptiles.TileSource(large_cog)
    assert maptiles.read_tile(source, 10, 0, 0) is None
    for z, x, y, field in ((25, 0, 0, "z"), (3, 8, 0, "x"), (3, 0, 8, "y"), (-1, 0, 0, "z")):
        with pytest.raises(maptiles.TileAddressError) as refused:
            maptiles.read_tile(source, z, x, y)
        assert refused.value.field == field


def test_the_facts_of_a_result_are_gdals(large_cog):
    facts = maptiles.describe(large_cog)
    assert not large_cog.with_name("result.tif.aux.xml").exists()  # statistics are not written beside it
    ds = gdal.Open(str(large_cog))
    band = ds.GetRasterBand(1)
    minimum, maximum, mean, _ = band.ComputeStatistics(False)
    stats = facts["bands"][0]["statistics"]
    assert stats["minimum"] == pytest.approx(minimum, abs=5) and stats["maximum"] == pytest.approx(maximum, abs=5)
    assert stats["mean"] == pytest.approx(mean, rel=0.01)
    assert facts["epsg"] == 25832 and facts["shape"] == [2000, 3000]
    assert facts["bands"][0]["nodata"] == NODATA and facts["bands"][0]["data_type"] == "float32"
    west, south, east, north = facts["bbox"]
    assert 7 < west < east < 8 and 51 < south < north < 52


def test_colour_maps_grey_and_rgb():
    alpha = np.full((256, 256), 255, np.uint8)
    alpha[0, 0] = 0
    values = np.tile(np.linspace(10, 20, 256, dtype=np.float32), (256, 1))[None]
    coloured = render.rgba(maptiles.TileData(values, alpha), "colormap", (10, 20), "magma")
    table = render.lookup_table("magma")
    assert (coloured[5, 0] == table[0]).all() and (coloured[5, 255] == table[255]).all()
    assert coloured[0, 0, 3] == 0 and coloured[1, 0, 3] == 255
    reversed_ = render.rgba(maptiles.TileData(values, alpha), "colormap", (10, 20), "magma_r")
    assert (reversed_[5, 0, :3] == table[255, :3]).all()
    grey = render.rgba(maptiles.TileData(values, alpha), "grey", (10, 20))
    assert grey[5, 0, 0] == 0 and grey[5, 255, 0] == 255 and (grey[5, :, 0] == grey[5, :, 2]).all()
    rgb = np.stack([np.full((256, 256), v, np.uint8) for v in (10, 20, 30)])
    shown = render.rgba(maptiles.TileData(rgb, np.where(alpha > 0, 200, 0).astype(np.uint8)), "rgb")
    assert list(shown[5, 5]) == [10, 20, 30, 200] and shown[0, 0, 3] == 0
    assert render.style_of([{"data_type": "byte"}] * 3) == "rgb"
    assert render.style_of([{"data_type": "byte"}] * 4) == "rgb"
    assert render.style_of([{"data_type": "float32"}], "grey") == "grey"
    assert render.style_of([{"data_type": "float32"}]) == "colormap"
    for name in render.colormap_names():
        assert render.lookup_table(name).shape == (256, 4)


def test_an_rgba_raster_keeps_its_alpha_and_an_rgbn_one_shows_its_colours(tmp_path):
    """A raster's own alpha band is the tile's alpha; a fourth band that is not alpha is not shown."""
    for alpha, name in ((True, "rgba.tif"), (False, "rgbn.tif")):
        mem = gdal.GetDriverByName("MEM").Create("", 300, 200, 4, gdal.GDT_Byte)
        mem.SetGeoTransform((400000.0, 2.0, 0.0, 5700000.0, 0.0, -2.0))
        mem.SetProjection(crs_wkt_from_epsg(25832))
        for band, value in enumerate((10, 20, 30, 128), start=1):
            mem.GetRasterBand(band).Fill(value)
        if alpha:
            mem.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
        gdal.GetDriverByName("GTiff").CreateCopy(str(tmp_path / name), mem)
        source = maptiles.TileSource(tmp_path / name)
        facts = maptiles.describe(tmp_path / name)
        west, south, east, north = facts["bbox"]
        z = facts["maxzoom"]
        tile = maptiles.read_tile(source, z, *tile_at((west + east) / 2, (south + north) / 2, z))
        shown = render.rgba(tile, render.style_of(facts["bands"]))
        assert list(shown[128, 128]) == [10, 20, 30, 128 if alpha else 255], name


# The API, over jobs that ran.

def run(job):
    run_tiles(worker="test-worker", only_job=job.pk)
    job_merge(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    return job


@pytest.fixture
def slope_job(index, media, owner):
    return run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids))


def center_tile(job, zoom_offset=0):
    facts = job.outputs[0]["raster"]
    west, south, east, north = facts["bbox"]
    z = facts["maxzoom"] + zoom_offset
    return (z, *tile_at((west + east) / 2, (south + north) / 2, z))


def tile_url(job, z, x, y, image_format="png", query=""):
    return f"/api/v1/jobs/{job.pk}/outputs/{job.outputs[0]['name']}/tiles/{z}/{x}/{y}.{image_format}{query}"


def test_a_merge_records_the_outputs_facts(slope_job):
    facts = slope_job.outputs[0]["raster"]
    assert facts["epsg"] == 25832 and facts["bands"][0]["data_type"] == "float32"
    assert facts["bands"][0]["statistics"]["minimum"] >= 0
    assert "raster" not in slope_job.outputs[1]  # the thumbnail


@pytest.mark.parametrize("job_type, style", [("slope", "colormap"), ("hillshade", "grey")])
def test_output_tiles_are_coloured_warps_of_the_cog(index, media, owner, client_for, job_type, style):
    job = run(job_submit(owner=owner, job_type=job_type, tile_ids=index.ids))
    output = job.outputs[0]
    stats = output["raster"]["bands"][0]["statistics"]
    for zoom_offset in (-2, 0, 1):
        z, x, y = center_tile(job, zoom_offset)
        answer = client_for(owner).get(tile_url(job, z, x, y))
        assert answer.status_code == 200 and answer["Content-Type"] == "image/png"
        pixels = decode(answer.content)
        warped = gdal_warp(media_path(output["path"]), z, x, y)
        valid = warped[1] > 0
        assert np.array_equal(pixels[3] > 0, valid)
        scaled = np.clip((warped[0].astype(float) - stats["minimum"]) / (stats["maximum"] - stats["minimum"]), 0, 1)
        index_ = np.round(scaled * 255).astype(np.uint8)
        expected = render.lookup_table("viridis")[index_][..., :3] if style == "colormap" else np.repeat(index_[..., None], 3, 2)
        assert np.array_equal(np.moveaxis(pixels[:3], 0, 2)[valid], expected[valid])


def test_tile_requests_are_checked_and_cached(slope_job, owner, other, staff, client_for):
    client = client_for(owner)
    z, x, y = center_tile(slope_job)
    first = client.get(tile_url(slope_job, z, x, y))
    assert first.status_code == 200 and "private" in first["Cache-Control"] and first["ETag"]
    again = client.get(tile_url(slope_job, z, x, y), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and not again.content
    assert client.get(tile_url(slope_job, z, x, y, query="?colormap=magma"))["ETag"] != first["ETag"]
    webp = client.get(tile_url(slope_job, z, x, y, "webp"))
    assert webp.status_code == 200 and webp["Content-Type"] == "image/webp" and decode(webp.content).shape[0] == 4
    rescaled = client.get(tile_url(slope_job, z, x, y, query="?rescale=0,1000"))
    assert decode(rescaled.content)[:3].mean() != decode(first.content)[:3].mean()
    # Outside the output: an empty answer, not an error.
    assert client.get(tile_url(slope_job, 3, 0, 0)).status_code == 204
    # Another user's job does not exist for them; staff see it.
    assert client_for(other).get(tile_url(slope_job, z, x, y)).status_code == 404
    assert client_for(staff).get(tile_url(slope_job, z, x, y)).status_code == 200
    assert client_for(None).get(tile_url(slope_job, z, x, y)).status_code == 401
    # Bad addresses and styles name what is wrong.
    for url, field in ((tile_url(slope_job, 25, 0, 0), "z"), (tile_url(slope_job, 2, 4, 0), "x"),
                       (tile_url(slope_job, 2, 0, 9), "y"), (tile_url(slope_job, z, x, y, query="?colormap=jet"), "colormap"),
                       (tile_url(slope_job, z, x, y, query="?rescale=5,1"), "rescale"),
                       (tile_url(slope_job, z, x, y, query="?rescale=nan,1"), "rescale"),
                       (tile_url(slope_job, z, x, y, query="?rescale=abc"), "rescale")):
        answer = client.get(url)
        assert answer.status_code == 400, url
        assert field in str(answer.json()), answer.json()
    for url in (tile_url(slope_job, z, x, y, "gif"), f"/api/v1/jobs/{slope_job.pk}/outputs/thumbnail.png/tiles/1/0/0.png",
                f"/api/v1/jobs/{slope_job.pk}/outputs/nosuch.tif/tiles/1/0/0.png", f"/api/v1/jobs/{slope_job.pk}/outputs/x/tiles/a/0/0.png"):
        assert client.get(url).status_code == 404, url


def test_tilejson_and_values(slope_job, owner, other, client_for):
    client = client_for(owner)
    name = slope_job.outputs[0]["name"]
    document = client.get(f"/api/v1/jobs/{slope_job.pk}/outputs/{name}/tilejson.json?colormap=turbo").json()
    facts = slope_job.outputs[0]["raster"]
    assert document["tilejson"] == "3.0.0" and document["bounds"] == facts["bbox"]
    assert document["minzoom"] == facts["minzoom"] and document["maxzoom"] == facts["maxzoom"]
    assert document["tiles"][0].endswith(f"/outputs/{name}/tiles/{{z}}/{{x}}/{{y}}.png?colormap=turbo&v={slope_job.outputs[0]['size']}")
    legend = document["legend"]
    stats = facts["bands"][0]["statistics"]
    assert legend["style"] == "colormap" and legend["colormap"] == "turbo"
    assert legend["range"] == [stats["minimum"], stats["maximum"]] and len(legend["colors"]) == 16
    z, x, y = center_tile(slope_job)
    assert client.get(document["tiles"][0].format(z=z, x=x, y=y)).status_code == 200
    assert client_for(other).get(f"/api/v1/jobs/{slope_job.pk}/outputs/{name}/tilejson.json").status_code == 404

    west, south, east, north = facts["bbox"]
    lon, lat = (west + east) / 2, (south + north) / 2
    value = client.get(f"/api/v1/jobs/{slope_job.pk}/outputs/{name}/value/?lon={lon}&lat={lat}").json()
    ds = gdal.Open(str(media_path(slope_job.outputs[0]["path"])))
    (px, py), = [gdal.ApplyGeoTransform(gdal.InvGeoTransform(ds.GetGeoTransform()), *point)
                 for point in _to_crs([(lon, lat)], ds.GetProjection())]
    assert value["values"] == [pytest.approx(float(ds.ReadAsArray(int(px), int(py), 1, 1)[0, 0]))]
    assert client.get(f"/api/v1/jobs/{slope_job.pk}/outputs/{name}/value/?lon=0&lat=0").json()["values"] is None
    refused = client.get(f"/api/v1/jobs/{slope_job.pk}/outputs/{name}/value/?lon=200&lat=0")
    assert refused.status_code == 400 and "lon" in str(refused.json())


def _to_crs(points, wkt):
    from osgeo import osr
    source, target = osr.SpatialReference(), osr.SpatialReference(wkt=wkt)
    source.ImportFromEPSG(4326)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return [p[:2] for p in osr.CoordinateTransformation(source, target).TransformPoints(points)]


def test_tiles_answer_image_clients_revalidation_and_lost_files(slope_job, owner, client_for):
    client = client_for(owner)
    z, x, y = center_tile(slope_job)
    url = tile_url(slope_job, z, x, y)
    first = client.get(url, HTTP_ACCEPT="image/png")  # as GDAL's XYZ driver and QGIS ask
    assert first.status_code == 200 and first["Content-Type"] == "image/png"
    assert client.get(url, HTTP_IF_NONE_MATCH="*").status_code == 304
    assert client.get(url, HTTP_IF_NONE_MATCH=f'"other", W/{first["ETag"]}').status_code == 304
    refused = client.get(tile_url(slope_job, 25, 0, 0), HTTP_ACCEPT="image/png")
    assert refused.status_code == 400 and refused["Content-Type"] == "application/json"
    # Outside the projection's domain (the other side of the Earth from UTM 32N): no value, not an error.
    name = slope_job.outputs[0]["name"]
    far = client.get(f"/api/v1/jobs/{slope_job.pk}/outputs/{name}/value/?lon=-170&lat=-80")
    assert far.status_code == 200 and far.json()["values"] is None
    # The file gone (a damaged store): a 404 saying so, not a 500.
    media_path(slope_job.outputs[0]["path"]).unlink()
    gone = client.get(tile_url(slope_job, z, x, y + 1))
    assert gone.status_code == 404 and "cannot be read" in gone.json()["detail"]


def test_an_output_without_a_crs_is_kept_without_map_facts(tmp_path):
    from jobs.services import maps
    from osgeo import gdal as gdal_
    path = tmp_path / "plain.tif"
    mem = gdal_.GetDriverByName("MEM").Create("", 10, 10, 1, gdal_.GDT_Float32)
    gdal_.GetDriverByName("GTiff").CreateCopy(str(path), mem)
    output = {"name": "plain.tif", "path": str(path), "content_type": "image/tiff", "size": path.stat().st_size}
    assert maps.described(output) == output  # no facts, no failed merge
