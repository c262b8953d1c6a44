"""Job outputs and data files over HTTP the way COG readers ask for them: single byte ranges,
validators and conditional requests (jobsite.downloads)."""

import gc
import tracemalloc
import warnings
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncRequestFactory
from django.utils.http import http_date

from jobs.models import Job
from jobs.services.submit import job_submit
from jobsite.downloads import serve_file
from jobsite.media import media_path

from .test_execution import run


@pytest.fixture
def cog(index, owner, media, client_for):
    """A succeeded job's COG: its URL, its bytes and a client of its owner."""
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2]))
    output = job.outputs[0]
    return {"url": f"/api/v1/jobs/{job.pk}/outputs/{output['name']}", "bytes": media_path(output["path"]).read_bytes(),
            "client": client_for(owner), "job": job}


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def get(client, url, **headers):
    return client.get(url, headers=headers)


def test_the_whole_file_without_a_range_says_it_takes_ranges(cog):
    response = cog["client"].get(cog["url"])
    assert response.status_code == 200 and body(response) == cog["bytes"]
    assert response["Accept-Ranges"] == "bytes" and int(response["Content-Length"]) == len(cog["bytes"])
    assert response["ETag"].startswith('"') and response["Last-Modified"].endswith("GMT")
    assert response["Content-Type"] == "image/tiff"


def test_single_byte_ranges_answer_206_with_exactly_those_bytes(cog):
    data, size = cog["bytes"], len(cog["bytes"])
    cases = {  # Range: (first, last) byte answered
        "bytes=0-0": (0, 0),  # the first byte
        "bytes=100-1123": (100, 1123),  # the middle
        f"bytes={size - 1}-{size - 1}": (size - 1, size - 1),  # the last byte
        "bytes=-1": (size - 1, size - 1),  # the last byte as a suffix
        "bytes=-500": (size - 500, size - 1),  # a suffix
        "bytes=1000-": (1000, size - 1),  # open-ended
        f"bytes={size - 10}-{size + 5000}": (size - 10, size - 1),  # past the end: cut at the end
        f"bytes=-{size + 100}": (0, size - 1),  # a suffix longer than the file: all of it
        "bytes=9-7": None,  # not a range: ignored
        "bytes=a-b": None,
    }
    for asked, answered in cases.items():
        response = get(cog["client"], cog["url"], Range=asked)
        if answered is None:
            assert response.status_code == 200 and body(response) == data, asked
            continue
        first, last = answered
        assert response.status_code == 206, asked
        assert response["Content-Range"] == f"bytes {first}-{last}/{size}", asked
        assert int(response["Content-Length"]) == last - first + 1, asked
        assert body(response) == data[first:last + 1], asked
        assert response["Accept-Ranges"] == "bytes"


def test_a_range_past_the_end_is_416_and_several_ranges_get_the_whole_file(cog):
    data, size = cog["bytes"], len(cog["bytes"])
    for asked in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}"):
        response = get(cog["client"], cog["url"], Range=asked)
        assert response.status_code == 416 and response["Content-Range"] == f"bytes */{size}", asked
        assert "starts past the file's" in response.content.decode() and response["Accept-Ranges"] == "bytes"
    # Several ranges are answered with the whole file, as the README says (RFC 9110 allows it).
    response = get(cog["client"], cog["url"], Range="bytes=0-9,20-29")
    assert response.status_code == 200 and body(response) == data
    # Another unit than bytes is ignored too.
    assert get(cog["client"], cog["url"], Range="pages=1-2").status_code == 200


