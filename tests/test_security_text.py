"""Class 5: text and tables are streamed, not loaded whole; the CSV dialect is detected in linear
time; JSON nested too deeply is a 400."""

import csv
import os
import time
import tracemalloc

import pytest

from datafiles import metadata
from datafiles import services as datafiles
from datafiles.models import DataFile

from .test_datafiles import body_of, files_on_disk, upload

MEMORY_BUDGET = 100 * 1024 * 1024


def test_a_csv_crafted_against_the_standard_sniffer_is_detected_at_once(owner, media, client_for):
    crafted = ',"' * 32 * 1024  # 64 KB: csv.Sniffer's regular expressions take time quadratic in it
    started = time.process_time()
    try:
        csv.Sniffer().sniff(crafted[:16 * 1024], delimiters=",;\t|")
    except csv.Error:
        pass
    sniffer = time.process_time() - started  # on a quarter of the file
    started = time.process_time()
    metadata.detect_delimiter(crafted)
    ours = time.process_time() - started
    assert sniffer > 0.3 and ours < sniffer / 10, (sniffer, ours)
    started = time.monotonic()
    response = upload(client_for(owner), "crafted.csv", crafted.encode())
    assert time.monotonic() - started < 3
    assert response.status_code in (201, 400)


def test_the_delimiter_is_the_one_that_splits_every_line_alike():
    assert metadata.detect_delimiter("a;b;c\n1;2,5;3\n") == ";"
    assert metadata.detect_delimiter("a\tb\n1\t2\n") == "\t"
    assert metadata.detect_delimiter('name,note\n"x, y",1\n') == ","
    assert metadata.detect_delimiter("single\n1\n") == ","


class FileUpload:
    """An upload on disk, as Django hands over one larger than FILE_UPLOAD_MAX_MEMORY_SIZE."""

    def __init__(self, path):
        self.path, self.name, self.size = path, path.name, path.stat().st_size

    def chunks(self, chunk_size=64 * 1024):
        with open(self.path, "rb") as source:
            while chunk := source.read(chunk_size):
                yield chunk


def peak_memory(call):
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_upload_and_content_of_a_large_table_stay_within_a_fixed_memory_budget(owner, media, tmp_path):
    path = tmp_path / "large.csv"
    row = ",".join(f"value-{i:03d}-" + "x" * 12 for i in range(8)) + "\n"
    with open(path, "w") as out:
        out.write(",".join(f"c{i}" for i in range(8)) + "\n")
        out.writelines([row] * (60 * 1024 * 1024 // len(row)))
    (datafile, _), peak = peak_memory(lambda: datafiles.datafile_store(owner=owner, upload=FileUpload(path)))
    assert datafile.metadata["row_count"] == 60 * 1024 * 1024 // len(row) and peak < MEMORY_BUDGET, peak
    for fmt in ("csv", "txt"):
        (_, written), peak = peak_memory(
            lambda fmt=fmt: (None, sum(len(c) for c in datafiles.datafile_content(datafile, fmt)[1])))
        assert written > os.path.getsize(path) * 0.9 and peak < MEMORY_BUDGET, (fmt, peak)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_too_deeply_is_a_400(owner, media, client_for, depth):
    response = upload(client_for(owner), "deep.json", b"[" * depth + b"]" * depth)
    assert response.status_code == 400
    assert response.json()["detail"] == "file: deep.json cannot be read as .json: deep.json: JSON nested deeper than 64 levels"
    assert DataFile.objects.count() == 0 and files_on_disk(owner) == []


def test_json_nested_within_the_limit_is_text_and_streams_back(owner, media, client_for):
    content = b"[" * 60 + b"1" + b"]" * 60
    response = upload(client_for(owner), "deep.json", content)
    assert response.status_code == 201 and response.json()["metadata"]["json_type"] == "list"
    assert body_of(client_for(owner).get("/api/v1/datafiles/deep.json/content/?format=json")) == content.decode()


def test_a_line_longer_than_the_limit_is_a_400(owner, media, client_for):
    response = upload(client_for(owner), "long.csv", b"a,b\n" + b"x," * (metadata.MAX_LINE // 2 + 10) + b"1\n")
    assert response.status_code == 400 and "has a line longer than" in response.json()["detail"]
    assert files_on_disk(owner) == []
