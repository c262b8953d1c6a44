"""Class 6: every tile work loop renews its lease and honours cancel, zonal statistics and clip
over many polygons included; the polygon-to-tile search at submit costs no query per polygon."""

import random
import time
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from osgeo import ogr, osr

from datafiles import services as datafiles
from datafiles.models import DataFile
from jobs import tileindex, towns
from jobsite.exceptions import Rejected
from jobs.jobtypes import read_polygons
from jobs.models import Job
from jobs.services.control import job_cancel
from jobs.services.repair import return_lost_tiles
from jobs.services.submit import job_submit
from jobs.models import JobLog, JobStatus, JobTile, Tile, TileStatus
from jobs.raster.io import Cancelled
from jobs.raster.zonal import mask_tile, zonal_partial

from .conftest import EPSG, wait_for
from .datafile_samples import box, polygons_bytes


def small_squares(count, bounds, size=2.0, seed=1):
    rng = random.Random(seed)
    minx, miny, maxx, maxy = bounds
    return [(number, f"z{number}", box(x, y, x + size, y + size))
            for number in range(count)
            for x, y in [(minx + rng.random() * (maxx - minx - size), miny + rng.random() * (maxy - miny - size))]]


def zipped_squares(tmp_path, count, bounds):
    """A zipped shapefile of `count` small squares inside `bounds`, in the index CRS."""
    folder = tmp_path / "squares"
    folder.mkdir()
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    ds = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource(str(folder))
    layer = ds.CreateLayer("squares", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("id", ogr.OFTInteger))
    layer.StartTransaction()
    for number, _, wkt in small_squares(count, bounds):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("id", number)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        layer.CreateFeature(feature)
    layer.CommitTransaction()
    ds = None
    path = tmp_path / "squares.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for part in folder.iterdir():
            archive.write(part, part.name)
    return path.read_bytes()


def test_zonal_statistics_and_clip_report_progress_per_polygon_and_stop_when_told(index, tmp_path):
    tile = Tile.objects.get(number=index.id_at(0, 0))
    polygons = [raster_polygon(number, wkt) for number, _, wkt in small_squares(200, tile.bounds)]
    wkt = tileindex.index_crs_wkt()
    for work in (lambda progress: zonal_partial(tile.path, polygons, tmp_path / "z.json", wkt, progress),
                 lambda progress: mask_tile(tile.path, polygons, tmp_path / "m.tif", wkt, progress)):
        seen = []
        work(lambda fraction, seen=seen: seen.append(fraction) or True)
        assert len(seen) == len(polygons) and seen == sorted(seen)
        stopped = []
        with pytest.raises(Cancelled):
            work(lambda fraction, stopped=stopped: stopped.append(fraction) or len(stopped) < 10)
        assert len(stopped) == 10


def raster_polygon(index, wkt):
    from jobs import vector

    geometry = ogr.CreateGeometryFromWkt(wkt)
    minx, maxx, miny, maxy = geometry.GetEnvelope()
    return vector.Polygon(index, bytes(geometry.ExportToIsoWkb()), (minx, miny, maxx, maxy), {})


