"""Tile inboxes: GeoTIFFs that other systems deliver to a collection's folder
(settings.TILE_INBOXES, "PATH=COLLECTION") join that collection, as `load_tiles --append` adds
tiles, and the jobs that wait for them take them.

A file is taken once complete, and claimed and opened as the data files' inboxes do it
(datafiles.inbox): only a regular file of one link, opened without following links. Its bytes are
copied from the opened file into the collection's folder of the tile store
(settings.TILE_STORE/COLLECTION/), where a confined child (datafiles.sandbox) reads the copy
before anything else does: it must be a GeoTIFF (GDAL's GTiff or COG driver, nothing else), read
nothing outside itself and declare no more than a data file may. Then it is loaded: its tile
number is the last number of its name, it must lie on the collection's grid, and a number the
collection has already is refused (a tile inbox never replaces a tile). A refused file moves to
`rejected/` with the reason beside it, and its copy is removed. A file that would move the
collection's grid while tiles are being worked on over it is put back and tried again later.
"""

import logging
import uuid
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError

from datafiles import inbox, sandbox
from datafiles.formats import StoredFile, Unreadable
from datafiles.services import confinement, declared_limits
from jobsite.exceptions import LoadError

from .tileload import RASTER_SUFFIXES, Busy, load_paths, tile_id_of

CHUNK = 1024 * 1024
logger = logging.getLogger(__name__)


def tile_inbox_folders():
    return [path for path, _ in settings.TILE_INBOXES]


def scan_tile_inboxes(each_file=None):
    """Take the complete files of every tile inbox, calling `each_file()` after each. Returns
    {"stored": n, "rejected": n}."""
    counts = {"stored": 0, "rejected": 0}
    for path, collection in settings.TILE_INBOXES:
        folder = Path(path)
        for outcome in inbox.take_complete(folder, lambda claimed, name, folder=folder, collection=collection: _ingest(
                folder, claimed, name, collection)):
            if outcome in counts:
                counts[outcome] += 1
            if each_file is not None:
                each_file()
    return counts


def _ingest(folder, claimed, name, collection):
    """Add the claimed file `name` to `collection`: "stored"; "rejected" with the reason; DEFERRED when
    put back to be tried again (the collection's grid cannot move just now, or the database is
    away)."""
    suffix = Path(name).suffix.lower()
    # A name of its own in the store (the tile number is the last number of it, the name's): a file
    # that a scan killed midway left there is never in the way of the next.
    kept = Path(settings.TILE_STORE) / collection / f"{uuid.uuid4().hex}-{name}"
    loaded = False
    try:
        if not name.isprintable():
            raise LoadError("a tile's name must be printable characters only")
        if suffix not in RASTER_SUFFIXES:
            raise LoadError("a tile inbox takes GeoTIFFs (.tif, .tiff) only")
        number = tile_id_of(name)
        kept.parent.mkdir(parents=True, exist_ok=True)
        with inbox.opened(claimed) as source, open(kept, "xb") as copy:
            _copy(source, copy, name)
        sandbox.inspect(StoredFile(str(kept), suffix[1:], name), declared_limits(), confinement())
        load_paths([str(kept)], collection=collection, append=True)
        loaded = True
    except Busy as exc:
        logger.info("tile inbox %s: %s waits: %s", folder, name, exc)
        return inbox.put_back(folder, claimed, name)
    except (OperationalError, InterfaceError):  # the database away: tried again once it is back
        inbox.put_back(folder, claimed, name)
        raise
    except (LoadError, Unreadable, inbox.NotAFile) as exc:
        return inbox.refuse(folder, claimed, name, _reason(exc, name))
    except OSError as exc:  # of this machine (a full disk, say): tried again later
        logger.warning("tile inbox %s: %s waits: %s", folder, name, exc)
        return inbox.put_back(folder, claimed, name)
    except Exception:  # the service's own fault: said in its log, and the file kept in rejected/
        logger.exception("tile inbox %s: %s", folder, name)
        return inbox.refuse(folder, claimed, name, "it could not be loaded: an error of the service (its log has it)")
    finally:
        if not loaded:
            kept.unlink(missing_ok=True)
    return inbox.finish(folder, claimed, name, f"added to collection {collection} as tile {number}")


def _copy(source, copy, name):
    """Copy at most a data file's largest size (JOBSITE_DATAFILE_MAX_BYTES); LoadError beyond it."""
    limit, copied = settings.DATAFILE_MAX_BYTES, 0
    while chunk := source.read(CHUNK):
        copied += len(chunk)
        if copied > limit:
            raise LoadError(f"{name} is larger than {limit} bytes, the most a file may be (JOBSITE_DATAFILE_MAX_BYTES)")
        copy.write(chunk)


def _reason(exc, name):
    """What a refusal says: the tile store's path in it is named so."""
    return str(exc).replace(str(settings.TILE_STORE), "(the tile store)") if isinstance(exc, LoadError) else (
        f"{name} cannot be read as a GeoTIFF: {exc}" if isinstance(exc, Unreadable) else str(exc))
