"""Data files on maps: a raster's map tiles and a vector's features as GeoJSON, both read from a
copy that the confined reader makes, never from the upload in the web process."""

import fcntl
import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from osgeo import gdal, gdal_array, ogr

from datafiles.models import DataFile
from datafiles.services import datafile_store, map_relpath
from jobs.raster.io import crs_wkt_from_epsg
from jobsite.media import media_path

from .conftest import EPSG, ORIGIN
from .datafile_samples import ZONES, polygons_bytes
from .test_maps import decode, gdal_warp, tile_at


def store(owner, name, content):
    return datafile_store(owner=owner, upload=SimpleUploadedFile(name, content))[0]


def raster_bytes(tmp_path, width, height, bands=1, dtype=np.float32, georeferenced=True):
    path = tmp_path / "upload.tif"
    values = (np.indices((height, width)).sum(0) % 250).astype(dtype)
    mem = gdal.GetDriverByName("MEM").Create("", width, height, bands, gdal_array.NumericTypeCodeToGDALTypeCode(dtype))
    for band in range(1, bands + 1):
        mem.GetRasterBand(band).WriteArray(values)
    if georeferenced:
        mem.SetGeoTransform((ORIGIN[0], 2.0, 0, ORIGIN[1], 0, -2.0))
        mem.SetProjection(crs_wkt_from_epsg(EPSG))
    gdal.GetDriverByName("GTiff").CreateCopy(str(path), mem)
    return path.read_bytes()


def test_a_raster_file_is_served_as_map_tiles_of_its_copy(owner, other, media, tmp_path, client_for,
                                                           django_capture_on_commit_callbacks):
    datafile = store(owner, "wide.tif", raster_bytes(tmp_path, 3000, 1000))
    client = client_for(owner)
    document = client.get("/api/v1/datafiles/wide.tif/tilejson.json").json()
    copy = media_path(map_relpath(datafile.path, "raster"))
    ds = gdal.Open(str(copy))
    # The copy: in Web Mercator, at most 2,048 pixels a side, its first band and where it has data.
    assert max(ds.RasterXSize, ds.RasterYSize) == 2048 and ds.RasterCount == 2
    assert "3857" in ds.GetSpatialRef().GetAuthorityCode(None) and set(ds.GetMetadata() or {}) <= {"AREA_OR_POINT"}
    assert document["legend"]["style"] == "colormap" and document["tiles"][0].endswith(
        f"/api/v1/datafiles/wide.tif/tiles/{{z}}/{{x}}/{{y}}.png?v={datafile.sha256[:16]}")  # a new file, new URLs
    west, south, east, north = document["bounds"]
    z = document["maxzoom"]
    x, y = tile_at((west + east) / 2, (south + north) / 2, z)
    answer = client.get(f"/api/v1/datafiles/wide.tif/tiles/{z}/{x}/{y}.png")
    assert answer.status_code == 200 and answer["ETag"]
    warped = gdal_warp(copy, z, x, y)
    assert np.array_equal(decode(answer.content)[3] > 0, warped[1] > 0)
    assert client_for(other).get(f"/api/v1/datafiles/wide.tif/tiles/{z}/{x}/{y}.png").status_code == 404
    assert client.get("/api/v1/datafiles/wide.tif/tiles/3/0/0.png").status_code == 204
    # Deleting the file deletes its copy.
    with django_capture_on_commit_callbacks(execute=True):
        client.delete("/api/v1/datafiles/wide.tif/")
    assert not copy.exists()


def test_an_rgb_raster_keeps_its_colours(owner, media, tmp_path, client_for):
    store(owner, "photo.tif", raster_bytes(tmp_path, 200, 100, bands=3, dtype=np.uint8))
    assert client_for(owner).get("/api/v1/datafiles/photo.tif/tilejson.json").json()["legend"] == {"style": "rgb"}


def test_a_raster_with_no_place_or_no_reader_has_no_map(owner, media, tmp_path, client_for, settings):
    store(owner, "plain.tif", raster_bytes(tmp_path, 20, 10, georeferenced=False))
    answer = client_for(owner).get("/api/v1/datafiles/plain.tif/tilejson.json")
    assert answer.status_code == 404 and "no georeferencing" in str(answer.json())
    assert "map_error" in DataFile.objects.get(name="plain.tif").metadata  # remembered: one child only
    # The copy is made in the confined reader: with too little memory it fails there, and says so.
    store(owner, "big.tif", raster_bytes(tmp_path, 400, 300))
    settings.DATAFILE_INSPECT_MEMORY_BYTES = 64 * 1024 * 1024
    answer = client_for(owner).get("/api/v1/datafiles/big.tif/tilejson.json")
    assert answer.status_code == 404 and "big.tif" in str(answer.json())
    assert client_for(owner).get("/api/v1/datafiles/nosuch.tif/tilejson.json").status_code == 404


def test_a_vector_file_is_geojson_in_wgs84(owner, other, media, tmp_path, client_for):
    store(owner, "zones.gpkg", polygons_bytes(tmp_path, driver="GPKG", suffix=".gpkg", target_epsg=EPSG))
    answer = client_for(owner).get("/api/v1/datafiles/zones.gpkg/geojson/")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/geo+json"
    document = json.loads(b"".join(answer.streaming_content))
    assert document["truncated"] is False and len(document["features"]) == len(ZONES)
    shape = ogr.CreateGeometryFromJson(json.dumps(document["features"][0]["geometry"]))
    west, east, south, north = shape.GetEnvelope()
    assert 7 < west < east < 8 and 51 < south < north < 52  # degrees, longitude first
    assert client_for(other).get("/api/v1/datafiles/zones.gpkg/geojson/").status_code == 404
    store(owner, "plain.csv", b"a,b\n1,2\n")
    assert client_for(owner).get("/api/v1/datafiles/plain.csv/geojson/").status_code == 404