def test_head_answers_the_headers_of_get_without_a_body(cog, rf):
    size = len(cog["bytes"])
    path = cog["job"].outputs[0]["path"]
    # The view's own answer (the test client, like the servers, would drop a body of a HEAD).
    response = serve_file(rf.head("/"), path, content_type="image/tiff", filename="hillshade.tif")
    assert response.status_code == 200 and not response.streaming and response.content == b""
    assert int(response["Content-Length"]) == size and response["Accept-Ranges"] == "bytes"
    assert response["ETag"] == cog["client"].get(cog["url"])["ETag"]
    # A range on a HEAD is answered as on a GET, as nginx does: the headers say what a GET would send.
    ranged = serve_file(rf.head("/", headers={"Range": "bytes=10-19"}), path, content_type="image/tiff",
                        filename="hillshade.tif")
    assert ranged.status_code == 206 and ranged["Content-Range"] == f"bytes 10-19/{size}" and ranged.content == b""
    assert ranged["Content-Length"] == "10"
    through_api = cog["client"].head(cog["url"])
    assert through_api.status_code == 200 and int(through_api["Content-Length"]) == size


def test_the_url_with_a_slash_after_the_name_still_answers(cog):
    response = get(cog["client"], cog["url"] + "/", Range="bytes=0-3")
    assert response.status_code == 206 and body(response) == cog["bytes"][:4]


