"""Collections: several tile indexes side by side, each with its own grid, and the index loaded
before collections existed migrated into the default one."""

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from osgeo import gdal

from jobs.demo_terrain import fractal_terrain
from jobs.models import Collection, Job, JobStatus, Tile, Town
from jobs.raster.io import crs_wkt_from_epsg
from jobs.services.control import job_cancel, job_delete
from jobs.services.submit import job_submit
from jobsite.exceptions import Rejected
from jobsite.media import media_path

from .test_execution import run

MERCATOR = 3857


@pytest.fixture
def mercator(index, tmp_path):
    """A second collection beside `index`: 2 x 2 tiles of 32 pixels of 10 m in Web Mercator,
    numbered 500, 501, 510, 511, with 3 bands."""
    folder = tmp_path / "merc"
    folder.mkdir()
    dem = fractal_terrain(64, 64, seed=3)
    wkt = crs_wkt_from_epsg(MERCATOR)
    for row in range(2):
        for col in range(2):
            part = dem[row * 32:(row + 1) * 32, col * 32:(col + 1) * 32]
            path = folder / f"m_{500 + row * 10 + col}.tif"
            driver = gdal.GetDriverByName("GTiff").Create(str(path), 32, 32, 3, gdal.GDT_Float32)
            driver.SetGeoTransform((1000000.0 + col * 320.0, 10.0, 0.0, 6000000.0 - row * 320.0, 0.0, -10.0))
            driver.SetProjection(wkt)
            for band in range(1, 4):
                driver.GetRasterBand(band).WriteArray(part * band)
            driver = None
    call_command("load_tiles", str(folder), "--collection", "merc", "--title", "Mercator test")
    return folder


def test_two_collections_with_different_crs_live_side_by_side(index, mercator):
    default, merc = Collection.objects.get(pk="default"), Collection.objects.get(pk="merc")
    assert Tile.objects.filter(collection=default).count() == len(index.ids) == default.tile_count
    assert sorted(merc.tiles.values_list("number", flat=True)) == [500, 501, 510, 511] and merc.tile_count == 4
    assert (merc.title, merc.band_count, merc.data_type, merc.pixel_width, merc.pixel_height) == (
        "Mercator test", 3, "Float32", 10.0, 10.0)
    assert merc.bounds == (1000000.0, 5999360.0, 1000640.0, 6000000.0)
    assert (merc.origin_x, merc.origin_y) == (1000000.0, 6000000.0)
    assert "3857" in merc.crs_wkt and "25832" in default.crs_wkt
    # The second load placed its tiles on a grid of its own, starting at 0, 0.
    assert set(merc.tiles.values_list("col", "row")) == {(0, 0), (32, 0), (0, 32), (32, 32)}


def test_a_job_runs_over_the_tiles_of_its_collection_in_its_crs(index, mercator, owner, media):
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=[500, 501, 510, 511], collection="merc"))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.collection_id == "merc"
    result = gdal.Open(str(media_path(job.outputs[0]["path"])))
    assert (result.RasterXSize, result.RasterYSize) == (64, 64)
    assert "3857" in result.GetProjection()
    other = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2]))
    assert other.status == JobStatus.SUCCEEDED and other.collection_id == "default"


def test_tile_ids_are_resolved_in_the_jobs_collection(index, mercator, owner):
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="hillshade", tile_ids=[500, index.ids[0]], collection="merc")
    assert refused.value.errors == {"tile_ids": f"unknown tile ids: {index.ids[0]} (in collection merc)"}
    with pytest.raises(Rejected) as refused:
        job_submit(owner=owner, job_type="hillshade", tile_ids=[500])
    assert refused.value.errors == {"tile_ids": "unknown tile ids: 500"}
    assert not Job.objects.exists()


