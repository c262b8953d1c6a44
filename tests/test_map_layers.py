"""The layers of the site's maps: collections as shaded relief tiles, and GeoJSON of collection
footprints, job tiles with their status, and towns."""

import math

import json

import numpy as np
from osgeo import gdal, ogr, osr

from jobs.lifecycle import job_log
from jobs.models import Tile, TileStatus, Town
from jobs.raster.io import crs_wkt_from_epsg
from jobs.services.submit import job_submit

from .conftest import EPSG
from .test_maps import decode, formula_bounds, tile_at
from .test_execution import run


def collection_zoom_tile(client, offset=0):
    document = client.get("/api/v1/collections/default/tilejson.json").json()
    west, south, east, north = document["bounds"]
    z = document["maxzoom"] + offset
    return document, (z, *tile_at((west + east) / 2, (south + north) / 2, z))


def test_a_collection_tile_is_the_relief_of_its_dem_warped_to_the_tile(index, owner, client_for):
    client = client_for(owner)
    document, (z, x, y) = collection_zoom_tile(client)
    assert "/api/v1/collections/default/tiles/{z}/{x}/{y}.png?v=" in document["tiles"][0]  # the load's version
    assert document["legend"]["style"] == "grey" and document["minzoom"] <= document["maxzoom"]
    answer = client.get(f"/api/v1/collections/default/tiles/{z}/{x}/{y}.png")
    assert answer.status_code == 200 and answer["ETag"] and answer["Content-Type"] == "image/png"
    pixels = decode(answer.content)
    # The whole DEM (not its tiles) warped with a pixel of margin and shaded by gdaldem.
    minx, miny, maxx, maxy = formula_bounds(z, x, y)
    pixel = (maxx - minx) / 256
    dem = gdal.Warp("", str(index.whole), format="MEM", outputBounds=(minx - pixel, miny - pixel, maxx + pixel, maxy + pixel),
                    dstSRS="EPSG:3857", width=258, height=258, resampleAlg="bilinear", outputType=gdal.GDT_Float32,
                    dstNodata=-9999.0)
    latitude = math.degrees(2 * math.atan(math.exp((miny + maxy) / 2 / 6378137.0)) - math.pi / 2)
    relief = gdal.DEMProcessing("", dem, "hillshade", format="MEM", computeEdges=True,
                                scale=math.cos(math.radians(latitude))).ReadAsArray()[1:-1, 1:-1]
    valid = relief > 0
    assert valid.mean() > 0.5
    assert np.array_equal(pixels[3] > 0, valid)
    assert np.abs(pixels[0][valid].astype(int) - relief[valid]).max() <= 1  # bilinear over tiles or one file
    assert (pixels[0] == pixels[1]).all() and (pixels[1] == pixels[2]).all()
    assert client.get(f"/api/v1/collections/default/tiles/{z}/{x}/{y}.png",
                      HTTP_IF_NONE_MATCH=answer["ETag"]).status_code == 304


def test_collection_tiles_outside_below_their_zooms_and_of_no_collection(index, owner, client_for):
    client = client_for(owner)
    document, (z, x, y) = collection_zoom_tile(client)
    assert client.get(f"/api/v1/collections/default/tiles/{z}/{x + 5}/{y}.png").status_code == 204
    low = document["minzoom"] - 1
    if low >= 0:
        refused = client.get(f"/api/v1/collections/default/tiles/{low}/0/0.png")
        assert refused.status_code == 400 and "z" in str(refused.json())
    assert client.get("/api/v1/collections/nosuch/tiles/1/0/0.png").status_code == 404
    assert client.get("/api/v1/collections/default/tiles/30/0/0.png").status_code == 400
    assert client_for(None).get(f"/api/v1/collections/default/tiles/{z}/{x}/{y}.png").status_code == 401


def lonlat(x, y):
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromEPSG(EPSG)
    target.ImportFromEPSG(4326)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(source, target).TransformPoint(x, y)[:2]


def _contains(feature, lon, lat):
    polygon = ogr.CreateGeometryFromJson(json.dumps(feature["geometry"]))
    return polygon.Contains(ogr.CreateGeometryFromWkt(f"POINT ({lon} {lat})"))


def test_collection_footprints_are_its_tiles_in_wgs84(index, owner, client_for):
    answer = client_for(owner).get("/api/v1/collections/default/footprints/")
    assert answer.status_code == 200
    features = answer.json()["features"]
    assert [f["id"] for f in features] == sorted(index.ids)
    for tile in Tile.objects.filter(collection_id="default"):
        feature = next(f for f in features if f["id"] == tile.number)
        assert _contains(feature, *lonlat((tile.minx + tile.maxx) / 2, (tile.miny + tile.maxy) / 2))
    assert client_for(owner).get("/api/v1/collections/nosuch/footprints/").status_code == 404