def test_conditional_requests(cog):
    client, url, data = cog["client"], cog["url"], cog["bytes"]
    first = client.get(url)
    etag, modified = first["ETag"], first["Last-Modified"]
    unchanged = get(client, url, **{"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged["ETag"] == etag and unchanged["Accept-Ranges"] == "bytes"
    assert get(client, url, **{"If-Modified-Since": modified}).status_code == 304
    assert get(client, url, **{"If-None-Match": '"other"'}).status_code == 200
    assert get(client, url, **{"If-Modified-Since": http_date(0)}).status_code == 200
    refused = get(client, url, **{"If-Match": '"other"'})
    assert refused.status_code == 412 and refused["Accept-Ranges"] == "bytes"
    assert get(client, url, **{"If-Unmodified-Since": http_date(1000)}).status_code == 412
    assert get(client, url, **{"If-Match": etag}).status_code == 200
    # A 304 before any range: the client has the file.
    assert get(client, url, Range="bytes=0-9", **{"If-None-Match": etag}).status_code == 304
    assert first["Cache-Control"] == "private, no-cache"  # caches ask again each time
    # If-Range: the range only while the file is the one the client has.
    assert get(client, url, Range="bytes=0-9", **{"If-Range": etag}).status_code == 206
    assert get(client, url, Range="bytes=0-9", **{"If-Range": modified}).status_code == 206
    for stale in ('"other"', f"W/{etag}", http_date(0)):
        response = get(client, url, Range="bytes=0-9", **{"If-Range": stale})
        assert response.status_code == 200 and body(response) == data, stale


def test_a_new_file_has_a_new_etag(cog):
    client, url = cog["client"], cog["url"]
    etag = client.get(url)["ETag"]
    path = media_path(cog["job"].outputs[0]["path"])
    replacement = path.with_suffix(".new")
    replacement.write_bytes(cog["bytes"][:-1] + b"\x00")
    replacement.replace(path)
    assert get(client, url, **{"If-None-Match": etag}).status_code == 200
    assert get(client, url, Range="bytes=0-9", **{"If-Range": etag}).status_code == 200


def test_a_large_range_is_streamed_not_read_into_memory(owner, media, client_for):
    """A 64 MB output's range of 48 MB goes out in chunks: Python never holds more than a few of them."""
    big = Path(media) / "jobs" / "big.tif"
    big.parent.mkdir(parents=True)
    with big.open("wb") as out:
        out.truncate(64 * 1024 * 1024)
    job = Job.objects.create(owner=owner, type="hillshade", status="succeeded", outputs=[
        {"name": "big.tif", "path": "jobs/big.tif", "size": big.stat().st_size, "content_type": "image/tiff"}])
    client = client_for(owner)
    tracemalloc.start()
    try:
        for asked in ("bytes=1000000-49000000", None):
            response = client.get(f"/api/v1/jobs/{job.pk}/outputs/big.tif", headers={"Range": asked} if asked else {})
            sent = sum(len(chunk) for chunk in response.streaming_content)  # the test client closes it at the end
            assert sent == (48_000_001 if asked else 64 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"


def test_under_an_asgi_server_a_download_is_streamed_too(media):
    """uvicorn (`make run`): Django would read a synchronous iterator whole before sending it; the
    file goes out a piece at a time instead."""
    big = Path(media) / "jobs" / "big.tif"
    big.parent.mkdir(parents=True)
    with big.open("wb") as out:
        out.truncate(32 * 1024 * 1024)

    async def download(headers):
        response = serve_file(AsyncRequestFactory().get("/", headers=headers), "jobs/big.tif",
                              content_type="image/tiff", filename="big.tif")
        assert response.is_async
        sent = sum([len(chunk) async for chunk in response.streaming_content])
        response.close()
        return response.status_code, sent

    tracemalloc.start()
    try:
        assert async_to_sync(download)({"Range": "bytes=1000-20000999"}) == (206, 20_000_000)
        assert async_to_sync(download)({}) == (200, 32 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"


def test_no_answer_leaves_a_file_open(cog, settings):
    """Every way out (200, 206, HEAD, 304, 412, 416, nginx's) closes the file it opened, rather than
    leaving it to the garbage collector (which says so with a ResourceWarning)."""
    client, url, size = cog["client"], cog["url"], len(cog["bytes"])
    first = client.get(url)
    body(first)
    etag = first["ETag"]
    gc.collect()  # what earlier tests left to the collector is theirs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for headers in ({}, {"Range": "bytes=0-9"}, {"If-None-Match": etag}, {"If-Match": '"other"'},
                        {"Range": f"bytes={size}-"}):
            body(get(client, url, **headers))  # read to the end, when a server closes the answer
        client.head(url)
        settings.DOWNLOAD_ACCEL_PREFIX = "/protected-media/"
        get(client, url)
        gc.collect()
    assert [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)] == []


def test_data_file_downloads_take_ranges_too(owner, media, client_for, staff):
    client = client_for(owner)
    content = b"".join(b"%d 10 20 30\n" % value for value in range(0, 2000, 10))
    assert client.post("/api/v1/datafiles/", {"file": SimpleUploadedFile("ramp.txt", content)}).status_code == 201
    url = "/api/v1/datafiles/ramp.txt/download/"
    whole = client.get(url)
    assert whole.status_code == 200 and body(whole) == content and whole["Accept-Ranges"] == "bytes"
    assert "attachment" in whole["Content-Disposition"]
    part = get(client, url, Range="bytes=5-14")
    assert part.status_code == 206 and body(part) == content[5:15]
    assert get(client, url, **{"If-None-Match": whole["ETag"]}).status_code == 304
    head = client.head(url)
    assert head.status_code == 200 and int(head["Content-Length"]) == len(content)
    staff_client = client_for(staff)
    from datafiles.models import DataFile

    admin_url = f"/staff/datafiles/{DataFile.objects.get(name='ramp.txt').pk}/download/"
    staff_client.force_login(staff)
    assert body(get(staff_client, admin_url, Range="bytes=-3")) == content[-3:]


def test_behind_nginx_django_checks_and_nginx_sends(cog, settings):
    settings.DOWNLOAD_ACCEL_PREFIX = "/protected-media/"
    response = get(cog["client"], cog["url"], Range="bytes=0-9")
    path = cog["job"].outputs[0]["path"]
    assert response.status_code == 200 and body(response) == b""
    assert response["X-Accel-Redirect"] == f"/protected-media/{path}"
    assert response["Content-Type"] == "image/tiff" and response["Cache-Control"] == "private, no-cache"
    assert cog["client"].get(cog["url"].replace("hillshade.tif", "other.tif"),
                             headers={"Range": "bytes=0-9"}).status_code == 404
