import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connection
from osgeo import gdal
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.demo_terrain import fractal_terrain
from jobs.models import Job, Tile, Town
from jobs.raster.io import crs_wkt_from_epsg, write_raster
from jobs.tileload import load_tiles

BASE_DIR = Path(__file__).resolve().parent.parent
EPSG = 25832
PIXEL = 5.0
ORIGIN = (400000.0, 5700000.0)
NODATA = -9999.0


@dataclass
class TileSet:
    """A DEM written whole and cut into tiles whose size does not divide it evenly."""

    folder: Path
    whole: Path
    ids: list  # tile ids, row by row
    columns: int
    rows: int

    def id_at(self, row, col):
        return self.ids[row * self.columns + col]


def write_tileset(folder, width, height, tile, seed=7, first_id=100):
    dem = fractal_terrain(height, width, seed)
    dem[dem < 60.0] = NODATA
    wkt = crs_wkt_from_epsg(EPSG)
    gt = (ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL)
    write_raster(folder / "whole.tif", dem, gt, wkt, nodata=NODATA)
    tiles_dir = folder / "tiles"
    ids, columns = [], -(-width // tile)
    for row, y in enumerate(range(0, height, tile)):
        for col, x in enumerate(range(0, width, tile)):
            tile_id = first_id + row * 10 + col
            part_gt = (gt[0] + x * PIXEL, PIXEL, 0.0, gt[3] - y * PIXEL, 0.0, -PIXEL)
            write_raster(tiles_dir / f"dem_{tile_id}.tif", dem[y:y + tile, x:x + tile], part_gt, wkt, nodata=NODATA)
            ids.append(tile_id)
    return TileSet(tiles_dir, folder / "whole.tif", ids, columns, len(ids) // columns)


@pytest.fixture(scope="session")
def tileset(tmp_path_factory):
    """250 x 190 pixels in tiles of 64: the last column is 58 pixels wide, the last row 62 high."""
    return write_tileset(tmp_path_factory.mktemp("dem"), 250, 190, 64)


@pytest.fixture
def index(db, tileset):
    load_tiles(tileset.folder)
    return tileset


@pytest.fixture
def town(index):
    town = Town.objects.create(id=11850, name="Testheim", geometry_wkt="POLYGON EMPTY")
    town.tiles.set(Tile.objects.filter(number__in=[index.id_at(0, 0), index.id_at(0, 1), index.id_at(1, 0), index.id_at(1, 1)]))
    return town


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def owner(db):
    return User.objects.create_user("owner", password="owner-pass-1")


@pytest.fixture
def other(db):
    return User.objects.create_user("other", password="other-pass-1")


@pytest.fixture
def staff(db):
    return User.objects.create_user("staff", password="staff-pass-1", is_staff=True)


@pytest.fixture
def owner_token(owner):
    """The owner's API token."""
    return Token.objects.create(user=owner).key


@pytest.fixture
def client_for():
    def make(user=None):
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client
    return make


def whole_area(path, processing, **options):
    """The operation run over one whole raster at once, as an array."""
    return gdal.DEMProcessing("", str(path), processing, format="MEM", **options).ReadAsArray()


def window_of(array, tileset, tile_ids):
    """The part of a whole-index array covered by the bounding box of `tile_ids`."""
    from jobs.models import Tile

    tiles = Tile.objects.filter(number__in=tile_ids)
    col0, row0 = min(t.col for t in tiles), min(t.row for t in tiles)
    col1, row1 = max(t.col + t.width for t in tiles), max(t.row + t.height for t in tiles)
    return array[row0:row1, col0:col1]


def assert_same_pixels(expected, actual):
    """Equal arrays (band, row, column or row, column), NaN equal to NaN; else where they differ, axis
    by axis."""
    assert expected.shape == actual.shape
    unequal = expected != actual
    if np.issubdtype(expected.dtype, np.floating):  # NaN (a nodata value) equals NaN here
        unequal &= ~(np.isnan(expected) & np.isnan(actual))
    differ = np.argwhere(unequal)
    if differ.size:
        spans = ", ".join(f"axis {axis} {differ[:, axis].min()}-{differ[:, axis].max()}" for axis in range(differ.shape[1]))
        first = tuple(differ[0])
        raise AssertionError(f"{len(differ)} values differ ({spans}); at {first} expected {expected[first]}, "
                             f"got {actual[first]}")


# A real cluster in another process, against the test database.

def database_url():
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


class Cluster:
    def __init__(self, log_path, env, file_size_limit=None):
        self.log_path, self.env, self.file_size_limit = log_path, env, file_size_limit
        self.process = None

    def _limit_file_size(self):
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_size_limit, self.file_size_limit))

    def start(self):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=BASE_DIR, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=self._limit_file_size if self.file_size_limit else None)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Signal the cluster's main process (it stops its workers), then kill what is left."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # workers orphaned by a killed main process
        except ProcessLookupError:
            pass
        self.log.close()

    def output(self):
        return Path(self.log_path).read_text(errors="replace")


