"""The STAC catalogue of succeeded jobs: documents valid against the STAC schemas (validated by
pystac offline, with the extension schemas vendored in tests/stac_schemas), and item search."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from pystac.validation import JsonSchemaSTACValidator, set_validator, validate_dict

from jobs.models import Job
from jobs.services.submit import job_submit

from .test_execution import run

SCHEMAS = Path(__file__).parent / "stac_schemas"
VENDORED = {
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json": SCHEMAS / "projection-v2.0.0" / "schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json": SCHEMAS / "raster-v1.1.0" / "schema.json",
}


class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's validator with the schemas it would download given here: a schema not vendored fails
    the test rather than being fetched."""

    def __init__(self):
        super().__init__()
        for uri, path in VENDORED.items():
            self.schema_cache[uri] = json.loads(path.read_text())

    def _get_schema(self, schema_uri):
        if schema_uri not in self.schema_cache:
            raise AssertionError(f"the schema {schema_uri} is not vendored")
        return self.schema_cache[schema_uri]


@pytest.fixture(autouse=True)
def offline_validation():
    set_validator(OfflineValidator())
    yield
    set_validator(JsonSchemaSTACValidator())


@pytest.fixture
def jobs(index, media, owner, other):
    slope = run(job_submit(owner=owner, job_type="slope", tile_ids=index.ids[:4], labels=["flood"],
                           params={"units": "percent"}))
    hillshade = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[-2:]))
    echo = run(job_submit(owner=owner, job_type="echo", params={"message": "hello"}))
    theirs = run(job_submit(owner=other, job_type="slope", tile_ids=index.ids[:1]))
    return slope, hillshade, echo, theirs


def test_a_succeeded_job_is_a_valid_stac_item(jobs, owner, client_for):
    slope, *_ = jobs
    client = client_for(owner)
    answer = client.get(f"/api/v1/stac/collections/slope/items/{slope.pk}")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/geo+json"
    item = answer.json()
    assert validate_dict(item)  # the core Item schema and each extension's
    assert any("projection" in uri for uri in item["stac_extensions"])
    assert any("raster" in uri for uri in item["stac_extensions"])
    facts = slope.outputs[0]["raster"]
    assert item["id"] == str(slope.pk) and item["collection"] == "slope"
    assert item["bbox"] == facts["bbox"] and item["geometry"] == facts["footprint"]
    properties = item["properties"]
    assert properties["datetime"].startswith(slope.finished.strftime("%Y-%m-%dT%H:%M:%S"))
    assert properties["start_datetime"] <= properties["end_datetime"]
    assert properties["proj:code"] == "EPSG:25832" and properties["proj:shape"] == facts["shape"]
    x0, px, _, y0, _, py = facts["geotransform"]
    assert properties["proj:transform"][:6] == [px, 0.0, x0, 0.0, py, y0]
    assert properties["jobsite:parameters"]["units"] == "percent" and properties["jobsite:labels"] == ["flood"]
    cog = item["assets"]["slope.tif"]
    assert cog["type"] == "image/tiff; application=geotiff; profile=cloud-optimized" and cog["roles"] == ["data"]
    statistics = cog["raster:bands"][0]["statistics"]
    assert statistics["minimum"] == facts["bands"][0]["statistics"]["minimum"]
    assert cog["raster:bands"][0]["data_type"] == "float32" and cog["raster:bands"][0]["nodata"] == -9999
    assert item["assets"]["thumbnail"]["roles"] == ["thumbnail"]
    for asset in item["assets"].values():
        assert client.get(asset["href"]).status_code == 200
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert {"self", "parent", "collection", "root", "xyz", "tilejson", "alternate"} <= set(links)
    assert client.get(links["tilejson"]).status_code == 200
    assert client.get(links["xyz"].format(z=3, x=0, y=0)).status_code == 204  # far away: empty
    alternates = [link["href"] for link in item["links"] if link["rel"] == "alternate"]
    assert all(client.get(href).status_code == 200 for href in alternates)


def test_a_job_of_no_place_is_an_item_without_geometry(jobs, owner, client_for):
    echo = jobs[2]
    item = client_for(owner).get(f"/api/v1/stac/collections/echo/items/{echo.pk}").json()
    assert validate_dict(item)
    assert item["geometry"] is None and "bbox" not in item
    assert "echo.json" in item["assets"]


def test_the_catalog_and_collections_are_valid_and_browsable(jobs, owner, client_for):
    client = client_for(owner)
    catalog = client.get("/api/v1/stac/").json()
    assert validate_dict(catalog)
    children = [link["href"] for link in catalog["links"] if link["rel"] == "child"]
    assert len(children) >= 5
    slope = client.get(next(href for href in children if href.endswith("/collections/slope"))).json()
    assert validate_dict(slope)
    west, south, east, north = slope["extent"]["spatial"]["bbox"][0]
    facts = jobs[0].outputs[0]["raster"]
    assert (west, south) == tuple(facts["bbox"][:2])  # the caller's own job only: not the other user's
    items = client.get(next(link["href"] for link in slope["links"] if link["rel"] == "items")).json()
    assert [feature["id"] for feature in items["features"]] == [str(jobs[0].pk)]
    everything = client.get("/api/v1/stac/collections").json()
    assert all(validate_dict(collection) for collection in everything["collections"])
    assert client.get("/api/v1/stac/collections/nosuch").status_code == 404
    assert client.get("/api/v1/stac/collections/nosuch/items").status_code == 404


