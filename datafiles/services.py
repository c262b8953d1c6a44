"""Data file workflows: upload (or replace), delete, previews, and the content of tables and text.

An upload is streamed to a temporary file beside its final place, hashed on the way, checked by
GDAL/OGR (or the CSV and JSON readers) in a confined child process (datafiles/sandbox.py), and
only then moved into place and recorded. A refused upload leaves nothing behind. Stored paths are
built from the owner's id and a random id, never from the file's name.
"""

import csv
import hashlib
import html
import io
import json
import fcntl
import os
import uuid
from itertools import chain
from pathlib import PurePosixPath

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from jobsite import media
from jobsite.exceptions import Conflict, Rejected, TooLarge, quoted

from . import metadata, sandbox
from .formats import Limits, StoredFile, Unreadable
from .models import DataFile
from .signals import datafile_in_use, datafile_stored

def clean_name(name):
    """The file name, checked: no path, no control characters, a bounded length, an allowed extension."""
    if not isinstance(name, str) or not name.strip():
        raise Rejected({"name": "a file name is required"})
    name = name.strip()
    if "/" in name or "\\" in name:
        raise Rejected({"name": f"{quoted(name)} must be a plain file name, without / or \\"})
    if name in (".", "..") or name.startswith(".."):
        raise Rejected({"name": f"{quoted(name)} is not a file name"})
    if not name.isprintable():
        raise Rejected({"name": "must not hold control characters"})
    if len(name) > DataFile.MAX_NAME:
        raise Rejected({"name": f"must be at most {DataFile.MAX_NAME} characters, not {len(name)}"})
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in settings.DATAFILE_EXTENSIONS:
        raise Rejected({"name": f"{quoted(name)}: the extension must be one of {', '.join(settings.DATAFILE_EXTENSIONS)}"})
    return name


def _owner_dir(owner):
    return f"datafiles/{int(owner.pk)}"


def _check_size(owner, size, replacing=None):
    if size > settings.DATAFILE_MAX_BYTES:
        raise TooLarge(f"the file is {size} bytes; the limit is {settings.DATAFILE_MAX_BYTES} bytes")
    used = DataFile.objects.filter(owner=owner).exclude(pk=getattr(replacing, "pk", None)).aggregate(n=Sum("size"))["n"] or 0
    if used + size > settings.DATAFILE_QUOTA_BYTES:
        raise TooLarge(f"your data files would take {used + size} bytes; your quota is "
                       f"{settings.DATAFILE_QUOTA_BYTES} bytes ({used} used)")


def jobs_using(datafile):
    """Ids of the unfinished jobs that read this file, as the receivers of `datafile_in_use` say."""
    return sorted({job_id for _, job_ids in datafile_in_use.send(sender=DataFile, datafile=datafile) for job_id in job_ids})


def _refuse_if_in_use(datafile, action):
    jobs = jobs_using(datafile)
    if jobs:
        raise Conflict(f"{datafile.name} is used by running or queued jobs {', '.join(map(str, jobs))}; "
                       f"it cannot be {action} until they finish")


def datafile_store(*, owner, upload, name=None, replace=False):
    """Check and store an uploaded file. Returns (datafile, created).

    Without `replace`, a name the owner already has is a 409; with it, that file is replaced
    (409 while a queued or running job reads it).
    """
    name = clean_name(name if name is not None else getattr(upload, "name", ""))
    existing = DataFile.objects.filter(owner=owner, name=name).first()
    if existing and not replace:
        raise Conflict(f"you already have a data file named {name}; PUT /api/v1/datafiles/{name}/ replaces it")
    if existing:
        _refuse_if_in_use(existing, "replaced")
    _check_size(owner, upload.size, existing)

    extension = name.rsplit(".", 1)[-1].lower()
    relpath = f"{_owner_dir(owner)}/{uuid.uuid4().hex}.{extension}"
    final = media.media_path(relpath)
    final.parent.mkdir(parents=True, exist_ok=True)
    # The same extension as the final file: GDAL and OGR pick their driver by it.
    temporary = final.with_name(f".upload-{uuid.uuid4().hex}.{extension}")
    try:
        digest, size = _write(upload, temporary)
        _check_size(owner, size, existing)
        try:
            kind, found = sandbox.inspect(StoredFile(str(temporary), extension, name), declared_limits(), confinement())
        except Unreadable as exc:
            raise Rejected({"file": f"{name} cannot be read as .{extension}: {exc}"}) from None
        os.replace(temporary, final)
        with transaction.atomic():
            if existing:
                old_path, old_kind = existing.path, existing.kind
                if not DataFile.objects.filter(pk=existing.pk).update(kind=kind, size=size, sha256=digest, metadata=found,
                                                                   path=relpath, uploaded=timezone.now()):
                    raise Conflict(f"{name} was deleted while it was being replaced")
                datafile, created = DataFile.objects.get(pk=existing.pk), False
                media.remove_files_on_commit([old_path, *side_relpaths(old_path, old_kind)])
            else:
                datafile = DataFile.objects.create(owner=owner, name=name, kind=kind, size=size, sha256=digest,
                                                   metadata=found, path=relpath)
                created = True
            transaction.on_commit(lambda: datafile_stored.send(sender=DataFile, datafile=datafile, created=created),
                                  robust=True)
    except IntegrityError:
        final.unlink(missing_ok=True)
        raise Conflict(f"you already have a data file named {name}; PUT /api/v1/datafiles/{name}/ replaces it") from None
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    finally:
        temporary.unlink(missing_ok=True)
    return datafile, created


