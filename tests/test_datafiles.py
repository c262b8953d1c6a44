"""Uploading data files: metadata, content, and every refusal, which leaves nothing behind."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobsite.media import media_path
from datafiles.models import DataFile

from .datafile_samples import CSV, COLOR_TABLE, geotiff_bytes, polygons_bytes, zipped_shapefile_bytes


def upload(client, filename, content, **fields):
    return client.post("/api/v1/datafiles/", {"file": SimpleUploadedFile(filename, content), **fields}, format="multipart")


def body_of(response):
    """The text of a content answer, which is streamed."""
    return b"".join(response.streaming_content).decode()


def files_on_disk(owner):
    folder = media_path(f"datafiles/{owner.pk}")
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_geotiff_with_its_raster_metadata(owner, media, client_for, tmp_path):
    content = geotiff_bytes(tmp_path)
    response = upload(client_for(owner), "dem.tif", content)
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["kind"], body["size"]) == ("dem.tif", "raster", len(content))
    import hashlib

    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    meta = body["metadata"]
    assert (meta["driver"], meta["width"], meta["height"], meta["band_count"], meta["epsg"]) == ("GTiff", 20, 10, 1, 25832)
    assert meta["bands"] == [{"type": "Float32", "nodata": -9999.0}]
    assert meta["bounds"] == [400000.0, 5699950.0, 400100.0, 5700000.0] and meta["geotransform"][1] == 5.0
    assert body["links"]["content"] is None
    assert len(files_on_disk(owner)) == 1 and files_on_disk(owner)[0].endswith(".tif")


@pytest.mark.parametrize("name,make,driver", [
    ("zones.geojson", lambda p: polygons_bytes(p), "GeoJSON"),
    ("zones.json", lambda p: polygons_bytes(p), "GeoJSON"),
    ("zones.gpkg", lambda p: polygons_bytes(p, "GPKG", ".gpkg", 25832), "GPKG"),
    ("zones.zip", zipped_shapefile_bytes, "ESRI Shapefile"),
])
def test_vectors_with_their_layers(owner, media, client_for, tmp_path, name, make, driver):
    body = upload(client_for(owner), name, make(tmp_path)).json()
    assert body["kind"] == "vector" and body["metadata"]["driver"] == driver
    layer = body["metadata"]["layers"][0]
    assert layer["feature_count"] == 2 and layer["geometry_type"] == "Polygon"
    assert [f["name"] for f in layer["fields"]] == ["id", "name"]
    assert layer["epsg"] in (4326, 25832) and len(layer["extent"]) == 4


def test_a_csv_table(owner, media, client_for):
    body = upload(client_for(owner), "stations.csv", CSV.encode()).json()
    assert body["kind"] == "table"
    assert body["metadata"]["columns"] == ["station", "height", "name"] and body["metadata"]["row_count"] == 3


def test_text_and_plain_json(owner, media, client_for):
    client = client_for(owner)
    assert upload(client, "ramp.txt", COLOR_TABLE.encode()).json()["metadata"] == {
        "lines": 5, "characters": len(COLOR_TABLE), "color_table": {"readable": True}}
    body = upload(client, "settings.json", b'{"a": [1, 2]}').json()
    assert body["kind"] == "text" and body["metadata"]["json_type"] == "dict"


@pytest.mark.parametrize("fmt,content_type,expected", [
    ("csv", "text/csv", "station,height,name\r\n1,12.5,Nord\r\n2,7.25,Süd\r\n3,0,<Mitte>\r\n"),
    ("json", "application/json", [{"station": "1", "height": "12.5", "name": "Nord"},
                                  {"station": "2", "height": "7.25", "name": "Süd"},
                                  {"station": "3", "height": "0", "name": "<Mitte>"}]),
    ("html", "text/html", "<table><thead><tr><th>station</th><th>height</th><th>name</th></tr></thead><tbody>"
                          "<tr><td>1</td><td>12.5</td><td>Nord</td></tr><tr><td>2</td><td>7.25</td><td>Süd</td></tr>"
                          "<tr><td>3</td><td>0</td><td>&lt;Mitte&gt;</td></tr></tbody></table>"),
    ("txt", "text/plain", "station  height  name\n1        12.5    Nord\n2        7.25    Süd\n3        0       <Mitte>\n"),
])
def test_a_tables_content_in_each_format(owner, media, client_for, fmt, content_type, expected):
    client = client_for(owner)
    upload(client, "stations.csv", CSV.encode())
    response = client.get(f"/api/v1/datafiles/stations.csv/content/?format={fmt}")
    assert response.status_code == 200 and response["Content-Type"].startswith(content_type)
    text = body_of(response)
    assert (json.loads(text) if fmt == "json" else text) == expected


def test_a_text_files_content(owner, media, client_for):
    client = client_for(owner)
    upload(client, "ramp.txt", COLOR_TABLE.encode())
    assert body_of(client.get("/api/v1/datafiles/ramp.txt/content/?format=txt")) == COLOR_TABLE
    assert json.loads(body_of(client.get("/api/v1/datafiles/ramp.txt/content/?format=json"))) == {"lines": COLOR_TABLE.splitlines()}
    assert body_of(client.get("/api/v1/datafiles/ramp.txt/content/?format=html")).startswith("<pre>nv 0 0 0 0")
    response = client.get("/api/v1/datafiles/ramp.txt/content/?format=csv")
    assert response.status_code == 400 and response.json()["detail"] == "format: must be one of txt, json, html for a text"


def test_a_rasters_content_is_refused_but_it_downloads(owner, media, client_for, tmp_path):
    client = client_for(owner)
    content = geotiff_bytes(tmp_path)
    upload(client, "dem.tif", content)
    assert client.get("/api/v1/datafiles/dem.tif/content/?format=csv").status_code == 400
    response = client.get("/api/v1/datafiles/dem.tif/download/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == content
    assert 'filename="dem.tif"' in response["Content-Disposition"]


@pytest.mark.parametrize("name,content,field,problem", [
    ("dem.exe", b"MZ", "name", "the extension must be one of"),
    ("dem.tif", b"II*\x00 this is no tiff", "file", "dem.tif cannot be read as .tif:"),
    ("zones.geojson", b'{"type": "FeatureCollection", "features": [', "file", "zones.geojson cannot be read as .geojson"),
    ("zones.zip", b"PK\x03\x04 broken", "file", "not a zip archive"),
    ("stations.csv", b"a,b\n1,2,3\n", "file", "line 2 has 3 fields, the header has 2"),
    ("stations.csv", b"\n", "file", "there is no header line"),
    ("stations.csv", b"", "file", "The submitted file is empty."),
    ("notes.txt", b"\xff\xfe\x00binary", "file", "not UTF-8 text"),
    ("settings.json", b"{not json", "file", "not JSON"),
])
def test_a_file_that_is_not_what_it_says_is_refused_and_leaves_nothing(owner, media, client_for, name, content,
                                                                       field, problem):
    response = upload(client_for(owner), name, content)
    assert response.status_code == 400
    assert problem in response.json()["detail"] and field in response.json()["errors"]
    assert DataFile.objects.count() == 0 and files_on_disk(owner) == []


@pytest.mark.parametrize("name,problem", [
    ("../../x.tif", "must be a plain file name"),
    ("a/b.csv", "must be a plain file name"),
    ("a\\b.csv", "must be a plain file name"),
    ("..csv", "is not a file name"),
    ("bad\x07name.csv", "must not hold control characters"),
    ("x" * 201 + ".csv", "must be at most 200 characters"),
    ("noextension", "the extension must be one of"),
])
def test_name_tricks_are_refused(owner, media, client_for, name, problem):
    response = upload(client_for(owner), "stations.csv", CSV.encode(), name=name)
    assert response.status_code == 400 and problem in response.json()["detail"]
    assert DataFile.objects.count() == 0 and files_on_disk(owner) == []


def test_a_path_in_the_uploaded_file_name_is_stripped_by_the_parser(owner, media, client_for):
    body = upload(client_for(owner), "../../stations.csv", CSV.encode()).json()
    assert body["name"] == "stations.csv"
    assert all(p.parent == media_path(f"datafiles/{owner.pk}") for p in
               media_path("datafiles").rglob("*") if p.is_file())


def test_over_the_size_limit_is_a_413(owner, media, client_for, settings):
    settings.DATAFILE_MAX_BYTES = 10
    response = upload(client_for(owner), "stations.csv", CSV.encode())
    assert response.status_code == 413
    assert response.json()["detail"] == f"the file is {len(CSV.encode())} bytes; the limit is 10 bytes"
    assert files_on_disk(owner) == []


def test_over_the_quota_is_a_413_naming_the_quota(owner, other, media, client_for, settings):
    settings.DATAFILE_QUOTA_BYTES = 100
    client = client_for(owner)
    assert upload(client, "a.csv", CSV.encode()).status_code == 201
    response = upload(client, "b.csv", CSV.encode())
    assert response.status_code == 413 and "your quota is 100 bytes" in response.json()["detail"]
    assert upload(client_for(other), "b.csv", CSV.encode()).status_code == 201  # a quota of its own
    assert len(files_on_disk(owner)) == 1


def test_a_name_you_have_is_a_409_and_put_replaces_it(owner, media, client_for, django_capture_on_commit_callbacks):
    client = client_for(owner)
    upload(client, "stations.csv", CSV.encode())
    again = upload(client, "stations.csv", b"x,y\n1,2\n")
    assert again.status_code == 409 and "PUT /api/v1/datafiles/stations.csv/ replaces it" in again.json()["detail"]
    before = files_on_disk(owner)
    with django_capture_on_commit_callbacks(execute=True):
            replaced = client.put("/api/v1/datafiles/stations.csv/", {"file": SimpleUploadedFile("x.csv", b"x,y\n1,2\n")},
                              format="multipart")
    assert replaced.status_code == 200 and replaced.json()["metadata"]["columns"] == ["x", "y"]
    assert len(files_on_disk(owner)) == 1 and files_on_disk(owner) != before
    created = client.put("/api/v1/datafiles/new.csv/", {"file": SimpleUploadedFile("new.csv", b"x\n1\n")}, format="multipart")
    assert created.status_code == 201


def test_list_filter_search_and_delete(owner, other, media, client_for, tmp_path, django_capture_on_commit_callbacks):
    client = client_for(owner)
    upload(client, "stations.csv", CSV.encode())
    upload(client, "ramp.txt", COLOR_TABLE.encode())
    upload(client, "dem.tif", geotiff_bytes(tmp_path))
    upload(client_for(other), "theirs.csv", CSV.encode())
    names = lambda query: [f["name"] for f in client.get(f"/api/v1/datafiles/?{query}").json()["results"]]  # noqa: E731
    assert names("") == ["dem.tif", "ramp.txt", "stations.csv"]
    assert names("kind=table") == ["stations.csv"] and names("search=RAM") == ["ramp.txt"]
    assert client.get("/api/v1/datafiles/theirs.csv/").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete("/api/v1/datafiles/ramp.txt/").status_code == 204
    assert names("") == ["dem.tif", "stations.csv"] and len(files_on_disk(owner)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete("/api/v1/datafiles/").json() == {"deleted": 2}
    assert names("") == [] and files_on_disk(owner) == []
    assert DataFile.objects.filter(owner=other).count() == 1


def test_data_files_count_in_storage(owner, media, client_for):
    client = client_for(owner)
    upload(client, "stations.csv", CSV.encode())
    assert client.get("/api/v1/storage/").json()["data_bytes"] == len(CSV.encode())
