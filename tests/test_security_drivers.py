"""Class 1: a data file is read only by the drivers its kind allows, and only from itself.

Each test runs the attack: a file whose content points GDAL at another file or a URL, uploaded
under an innocent name, then every way a user can have it read (metadata, preview, content, jobs).
"""

import io
import sqlite3
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from jobsite.media import media_path
from datafiles import services as datafiles
from datafiles.models import DataFile
from jobs.services.submit import job_submit
from jobs.models import Job, JobStatus

from .attack_servers import RecordingServer
from .datafile_samples import geotiff_bytes, polygons_bytes
from .test_datafiles import files_on_disk, upload
from .test_execution import run

SECRET = "jobsite-secret-bytes-4711"


@pytest.fixture
def secret_file(tmp_path):
    """A file outside every upload, holding bytes that must never appear in an answer."""
    path = tmp_path / "secret.txt"
    path.write_text(SECRET * 40)
    return path


def raster_vrt(source, width=64):
    return (f'<VRTDataset rasterXSize="{width}" rasterYSize="4"><VRTRasterBand dataType="Byte" band="1">'
            f'<SimpleSource><SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>1</SourceBand>'
            f'</SimpleSource></VRTRasterBand></VRTDataset>').encode()


def raw_vrt(source, width=64):
    """A VRT that reads a file's bytes as pixels, whatever the file is."""
    return (f'<VRTDataset rasterXSize="{width}" rasterYSize="4"><VRTRasterBand dataType="Byte" band="1" '
            f'subClass="VRTRawRasterBand"><SourceFilename relativetoVRT="0">{source}</SourceFilename>'
            f'<ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>{width}</LineOffset>'
            f'</VRTRasterBand></VRTDataset>').encode()


def ogr_vrt(source):
    return (f'<OGRVRTDataSource><OGRVRTLayer name="zones"><SrcDataSource>{source}</SrcDataSource>'
            f'</OGRVRTLayer></OGRVRTDataSource>').encode()


def assert_nothing_leaked(response, *secrets):
    body = response.content if not response.streaming else b"".join(response.streaming_content)
    for secret in secrets:
        assert secret.encode() not in body


@pytest.mark.parametrize("make", [raster_vrt, raw_vrt])
@pytest.mark.parametrize("name", ["x.tif", "x.tiff"])
def test_a_vrt_named_as_a_geotiff_is_refused_and_leaves_nothing(owner, media, client_for, secret_file, make, name):
    for source in (str(secret_file), "/etc/passwd", "/proc/self/environ"):
        response = upload(client_for(owner), name, make(source))
        assert response.status_code == 400
        assert f"{name} cannot be read as" in response.json()["detail"] and "not a GeoTIFF" in response.json()["detail"]
        assert_nothing_leaked(response, SECRET, "root:", "SECRET_KEY")
    assert DataFile.objects.count() == 0 and files_on_disk(owner) == []


def test_a_vrt_pointing_at_another_users_file_is_refused(owner, other, media, client_for, tmp_path):
    upload(client_for(other), "theirs.tif", geotiff_bytes(tmp_path))
    theirs = media_path(DataFile.objects.get(owner=other).path)
    response = upload(client_for(owner), "x.tif", raw_vrt(theirs))
    assert response.status_code == 400 and DataFile.objects.filter(owner=owner).count() == 0


def test_an_ogr_vrt_is_no_geojson_nor_json(owner, media, client_for, secret_file):
    csv_secret = secret_file.with_suffix(".csv")
    csv_secret.write_text(f"a,b\n{SECRET},1\n")
    for name in ("zones.geojson", "zones.json"):
        for source in (csv_secret, "/nowhere/missing.csv"):  # one that opens, one whose source cannot
            response = upload(client_for(owner), name, ogr_vrt(source))
            assert response.status_code == 400 and response["Content-Type"] == "application/json"
            assert name in response.json()["detail"]
            assert_nothing_leaked(response, SECRET, "/nowhere")
    assert DataFile.objects.count() == 0 and files_on_disk(owner) == []


def test_a_geojson_crs_link_is_never_fetched(owner, media, client_for, settings):
    # Even with the web process allowed to reach this host, the inspector reaches nothing.
    with RecordingServer(b'GEOGCS["x",DATUM["y",SPHEROID["z",6378137,298.25]],PRIMEM["G",0],UNIT["d",0.0174]]') as server:
        settings.GDAL_HTTP_HOSTS = ["127.0.0.1"]
        content = (b'{"type": "FeatureCollection", "crs": {"type": "link", "properties": {"href": "'
                   + f"{server.url}/crs.wkt".encode() + b'", "type": "ogcwkt"}}, "features": [{"type": "Feature", '
                   b'"properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}')
        response = upload(client_for(owner), "zones.geojson", content)
        assert response.status_code == 400
        assert "zones.geojson refers to a resource on the network" in response.json()["detail"]
        assert server.requests == []
    assert DataFile.objects.count() == 0 and files_on_disk(owner) == []


