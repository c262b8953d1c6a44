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
`rejected/` with the reason beside it, and its copy is removed.
"""

import os
import shutil
import uuid
from pathlib import Path

from django.conf import settings

from datafiles import inbox, sandbox
from datafiles.formats import StoredFile, Unreadable
from datafiles.services import confinement, declared_limits
from jobsite.exceptions import LoadError

from .tileload import RASTER_SUFFIXES, load_paths, tile_id_of


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
            counts[outcome] += 1
            if each_file is not None:
                each_file()
    return counts


def _ingest(folder, claimed, name, collection):
    """Add the claimed file `name` to `collection`: "stored", or "rejected" with the reason."""
    suffix = Path(name).suffix.lower()
    store = Path(settings.TILE_STORE) / collection
    incoming = store / f".incoming-{uuid.uuid4().hex}{suffix}"
    final = store / name
    placed = False
    try:
        if suffix not in RASTER_SUFFIXES:
            raise LoadError("a tile inbox takes GeoTIFFs (.tif, .tiff) only")
        number = tile_id_of(name)
        store.mkdir(parents=True, exist_ok=True)
        with inbox.opened(claimed) as source, open(incoming, "xb") as copy:
            shutil.copyfileobj(source, copy, 1024 * 1024)
        sandbox.inspect(StoredFile(str(incoming), suffix[1:], name), declared_limits(), confinement())
        try:
            os.link(incoming, final)  # never over a file there
        except FileExistsError:
            raise LoadError(f"collection {collection} has a tile file named {name} already (tile {number}); a tile "
                            "inbox does not replace tiles (manage.py load_tiles --append --replace-tiles does)") from None
        placed = True
        load_paths([str(final)], collection=collection)
    except (LoadError, Unreadable, inbox.NotAFile, OSError) as exc:
        if placed:
            final.unlink(missing_ok=True)
        return inbox.refuse(folder, claimed, name, _reason(exc, name))
    finally:
        incoming.unlink(missing_ok=True)
    return inbox.finish(folder, claimed, name, f"added to collection {collection} as tile {number}")


def _reason(exc, name):
    """What a refusal says: a path of this machine in it is the file's name."""
    return str(exc).replace(str(settings.TILE_STORE), "(the tile store)") if isinstance(exc, LoadError) else (
        f"{name} cannot be read as a GeoTIFF: {exc}" if isinstance(exc, Unreadable) else str(exc))
