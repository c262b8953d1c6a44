"""Data file inputs of an execute request that are not yet one of the caller's data files: a GeoJSON
area given inline (for the types that read polygons), or the URL of a file on a host the operator
trusts (JOBSITE_OGC_HREF_HOSTS), fetched once while the request waits.

Each becomes a data file of the caller's, checked exactly as an upload is, and named by its content
(`area-<digest>.geojson`, `<name>-<digest>.<ext>`), so the same area or file given again is the same
data file. The files made for a request that is then refused are removed again."""

import hashlib
import json
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile

from datafiles.models import DataFile
from datafiles.services import datafile_delete, datafile_store
from jobsite import outbound
from jobsite.exceptions import Conflict, Rejected, TooLarge

from .problems import invalid

GEOMETRIES = ("Polygon", "MultiPolygon", "GeometryCollection")
GEOJSON = (*GEOMETRIES, "Feature", "FeatureCollection")


@dataclass(frozen=True)
class InlineArea:
    geojson: dict


@dataclass(frozen=True)
class Remote:
    url: str


def inline_area(name, value):
    """A GeoJSON geometry, Feature or FeatureCollection given as the input `name`."""
    if not isinstance(value, dict) or value.get("type") not in GEOJSON:
        raise invalid(f"inputs.{name}", f"must be a GeoJSON object ({', '.join(GEOJSON)}) or the URL of a data file")
    if value["type"] in GEOMETRIES:
        value = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": value}]}
    elif value["type"] == "Feature":
        value = {"type": "FeatureCollection", "features": [value]}
    return InlineArea(value)


@contextmanager
def stored(owner, given):
    """{input: data file name} for `given` ({input: InlineArea or Remote}), each stored as the
    owner's data file; those this made are deleted if the block raises."""
    made, names = [], {}
    try:
        for name, what in given.items():
            datafile, created = _store(owner, name, what)
            if created:
                made.append(datafile)
            names[name] = datafile.name
        yield names
    except BaseException:
        for datafile in made:
            datafile_delete(datafile=datafile)
        raise


def _store(owner, name, what):
    if isinstance(what, InlineArea):
        content = json.dumps(what.geojson, separators=(",", ":")).encode()
        digest = hashlib.sha256(content).hexdigest()
        return _checked(owner, name, f"area-{digest[:16]}.geojson", digest,
                        lambda file_name: SimpleUploadedFile(file_name, content))
    stem, extension = _file_name(name, what.url)
    with tempfile.TemporaryFile() as out:
        digest = _fetch(name, what.url, out)
        out.seek(0)
        return _checked(owner, name, f"{stem}-{digest[:16]}.{extension}", digest,
                        lambda file_name: File(out, name=file_name))


def _file_name(name, url):
    """(a safe stem, the extension) of the file a URL names; a Problem if it names no such file."""
    base = PurePosixPath(unquote(urlsplit(url).path)).name
    stem, _, extension = base.rpartition(".")
    extension = extension.lower()
    if not stem or extension not in settings.DATAFILE_EXTENSIONS:
        raise invalid(f"inputs.{name}", f"the URL must end in a file name with one of the extensions "
                                        f"{', '.join(settings.DATAFILE_EXTENSIONS)}")
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem)[:60].strip("-") or "file", extension


def _fetch(name, url, out):
    digest = hashlib.sha256()

    class Hashed:
        def write(self, chunk):
            digest.update(chunk)
            out.write(chunk)
    try:
        outbound.download(url, Hashed(), trusted=settings.OGC_HREF_HOSTS, timeout=settings.OGC_HREF_SECONDS,
                          max_bytes=settings.DATAFILE_MAX_BYTES)
    except outbound.DownloadTooLarge as exc:
        raise TooLarge(f"inputs.{name}: {exc}") from None
    except (outbound.UnsafeURL, outbound.DownloadFailed) as exc:
        raise invalid(f"inputs.{name}", f"{url[:200]} {exc}" if isinstance(exc, outbound.UnsafeURL)
                      else f"{url[:200]} could not be read: {exc}") from None
    return digest.hexdigest()


def _checked(owner, name, file_name, digest, upload):
    """The owner's data file `file_name` of this content: the one there is, or a new one."""
    existing = DataFile.objects.filter(owner=owner, name=file_name).first()
    if existing is not None:
        if existing.sha256 != digest:
            raise Conflict(f"inputs.{name}: you have a data file named {file_name} with other content; "
                           "rename or delete it")
        return existing, False
    try:
        return datafile_store(owner=owner, upload=upload(file_name))
    except Rejected as exc:
        raise invalid(f"inputs.{name}", "; ".join(str(problem) for problem in exc.errors.values())) from None
