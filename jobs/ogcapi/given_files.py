"""Data file inputs of an execute request that are not yet one of the caller's data files: a GeoJSON
area given inline (for the types that read polygons), or the URL of a file on a host the operator
trusts (JOBSITE_OGC_HREF_HOSTS), fetched once while the request waits.

Each becomes a data file of the caller's, checked exactly as an upload is, and named by its content
(`area-<digest>.geojson`, `<name>-<digest>.<ext>`), so the same area or file given again is the same
data file, also when two requests give it at once. The files made for a request that is then
refused are removed again, unless a job reads or awaits them meanwhile (another request's, given
the same): a file is removed under a lock on its row, and a job holds the rows of its files until
it is created (jobs.services.submit)."""

import hashlib
import json
import logging
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.files import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.db.models import Sum

from datafiles.models import DataFile
from datafiles.services import datafile_delete, datafile_store, jobs_using
from jobsite import outbound
from jobsite.exceptions import Conflict, LimitExceeded, Rejected, TooLarge

from ..models import JobInput, JobStatus
from .places import fetches
from .problems import invalid

logger = logging.getLogger(__name__)

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
    owner's data file; the files this made are removed if the block raises."""
    made, names = [], {}
    deadline = time.monotonic() + settings.OGC_HREF_SECONDS  # for all the fetches of the request
    try:
        for name, what in given.items():
            datafile, created = _store(owner, name, what, deadline)
            if created:
                made.append(datafile)
            names[name] = datafile.name
        yield names
    except BaseException:
        _remove_unused(owner, made)
        raise


def _remove_unused(owner, datafiles):
    """Remove the data files a refused request made, but none that an active job reads or a waiting
    job awaits."""
    for datafile in datafiles:
        try:
            with transaction.atomic():
                locked = DataFile.objects.select_for_update().filter(pk=datafile.pk).first()
                awaited = JobInput.objects.filter(job__owner=owner, job__status=JobStatus.WAITING, file_name=datafile.name)
                if locked is not None and not jobs_using(locked) and not awaited.exists():
                    datafile_delete(datafile=locked)
        except Exception:  # the request's own refusal is what its client must hear
            logger.exception("could not remove the data file %s of a refused request", datafile.pk)


def _store(owner, name, what, deadline):
    if isinstance(what, InlineArea):
        content = json.dumps(what.geojson, separators=(",", ":")).encode()
        digest = hashlib.sha256(content).hexdigest()
        return _checked(owner, name, f"area-{digest[:16]}.geojson", digest,
                        lambda file_name: SimpleUploadedFile(file_name, content))
    stem, extension = _file_name(name, what.url)
    with fetches.place(owner.pk) as allowed:
        if not allowed:
            raise LimitExceeded(f"inputs.{name}: the service is fetching as many files as it may at once (or one of "
                                "yours); try again in a moment")
        with tempfile.TemporaryFile() as out:
            digest = _fetch(owner, name, what.url, out, deadline)
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


def _fetch(owner, name, url, out, deadline):
    digest = hashlib.sha256()

    class Hashed:
        def write(self, chunk):
            digest.update(chunk)
            out.write(chunk)
    stem, extension = _file_name(name, url)
    # The file may be one of these already, which would then be taken as it is: it counts as room.
    mine = DataFile.objects.filter(owner=owner)
    used = ((mine.aggregate(n=Sum("size"))["n"] or 0)
            - (mine.filter(name__startswith=f"{stem}-", name__endswith=f".{extension}").aggregate(n=Sum("size"))["n"] or 0))
    try:
        outbound.download(url, Hashed(), hosts=settings.OGC_HREF_HOSTS, timeout=max(0.1, deadline - time.monotonic()),
                          max_bytes=max(0, min(settings.DATAFILE_MAX_BYTES, settings.DATAFILE_QUOTA_BYTES - used)))
    except outbound.DownloadTooLarge as exc:
        raise TooLarge(f"inputs.{name}: {exc} (the size limit of a data file, or what is left of your quota)") from None
    except outbound.UnsafeURL as exc:
        raise invalid(f"inputs.{name}", f"{url[:200]} {exc}") from None
    except outbound.DownloadFailed as exc:
        raise invalid(f"inputs.{name}", f"{url[:200]} could not be read: {exc}") from None
    return digest.hexdigest()


def _checked(owner, name, file_name, digest, upload):
    """(the owner's data file `file_name` of this content, whether this made it): the one there is,
    also one that another request stored while this one checked its own, or a new one."""
    for _ in range(2):
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
        except Conflict:
            continue  # stored meanwhile, by a request that gave the same
    raise Conflict(f"inputs.{name}: {file_name} was stored and removed again meanwhile; send the request again")
