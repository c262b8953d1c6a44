"""Succeeded jobs as a STAC catalogue (SpatioTemporal Asset Catalog 1.1, built with pystac): each
job is an Item, grouped into a Collection per job type under one Catalog, and searchable by area
and time (the GET subset of STAC API item search).

An Item's geometry is where its results lie (its raster output's footprint, else the box of its
tiles), its datetime the job's end. Its assets are the job's outputs: the COG with the projection
and raster extensions' facts recorded at merge (jobs.services.maps), the thumbnail, and any other
result file. Links lead to the REST job, the OGC API results and the map tiles.
"""

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

import pystac
from django.db.models import Max, Min
from django.utils.dateparse import parse_datetime
from osgeo import osr
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension, Statistics

from jobsite.exceptions import Rejected

from .. import chains
from ..jobtypes import JOB_TYPES
from ..models import Job, JobStatus
from . import footprints

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
# GDAL's data type names (lower case) as the raster extension names them.
DATA_TYPES = {"byte": "uint8", "int8": "int8", "uint16": "uint16", "int16": "int16", "uint32": "uint32",
              "int32": "int32", "uint64": "uint64", "int64": "int64", "float32": "float32", "float64": "float64",
              "cint16": "cint16", "cint32": "cint32", "cfloat32": "cfloat32", "cfloat64": "cfloat64"}
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
CATALOG_ID = "jobsite"


@dataclass(frozen=True)
class Links:
    """The absolute URLs a document links to, made by the view (it knows the request's host)."""

    url: callable  # (route name, kwargs) -> absolute URL


def jobs_in_catalogue(user):
    """The succeeded jobs `user` may see, newest first."""
    return (Job.objects.visible_to(user).filter(status=JobStatus.SUCCEEDED).select_related("collection")
            .prefetch_related("labels").order_by("-finished", "-id"))


def type_collections():
    """{STAC collection id: (title, description, keywords)}: a collection per job type, and one of
    the chains (jobs.chains) whatever their steps."""
    found = {name: (kind.title or name, kind.description or name, tuple(kind.keywords)) for name, kind in JOB_TYPES.items()}
    found[chains.CHAIN] = (chains.CHAIN, "Jobs of several steps, each run on the result of the one before.", ("chain",))
    return found


def catalog(links):
    """The root Catalog: a child link per job type (its Collection), and the search endpoint."""
    root = pystac.Catalog(id=CATALOG_ID, title="jobsite results",
                          description="The results of the jobs of this site, a collection per job type.")
    document = root.to_dict(include_self_link=False, transform_hrefs=False)
    document["links"] = [
        {"rel": "self", "href": links.url("stac-catalog", {}), "type": "application/json"},
        {"rel": "root", "href": links.url("stac-catalog", {}), "type": "application/json"},
        {"rel": "data", "href": links.url("stac-collections", {}), "type": "application/json"},
        {"rel": "search", "href": links.url("stac-search", {}), "type": "application/geo+json", "method": "GET"},
        *({"rel": "child", "href": links.url("stac-collection", {"type_name": name}), "type": "application/json",
           "title": title} for name, (title, _, _) in sorted(type_collections().items())),
    ]
    document["conformsTo"] = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
                              "https://api.stacspec.org/v1.0.0/collections"]
    return document


def collection(type_name, user, links):
    """The Collection of the job type `type_name`: its extent is that of the jobs `user` may see."""
    if type_name not in type_collections():
        return None
    title, description, keywords = type_collections()[type_name]
    extent = jobs_in_catalogue(user).filter(type=type_name).order_by().aggregate(
        west=Min("west"), south=Min("south"), east=Max("east"), north=Max("north"),
        first=Min("finished"), last=Max("finished"))
    spatial = ([extent["west"], extent["south"], extent["east"], extent["north"]] if extent["west"] is not None
               else [-180.0, -90.0, 180.0, 90.0])
    temporal = [extent["first"], extent["last"]]
    stac = pystac.Collection(
        id=type_name, title=title, description=description, keywords=list(keywords) or None, license="other",
        extent=pystac.Extent(pystac.SpatialExtent([spatial]), pystac.TemporalExtent([temporal])))
    document = stac.to_dict(include_self_link=False, transform_hrefs=False)
    document["links"] = [
        {"rel": "self", "href": links.url("stac-collection", {"type_name": type_name}), "type": "application/json"},
        {"rel": "root", "href": links.url("stac-catalog", {}), "type": "application/json"},
        {"rel": "parent", "href": links.url("stac-catalog", {}), "type": "application/json"},
        {"rel": "items", "href": links.url("stac-items", {"type_name": type_name}), "type": "application/geo+json"},
    ]
    return document


