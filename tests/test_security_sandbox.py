"""Class 3: untrusted bytes are inspected in a child process with limits, off the network, and a
slow file holds up nobody else."""

import json
import os
import resource
import threading
import time

import pytest
import requests
from rest_framework.authtoken.models import Token

from datafiles import sandbox
from datafiles.models import DataFile

from .test_datafiles import files_on_disk, upload


def geojson_of(features):
    feature = ('{"type": "Feature", "properties": {"a": %d, "b": "some text in a field"}, "geometry": '
               '{"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}')
    return ('{"type": "FeatureCollection", "features": [' + ",".join(feature % i for i in range(features)) + "]}").encode()


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace of its own needs root (or user namespaces)")
def test_the_inspector_runs_in_a_network_namespace_of_its_own_with_none_of_the_secrets():
    isolation, environment = sandbox.isolation()
    assert isolation == "network namespace"
    assert not {"SECRET_KEY", "DATABASE_URL", "Q_BROKER"} & set(environment)
    assert "SECRET_KEY" in os.environ  # the test settings have one: it did not pass


def test_a_file_that_needs_more_memory_than_allowed_is_a_400(owner, media, client_for, settings):
    settings.DATAFILE_INSPECT_MEMORY_BYTES = 300 * 1024**2
    content = b"[" + b"1," * 20_000_000 + b"1]"  # 40 MB of JSON: several hundred MB as Python objects
    response = upload(client_for(owner), "numbers.json", content)
    assert response.status_code == 400
    assert response.json()["detail"] == "file: numbers.json cannot be read as .json: reading numbers.json needs more than 300 MiB of memory"
    assert DataFile.objects.count() == 0 and files_on_disk(owner) == []


def test_a_file_that_takes_longer_than_allowed_is_a_400(owner, media, client_for, settings):
    settings.DATAFILE_INSPECT_SECONDS = 1
    started = time.monotonic()
    response = upload(client_for(owner), "zones.geojson", geojson_of(400_000))
    assert response.status_code == 400 and time.monotonic() - started < 5
    assert "reading zones.geojson took longer than 1 s" in response.json()["detail"] or "1 s of CPU" in response.json()["detail"]
    assert DataFile.objects.count() == 0 and files_on_disk(owner) == []


def test_a_slow_upload_does_not_hold_up_other_requests(live_server, owner, media, settings):
    """Two web requests at once: one upload whose inspection runs for seconds, and listings,
    which answer at once all the while (the inspection runs in its own process)."""
    token = Token.objects.create(user=owner).key
    headers = {"Authorization": f"Token {token}"}
    slow = {}

    def upload_slowly():
        started = time.monotonic()
        slow["response"] = requests.post(f"{live_server.url}/api/v1/datafiles/", headers=headers, timeout=60,
                                         files={"file": ("zones.geojson", geojson_of(300_000))})
        slow["seconds"] = time.monotonic() - started

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    thread = threading.Thread(target=upload_slowly)
    thread.start()
    time.sleep(0.3)
    listings = []
    while thread.is_alive():
        started = time.monotonic()
        assert requests.get(f"{live_server.url}/api/v1/datafiles/", headers=headers, timeout=10).status_code == 200
        listings.append(time.monotonic() - started)
    thread.join()
    assert slow["response"].status_code == 201, slow["response"].text
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The reading was done by a child process, not by the web server's own threads.
    assert after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime > 0.5
    # Answered at once all the while: 99 in 100 within half a second, and none held for the inspection
    # (a lone pause of the web server's process, such as a garbage collection, is not that).
    typical = sorted(listings)[int(0.99 * len(listings))]
    assert slow["seconds"] > 1 and len(listings) >= 3 and typical < 0.5 and max(listings) < slow["seconds"] / 3, (
        slow["seconds"], typical, max(listings))
    assert json.loads(slow["response"].text)["metadata"]["layers"][0]["feature_count"] == 300_000