def test_the_api_names_an_unknown_collection_and_writes_nothing(index, owner, client_for):
    response = client_for(owner).post("/api/v1/jobs/", {"type": "hillshade", "tile_ids": index.ids[:1],
                                                        "collection": "nosuch"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"collection": ["unknown collection 'nosuch'; the collections are: default"]}
    assert not Job.objects.exists()


def test_the_api_lists_collections_and_the_job_names_its_own(index, mercator, owner, client_for):
    api = client_for(owner)
    listed = api.get("/api/v1/collections/").json()
    assert [c["id"] for c in listed["results"]] == ["default", "merc"]
    merc = api.get("/api/v1/collections/merc/").json()
    assert merc["epsg"] == MERCATOR and merc["crs"] == "WGS 84 / Pseudo-Mercator"
    assert merc["bounds"] == [1000000.0, 5999360.0, 1000640.0, 6000000.0] and merc["pixel_size"] == [10.0, 10.0]
    west, south, east, north = merc["bounds_wgs84"]
    assert 8.98 < west < east < 8.99 and 47.34 < south < north < 47.36
    assert merc["links"]["tiles"].endswith("/api/v1/tiles/?collection=merc")
    tiles = api.get("/api/v1/tiles/?collection=merc").json()["results"]
    assert [(t["id"], t["collection"]) for t in tiles] == [(500, "merc"), (501, "merc"), (510, "merc"), (511, "merc")]
    created = api.post("/api/v1/jobs/", {"type": "hillshade", "tile_ids": [500], "collection": "merc"}, format="json")
    assert created.status_code == 201 and created.json()["collection"] == "merc"
    assert api.get("/api/v1/collections/nosuch/").status_code == 404


def test_the_legacy_endpoint_takes_a_collection(index, mercator, owner, client_for):
    answer = client_for(owner).get("/start_job", {"tile_ids": "500,501", "collection": "merc"})
    assert answer.status_code == 201 and answer.json()["data"]["collection"] == "merc"


def test_loading_never_touches_another_collection(index, mercator, tmp_path):
    before = list(Tile.objects.filter(collection_id="default").values_list("id", "path", "loaded"))
    call_command("load_tiles", str(mercator), "--collection", "merc", "--replace")
    assert list(Tile.objects.filter(collection_id="default").values_list("id", "path", "loaded")) == before
    with pytest.raises(CommandError, match="is not a collection name"):
        call_command("load_tiles", str(mercator), "--collection", "Bad Name")
    assert not Collection.objects.filter(pk="Bad Name").exists()


def test_two_collections_may_both_have_a_tile_of_one_number(index, mercator, tmp_path, owner, client_for):
    """The tiles of `mercator` loaded again as `copy`, shifted 10 km east: tile 500 is in both."""
    shifted = tmp_path / "copy"
    shifted.mkdir()
    for path in sorted(mercator.iterdir()):
        x0, px, _, y0, _, py = gdal.Open(str(path)).GetGeoTransform()
        gdal.Translate(str(shifted / path.name), str(path), outputBounds=[x0 + 10000, y0, x0 + 10000 + 32 * px, y0 + 32 * py])
    call_command("load_tiles", str(shifted), "--collection", "copy")
    assert Tile.objects.filter(number=500).count() == 2
    api = client_for(owner)
    assert api.get("/api/v1/tiles/500/", {"collection": "merc"}).json()["bounds"][0] == 1000000.0
    assert api.get("/api/v1/tiles/500/", {"collection": "copy"}).json()["bounds"][0] == 1010000.0
    assert api.get("/api/v1/tiles/500/").status_code == 404  # not in the default collection
    jobs = {name: run(job_submit(owner=owner, job_type="slope", tile_ids=[500, 501], collection=name))
            for name in ("merc", "copy")}
    for name, job in jobs.items():
        assert job.status == JobStatus.SUCCEEDED
        assert set(job.tiles.values_list("tile__collection_id", flat=True)) == {name}
        tiles = api.get(f"/api/v1/jobs/{job.pk}/tiles/").json()["results"]
        assert [t["tile_id"] for t in tiles] == [500, 501]
        job.refresh_from_db()
        result = gdal.Open(str(media_path(job.outputs[0]["path"])))
        assert result.GetGeoTransform()[0] == {"merc": 1000000.0, "copy": 1010000.0}[name]
    listed = api.get("/api/v1/tiles/", {"id": "500"}).json()["results"]
    assert sorted((t["collection"], t["id"]) for t in listed) == [("copy", 500), ("merc", 500)]


@pytest.mark.django_db(transaction=True)
def test_an_index_loaded_before_collections_migrates_into_the_default_collection():
    before, after = [("jobs", "0008_job_merge_started_woken")], [("jobs", "0013_tile_numbers")]
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        old = executor.loader.project_state(before).apps
        user = old.get_model("auth", "User").objects.create(username="old-owner")
        old.get_model("jobs", "IndexCrs").objects.create(pk=1, wkt=crs_wkt_from_epsg(25832))
        Tile = old.get_model("jobs", "Tile")
        for number, (minx, maxy) in {7: (0.0, 100.0), 8: (50.0, 100.0)}.items():
            Tile.objects.create(id=number, path=f"/data/t{number}.tif", minx=minx, miny=50.0, maxx=minx + 50.0, maxy=maxy,
                                width=10, height=10, col=int(minx / 5), row=0)
        job = old.get_model("jobs", "Job").objects.create(type="hillshade", owner=user, tiles_total=2)
        old.get_model("jobs", "Town").objects.create(id=1, name="Old town", geometry_wkt=box(0, 50, 10, 60))
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        default = new.get_model("jobs", "Collection").objects.get(pk="default")
        assert (default.tile_count, default.minx, default.miny, default.maxx, default.maxy) == (2, 0.0, 50.0, 100.0, 100.0)
        assert "25832" in default.crs_wkt
        assert set(new.get_model("jobs", "Tile").objects.values_list("collection_id", flat=True)) == {"default"}
        assert new.get_model("jobs", "Job").objects.get(pk=job.pk).collection_id == "default"
        assert new.get_model("jobs", "Town").objects.get(pk=1).crs_wkt == default.crs_wkt
        tiles = new.get_model("jobs", "Tile")
        assert list(tiles.objects.order_by("id").values_list("id", "number")) == [(7, 7), (8, 8)]
        added = tiles.objects.create(number=7, collection_id=new.get_model("jobs", "Collection").objects.create(
            id="later").pk, path="/data/later.tif", minx=0, miny=0, maxx=1, maxy=1, width=1, height=1, col=0, row=0)
        assert added.pk > 8  # new keys continue after those the tiles kept
    finally:  # the later tests need every migration
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())