def item(job, links):
    """The STAC Item of the succeeded `job`."""
    outputs = job.outputs  # with the facts merges record (manage.py describe_results for older jobs)
    raster = next((o for o in outputs if "raster" in o), None)
    geometry, bbox = _where(job, raster)
    stac = pystac.Item(
        id=str(job.pk), geometry=geometry, bbox=bbox, datetime=job.finished, collection=job.type,
        start_datetime=job.started or job.created, end_datetime=job.finished,
        properties={"title": f"job {job.pk}: {job.type}", "created": _iso(job.created),
                    "jobsite:type": job.type, "jobsite:type_version": job.type_version,
                    "jobsite:parameters": job.params, "jobsite:labels": sorted(label.name for label in job.labels.all()),
                    "jobsite:collection": job.collection_id})
    for output in outputs:
        url = links.url("job-output", {"pk": job.pk, "name": output["name"]})
        if output["name"] == "thumbnail.png":
            stac.add_asset("thumbnail", pystac.Asset(url, title="thumbnail", media_type="image/png", roles=["thumbnail"]))
        elif "raster" in output:
            _add_raster_asset(stac, output, url)
        else:
            stac.add_asset(output["name"], pystac.Asset(url, title=output["name"], media_type=output["content_type"],
                                                        roles=["data"]))
    if raster is not None:
        _add_projection(stac, raster["raster"])
    document = stac.to_dict(include_self_link=False, transform_hrefs=False)
    document["links"] = _item_links(job, raster, links)
    return document


def _where(job, raster):
    if raster is not None:
        return raster["raster"]["footprint"], raster["raster"]["bbox"]
    if job.west is None:
        return None, None
    box = [job.west, job.south, job.east, job.north]
    ring = [[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]], [box[0], box[1]]]
    return {"type": "Polygon", "coordinates": [ring]}, box


def _add_raster_asset(stac, output, url):
    """The COG as an asset of the Item, with its bands' data type, nodata and statistics."""
    stac.add_asset(output["name"], pystac.Asset(url, title=output["name"], media_type=COG, roles=["data"]))
    bands = []
    for band in output["raster"]["bands"]:
        statistics = band.get("statistics")
        bands.append(RasterBand.create(
            nodata=band["nodata"], data_type=DATA_TYPES.get(band["data_type"], "other"),
            statistics=Statistics.create(minimum=statistics["minimum"], maximum=statistics["maximum"],
                                         mean=statistics["mean"], stddev=statistics["stddev"],
                                         valid_percent=statistics["valid_percent"]) if statistics else None))
    RasterExtension.ext(stac.assets[output["name"]], add_if_missing=True).bands = bands


def _add_projection(stac, facts):
    projection = ProjectionExtension.ext(stac, add_if_missing=True)
    if facts["epsg"]:
        projection.code = f"EPSG:{facts['epsg']}"
    else:
        projection.code = None
        projection.wkt2 = osr.SpatialReference(wkt=facts["wkt"]).ExportToWkt(["FORMAT=WKT2_2019"])
    projection.shape = facts["shape"]
    x0, px, rx, y0, ry, py = facts["geotransform"]
    projection.transform = [px, rx, x0, ry, py, y0]


def _item_links(job, raster, links):
    found = [
        {"rel": "self", "href": links.url("stac-item", {"type_name": job.type, "job_id": job.pk}), "type": "application/geo+json"},
        {"rel": "parent", "href": links.url("stac-collection", {"type_name": job.type}), "type": "application/json"},
        {"rel": "collection", "href": links.url("stac-collection", {"type_name": job.type}), "type": "application/json"},
        {"rel": "root", "href": links.url("stac-catalog", {}), "type": "application/json"},
        {"rel": "alternate", "href": links.url("job-detail", {"pk": job.pk}), "type": "application/json",
         "title": "the job in the REST API"},
        {"rel": "alternate", "href": links.url("ogc-results", {"job_id": str(job.pk)}), "type": "application/json",
         "title": "the job's results in OGC API - Processes"},
    ]
    if raster is not None:
        tiles = links.url("job-output-tile", {"pk": job.pk, "name": raster["name"], "z": 0, "x": 0, "y": 0,
                                              "image_format": "png"}).replace("/0/0/0.png", "/{z}/{x}/{y}.png")
        found += [
            {"rel": "xyz", "href": tiles, "type": "image/png", "title": "map tiles (WebMercatorQuad)"},
            {"rel": "tilejson", "href": links.url("job-output-tilejson", {"pk": job.pk, "name": raster["name"]}),
             "type": "application/json", "title": "TileJSON of the map tiles"},
        ]
    return found


