"""Class 4: size and count limits on what a file may declare, checked from its metadata before any
pixel is read; previews never read a large raster at full resolution."""

import time

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from osgeo import gdal, ogr, osr

from datafiles import services as datafiles
from datafiles.models import DataFile
from jobsite.exceptions import Rejected
from jobs.services.submit import job_submit
from jobs.models import Job

from .datafile_samples import ZONES, box, polygons_bytes
from .test_datafiles import files_on_disk, upload


def sparse_geotiff(path, size, block=256):
    """A GeoTIFF of size x size float32 pixels of which only a 10 x 10 patch is written: the file
    is small, the raster it declares is not."""
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 1, gdal.GDT_Float32,
                                              ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}", "SPARSE_OK=TRUE",
                                               "BIGTIFF=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform((400000.0, 5.0, 0.0, 5700000.0, 0.0, -5.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(25832)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).SetNoDataValue(-9999.0)
    ds.GetRasterBand(1).WriteArray(np.full((10, 10), 42.0, dtype=np.float32), 500, 500)
    ds = None
    return path.read_bytes()


def test_a_million_by_a_million_raster_is_refused_from_its_header(owner, media, client_for, tmp_path):
    content = sparse_geotiff(tmp_path / "huge.tif", 1_000_000, block=4096)
    assert len(content) < 2 * 1024 * 1024
    started = time.monotonic()
    response = upload(client_for(owner), "huge.tif", content)
    assert response.status_code == 400 and time.monotonic() - started < 5
    assert response.json()["detail"] == (
        "file: huge.tif cannot be read as .tif: huge.tif is 1,000,000 x 1,000,000 pixels in 1 bands "
        "(1,000,000,000,000 values); the limit is 1,000,000,000")
    assert DataFile.objects.count() == 0 and files_on_disk(owner) == []


def test_a_large_raster_is_previewed_from_a_sample_in_under_a_second(owner, media, client_for, tmp_path, settings):
    settings.DATAFILE_MAX_PIXELS = 10**11
    assert upload(client_for(owner), "large.tif", sparse_geotiff(tmp_path / "large.tif", 100_000)).status_code == 201
    browser = Client()
    browser.force_login(owner)
    started = time.monotonic()
    response = browser.get("/datafiles/large.tif/preview.png")
    took = time.monotonic() - started
    assert response.status_code == 200 and response.content[:4] == b"\x89PNG"
    assert took < 1, f"the preview took {took:.2f} s"
    preview = gdal.Open(str(datafiles.datafile_preview(DataFile.objects.get())))
    assert (preview.RasterXSize, preview.RasterYSize) == (256, 256)


def test_more_layers_than_the_limit_are_refused(owner, media, client_for, tmp_path, settings):
    settings.DATAFILE_MAX_LAYERS = 2
    path = tmp_path / "layers.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    for number in range(3):
        ds.CreateLayer(f"layer{number}", geom_type=ogr.wkbPolygon)
    ds = None
    response = upload(client_for(owner), "layers.gpkg", path.read_bytes())
    assert response.status_code == 400 and "layers.gpkg has 3 layers; the limit is 2" in response.json()["detail"]
    assert files_on_disk(owner) == []


def test_more_fields_or_columns_than_the_limit_are_refused(owner, media, client_for, settings):
    settings.DATAFILE_MAX_FIELDS = 5
    header = ",".join(f"c{i}" for i in range(6))
    response = upload(client_for(owner), "wide.csv", f"{header}\n{','.join('1' * 6)}\n".encode())
    assert response.status_code == 400 and "wide.csv has 6 columns; the limit is 5" in response.json()["detail"]
    properties = ", ".join(f'"f{i}": {i}' for i in range(6))
    geojson = ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {' + properties
               + '}, "geometry": {"type": "Point", "coordinates": [1, 2]}}]}')
    response = upload(client_for(owner), "wide.geojson", geojson.encode())
    assert response.status_code == 400 and "has 6 fields; the limit is 5" in response.json()["detail"]
    assert files_on_disk(owner) == []


def test_more_zones_than_the_limit_are_refused_at_submit(index, owner, media, tmp_path, settings):
    zones = [(number, "z", box(400012.5 + number, 5699702.5, 400020.0 + number, 5699710.0)) for number in range(3)]
    datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("zones.geojson", polygons_bytes(tmp_path, zones=zones)))
    settings.MAX_ZONES = 2
    for tile_ids in (None, index.ids[:1]):
        try:
            job_submit(owner=owner, job_type="zonal-statistics", tile_ids=tile_ids, inputs={"zones": "zones.geojson"})
        except Rejected as exc:
            assert exc.errors == {"inputs": {"zones": "zones.geojson has 3 features; the limit is 2 (JOBSITE_MAX_ZONES)"}}
        else:
            raise AssertionError("a job over the zone limit was accepted")
    assert Job.objects.count() == 0
    settings.MAX_ZONES = len(ZONES) + 1
    job_submit(owner=owner, job_type="zonal-statistics", tile_ids=index.ids[:1], inputs={"zones": "zones.geojson"})