def mercator_over(index, folder, pixels=40):
    """A collection `webm` in Web Mercator of 2 x 2 tiles that exactly covers the ground of
    `index` (its extent's envelope in EPSG:3857), numbered 700, 701, 710, 711."""
    from osgeo import osr

    utm, merc = osr.SpatialReference(), osr.SpatialReference()
    utm.ImportFromEPSG(25832)
    merc.ImportFromEPSG(MERCATOR)
    for srs in (utm, merc):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    minx, miny, maxx, maxy = index_extent()
    corners = osr.CoordinateTransformation(utm, merc).TransformPoints(
        [(minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy)])
    left, top = min(c[0] for c in corners), max(c[1] for c in corners)
    size = max(max(c[0] for c in corners) - left, top - min(c[1] for c in corners)) / (2 * pixels)
    folder.mkdir()
    for row in range(2):
        for col in range(2):
            ds = gdal.GetDriverByName("GTiff").Create(str(folder / f"w_{700 + row * 10 + col}.tif"), pixels, pixels, 1,
                                                      gdal.GDT_Float32)
            ds.SetGeoTransform((left + col * pixels * size, size, 0.0, top - row * pixels * size, 0.0, -size))
            ds.SetProjection(merc.ExportToWkt())
            ds = None
    return folder


def index_extent():
    tiles = Tile.objects.filter(collection_id="default")
    return (min(t.minx for t in tiles), min(t.miny for t in tiles), max(t.maxx for t in tiles), max(t.maxy for t in tiles))


def box(minx, miny, maxx, maxy):
    return f"POLYGON (({minx} {miny}, {maxx} {miny}, {maxx} {maxy}, {minx} {maxy}, {minx} {miny}))"


def towns_file(tmp_path, boxes):
    from jobs import vector

    path = tmp_path / "towns.geojson"
    vector.write_polygons(path, [(town_id, f"town {town_id}", polygon) for town_id, polygon in boxes.items()],
                          crs_wkt_from_epsg(25832))
    return path


def test_towns_are_resolved_in_every_collection_with_its_own_crs(index, tmp_path, owner):
    minx, miny, maxx, maxy = index_extent()
    call_command("load_tiles", str(mercator_over(index, tmp_path / "webm")), "--collection", "webm")
    path = towns_file(tmp_path, {1: box(minx, miny, maxx, maxy), 2: box(minx + 1, maxy - 10, minx + 10, maxy - 1)})
    call_command("load_towns", str(path), "--id-field", "id", "--name-field", "name")
    whole, corner = Town.objects.get(pk=1), Town.objects.get(pk=2)
    assert sorted(whole.tiles.filter(collection_id="default").values_list("number", flat=True)) == sorted(index.ids)
    assert sorted(whole.tiles.filter(collection_id="webm").values_list("number", flat=True)) == [700, 701, 710, 711]
    assert list(corner.tiles.filter(collection_id="default").values_list("number", flat=True)) == [index.id_at(0, 0)]
    assert list(corner.tiles.filter(collection_id="webm").values_list("number", flat=True)) == [700]
    job = job_submit(owner=owner, job_type="hillshade", town_id=2, collection="webm")
    assert list(job.tiles.values_list("tile__number", flat=True)) == [700]


def test_a_collection_loaded_after_the_towns_finds_their_tiles(index, tmp_path):
    minx, miny, maxx, maxy = index_extent()
    call_command("load_towns", str(towns_file(tmp_path, {2: box(minx + 1, maxy - 10, minx + 10, maxy - 1)})),
                 "--id-field", "id", "--name-field", "name")
    assert Town.objects.get(pk=2).crs_wkt
    call_command("load_tiles", str(mercator_over(index, tmp_path / "webm")), "--collection", "webm")
    assert sorted(Town.objects.get(pk=2).tiles.values_list("number", flat=True)) == sorted([index.id_at(0, 0), 700])


