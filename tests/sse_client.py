"""A client of a Server-Sent Event stream for the tests: one connection, read event by event."""

import http.client
import json
import time
from urllib.parse import urlsplit


class EventStream:
    def __init__(self, url, token=None, last_event_id=None, timeout=10):
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Token {token}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.last_event_id = None  # as EventSource keeps it: an `id:` line alone sets it too
        self.comments = 0
        if self.status == 200:  # the stream's first lines (retry, and where it begins) have come
            self.events(0, until_blank=True)

    def events(self, count, timeout=10, until_blank=False):
        """The next `count` events, as (id, type, payload)."""
        found = []
        deadline = time.monotonic() + timeout
        fields = {}
        while len(found) < count or until_blank:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s with {len(found)} of {count} events: {found}")
            line = self.response.readline().decode()
            if line == "":
                raise AssertionError(f"the stream ended after {len(found)} of {count} events")
            line = line.rstrip("\n")
            if line.startswith(":"):
                self.comments += 1
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            else:
                if "id" in fields:
                    self.last_event_id = int(fields["id"])
                if "data" in fields:
                    found.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                fields = {}
                until_blank = False
        return found

    def close(self):
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
