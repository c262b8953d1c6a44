"""Results on a map: the facts of a job's raster outputs (recorded when it merges), their map tiles
in the WebMercatorQuad, TileJSON documents with a legend, and the value under a point.

A tile's pixels are GDAL's warp of the output (jobs.raster.maptiles); they are coloured as the
output's data asks (jobs.raster.render): three or four 8-bit bands as they are, a job type that
says so (hillshade) in grey, anything else with a colour map over the value range of its
statistics, or over a range the request gives.
"""

import hashlib
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import mercantile
from django.db import transaction
from django.db.models import Avg, F

from jobsite import georef, media
from jobsite.exceptions import Rejected
from datafiles import services as datafiles
from datafiles.formats import Unreadable
from datafiles.models import DataFile

from .. import chains
from ..jobtypes import JOB_TYPES
from ..models import Job, JobStatus, Tile
from ..raster import maptiles, render
from ..raster.io import RasterError
from . import footprints

logger = logging.getLogger(__name__)

RASTER_TYPES = ("image/tiff",)
CACHE_SECONDS = 3600
# Datasets kept open per thread: a map asks for many tiles of the same few outputs.
OPEN_PER_THREAD = 16
_open = threading.local()


@dataclass(frozen=True)
class MapStyle:
    """How a request asks for an output to be coloured: a colour map name and an optional value range."""

    colormap: str = render.DEFAULT_COLORMAP
    rescale: tuple | None = None


def described(output):
    """`output` (a job's output entry) with its raster facts (maptiles.describe) under "raster",
    where it is a raster that GDAL reads; unchanged otherwise."""
    if output.get("content_type") not in RASTER_TYPES:
        return output
    try:
        return {**output, "raster": maptiles.describe(media.media_path(output["path"]))}
    except RasterError as exc:
        logger.warning("output %s cannot be described for maps: %s", output["path"], exc)
        return output


def raster_output(job, name):
    """The output `name` of the succeeded `job` with its raster facts, or None where it has no such
    raster output. Outputs merged before their facts were recorded are described now, once."""
    if job.status != JobStatus.SUCCEEDED:
        return None
    output = next((o for o in job.outputs if o["name"] == name), None)
    if output is None or output.get("content_type") not in RASTER_TYPES:
        return None
    if "raster" not in output:
        path = media.media_path(output["path"])
        if path is None or not path.is_file():
            return None
        output = described(output)
        if "raster" not in output:
            return None
        _record_facts(job.pk, output)
    return output


def describe_results(jobs):
    """Record the raster facts of the outputs, and the extent, of each succeeded job of `jobs` that
    lacks them (jobs merged before either was recorded). Returns (jobs described, outputs that
    could not be read)."""
    done, unreadable = 0, 0
    for job in jobs.filter(status=JobStatus.SUCCEEDED).select_related("collection").iterator(chunk_size=100):
        outputs = [output if "raster" in output else described(output) for output in job.outputs]
        unreadable += sum(1 for o in outputs if o.get("content_type") in RASTER_TYPES and "raster" not in o)
        if outputs != job.outputs or job.west is None:
            Job.objects.filter(pk=job.pk, status=JobStatus.SUCCEEDED).update(
                outputs=outputs, **footprints.result_extent(job, outputs))
            done += 1
    return done, unreadable


def _record_facts(job_id, described_output):
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return
        job.outputs = [described_output if o["name"] == described_output["name"] else o for o in job.outputs]
        Job.objects.filter(pk=job_id).update(outputs=job.outputs, **footprints.result_extent(job, job.outputs))


@dataclass(frozen=True)
class MapRaster:
    """A raster that maps show: its file, its facts (maptiles.describe), how a one-band raster is
    coloured (a job type's render_as), and a name for its TileJSON."""

    path: Path
    facts: dict
    render_as: str | None
    name: str
    version: str  # changes when the file is replaced: its map tiles' URLs carry it


def output_raster(job, output):
    """The MapRaster of a job's raster output (raster_output)."""
    kind = JOB_TYPES.get(job.type) or (chains.chain_of(job.params) if chains.is_chain(job) else None)
    return MapRaster(path=media.media_path(output["path"]), facts=output["raster"],
                     render_as=kind.render_as if kind else None, name=f"job {job.pk}: {output['name']}",
                     version=str(output["size"]))