def test_a_geopackage_srs_given_by_url_is_never_fetched(owner, media, client_for, tmp_path):
    path = tmp_path / "zones.gpkg"
    path.write_bytes(polygons_bytes(tmp_path, "GPKG", ".gpkg", 25832))
    with RecordingServer(b"") as server:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE gpkg_spatial_ref_sys SET definition = ?, organization = 'x', "
                       "organization_coordsys_id = 1 WHERE srs_id = 25832", (f"{server.url}/srs.wkt",))
        response = upload(client_for(owner), "zones.gpkg", path.read_bytes())
        assert server.requests == []
    assert response.status_code == 201  # read without following the URL: it has no CRS then
    assert response.json()["metadata"]["layers"][0]["epsg"] is None


def test_a_geotiffs_side_car_files_are_never_read(owner, media, client_for, tmp_path):
    """A side-car planted beside a stored GeoTIFF (.aux.xml with an SRS by URL, an external .ovr
    that is a VRT) is not looked at: only the upload itself is read."""
    upload(client_for(owner), "dem.tif", geotiff_bytes(tmp_path))
    datafile = DataFile.objects.get()
    stored = media_path(datafile.path)
    with RecordingServer(b"") as server:
        stored.with_name(stored.name + ".aux.xml").write_text(f"<PAMDataset><SRS>{server.url}/srs</SRS></PAMDataset>")
        stored.with_name(stored.name + ".ovr").write_bytes(raw_vrt("/etc/passwd", 10))
        ds = datafile.stored.open("raster")
        assert ds.GetFileList() == [str(stored)] and ds.GetRasterBand(1).GetOverviewCount() == 0
        assert "25832" in ds.GetProjection() and server.requests == []


def test_a_zip_holding_a_vrt_shapefile_is_refused(owner, media, client_for):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("zones.shp", ogr_vrt("/etc/passwd"))
    response = upload(client_for(owner), "zones.zip", buffer.getvalue())
    assert response.status_code == 400 and DataFile.objects.count() == 0


def plant(datafile, content):
    """Replace a stored file's bytes behind the service's back: what a job or a view meets if
    something slipped past the upload checks."""
    media_path(datafile.path).write_bytes(content)
    media_path(datafiles.preview_relpath(datafile.path)).unlink(missing_ok=True)


def test_a_job_never_reads_zones_that_point_elsewhere(index, owner, other, media, tmp_path):
    """Defence in depth: zones that became an OGR VRT on disk fail the job, naming the input, and
    the other user's CSV never reaches the results."""
    theirs = tmp_path / "theirs.csv"
    theirs.write_text(f"WKT,name\n\"POLYGON ((400000 5699000, 401000 5699000, 401000 5700000, 400000 5699000))\",{SECRET}\n")
    zones = datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("zones.geojson", polygons_bytes(tmp_path)))[0]
    job = job_submit(owner=owner, job_type="zonal-statistics", tile_ids=index.ids[:4], inputs={"zones": "zones.geojson"})
    plant(zones, ogr_vrt(theirs))
    job = run(job)
    assert job.status == JobStatus.FAILED
    assert "zones.geojson is not a GeoJSON" in " ".join(job.tiles.values_list("error", flat=True))
    assert SECRET not in str(job.results) and str(theirs) not in job.error
    with pytest.raises(Exception, match="zones.geojson is not a GeoJSON"):
        job_submit(owner=owner, job_type="zonal-statistics", inputs={"zones": "zones.geojson"})
    assert Job.objects.count() == 1


def test_a_colour_table_is_read_as_text_only(index, owner, media, tmp_path):
    """gdaldem reads the colour table as text: a VRT in its place reads nothing outside."""
    with RecordingServer(b"") as server:
        content = raster_vrt(f"/vsicurl/{server.url}/z.tif").decode() + "\n"
        datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("ramp.txt", content.encode()))
        job = run(job_submit(owner=owner, job_type="color-relief", tile_ids=index.ids[:1],
                             inputs={"color_table": "ramp.txt"}))
        assert server.requests == [] and job.status == JobStatus.SUCCEEDED  # lines that are no colours: none


def test_previews_and_content_of_a_planted_file_read_nothing_outside(owner, media, client_for, tmp_path, secret_file):
    upload(client_for(owner), "dem.tif", geotiff_bytes(tmp_path))
    plant(DataFile.objects.get(name="dem.tif"), raw_vrt(secret_file))
    client = Client()
    client.force_login(owner)
    response = client.get("/datafiles/dem.tif/preview.png")
    assert response.status_code == 422 and "dem.tif is not a GeoTIFF" in response.content.decode()
    assert_nothing_leaked(response, SECRET)
    assert not media_path(datafiles.preview_relpath(DataFile.objects.get(name="dem.tif").path)).exists()