def _iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


# Item search: the GET parameters of STAC API item search that a catalogue of jobs can answer.

@dataclass(frozen=True)
class Search:
    bbox: tuple | None = None
    start: datetime | None = None
    end: datetime | None = None
    collections: tuple = ()
    ids: tuple = ()
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def parse_search(params, collection_name=None):
    """A Search from query parameters; Rejected names each bad one."""
    errors = {}
    bbox = start = end = None
    if params.get("bbox"):
        try:
            bbox = footprints.parse_bbox(params["bbox"])
        except Rejected as exc:
            errors.update(exc.errors)
    if params.get("datetime"):
        start, end, problem = _interval(params["datetime"])
        if problem:
            errors["datetime"] = problem
    limit, offset = _whole(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, errors), _whole(params, "offset", 0, 0, 10 ** 9, errors)
    collections = tuple(c for c in params.get("collections", "").split(",") if c)
    unknown = [c for c in collections if c not in type_collections()]
    if unknown:
        errors["collections"] = (f"no such collection: {', '.join(unknown)}; "
                                 f"they are {', '.join(sorted(type_collections()))}")
    if collection_name:
        collections = (collection_name,)
    ids = tuple(i for i in params.get("ids", "").split(",") if i)
    if any(not (i.isascii() and i.isdigit()) or len(i) > 18 for i in ids):
        errors["ids"] = "must be job ids, comma-separated"
    if errors:
        raise Rejected(errors)
    return Search(bbox=bbox, start=start, end=end, collections=collections, ids=tuple(int(i) for i in ids),
                  limit=limit, offset=offset)


def _whole(params, name, default, low, high, errors):
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        errors[name] = f"must be a whole number from {low} to {high}, not {raw!r}"
        return default
    return int(raw)


def _interval(raw):
    """(start, end, problem) of an RFC 3339 datetime or interval ("a/b", with ".." or "" for an open end)."""
    parts = raw.split("/")
    if len(parts) > 2:
        return None, None, f"must be a datetime or an interval START/END, not {raw!r}"
    moments = []
    for part in parts:
        if part in ("", ".."):
            moments.append(None)
            continue
        try:
            moment = parse_datetime(part)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            return None, None, f"{part!r} is not an RFC 3339 date and time with a time zone (such as 2026-01-02T03:04:05Z)"
        try:
            moment = moment.astimezone(dt_timezone.utc)
        except OverflowError:
            return None, None, f"{part!r} is beyond the dates this service keeps"
        moments.append(moment)
    if len(parts) == 1:
        if moments[0] is None:
            return None, None, "a single datetime cannot be open"
        return moments[0], moments[0], None
    if moments == [None, None]:
        return None, None, "an interval needs at least one end"
    if moments[0] and moments[1] and moments[0] > moments[1]:
        return None, None, "the interval's start is after its end"
    return moments[0], moments[1], None


def search(user, query, links, self_url):
    """An ItemCollection (a GeoJSON FeatureCollection) of the jobs that match `query`, a page of it,
    with a next link while there is more."""
    jobs = jobs_in_catalogue(user)
    if query.collections:
        jobs = jobs.filter(type__in=query.collections)
    if query.ids:
        jobs = jobs.filter(pk__in=query.ids)
    if query.bbox:
        west, south, east, north = query.bbox
        jobs = jobs.filter(west__lte=east, east__gte=west, south__lte=north, north__gte=south)
    if query.start:
        jobs = jobs.filter(finished__gte=query.start)
    if query.end:
        jobs = jobs.filter(finished__lte=query.end)
    matched = jobs.count()
    page = list(jobs[query.offset:query.offset + query.limit])
    document = {"type": "FeatureCollection", "features": [item(job, links) for job in page],
                "numberMatched": matched, "numberReturned": len(page), "links": [
                    {"rel": "self", "href": self_url(query.offset), "type": "application/geo+json"},
                    {"rel": "root", "href": links.url("stac-catalog", {}), "type": "application/json"}]}
    if query.offset + len(page) < matched:
        document["links"].append({"rel": "next", "href": self_url(query.offset + query.limit),
                                  "type": "application/geo+json", "method": "GET"})
    return document