def _write(upload, path):
    digest, size = hashlib.sha256(), 0
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def datafile_delete(*, datafile):
    with transaction.atomic():
        locked = DataFile.objects.select_for_update().filter(pk=datafile.pk).first()
        if locked is None:
            return
        _refuse_if_in_use(locked, "deleted")
        locked.delete()
        media.remove_files_on_commit([locked.path, *side_relpaths(locked)])


def datafile_delete_all(*, owner):
    """Delete all of the owner's data files, or none when a running or queued job reads one of them."""
    with transaction.atomic():
        files = list(DataFile.objects.select_for_update().filter(owner=owner))
        busy = [f.name for f in files if jobs_using(f)]
        if busy:
            raise Conflict(f"{', '.join(busy)} used by running or queued jobs; nothing was deleted")
        DataFile.objects.filter(pk__in=[f.pk for f in files]).delete()
        media.remove_files_on_commit([path for f in files for path in (f.path, *side_relpaths(f))])
    return len(files)


def declared_limits():
    """What a data file may declare, from the settings."""
    return Limits(max_pixels=settings.DATAFILE_MAX_PIXELS, max_layers=settings.DATAFILE_MAX_LAYERS,
                  max_fields=settings.DATAFILE_MAX_FIELDS, max_unpacked_bytes=settings.DATAFILE_MAX_UNPACKED_BYTES)


def confinement():
    return sandbox.Confinement(seconds=settings.DATAFILE_INSPECT_SECONDS,
                               memory_bytes=settings.DATAFILE_INSPECT_MEMORY_BYTES)


def color_table_problem(datafile):
    """Why GDAL cannot read the text file `datafile` as a gdaldem colour table, or None. GDAL reads
    it when the file is uploaded (datafiles.metadata), or, for a file uploaded before it did, in a
    child the first time it is asked, and the answer is kept in the file's metadata. Raises
    Unreadable when the child could not tell for a reason that may pass (a time-out)."""
    if "color_table" not in datafile.metadata:
        try:
            answer = sandbox.color_table(datafile.stored, declared_limits(), confinement())
        except Unreadable as exc:
            if exc.transient:
                raise
            return str(exc)  # not kept: it depends on the limits (CPU time, memory), which may change
        with transaction.atomic():
            current = DataFile.objects.select_for_update().filter(pk=datafile.pk, path=datafile.path).first()
            if current is not None:  # not replaced meanwhile: its other metadata as they are now
                DataFile.objects.filter(pk=datafile.pk).update(metadata={**current.metadata, "color_table": answer})
        datafile.metadata = {**datafile.metadata, "color_table": answer}
    return datafile.metadata["color_table"].get("problem")


def preview_relpath(relpath):
    return f"{relpath}.preview.png"


def map_relpath(relpath, kind):
    return f"{relpath}.map.tif" if kind == DataFile.Kind.RASTER else f"{relpath}.map.geojson"


def side_relpaths(datafile_or_path, kind=None):
    """The files kept beside a data file (its preview and its map copy, and their locks), to remove
    with it."""
    path, kind = (datafile_or_path.path, datafile_or_path.kind) if kind is None else (datafile_or_path, kind)
    made = [preview_relpath(path), map_relpath(path, kind)]
    return made + [str(PurePosixPath(p).with_name(f".{PurePosixPath(p).name}.lock")) for p in made]


def datafile_preview(datafile):
    """The path of a PNG preview of a raster data file (see _side_file)."""
    return _side_file(datafile, preview_relpath(datafile.path), "preview_error",
                      lambda out: sandbox.preview(datafile.stored, out, limits=declared_limits(), confinement=confinement()))


def datafile_map(datafile):
    """The path of the copy of a raster or vector data file that maps show (datafiles.mapping): a
    small COG, or GeoJSON in WGS84 (see _side_file)."""
    if datafile.kind not in (DataFile.Kind.RASTER, DataFile.Kind.VECTOR):
        raise Unreadable(f"{datafile.name} is a {datafile.kind} file: it has no place on a map")
    return _side_file(datafile, map_relpath(datafile.path, datafile.kind), "map_error",
                      lambda out: sandbox.map_copy(datafile.stored, datafile.kind, out, limits=declared_limits(),
                                                   confinement=confinement()))


class NotReady(Exception):
    """Another request is making the file: ask again in a moment."""