def test_a_geopackage_that_declares_fewer_features_than_it_holds_is_counted(index, owner, media, tmp_path, settings):
    import sqlite3

    zones = [(number, "z", box(400012.5 + number, 5699702.5, 400020.0 + number, 5699710.0)) for number in range(5)]
    path = tmp_path / "zones.gpkg"
    path.write_bytes(polygons_bytes(tmp_path, "GPKG", ".gpkg", 25832, zones=zones))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE gpkg_ogr_contents SET feature_count = 1")
    datafile = datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("zones.gpkg", path.read_bytes()))[0]
    assert datafile.metadata["layers"][0]["feature_count"] == 5
    settings.MAX_ZONES = 2
    try:
        job_submit(owner=owner, job_type="zonal-statistics", inputs={"zones": "zones.gpkg"})
    except Rejected as exc:
        assert "zones.gpkg has 5 features; the limit is 2" in str(exc)
    else:
        raise AssertionError("more zones than the limit were accepted")
    # Even metadata that lies (as a file stored before counting did) is no way past the limit.
    DataFile.objects.filter(pk=datafile.pk).update(metadata={"layers": [{"feature_count": 1}]})
    try:
        job_submit(owner=owner, job_type="zonal-statistics", inputs={"zones": "zones.gpkg"})
    except Rejected as exc:
        assert "zones.gpkg has more than 2 features; the limit is 2" in str(exc)
    else:
        raise AssertionError("more zones than the limit were accepted")
    assert Job.objects.count() == 0


def test_a_zip_that_unpacks_to_more_than_the_limit_is_refused(owner, media, client_for, settings):
    import io
    import zipfile

    settings.DATAFILE_MAX_UNPACKED_BYTES = 50 * 1024 * 1024
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zones.shp", b"\x00" * 100)
        archive.writestr("zones.dbf", b"\x00" * (100 * 1024 * 1024))
    assert len(buffer.getvalue()) < 1024 * 1024
    response = upload(client_for(owner), "zones.zip", buffer.getvalue())
    assert response.status_code == 400
    assert "zones.zip unpacks to 104,857,700 bytes; the limit is 52,428,800" in response.json()["detail"]
    assert files_on_disk(owner) == []


def test_a_raster_whose_nodata_is_not_a_number_is_stored(owner, media, client_for, tmp_path):
    path = tmp_path / "nan.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 4, 4, 1, gdal.GDT_Float32)
    ds.SetGeoTransform((0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    ds.GetRasterBand(1).SetNoDataValue(float("nan"))
    ds = None
    response = upload(client_for(owner), "nan.tif", path.read_bytes())
    assert response.status_code == 201 and response.json()["metadata"]["bands"] == [{"type": "Float32", "nodata": "nan"}]


def test_a_useless_overview_does_not_make_a_preview_read_everything(owner, media, client_for, tmp_path, settings):
    settings.DATAFILE_MAX_PIXELS = 10**11
    path = tmp_path / "large.tif"
    sparse_geotiff(path, 100_000)
    ds = gdal.Open(str(path), gdal.GA_Update)
    # A 50,000 x 50,000 overview, no help for a 256-pixel preview (made but not computed: "NONE").
    ds.BuildOverviews("NONE", [2])
    ds = None
    assert upload(client_for(owner), "large.tif", path.read_bytes()).status_code == 201
    started = time.monotonic()
    preview = datafiles.datafile_preview(DataFile.objects.get())
    assert time.monotonic() - started < 2 and preview.read_bytes()[:4] == b"\x89PNG"


def test_a_raster_that_cannot_be_previewed_costs_one_child_only(owner, media, client_for, tmp_path, settings):
    from datafiles import sandbox

    upload(client_for(owner), "dem.tif", sparse_geotiff(tmp_path / "dem.tif", 1000))
    datafile = DataFile.objects.get()
    stored = datafile.stored
    with open(stored.path, "r+b") as broken:
        broken.truncate(200)
    browser = Client()
    browser.force_login(owner)
    first = browser.get("/datafiles/dem.tif/preview.png")
    assert first.status_code == 422 and "dem.tif" in first.content.decode()
    calls = []
    real = sandbox.preview
    try:
        sandbox.preview = lambda *args, **kwargs: calls.append(args) or real(*args, **kwargs)
        again = browser.get("/datafiles/dem.tif/preview.png")
    finally:
        sandbox.preview = real
    assert again.status_code == 422 and again.content == first.content and calls == []
