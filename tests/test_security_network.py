"""Class 2: no network from GDAL unless an operator allows hosts; time-outs; no Python in VRTs;
tiles that read outside their folder are refused at load."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from osgeo import gdal, ogr, osr

from jobs.models import Tile
from jobsite import gdalpolicy

from .attack_servers import RecordingServer, tarpit

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def allow(settings):
    """Allow GDAL to reach some hosts, as JOBSITE_GDAL_HTTP_HOSTS does, for one test."""
    def configure(hosts, timeout=30):
        settings.GDAL_HTTP_HOSTS = list(hosts)
        gdalpolicy.configure(allowed_hosts=hosts, timeout=timeout, connect_timeout=min(timeout, 10))
    yield configure
    gdalpolicy.configure(allowed_hosts=())


def refused(path):
    with pytest.raises(RuntimeError, match="CURL error|not recognized|HTTP|Unsupported proxy scheme"):
        gdal.Open(path)


def test_gdal_reaches_no_host_by_default():
    with RecordingServer(b"x") as server:
        started = time.monotonic()
        refused(f"/vsicurl/{server.url}/tile.tif")
        refused(f"/vsicurl/https://127.0.0.1:{server.port}/tile.tif")
        refused(f"{server.url}/tile.tif")  # the HTTP driver
        with pytest.raises(RuntimeError):  # no request to the cloud, nor to a metadata service for credentials
            gdal.Open("/vsis3/some-bucket/tile.tif")
        with pytest.raises(RuntimeError):
            ogr.Open(f"{server.url}/zones.geojson")
        srs = osr.SpatialReference()
        with pytest.raises(RuntimeError):
            srs.ImportFromUrl(f"{server.url}/srs.wkt")
        assert server.requests == []
        assert time.monotonic() - started < 5


def test_an_allowed_host_is_reached_and_may_not_redirect_elsewhere(allow):
    with RecordingServer(b"not a tiff") as elsewhere:
        with RecordingServer(b"not a tiff", redirects={"/tile.tif": f"http://localhost:{elsewhere.port}/tile.tif"}) as tiles:
            allow(["127.0.0.1"])
            refused(f"/vsicurl/{tiles.url}/tile.tif")
            assert "/tile.tif" in tiles.requests
            assert elsewhere.requests == []  # localhost is not on the list: the redirect is not followed


def test_a_host_that_never_answers_is_given_up_after_the_time_out(allow):
    with tarpit() as (url, accepted):
        allow(["127.0.0.1"], timeout=2)
        started = time.monotonic()
        refused(f"/vsicurl/{url}/tile.tif")
        assert accepted and time.monotonic() - started < 8


def test_python_in_a_vrt_never_runs(tmp_path):
    marker = tmp_path / "ran"
    code = f"def f(in_ar, out_ar, *args, **kwargs):\n    open({str(marker)!r}, 'w').write('x')\n    out_ar[:] = 1\n"
    vrt = tmp_path / "dem_1.vrt"
    vrt.write_text(
        '<VRTDataset rasterXSize="4" rasterYSize="4"><VRTRasterBand dataType="Byte" band="1" subClass="VRTDerivedRasterBand">'
        '<PixelFunctionType>f</PixelFunctionType><PixelFunctionLanguage>Python</PixelFunctionLanguage>'
        f'<PixelFunctionCode><![CDATA[{code}]]></PixelFunctionCode></VRTRasterBand></VRTDataset>')
    with pytest.raises(RuntimeError, match="has been explicitly disabled"):
        gdal.Open(str(vrt)).ReadAsArray()
    assert not marker.exists()


@pytest.mark.parametrize("command", [
    ["manage.py", "shell", "-c", "from osgeo import gdal; print(gdal.GetConfigOption('GDAL_HTTP_PROXY'), "
                                 "gdal.GetConfigOption('GDAL_VRT_ENABLE_PYTHON'))"],
    ["-c", "import django; django.setup(); from jobsite import wsgi; from osgeo import gdal; "
           "print(gdal.GetConfigOption('GDAL_HTTP_PROXY'), gdal.GetConfigOption('GDAL_VRT_ENABLE_PYTHON'))"],
])
def test_every_process_starts_with_gdal_off_the_network(command):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "no_proxy": "*"}
    answer = subprocess.run([sys.executable, *command], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                            timeout=60)
    assert answer.stdout.split()[-2:] == [gdalpolicy.REFUSING_PROXY, "NO"], answer.stderr


# Tiles loaded by load_tiles are checked the same way.

def tile_vrt(folder, name, source):
    path = folder / name
    gdal.Translate(str(path), str(source), format="VRT")
    return path


@pytest.fixture
def tiles_copy(tileset, tmp_path):
    import shutil

    folder = tmp_path / "tiles"
    shutil.copytree(tileset.folder, folder)
    return folder


def test_a_tile_that_reads_outside_its_folder_is_refused_at_load(db, tiles_copy, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tiles_copy / "dem_100.tif").rename(outside / "elsewhere.tif")
    vrt = tile_vrt(tiles_copy, "dem_100.vrt", outside / "elsewhere.tif")
    vrt.rename(tiles_copy / "dem_100.tif")  # a VRT under a GeoTIFF's name
    with pytest.raises(CommandError, match=r"dem_100.tif: reads .*elsewhere.tif, which is outside the tile's folder"):
        call_command("load_tiles", str(tiles_copy))
    assert Tile.objects.count() == 0


def test_a_tile_that_reads_inside_its_folder_loads(db, tiles_copy):
    sources = tiles_copy / "sources"
    sources.mkdir()
    (tiles_copy / "dem_100.tif").rename(sources / "dem.tif")
    tile_vrt(tiles_copy, "dem_100.vrt", sources / "dem.tif").rename(tiles_copy / "dem_100.tif")
    call_command("load_tiles", str(tiles_copy))
    assert Tile.objects.filter(number=100).exists()


@pytest.mark.parametrize("location,message", [
    ("/vsicurl/{url}/dem_100.tif", r"nothing loaded: /vsicurl/.*dem_100.tif"),
    ("/vsicurl?proxy=&url={url}/dem_100.tif", r"only local files, or /vsicurl/ on a host"),  # options of its own
], ids=["host-not-allowed", "name-with-options"])
def test_a_remote_tile_not_allowed_is_refused_before_any_request(db, tmp_path, location, message):
    with RecordingServer(b"") as server:
        index = tmp_path / "index.geojson"
        index.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"location": '
                         f'"{location.format(url=server.url)}"}}, "geometry": null}}]}}')
        with pytest.raises(CommandError, match=message):
            call_command("load_tiles", str(index))
        assert server.requests == [] and Tile.objects.count() == 0


def test_a_tile_that_is_a_vrt_of_a_vrt_reading_outside_is_refused_at_load(db, tiles_copy, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tiles_copy / "dem_100.tif").rename(outside / "secret.tif")
    inner = tile_vrt(tiles_copy, "inner.vrt", outside / "secret.tif")
    tile_vrt(tiles_copy, "dem_100.vrt", inner).rename(tiles_copy / "dem_100.tif")
    with pytest.raises(CommandError, match=r"dem_100.tif: reads .*secret.tif, which is outside the tile's folder"):
        call_command("load_tiles", str(tiles_copy))
    assert Tile.objects.count() == 0