@pytest.mark.cluster
def test_a_long_zonal_tile_keeps_its_lease_and_stops_within_a_second_of_cancel(start_cluster, index, owner, tmp_path):
    corner = Tile.objects.get(number=index.id_at(0, 0))
    squares = small_squares(60_000, corner.bounds)
    datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile(
        "zones.geojson", polygons_bytes(tmp_path, target_epsg=EPSG, zones=squares)))
    start_cluster(JOBSITE_TILE_LEASE_SECONDS="2")

    # The tile takes several lease periods; the sweep that a second worker would run finds its
    # lease renewed each time, so nobody else is given it and it runs once.
    job = job_submit(owner=owner, job_type="zonal-statistics", tile_ids=[corner.number], inputs={"zones": "zones.geojson"})
    wait_for(lambda: JobTile.objects.filter(job=job, status=TileStatus.RUNNING).exists(), 60, message="the tile to start")
    started = time.monotonic()
    while not JobTile.objects.get(job=job).status == TileStatus.SUCCEEDED:
        assert not return_lost_tiles(job.pk), "a running tile was taken from its worker"
        assert time.monotonic() - started < 120
        time.sleep(0.5)
    assert time.monotonic() - started > 2.5, "the tile was too quick to outlast its lease of 2 s"
    assert JobTile.objects.get(job=job).attempts == 1
    job.refresh_from_db()
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, 60, message="the merge")

    again = job_submit(owner=owner, job_type="zonal-statistics", tile_ids=[corner.number], inputs={"zones": "zones.geojson"})
    wait_for(lambda: JobTile.objects.filter(job=again, status=TileStatus.RUNNING).exists(), 60, message="the tile to start")
    time.sleep(1)
    job_cancel(job=again)
    canceled = time.monotonic()
    stopped = wait_for(lambda: JobLog.objects.filter(job=again, message__startswith="stopped").first(), 10,
                       interval=0.05, message="the tile to stop")
    assert stopped and time.monotonic() - canceled < 1.0
    # The worker lets go of the tile right after its last log line (see worker._let_go): a resume
    # may hand it out again.
    wait_for(lambda: JobTile.objects.get(job=again).lease_owner == "", 2, interval=0.05, message="the lease to go")


def test_two_hundred_thousand_polygons_choose_their_tiles_at_about_the_cost_of_reading_them(index, owner, media,
                                                                                           tmp_path, settings):
    """Choosing the tiles of 200,000 polygons (through the index, not polygon by tile) costs
    less than reading them again: a submit takes at most twice the read (its own read included)
    and a second, on a machine of any speed."""
    settings.MAX_ZONES = 250_000
    settings.DATAFILE_MAX_BYTES = 256 * 1024 * 1024
    extent = Tile.objects.get(number=index.id_at(0, 0)).bounds
    content = zipped_squares(tmp_path, 200_000, (extent[0], extent[1], extent[2] + 500, extent[3]))
    datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("squares.zip", content))
    with CaptureQueriesContext(connection) as queries:
        started = time.monotonic()
        job = job_submit(owner=owner, job_type="zonal-statistics", inputs={"zones": "squares.zip"})
        took = time.monotonic() - started
    started = time.monotonic()
    read_polygons(DataFile.objects.get(name="squares.zip").stored, Tile.objects.first().collection.crs_wkt)
    reading = time.monotonic() - started
    assert took < 2 * reading + 1, f"the submit took {took:.2f} s, reading the polygons {reading:.2f} s"
    assert sorted(job.tiles.values_list("tile__number", flat=True)) == [index.id_at(0, col) for col in range(3)]
    assert len(queries) < 40


def test_a_polygon_far_larger_than_the_index_chooses_its_tiles_at_once(index):
    from jobs import vector

    huge = raster_polygon(0, box(-1e9, -1e9, 1e9, 1e9))
    started = time.monotonic()
    assert towns.tiles_overlapping([huge]) == sorted(Tile.objects.values_list("id", flat=True))
    assert time.monotonic() - started < 1
    assert isinstance(huge, vector.Polygon)


@pytest.mark.parametrize("geometry", [
    '{"type": "Polygon", "coordinates": [[[0, 0], [1e400, 0], [1, 1], [0, 0]]]}',
    "null",
], ids=["infinite", "none"])
def test_zones_without_usable_polygons_are_a_400_at_submit(index, owner, media, geometry):
    content = ('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": '
               + geometry + "}]}").encode()
    datafiles.datafile_store(owner=owner, upload=SimpleUploadedFile("zones.geojson", content))
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="zonal-statistics", inputs={"zones": "zones.geojson"})
    assert "zones.geojson: feature 0" in str(refused.value)
