"""Files handed out over HTTP (job outputs, data files) the way COG readers want them: with single
byte ranges, validators and conditional requests, streamed from disk.

GDAL's /vsicurl/ (and so QGIS), rio-tiler and geotiff.js read a Cloud-Optimized GeoTIFF by asking
for the few byte ranges they need; `serve_file` answers a GET (or HEAD):

- no Range, or a Range of several parts: 200 and the whole file (several parts are not worth a
  multipart answer: the readers above ask for one range at a time);
- one satisfiable range (`bytes=a-b`, `bytes=a-`, `bytes=-n`): 206 with Content-Range and those
  bytes; a range past the end is cut at the end, a suffix longer than the file is the whole file;
- a range that starts at or past the end: 416 with `Content-Range: bytes */size`;
- `If-None-Match` / `If-Modified-Since` that match: 304; `If-Match` / `If-Unmodified-Since` that
  fail: 412 (Django's own evaluation, RFC 9110 13.2.2); an `If-Range` that does not match: the
  whole file.

Every answer has `Accept-Ranges: bytes`, a strong ETag, Last-Modified, and `Cache-Control: private,
no-cache`: a cache asks again each time (a 304 is cheap), so that no cache serves a file after the
permission or link that allowed it has ended. With JOBSITE_DOWNLOAD_ACCEL_PREFIX set, Django only
checks the permission and the front web server (nginx's X-Accel-Redirect) sends the file.
"""

import asyncio
import hashlib
import math
import os
from urllib.parse import quote

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.utils.cache import get_conditional_response
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe
from werkzeug.http import parse_range_header

from jobsite import media

CHUNK = 64 * 1024
CACHING = "private, no-cache"


class Unsatisfiable(Exception):
    """A range that starts at or past the end of the file."""


def _validators(stat):
    """A strong ETag (a file is replaced, never rewritten in place, so its inode, size and
    modification time name its content) and the Last-Modified time in whole seconds."""
    digest = hashlib.blake2b(f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}".encode(), digest_size=12).hexdigest()
    return f'"{digest}"', math.floor(stat.st_mtime)


def _range_asked(request, size, etag, last_modified):
    """(start, stop) of the one range to answer, or None for the whole file; Unsatisfiable."""
    asked = parse_range_header(request.headers.get("Range"))
    if asked is None or asked.units != "bytes" or len(asked.ranges) != 1:
        return None
    if_range = request.headers.get("If-Range", "").strip()
    if if_range:  # the range only of the file the client has: its date, or its ETag compared strongly
        date = parse_http_date_safe(if_range)
        if (date != last_modified) if date is not None else (if_range != etag):
            return None
    start, stop = asked.ranges[0]
    if stop is None:
        stop = size
        if start < 0:
            start = max(0, size + start)  # a suffix longer than the file: the whole file
    if start >= size:
        raise Unsatisfiable
    return start, min(stop, size)


class _Pieces:
    """`length` bytes of an open file from `start`, read a piece at a time. The answer closes it
    (and so the file) once sent, or dropped."""

    def __init__(self, file, start, length):
        self.file, self.start, self.length = file, start, length

    def close(self):
        self.file.close()


class _SyncPieces(_Pieces):
    def __iter__(self):
        self.file.seek(self.start)
        left = self.length
        while left > 0 and (data := self.file.read(min(CHUNK, left))):
            left -= len(data)
            yield data


class _AsyncPieces(_Pieces):
    """For an ASGI server (uvicorn), read in a thread: Django would read a synchronous iterator
    whole before sending it."""

    async def __aiter__(self):
        await asyncio.to_thread(self.file.seek, self.start)
        left = self.length
        while left > 0 and (data := await asyncio.to_thread(self.file.read, min(CHUNK, left))):
            left -= len(data)
            yield data


def serve_file(request, relpath, *, content_type, filename, as_attachment=False):
    """The file at `relpath` under MEDIA_ROOT, whose permission the caller has checked; Http404 if
    it is not there. Ranges and validators apply to GET and HEAD only."""
    try:
        file = open(media.media_path(relpath), "rb")
    except (FileNotFoundError, IsADirectoryError):
        raise Http404(f"{filename} is no longer on the server") from None
    if settings.DOWNLOAD_ACCEL_PREFIX:
        file.close()
        return _accelerated(relpath, content_type, filename, as_attachment)
    try:
        stat = os.fstat(file.fileno())
        size, part = stat.st_size, None
        etag, last_modified = _validators(stat)
        headers = {"ETag": etag, "Last-Modified": http_date(last_modified), "Accept-Ranges": "bytes",
                   "Cache-Control": CACHING}
        if request.method in ("GET", "HEAD"):
            unchanged = get_conditional_response(request, etag=etag, last_modified=last_modified,
                                                 response=HttpResponse(headers=headers))
            if unchanged.status_code != 200:  # 304 or 412
                file.close()
                unchanged.headers["Accept-Ranges"], unchanged.headers["Cache-Control"] = "bytes", CACHING
                return unchanged
            try:
                part = _range_asked(request, size, etag, last_modified)
            except Unsatisfiable:
                file.close()
                return HttpResponse(f"The range {request.headers['Range'][:100]!r} starts past the file's {size} bytes.",
                                    status=416, content_type="text/plain; charset=utf-8",
                                    headers={**headers, "Content-Range": f"bytes */{size}"})
        response = _answer(request, file, part, size, content_type, headers)
        response.headers["Content-Disposition"] = content_disposition_header(as_attachment, filename)
        return response
    except BaseException:
        file.close()
        raise


def _answer(request, file, part, size, content_type, headers):
    """200 or 206 with the file or its part `(start, stop)`, streamed in the way the server wants."""
    start, stop = part or (0, size)
    status = 200 if part is None else 206
    if request.method == "HEAD":
        file.close()
        response = HttpResponse(status=status, content_type=content_type, headers=headers)
    elif isinstance(getattr(request, "_request", request), ASGIRequest):
        response = StreamingHttpResponse(_AsyncPieces(file, start, stop - start), status=status,
                                         content_type=content_type, headers=headers)
    elif part is None:  # through the WSGI server's file wrapper: gunicorn sends it with sendfile()
        response = FileResponse(file, status=status, content_type=content_type, headers=headers)
        response.block_size = CHUNK
    else:
        response = StreamingHttpResponse(_SyncPieces(file, start, stop - start), status=status,
                                         content_type=content_type, headers=headers)
    response.headers["Content-Length"] = str(stop - start)
    if part is not None:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return response


def _accelerated(relpath, content_type, filename, as_attachment):
    """An empty answer that tells nginx to send the file itself (its `internal` location for
    MEDIA_ROOT, see the README); nginx answers ranges and conditional requests on its own."""
    return HttpResponse(content_type=content_type, headers={
        "X-Accel-Redirect": settings.DOWNLOAD_ACCEL_PREFIX.rstrip("/") + "/" + quote(str(relpath)),
        "Content-Disposition": content_disposition_header(as_attachment, filename),
        "Accept-Ranges": "bytes", "Cache-Control": CACHING})
