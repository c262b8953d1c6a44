"""Which tiles a submit names: a list of tile ids (some not loaded yet, for a job that may wait
for them), a town's, or those that a data file's polygons overlap; within the tiles' limit."""

from django.conf import settings

from datafiles.formats import Unreadable

from .. import tileindex, towns, vector
from ..jobtypes import read_polygons
from ..models import MAX_ID, Tile, Town
from . import latetiles
from jobsite.exceptions import Rejected, id_list

EXACTLY_ONE = {"tile_ids": "give exactly one of tile_ids and town_id", "town_id": "give exactly one of tile_ids and town_id"}


def _clean_tile_ids(tile_ids, collection, may_wait=False):
    """(the keys of the tiles `tile_ids` names, in rows; the numbers of those not loaded yet, which
    only a job that may wait for tiles names)."""
    if not isinstance(tile_ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in tile_ids):
        raise Rejected({"tile_ids": "must be a list of integer tile ids"})
    if not tile_ids:
        raise Rejected({"tile_ids": "must not be empty"})
    seen, duplicates = set(), set()
    for tile_id in tile_ids:
        (duplicates if tile_id in seen else seen).add(tile_id)
    if duplicates:
        raise Rejected({"tile_ids": f"duplicate tile ids: {', '.join(map(str, sorted(duplicates)))}"})
    _check_tile_limit("tile_ids", len(tile_ids))
    known = {number: (row, col, pk) for number, pk, row, col in Tile.objects.filter(
        collection=collection, number__in=[i for i in tile_ids if 0 <= i <= MAX_ID]).values_list("number", "id", "row", "col")}
    if may_wait:
        missing = latetiles.missing_numbers(tile_ids, known)
        if missing and not known and not collection.tile_count:
            raise Rejected({"tile_ids": f"collection {collection.pk} has no tiles yet to know its grid by; "
                                        "load its first tiles before jobs wait for more"})
        return [pk for _, _, pk in sorted(known.values())], missing
    unknown = [tile_id for tile_id in tile_ids if tile_id not in known]
    if unknown:
        shown = ", ".join(map(str, unknown[:50])) + (f" and {len(unknown) - 50} more" if len(unknown) > 50 else "")
        raise Rejected({"tile_ids": f"unknown tile ids: {shown}" + (
            "" if collection.pk == settings.DEFAULT_COLLECTION else f" (in collection {collection.pk})")})
    return [pk for _, _, pk in sorted(known.values())], []  # in rows: workers claim neighbours together (blocks)


def numbers(keys, limit=20):
    """The tile numbers of tile keys, as a message lists them."""
    numbers = list(Tile.objects.filter(id__in=keys[:limit]).order_by("number").values_list("number", flat=True))
    return id_list(numbers) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _check_tile_limit(field, count):
    if count > settings.MAX_TILES_PER_JOB:
        raise Rejected({field: f"{count} tiles is more than the limit of {settings.MAX_TILES_PER_JOB} tiles per job"})


def _town_tile_ids(town_id, collection):
    if not isinstance(town_id, int) or isinstance(town_id, bool):
        raise Rejected({"town_id": "must be an integer town id"})
    town = Town.objects.filter(pk=town_id).first() if 0 <= town_id <= MAX_ID else None
    if town is None:
        raise Rejected({"town_id": f"unknown town id: {town_id}"})
    tile_ids = list(town.tiles.filter(collection=collection).order_by("row", "col").values_list("id", flat=True))
    if not tile_ids:
        raise Rejected({"town_id": f"town {town_id} ({town.name}) has no tiles in the index" + (
            "" if collection.pk == settings.DEFAULT_COLLECTION else f" collection {collection.pk}")})
    _check_tile_limit("town_id", len(tile_ids))
    return town, tile_ids



def choose_tiles(kind, files, tile_ids, town_id, collection, may_wait=False):
    """(the town, the keys of the tiles, the numbers of the tiles not loaded yet) of a request."""
    if not kind.uses_tiles:
        given = [name for name, value in (("tile_ids", tile_ids), ("town_id", town_id)) if value is not None]
        if given:
            raise Rejected({given[0]: f"{kind.name} runs over no tiles; leave tile_ids and town_id out"})
        if may_wait:
            raise Rejected({"wait_for_tiles": f"{kind.name} runs over no tiles; leave wait_for_tiles out"})
        return None, [], []
    if tile_ids is not None and town_id is not None:
        raise Rejected(EXACTLY_ONE)
    if town_id is not None:
        return (*_town_tile_ids(town_id, collection), [])
    if tile_ids is not None:
        return (None, *_clean_tile_ids(tile_ids, collection, may_wait))
    if may_wait:
        raise Rejected({"wait_for_tiles": "waits for tile ids that are not loaded yet: give tile_ids"})
    if not kind.tiles_from:
        raise Rejected(EXACTLY_ONE)
    file_name, datafile = files[kind.tiles_from]
    if datafile is None:
        raise Rejected({"tile_ids": f"give tile_ids or town_id: the tiles cannot be chosen by {file_name}, "
                                    "which has not been uploaded yet"})
    try:
        polygons = read_polygons(datafile.stored, tileindex.index_crs_wkt(collection.pk))
    except (vector.VectorError, tileindex.LoadError, Unreadable) as exc:
        raise Rejected({"inputs": {kind.tiles_from: str(exc)}}) from None
    ids = towns.tiles_overlapping(polygons, collection.pk)
    if not ids:
        raise Rejected({"inputs": {kind.tiles_from: f"the polygons of {file_name} overlap no tile of the index"}})
    _check_tile_limit("tile_ids", len(ids))
    return None, ids, []