def test_a_jobs_footprints_carry_each_tiles_status(index, media, owner, other, client_for):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    features = client_for(owner).get(f"/api/v1/jobs/{job.pk}/footprints/").json()["features"]
    assert [(f["id"], f["properties"]["status"]) for f in features] == [(n, "pending") for n in sorted(index.ids[:3])]
    run(job)
    features = client_for(owner).get(f"/api/v1/jobs/{job.pk}/footprints/").json()["features"]
    assert {f["properties"]["status"] for f in features} == {TileStatus.SUCCEEDED}
    assert all(f["properties"]["attempts"] == 1 for f in features)
    assert client_for(other).get(f"/api/v1/jobs/{job.pk}/footprints/").status_code == 404


def test_towns_are_geojson_in_wgs84(index, owner, client_for):
    x0, y0 = 400100.0, 5699900.0
    Town.objects.create(id=7, name="Square", crs_wkt=crs_wkt_from_epsg(EPSG),
                        geometry_wkt=f"POLYGON (({x0} {y0}, {x0 + 200} {y0}, {x0 + 200} {y0 - 200}, {x0} {y0 - 200}, {x0} {y0}))")
    Town.objects.get(id=7).tiles.set(Tile.objects.filter(number=index.ids[0]))
    Town.objects.create(id=8, name="Nowhere", geometry_wkt="POLYGON EMPTY")
    features = client_for(owner).get("/api/v1/towns/geojson/").json()["features"]
    square, nowhere = features
    assert square["id"] == 7 and square["properties"] == {"name": "Square", "tiles": 1}
    assert _contains(square, *lonlat(x0 + 100, y0 - 100)) and not _contains(square, *lonlat(x0 + 300, y0 - 100))
    assert nowhere["geometry"] is None


def test_a_jobs_log_lines_of_one_tile(index, media, owner, client_for):
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:2])
    for number, message in ((index.ids[0], "about the first"), (index.ids[1], "about the second")):
        job_log(job.pk, message, tile_id=Tile.objects.get(number=number, collection_id="default").pk)
    client = client_for(owner)
    lines = client.get(f"/api/v1/jobs/{job.pk}/logs/?tile={index.ids[0]}").json()["results"]
    assert [line["message"] for line in lines] == ["about the first"]
    refused = client.get(f"/api/v1/jobs/{job.pk}/logs/?tile=first")
    assert refused.status_code == 400 and "tile" in str(refused.json())


def test_footprints_by_area_one_tile_and_a_cap(index, media, owner, client_for, monkeypatch):
    from jobs.services import footprints
    client = client_for(owner)
    tile = Tile.objects.get(number=index.id_at(0, 0), collection_id="default")
    lon, lat = lonlat(tile.minx + 10, tile.maxy - 10)
    found = client.get(f"/api/v1/collections/default/footprints/?bbox={lon},{lat},{lon + 1e-5},{lat + 1e-5}").json()
    assert [f["id"] for f in found["features"]] == [tile.number] and found["truncated"] is False
    monkeypatch.setattr(footprints, "MAX_FEATURES", 3)
    capped = client.get("/api/v1/collections/default/footprints/").json()
    assert len(capped["features"]) == 3 and capped["truncated"] is True
    for bad in ("1,2,3", "a,b,c,d", "10,0,5,1", ""):
        answer = client.get(f"/api/v1/collections/default/footprints/?bbox={bad}")
        assert answer.status_code == 400 and "bbox" in str(answer.json()), bad
    job = job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:3])
    one = client.get(f"/api/v1/jobs/{job.pk}/footprints/?tile={index.ids[1]}").json()["features"]
    assert [f["id"] for f in one] == [index.ids[1]]
    assert client.get(f"/api/v1/jobs/{job.pk}/footprints/?tile=x").status_code == 400


def test_a_world_bbox_finds_every_tile_of_a_utm_collection(index, owner, client_for):
    found = client_for(owner).get("/api/v1/collections/default/footprints/?bbox=-180,-90,180,90").json()
    assert sorted(f["id"] for f in found["features"]) == sorted(index.ids)
    west_of = client_for(owner).get("/api/v1/collections/default/footprints/?bbox=-10,40,5,60").json()
    assert west_of["features"] == []


def test_a_collection_in_a_local_grid_has_no_map_tiles(db, owner, client_for):
    from jobs.models import Collection
    Collection.objects.create(id="site", crs_wkt='LOCAL_CS["site grid",UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]',
                              pixel_width=1.0, pixel_height=1.0, minx=0, miny=0, maxx=100, maxy=100, tile_count=1)
    answer = client_for(owner).get("/api/v1/collections/site/tilejson.json")
    assert answer.status_code == 404 and "web maps" in answer.json()["detail"]
    assert client_for(owner).get("/api/v1/collections/site/tiles/5/1/1.png").status_code in (204, 404)