def test_another_users_job_is_not_in_the_catalogue(jobs, owner, other, staff, client_for):
    theirs = jobs[3]
    assert client_for(owner).get(f"/api/v1/stac/collections/slope/items/{theirs.pk}").status_code == 404
    assert client_for(staff).get(f"/api/v1/stac/collections/slope/items/{theirs.pk}").status_code == 200
    assert client_for(None).get("/api/v1/stac/").status_code == 401
    queued = job_submit(owner=other, job_type="slope", tile_ids=[100])
    assert client_for(other).get(f"/api/v1/stac/collections/slope/items/{queued.pk}").status_code == 404


def test_item_search_by_area_time_and_pages(jobs, owner, client_for):
    client = client_for(owner)
    slope, hillshade, echo, _ = jobs

    def found(query):
        answer = client.get(f"/api/v1/stac/search?{query}")
        assert answer.status_code == 200, answer.json()
        return [feature["id"] for feature in answer.json()["features"]]

    assert sorted(found("")) == sorted(str(job.pk) for job in (slope, hillshade, echo))
    west, south, east, north = slope.outputs[0]["raster"]["bbox"]
    assert found(f"bbox={west},{south},{west + 0.0001},{south + 0.0001}") == [str(slope.pk)]
    assert found("bbox=0,0,1,1") == []
    assert str(echo.pk) not in found("bbox=-180,-90,180,90")  # no place: never in an area
    assert found("collections=hillshade") == [str(hillshade.pk)]
    assert found(f"ids={slope.pk},{echo.pk}") == [str(echo.pk), str(slope.pk)]
    # Time: when each job ended.
    Job.objects.filter(pk=slope.pk).update(finished=timezone.now() - timedelta(days=10))
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert str(slope.pk) not in found(f"datetime={since}/..") and len(found(f"datetime={since}/..")) == 2
    assert found(f"datetime=../{since}") == [str(slope.pk)]
    # Pages: follow next.
    page = client.get("/api/v1/stac/search?limit=2").json()
    assert page["numberMatched"] == 3 and page["numberReturned"] == 2
    following = client.get(next(link["href"] for link in page["links"] if link["rel"] == "next")).json()
    assert following["numberReturned"] == 1 and not [link for link in following["links"] if link["rel"] == "next"]
    assert {f["id"] for f in page["features"] + following["features"]} == {str(j.pk) for j in (slope, hillshade, echo)}


@pytest.mark.parametrize("query, field", [
    ("bbox=1,2,3", "bbox"), ("bbox=10,0,5,1", "bbox"), ("bbox=a,b,c,d", "bbox"), ("bbox=0,-95,1,1", "bbox"),
    ("datetime=yesterday", "datetime"), ("datetime=2026-01-01T00:00:00", "datetime"), ("datetime=../..", "datetime"),
    ("datetime=2026-02-01T00:00:00Z/2026-01-01T00:00:00Z", "datetime"), ("limit=0", "limit"), ("limit=100000", "limit"),
    ("offset=-1", "offset"), ("collections=nosuch", "collections"), ("ids=abc", "ids"), ("ids=%C2%B2", "ids"),
    ("datetime=9999-12-31T23:59:59-01:00/..", "datetime"), ("bbox=nan,0,1,1", "bbox"),
])
def test_bad_search_parameters_are_named(db, owner, client_for, query, field):
    answer = client_for(owner).get(f"/api/v1/stac/search?{query}")
    assert answer.status_code == 400
    assert field in str(answer.json())


def test_the_rest_job_and_the_ogc_results_link_to_the_item(jobs, owner, client_for):
    slope = jobs[0]
    client = client_for(owner)
    item_url = client.get(f"/api/v1/jobs/{slope.pk}/").json()["links"]["stac"]
    assert item_url.endswith(f"/api/v1/stac/collections/slope/items/{slope.pk}")
    assert client.get(item_url).json()["id"] == str(slope.pk)
    status = client.get(f"/ogcapi/jobs/{slope.pk}", HTTP_ACCEPT="application/json").json()
    assert item_url in [link["href"] for link in status["links"] if link["type"] == "application/geo+json"]
    results = client.get(f"/ogcapi/jobs/{slope.pk}/results", HTTP_ACCEPT="application/json")
    assert results.status_code == 200 and f"<{item_url}>" in results["Link"]
    queued = job_submit(owner=owner, job_type="slope", tile_ids=[100])
    assert client.get(f"/api/v1/jobs/{queued.pk}/").json()["links"]["stac"] is None


def test_a_hillshade_item_names_its_bytes_as_the_raster_extension_does(jobs, owner, client_for):
    hillshade = jobs[1]
    item = client_for(owner).get(f"/api/v1/stac/collections/hillshade/items/{hillshade.pk}").json()
    assert validate_dict(item)
    assert item["assets"]["hillshade.tif"]["raster:bands"][0]["data_type"] == "uint8"


def test_results_merged_before_their_facts_were_recorded_are_described_by_the_command(jobs, owner, client_for):
    from django.core.management import call_command

    slope = jobs[0]
    recorded = Job.objects.get(pk=slope.pk).outputs
    Job.objects.filter(pk=slope.pk).update(outputs=[{k: v for k, v in o.items() if k != "raster"} for o in recorded],
                                           west=None, south=None, east=None, north=None)
    west, south, _, _ = recorded[0]["raster"]["bbox"]
    client = client_for(owner)
    assert client.get(f"/api/v1/stac/search?bbox={west},{south},{west + 0.0001},{south + 0.0001}").json()["features"] == []
    call_command("describe_results")
    assert Job.objects.get(pk=slope.pk).outputs == recorded
    found = client.get(f"/api/v1/stac/search?bbox={west},{south},{west + 0.0001},{south + 0.0001}").json()["features"]
    assert [f["id"] for f in found] == [str(slope.pk)]