def test_a_vector_of_many_features_is_cut_short_and_says_so(owner, media, client_for):
    features = [{"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [7 + i * 1e-5, 51]}}
                for i in range(20005)]
    store(owner, "many.geojson", json.dumps({"type": "FeatureCollection", "features": features}).encode())
    answer = client_for(owner).get("/api/v1/datafiles/many.geojson/geojson/")
    document = json.loads(b"".join(answer.streaming_content))
    assert document["truncated"] is True and len(document["features"]) == 20000


@pytest.mark.parametrize("kind, name", [("raster", "x.tif"), ("vector", "x.gpkg")])
def test_the_data_file_page_has_a_map(owner, media, tmp_path, client_for, kind, name):
    content = raster_bytes(tmp_path, 20, 10) if kind == "raster" else polygons_bytes(tmp_path, "GPKG", ".gpkg")
    store(owner, name, content)
    client = Client()
    client.force_login(owner)
    page = client.get(f"/datafiles/{name}/").content.decode()
    assert 'data-map="datafile"' in page
    assert (f"/api/v1/datafiles/{name}/tilejson.json" if kind == "raster" else f"/api/v1/datafiles/{name}/geojson/") in page


def test_a_raster_whose_crs_has_no_way_to_web_maps_has_no_map(owner, media, tmp_path, client_for):
    """An engineering (local) CRS passes the upload's checks but has no place on Earth: the confined
    reader says so, and the web process never reprojects it."""
    path = tmp_path / "local.tif"
    mem = gdal.GetDriverByName("MEM").Create("", 20, 10, 1, gdal.GDT_Float32)
    mem.SetGeoTransform((0, 1, 0, 0, 0, -1))
    mem.SetProjection('LOCAL_CS["site grid",UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]')
    gdal.GetDriverByName("GTiff").CreateCopy(str(path), mem)
    store(owner, "local.tif", path.read_bytes())
    answer = client_for(owner).get("/api/v1/datafiles/local.tif/tilejson.json")
    assert answer.status_code == 404 and "web map" in str(answer.json())
    assert client_for(owner).get("/api/v1/datafiles/local.tif/tiles/1/0/0.png").status_code == 404


def test_a_map_being_made_by_another_request_is_a_503(owner, media, tmp_path, client_for):
    datafile = store(owner, "busy.tif", raster_bytes(tmp_path, 20, 10))
    copy = media_path(map_relpath(datafile.path, "raster"))
    copy.parent.mkdir(parents=True, exist_ok=True)
    with open(copy.with_name(f".{copy.name}.lock"), "w") as held:  # as another request making it holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        answer = client_for(owner).get("/api/v1/datafiles/busy.tif/tilejson.json")
        assert answer.status_code == 503 and answer["Retry-After"] == "2"
    assert client_for(owner).get("/api/v1/datafiles/busy.tif/tilejson.json").status_code == 200


@pytest.mark.parametrize("interpretations", [("alpha",), ("gray", "gray", "alpha")])
def test_bands_tagged_alpha_are_the_maps_alpha_not_its_colours(owner, media, tmp_path, client_for, interpretations):
    path = tmp_path / "tagged.tif"
    mem = gdal.GetDriverByName("MEM").Create("", 64, 32, len(interpretations), gdal.GDT_Byte)
    mem.SetGeoTransform((ORIGIN[0], 2.0, 0, ORIGIN[1], 0, -2.0))
    mem.SetProjection(crs_wkt_from_epsg(EPSG))
    for index, name in enumerate(interpretations, start=1):
        mem.GetRasterBand(index).Fill(200)
        mem.GetRasterBand(index).SetColorInterpretation(gdal.GCI_AlphaBand if name == "alpha" else gdal.GCI_GrayIndex)
    gdal.GetDriverByName("GTiff").CreateCopy(str(path), mem)
    store(owner, "tagged.tif", path.read_bytes())
    client = client_for(owner)
    document = client.get("/api/v1/datafiles/tagged.tif/tilejson.json")
    if interpretations == ("alpha",):
        assert document.status_code == 404 and "alpha" in str(document.json())
        return
    document = document.json()
    assert document["legend"]["style"] == "colormap"
    west, south, east, north = document["bounds"]
    z = document["maxzoom"]
    answer = client.get(f"/api/v1/datafiles/tagged.tif/tiles/{z}/{tile_at((west + east) / 2, (south + north) / 2, z)[0]}/"
                        f"{tile_at((west + east) / 2, (south + north) / 2, z)[1]}.png")
    assert answer.status_code == 200


def test_an_empty_geometry_is_left_out_of_a_vectors_map(owner, media, client_for):
    features = [{"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": []}},
                {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [7.1, 51.1]}}]
    store(owner, "empty.geojson", json.dumps({"type": "FeatureCollection", "features": features}).encode())
    answer = client_for(owner).get("/api/v1/datafiles/empty.geojson/geojson/")
    assert answer.status_code == 200
    assert len(json.loads(b"".join(answer.streaming_content))["features"]) == 1