def datafile_raster(datafile):
    """The MapRaster of a raster data file: its map copy, made once in the confined reader
    (datafiles.services.datafile_map); Unreadable says why it has none."""
    path = datafiles.datafile_map(datafile)
    facts = datafile.metadata.get("map_facts")
    if facts is None:
        try:
            facts = maptiles.describe(path)
        except RasterError as exc:
            raise Unreadable(f"{datafile.name}'s map cannot be read: {exc}") from None
        DataFile.objects.filter(pk=datafile.pk, path=datafile.path).update(
            metadata={**datafile.metadata, "map_facts": facts})
    return MapRaster(path=path, facts=facts, render_as=None, name=f"data file {datafile.name}",
                     version=datafile.sha256[:16])


def style_of(raster):
    """grey, colormap or rgb: how the raster's pixels are shown (render.style_of)."""
    return render.style_of(raster.facts["bands"], raster.render_as)


def value_range(raster, style):
    """(low, high) that the colours span: the request's rescale, else the first band's statistics."""
    if style.rescale:
        return style.rescale
    statistics = raster.facts["bands"][0].get("statistics")
    if not statistics:
        return None
    return statistics["minimum"], statistics["maximum"]


def check_address(z, x, y):
    """Rejected, naming z, x or y, unless z/x/y is a tile of the WebMercatorQuad."""
    try:
        maptiles.tile_bounds(z, x, y)
    except maptiles.TileAddressError as exc:
        raise Rejected({exc.field: str(exc)}) from None


def tile_image(raster, z, x, y, image_format, style=MapStyle()):
    """The bytes of tile z/x/y of the MapRaster as `image_format` (png or webp), or None where the
    tile holds none of its data. Rejected for a z/x/y outside the tile matrix set."""
    check_address(z, x, y)
    data = maptiles.read_tile(_source(raster.path), z, x, y)
    if data is None or not data.valid.any():
        return None
    shown = style_of(raster)
    if shown == "rgb" and len(data.bands) < 3:  # fewer colour bands than its facts said
        shown = "colormap"
    pixels = render.rgba(data, shown, value_range(raster, style) if shown != "rgb" else None, style.colormap)
    return render.encode(pixels, image_format)


def tile_etag(raster, z, x, y, image_format, style):
    """An ETag of the tile: the file as it is on disk and everything the image depends on."""
    stat = raster.path.stat()
    key = (f"{raster.path}|{stat.st_size}|{stat.st_mtime_ns}|{raster.render_as}|{z}/{x}/{y}.{image_format}|"
           f"{style.colormap}|{style.rescale}")
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def value_at(raster, lon, lat):
    """The raster's band values at (lon, lat) in WGS84 degrees (None for nodata), or None outside it."""
    return maptiles.value_at(_source(raster.path).ds, lon, lat)


def legend(raster, style=MapStyle()):
    """What a map shows of the raster: its style, and for a colour map its name, value range and
    sixteen colours from low to high (CSS hex)."""
    shown = style_of(raster)
    described = {"style": shown}
    if shown == "rgb":
        return described
    low_high = value_range(raster, style)
    described["range"] = list(low_high) if low_high else None
    if shown == "colormap":
        table = render.lookup_table(style.colormap)
        described["colormap"] = style.colormap
        described["colors"] = ["#%02x%02x%02x" % tuple(table[i][:3]) for i in range(0, 256, 17)]
    return described


def tilejson(raster, tiles_url, style=MapStyle()):
    """A TileJSON 3.0.0 document of the raster's map tiles at `tiles_url` ({z}/{x}/{y} in it)."""
    west, south, east, north = raster.facts["bbox"]
    minzoom, maxzoom = raster.facts["minzoom"], raster.facts["maxzoom"]
    return {
        "tilejson": "3.0.0", "name": raster.name, "scheme": "xyz", "tiles": [tiles_url],
        "bounds": [west, south, east, north], "minzoom": minzoom, "maxzoom": maxzoom,
        "center": [(west + east) / 2, (south + north) / 2, min(maxzoom, minzoom + 2)],
        "legend": legend(raster, style),
    }