@pytest.fixture
def start_cluster(transactional_db, media, tmp_path):
    """Start real clusters on the test database, with extra environment settings (and optionally a
    limit on the size of the files they write); all stop at the end."""
    started = []

    def start(file_size_limit=None, **settings):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url(),
               "MEDIA_ROOT": str(media), "JOBSITE_WORKERS": "2", "PYTHONUNBUFFERED": "1", **settings}
        running = Cluster(tmp_path / f"qcluster-{len(started)}.log", env, file_size_limit)
        running.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def cluster(start_cluster):
    return start_cluster()


@pytest.fixture
def large_index(transactional_db, tmp_path):
    """48 tiles of 1024 x 1024, and a VRT of them all to compare with."""
    dem = fractal_terrain(1024, 1024, seed=5)
    wkt = crs_wkt_from_epsg(EPSG)
    folder = tmp_path / "large"
    for row in range(6):
        for col in range(8):
            gt = (400000.0 + col * 1024 * PIXEL, PIXEL, 0.0, 5700000.0 - row * 1024 * PIXEL, 0.0, -PIXEL)
            write_raster(folder / f"dem_{1000 + row * 10 + col}.tif", dem, gt, wkt, creation_options=("TILED=YES",))
    load_tiles(folder)
    gdal.BuildVRT(str(tmp_path / "large.vrt"), sorted(str(p) for p in folder.iterdir()))
    return LargeIndex(sorted(Tile.objects.values_list("number", flat=True)), tmp_path / "large.vrt")


@dataclass
class LargeIndex:
    ids: list
    whole: Path


def wait_for(predicate, timeout, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def wait_until_final(job_id, timeout=60):
    def final():
        job = Job.objects.get(pk=job_id)
        return job if job.is_final else None
    return wait_for(final, timeout, message=f"job {job_id} to end")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache, so that no test meets the login throttle's count of another,
    and with nothing remembered of jobs (a rolled-back test's job ids come again on SQLite), of
    job types' speeds or of claims."""
    from django.core.cache import cache

    from jobs.services import claims
    from notifications import events

    cache.clear()
    events.forget_jobs()
    claims.forget_speeds()
    claims.forget_claims()


@pytest.fixture
def asgi_server(transactional_db, media, tmp_path):
    """Start uvicorn serving jobsite.asgi on the test database, with extra environment settings;
    its URL. It stops at the end."""
    started = []

    def start(**settings):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url(),
               "MEDIA_ROOT": str(media), "ALLOWED_HOSTS": "127.0.0.1", "PYTHONUNBUFFERED": "1", **settings}
        log = open(tmp_path / f"uvicorn-{len(started)}.log", "wb")
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "jobsite.asgi:application", "--port", str(port),
                                   "--lifespan", "off", "--timeout-graceful-shutdown", "1"],
                                  cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append((server, log))
        url = f"http://127.0.0.1:{port}"

        def serving():
            assert server.poll() is None, Path(log.name).read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(serving, timeout=30, message="uvicorn to serve")
        return url

    yield start
    for server, log in started:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