def test_delete_collection_refuses_while_jobs_read_it_and_then_deletes_it(index, mercator, owner):
    job = job_submit(owner=owner, job_type="hillshade", tile_ids=[500], collection="merc")
    with pytest.raises(CommandError, match=f"jobs {job.pk} read collection merc and have not finished"):
        call_command("delete_collection", "merc")
    job_cancel(job=job, by="owner")
    reader = job_submit(owner=owner, job_type="calc", tile_ids=[100], params={
        "expression": "dem + m", "inputs": {"dem": {"collection": "default"}, "m": {"collection": "merc", "band": 2}}})
    with pytest.raises(CommandError, match=f"jobs {reader.pk} read collection merc and have not finished"):
        call_command("delete_collection", "merc")
    job_cancel(job=reader, by="owner")
    job_delete(job=Job.objects.get(pk=reader.pk))
    chain = job_submit(owner=owner, tile_ids=[100], steps=[{"type": "slope"}, {"type": "calc", "params": {
        "expression": "s + m", "inputs": {"s": {"step": 0}, "m": {"collection": "merc"}}}}])
    with pytest.raises(CommandError, match=f"jobs {chain.pk} read collection merc and have not finished"):
        call_command("delete_collection", "merc")
    job_cancel(job=chain, by="owner")
    job_delete(job=Job.objects.get(pk=chain.pk))
    with pytest.raises(CommandError, match=f"finished jobs {job.pk} read collection merc; delete them first"):
        call_command("delete_collection", "merc")
    assert Tile.objects.filter(collection_id="merc").count() == 4
    job_delete(job=Job.objects.get(pk=job.pk))
    call_command("delete_collection", "merc")
    assert not Collection.objects.filter(pk="merc").exists() and not Tile.objects.filter(collection_id="merc").exists()
    assert Tile.objects.filter(collection_id="default").count() == len(index.ids)
    with pytest.raises(CommandError, match="is the default collection"):
        call_command("delete_collection", "default")
    with pytest.raises(CommandError, match="there is no collection 'nosuch'"):
        call_command("delete_collection", "nosuch")


def test_towns_list_their_tiles_per_collection_and_tile_filters_name_a_bad_collection(index, tmp_path, owner,
                                                                                      client_for):
    minx, miny, maxx, maxy = index_extent()
    call_command("load_tiles", str(mercator_over(index, tmp_path / "webm")), "--collection", "webm")
    call_command("load_towns", str(towns_file(tmp_path, {2: box(minx + 1, maxy - 10, minx + 10, maxy - 1)})),
                 "--id-field", "id", "--name-field", "name")
    api = client_for(owner)
    town = api.get("/api/v1/towns/2/").json()
    assert town["tile_ids"] == [index.id_at(0, 0)]
    assert town["tiles_by_collection"] == {"default": [index.id_at(0, 0)], "webm": [700]}
    refused = api.get("/api/v1/tiles/?collection=nosuch")
    assert refused.status_code == 400 and "collection" in refused.json()["errors"]
    box_query = f"bbox={minx},{miny},{maxx},{maxy}"
    assert {t["collection"] for t in api.get(f"/api/v1/tiles/?{box_query}&page_size=100").json()["results"]} == {
        "default"}
    webm = api.get("/api/v1/tiles/?collection=webm&bbox=-1e9,-1e9,1e9,1e9").json()["results"]
    assert [t["id"] for t in webm] == [700, 701, 710, 711]


def test_a_replace_that_would_remove_used_tiles_names_them_and_their_jobs(index, mercator, owner, tmp_path):
    import shutil

    job = job_submit(owner=owner, job_type="hillshade", tile_ids=[500, 501], collection="merc")
    smaller = tmp_path / "smaller"
    smaller.mkdir()
    for number in (500, 510, 511):
        shutil.copy(mercator / f"m_{number}.tif", smaller)
    before = list(Tile.objects.order_by("id").values_list("id", "path", "loaded"))
    with pytest.raises(CommandError, match=rf"would remove tiles 501 of collection merc, which jobs {job.pk} have used; "
                                           r"delete those jobs first, or load into a new collection"):
        call_command("load_tiles", str(smaller), "--collection", "merc", "--replace")
    assert list(Tile.objects.order_by("id").values_list("id", "path", "loaded")) == before


@pytest.mark.django_db(transaction=True)
def test_the_default_collection_survives_a_flush(owner):
    call_command("flush", interactive=False, verbosity=0)
    assert Collection.objects.filter(pk="default").exists()
    assert Job.objects.create(type="slope", owner=User.objects.create(username="after"), tiles_total=0).collection_id == (
        "default")