def _side_file(datafile, relpath, error_key, make):
    """The path of a file made from a data file once, in a confined child (`make(temporary path)`),
    and kept beside it (its content never changes: a replaced file gets a new path). One request
    makes it; one that comes meanwhile is told NotReady. A file that cannot be made is remembered
    as such in the data file's metadata, so that it costs one child only; a child that did not
    finish for a reason of the moment (time on a busy machine) is not."""
    path = media.media_path(relpath)
    if path.exists():
        return path
    if datafile.metadata.get(error_key):
        raise Unreadable(datafile.metadata[error_key])
    # One maker at a time, across processes: a lock the kernel drops if its holder dies.
    lock = os.open(path.with_name(f".{path.name}.lock"), os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NotReady(f"the map of {datafile.name} is being made") from None
        if path.exists():  # made while this request waited for the lock
            return path
        current = DataFile.objects.filter(pk=datafile.pk, path=datafile.path).values_list("metadata", flat=True).first()
        if current is None:
            raise Unreadable(f"{datafile.name} was deleted or replaced")
        if current.get(error_key):
            raise Unreadable(current[error_key])
        return _make_side_file(datafile, path, error_key, make, current)
    finally:
        os.close(lock)


def _make_side_file(datafile, path, error_key, make, metadata):
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}{path.suffix}")
    try:
        make(temporary)
        os.replace(temporary, path)
    except Unreadable as exc:
        if not exc.transient:
            DataFile.objects.filter(pk=datafile.pk, path=datafile.path).update(metadata={**metadata, error_key: str(exc)})
        raise
    finally:
        temporary.unlink(missing_ok=True)
    if not DataFile.objects.filter(pk=datafile.pk, path=datafile.path).exists():  # deleted or replaced meanwhile
        path.unlink(missing_ok=True)
    return path


# Content of tables and text, in the format asked for, streamed: memory does not grow with the file.

FORMATS = {"table": ("csv", "json", "html", "txt"), "text": ("txt", "json", "html")}
CONTENT_TYPES = {"csv": "text/csv", "json": "application/json", "html": "text/html", "txt": "text/plain"}
# The plain text layout of a table pads each column to the widest value of the rows read first:
# at most this many rows, and characters.
TXT_WIDTH_ROWS, TXT_WIDTH_CHARACTERS = 1000, 1024 * 1024


def datafile_content(datafile, fmt):
    """(content type, an iterator of text chunks) of a table or text file in `fmt`; Rejected
    when it has no such form."""
    formats = FORMATS.get(datafile.kind)
    if formats is None:
        raise Rejected({"format": f"{datafile.name} is a {datafile.kind}; content is for tables and text, "
                       "download the file instead"})
    if fmt not in formats:
        raise Rejected({"format": f"must be one of {', '.join(formats)} for a {datafile.kind}"})
    path = media.media_path(datafile.path)
    if datafile.kind == "text":
        return CONTENT_TYPES[fmt], _text_content(path, datafile, fmt)
    _, rows = metadata.read_rows(path, datafile.metadata.get("delimiter"), datafile.name)
    rows = (row for row in rows if row)
    columns = next(rows, [])
    return CONTENT_TYPES[fmt], {"csv": _as_csv, "json": _as_json, "html": _as_html, "txt": _as_txt}[fmt](columns, rows)


def _text_content(path, datafile, fmt):
    chunks = metadata.iter_text(path, datafile.name)
    if fmt == "txt":
        return chunks
    if fmt == "html":
        return chain(["<pre>"], (html.escape(chunk) for chunk in chunks), ["</pre>"])
    if datafile.metadata.get("json_type"):  # checked to be JSON when it was stored
        return chunks
    return _json_lines(metadata.lines(chunks, datafile.name))


def _json_lines(lines):
    """{"lines": [...]} of a text, written line by line."""
    yield '{"lines": ['
    for number, line in enumerate(lines):
        yield ("" if number == 0 else ", ") + json.dumps(line.removesuffix("\n").removesuffix("\r"))
    yield "]}"


def _as_csv(columns, rows):
    out = io.StringIO()
    writer = csv.writer(out)
    for row in chain([columns], rows):
        writer.writerow(row)
        if out.tell() > 64 * 1024:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _as_json(columns, rows):
    yield "["
    for number, row in enumerate(rows):
        yield ("" if number == 0 else ", ") + json.dumps(dict(zip(columns, row, strict=True)))
    yield "]"


def _as_html(columns, rows):
    yield "<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr></thead><tbody>"
    for row in rows:
        yield "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
    yield "</tbody></table>"


def _as_txt(columns, rows):
    head, characters = [columns], 0
    while len(head) <= TXT_WIDTH_ROWS and characters < TXT_WIDTH_CHARACTERS and (row := next(rows, None)) is not None:
        head.append(row)
        characters += sum(map(len, row))
    widths = [max(len(str(v)) for v in column) for column in zip(*head, strict=True)]
    for row in chain(head, rows):
        yield "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n"


def data_bytes(owner=None):
    files = DataFile.objects.all() if owner is None else DataFile.objects.filter(owner=owner)
    return files.aggregate(n=Sum("size"))["n"] or 0
