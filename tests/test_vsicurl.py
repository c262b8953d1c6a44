"""GDAL reads job outputs through a live server with /vsicurl/, as QGIS does: with the API token
in a header, and with a shareable link; a one-pixel read of a 100 MB COG costs a few blocks."""

import os
import subprocess
from urllib.parse import urlsplit

import numpy
import pytest
import requests
from osgeo import gdal
from rest_framework.authtoken.models import Token

from jobs.models import Job
from jobs.raster.mosaic import COG_OPTIONS

from .byte_proxy import CountingProxy

SIZE = 10240  # 10240 x 10240 bytes of noise: a 100 MB COG that no compression makes smaller


@pytest.fixture(scope="module")
def big_cog(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    pixels = numpy.random.default_rng(5).integers(0, 256, (SIZE, SIZE), dtype=numpy.uint8)
    memory = gdal.GetDriverByName("MEM").Create("", SIZE, SIZE, 1, gdal.GDT_Byte)
    memory.SetGeoTransform((500000, 1, 0, 6000000, 0, -1))
    memory.GetRasterBand(1).WriteArray(pixels)
    path = folder / "big.tif"
    gdal.Translate(str(path), memory, format="COG", creationOptions=[*COG_OPTIONS, "RESAMPLING=NEAREST"])
    assert path.stat().st_size > 100 * 1024 * 1024
    return path, pixels


@pytest.fixture
def served(transactional_db, big_cog, owner, media, live_server):
    """The big COG as the output of a succeeded job, behind a proxy that counts what the server sends."""
    path, pixels = big_cog
    (media / "jobs").mkdir(parents=True)
    os.link(path, media / "jobs" / "big.tif")
    job = Job.objects.create(owner=owner, type="hillshade", status="succeeded", outputs=[
        {"name": "big.tif", "path": "jobs/big.tif", "size": path.stat().st_size, "content_type": "image/tiff"}])
    address = urlsplit(live_server.url)
    with CountingProxy((address.hostname, address.port)) as proxy:
        yield {"job": job, "pixels": pixels, "proxy": proxy, "base": f"http://127.0.0.1:{proxy.port}",
               "token": Token.objects.create(user=owner).key}


def gdal_tool(*args, token=None):
    env = {key: value for key, value in os.environ.items() if key != "GDAL_HTTP_HEADERS"}
    if token:
        env["GDAL_HTTP_HEADERS"] = f"Authorization: Token {token}"
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)


def one_pixel(served, url, token=None):
    served["proxy"].sent = 0
    found = gdal_tool("gdallocationinfo", "-valonly", f"/vsicurl/{url}", "7777", "3333", token=token)
    assert found.returncode == 0, found.stderr
    assert int(found.stdout) == served["pixels"][3333, 7777]
    return served["proxy"].sent


def test_gdal_reads_an_output_over_vsicurl_with_the_token(served):
    url = f"{served['base']}/api/v1/jobs/{served['job'].pk}/outputs/big.tif"
    info = gdal_tool("gdalinfo", f"/vsicurl/{url}", token=served["token"])
    assert info.returncode == 0, info.stderr
    assert f"Size is {SIZE}, {SIZE}" in info.stdout and "LAYOUT=COG" in info.stdout
    sent = one_pixel(served, url, token=served["token"])
    assert sent < 1024 * 1024, f"{sent} bytes for one pixel"
    print(f"one pixel of a {served['job'].outputs[0]['size']} byte COG: {sent} bytes sent")


def test_gdal_translate_srcwin_over_vsicurl_equals_the_file(served, tmp_path):
    url = f"{served['base']}/api/v1/jobs/{served['job'].pk}/outputs/big.tif"
    out = tmp_path / "window.tif"
    done = gdal_tool("gdal_translate", "-q", "-srcwin", "5000", "6000", "300", "200", f"/vsicurl/{url}", str(out),
                     token=served["token"])
    assert done.returncode == 0, done.stderr
    assert (gdal.Open(str(out)).ReadAsArray() == served["pixels"][6000:6200, 5000:5300]).all()


def test_gdal_reads_an_output_through_a_signed_link(served, tmp_path):
    created = requests.post(f"{served['base']}/api/v1/jobs/{served['job'].pk}/outputs/big.tif/link/",
                            headers={"Authorization": f"Token {served['token']}"}, timeout=10)
    assert created.status_code == 201, created.text
    link = created.json()["url"]
    assert link.startswith(served["base"])
    info = gdal_tool("gdalinfo", f"/vsicurl/{link}")
    assert info.returncode == 0, info.stderr
    sent = one_pixel(served, link)
    assert sent < 1024 * 1024, f"{sent} bytes for one pixel"
    window = gdal_tool("gdal_translate", "-q", "-srcwin", "100", "200", "30", "20", f"/vsicurl/{link}",
                       str(tmp_path / "window.tif"))
    assert window.returncode == 0, window.stderr
    assert (gdal.Open(str(tmp_path / "window.tif")).ReadAsArray() == served["pixels"][200:220, 100:130]).all()
    tampered = link.replace("/big.tif", "x/big.tif")
    assert gdal_tool("gdalinfo", f"/vsicurl/{tampered}").returncode != 0
    refused = requests.get(tampered, timeout=10)
    assert refused.status_code == 403 and "signature does not match" in refused.json()["detail"]


def test_another_users_token_reads_nothing(served, other):
    url = f"{served['base']}/api/v1/jobs/{served['job'].pk}/outputs/big.tif"
    token = Token.objects.create(user=other).key
    served["proxy"].sent = 0
    refused = gdal_tool("gdalinfo", f"/vsicurl/{url}", token=token)
    assert refused.returncode != 0
    assert served["proxy"].sent < 20_000  # 404 answers only, no byte of the file