def _source(path):
    """The raster at `path` opened for map tiles (maptiles.TileSource), kept open for this thread
    while the file is unchanged."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    cache = getattr(_open, "sources", None)
    if cache is None:
        cache = _open.sources = OrderedDict()
    source = cache.get(key)
    if source is None:
        source = cache[key] = maptiles.TileSource(path)
        while len(cache) > OPEN_PER_THREAD:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return source


# Collections as shaded relief: the base layers of the site's maps.

# A relief tile reads every raster of the collection under it, whole where it has no overviews: below
# the zoom where it would meet more than this many rasters, or shrink them more than RELIEF_SHRINK
# times, a collection has no map tiles (its footprints show where it lies).
MAX_RELIEF_SOURCES = 36
RELIEF_SHRINK = 8
_zooms = {}


def collection_zooms(collection):
    """(minzoom, maxzoom) of the collection's relief tiles: down to where a map tile meets about
    MAX_RELIEF_SOURCES of its rasters or a map pixel spans RELIEF_SHRINK of theirs, up to its own
    resolution. Kept per collection as last loaded."""
    key = (collection.pk, collection.updated)
    if key not in _zooms:
        _zooms[key] = _collection_zooms(collection)
    return _zooms[key]


def _collection_zooms(collection):
    west, south, east, north = _lonlat_bounds(collection)
    (x0, y0), (x1, y1) = georef.transformed_points([(west, (south + north) / 2), (east, (south + north) / 2)],
                                                   georef.srs_from_epsg(4326).ExportToWkt(), maptiles.WEB_MERCATOR)
    metres_per_unit = abs(x1 - x0) / max(collection.bounds[2] - collection.bounds[0], 1e-9)
    resolution = collection.pixel_width * metres_per_unit
    maxzoom = min(maptiles.MAX_ZOOM, max(0, math.ceil(math.log2(maptiles.ZOOM0_RESOLUTION / resolution))))
    average = Tile.objects.filter(collection=collection).aggregate(width=Avg(F("maxx") - F("minx")))["width"] or 1.0
    span = (math.sqrt(MAX_RELIEF_SOURCES) - 1) * average * metres_per_unit  # a map tile this wide meets that many
    by_sources = math.ceil(math.log2(mercantile.CE / span))
    by_shrink = maxzoom - int(math.log2(RELIEF_SHRINK))
    return min(maxzoom, max(0, by_sources, by_shrink)), maxzoom


def collection_tile(collection, z, x, y, image_format):
    """The bytes of relief tile z/x/y of the collection, or None where it has no data there;
    Rejected for a bad z/x/y or a zoom below the collection's (collection_zooms)."""
    check_address(z, x, y)
    if collection.bounds is None or not collection.crs_wkt:
        return None
    minzoom, _ = collection_zooms(collection)
    if z < minzoom:
        raise Rejected({"z": f"zoom {z} is below {minzoom}, the least zoom of collection {collection.pk}'s map "
                             f"tiles: a tile there would read too many of its rasters"})
    try:
        minx, miny, maxx, maxy = georef.edge_bounds(maptiles.tile_bounds(z, x, y), maptiles.WEB_MERCATOR,
                                                    collection.crs_wkt, densify=9)
    except RuntimeError:  # the tile lies where the collection's projection is not defined
        return None
    paths = list(Tile.objects.filter(collection=collection, minx__lt=maxx, maxx__gt=minx, miny__lt=maxy, maxy__gt=miny)
                 .order_by("number").values_list("path", flat=True)[:MAX_RELIEF_SOURCES * 2])
    if not paths:
        return None
    data = maptiles.hillshade_tile(paths, z, x, y)
    if data is None:
        return None
    return render.encode(render.rgba(data, "grey"), image_format)


def collection_etag(collection, z, x, y, image_format):
    """An ETag of a relief tile: the collection as last loaded."""
    key = f"{collection.pk}|{collection.updated.isoformat()}|{RELIEF_SHRINK}|{z}/{x}/{y}.{image_format}"
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def _lonlat_bounds(collection):
    """The collection's bounds in WGS84; RasterError for a CRS with no way there (a local grid)."""
    try:
        return georef.lonlat_bounds(collection.bounds, collection.crs_wkt)
    except RuntimeError:
        raise RasterError(f"collection {collection.pk}'s CRS has no place on web maps") from None


def collection_tilejson(collection, tiles_url):
    west, south, east, north = _lonlat_bounds(collection)
    minzoom, maxzoom = collection_zooms(collection)
    return {
        "tilejson": "3.0.0", "name": f"collection {collection.pk}: shaded relief", "scheme": "xyz",
        "tiles": [tiles_url], "bounds": [west, south, east, north], "minzoom": minzoom, "maxzoom": maxzoom,
        "center": [(west + east) / 2, (south + north) / 2, minzoom], "legend": {"style": "grey", "range": [0, 255]},
    }
