"""The tile index, towns, job types and labels."""

import pytest

from jobs.services.submit import job_submit
from jobs.jobtypes import JOB_TYPES


def test_tiles_list_with_their_bounds(index, owner, client_for):
    body = client_for(owner).get("/api/v1/tiles/").json()
    assert body["count"] == 12
    first = body["results"][0]
    assert first == {"id": 100, "collection": "default", "bounds": [400000.0, 5699680.0, 400320.0, 5700000.0], "width": 64, "height": 64,
                     "col": 0, "row": 0}
    assert client_for(owner).get("/api/v1/tiles/123/").json()["width"] == 58


@pytest.mark.parametrize("query,expected", [
    ("id=100,111,5", [100, 111]),
    ("town=11850", [100, 101, 110, 111]),
    ("bbox=400000,5699600,400330,5699700", [100, 101, 110, 111]),  # overlaps the corner of four tiles
    ("bbox=400010,5699690,400020,5699700", [100]),
    ("bbox=0,0,1,1", []),
])
def test_tiles_filter_by_ids_town_and_bbox(town, owner, client_for, query, expected):
    body = client_for(owner).get(f"/api/v1/tiles/?{query}").json()
    assert [tile["id"] for tile in body["results"]] == expected


@pytest.mark.parametrize("query,problem", [
    ("bbox=1,2,3", "bbox: must be minx,miny,maxx,maxy"),
    ("bbox=a,b,c,d", "bbox: must be minx,miny,maxx,maxy"),
    ("bbox=5,0,1,1", "bbox: minx must not exceed maxx"),
    ("id=1,x", "id: "),
])
def test_a_bad_tile_filter_is_a_400(index, owner, client_for, query, problem):
    response = client_for(owner).get(f"/api/v1/tiles/?{query}")
    assert response.status_code == 400 and problem in response.json()["detail"]


def test_an_unknown_tile_is_a_json_404(index, owner, client_for):
    response = client_for(owner).get("/api/v1/tiles/999/")
    assert response.status_code == 404 and response.json() == {"detail": "No Tile matches the given query."}


def test_towns_with_their_tile_ids(town, owner, client_for):
    client = client_for(owner)
    assert client.get("/api/v1/towns/").json()["results"] == [
        {"id": 11850, "name": "Testheim", "tile_ids": [100, 101, 110, 111],
         "tiles_by_collection": {"default": [100, 101, 110, 111]}}]
    assert client.get("/api/v1/towns/11850/").json()["tile_ids"] == [100, 101, 110, 111]
    assert client.get("/api/v1/towns/1/").status_code == 404


def test_job_types_describe_their_parameters(owner, client_for):
    client = client_for(owner)
    types = client.get("/api/v1/job-types/").json()
    assert [t["name"] for t in types] == ["aspect", "calc", "clip", "color-relief", "echo", "hillshade", "reproject",
                                         "slope", "zonal-statistics"]
    relief = next(t for t in types if t["name"] == "color-relief")
    assert relief["inputs"] == [{"name": "color_table", "kind": "text", "help": relief["inputs"][0]["help"]}]
    hillshade = client.get("/api/v1/job-types/hillshade/").json()
    assert hillshade == JOB_TYPES["hillshade"].schema()
    assert hillshade["params"]["properties"]["azimuth"]["default"] == 315.0
    units = client.get("/api/v1/job-types/slope/").json()["params"]["properties"]["units"]
    assert units["enum"] == ["degree", "percent"] and units["type"] == "string"
    missing = client.get("/api/v1/job-types/erosion/")
    assert missing.status_code == 404 and missing.json() == {"detail": "no job type 'erosion'"}


def test_labels_in_use_with_their_job_counts(index, owner, other, staff, client_for):
    job_submit(owner=owner, job_type="slope", tile_ids=[100], labels=["flood", "2024"])
    job_submit(owner=owner, job_type="slope", tile_ids=[100], labels=["flood"])
    job_submit(owner=other, job_type="slope", tile_ids=[100], labels=["flood", "secret"])
    assert client_for(owner).get("/api/v1/labels/").json()["results"] == [
        {"name": "2024", "jobs": 1}, {"name": "flood", "jobs": 2}]
    assert client_for(staff).get("/api/v1/labels/").json()["results"] == [
        {"name": "2024", "jobs": 1}, {"name": "flood", "jobs": 3}, {"name": "secret", "jobs": 1}]
