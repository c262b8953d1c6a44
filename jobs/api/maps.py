"""Map endpoints of the REST API: map tiles and TileJSON of job outputs, the value under a point,
and GeoJSON of a job's tiles. Thin: the work is in jobs.services.maps and .footprints."""

import math
from contextlib import contextmanager

from django.http import Http404, HttpResponse
from django.utils.http import parse_etags
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from datafiles.formats import Unreadable, without_paths
from datafiles.services import NotReady
from datafiles.models import DataFile
from jobsite.exceptions import quoted

from ..models import Collection, Job
from ..raster import render
from ..raster.io import RasterError
from ..services import maps

STYLE_PARAMETERS = [
    OpenApiParameter("colormap", str, enum=render.colormap_names(),
                     description=f"the colour map of a one-band output ({render.DEFAULT_COLORMAP})"),
    OpenApiParameter("rescale", str, description="LOW,HIGH: the values the colour map spans (the output's "
                                                 "minimum and maximum)"),
]
IMAGE_RESPONSES = {(200, "image/png"): OpenApiTypes.BINARY, (200, "image/webp"): OpenApiTypes.BINARY,
                   204: None, 304: None}


class MapStyleSerializer(serializers.Serializer):
    colormap = serializers.ChoiceField(choices=render.colormap_names(), default=render.DEFAULT_COLORMAP)
    rescale = serializers.CharField(required=False, max_length=100)

    def validate_rescale(self, value):
        try:
            low, high = (float(part) for part in value.split(","))
        except ValueError:
            raise serializers.ValidationError(f"must be two numbers LOW,HIGH, not {quoted(value)}") from None
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise serializers.ValidationError(f"must be two finite numbers with LOW below HIGH, not {quoted(value)}")
        return low, high

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if "colormap" in exc.detail:
                names = ", ".join(render.colormap_names())
                exc.detail["colormap"] = [f"{quoted(data.get('colormap'))} is not a colour map here; they are {names}"]
            raise

    def map_style(self):
        self.is_valid(raise_exception=True)
        return maps.MapStyle(colormap=self.validated_data["colormap"], rescale=self.validated_data.get("rescale"))


class LonLatSerializer(serializers.Serializer):
    lon = serializers.FloatField(min_value=-180, max_value=180)
    lat = serializers.FloatField(min_value=-85.06, max_value=85.06)


class ValueSerializer(serializers.Serializer):
    lon = serializers.FloatField()
    lat = serializers.FloatField()
    values = serializers.ListField(child=serializers.FloatField(allow_null=True), allow_null=True,
                                   help_text="one per band, null where it has no data; null outside the output")


@contextmanager
def readable(what):
    """A raster that cannot be read (gone, or GDAL fails on it) is a 404 naming `what`."""
    try:
        yield
    except (RasterError, OSError) as exc:
        raise Http404(f"{what} cannot be read for maps: {without_paths(str(exc))}") from None


class MapView(APIView):
    """A view whose answers are images: a client asking for `Accept: image/png` gets them, and its
    errors in JSON (content negotiation falls back to JSON rather than answering 406)."""

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)


def not_modified(request, etag):
    """Whether the request's If-None-Match names `etag` (weakly, as GET compares) or is `*`."""
    given = parse_etags(request.headers.get("If-None-Match", ""))
    return "*" in given or etag.removeprefix("W/") in {tag.removeprefix("W/") for tag in given}


def _job_output(request, pk, name):
    """The MapRaster of raster output `name` of the caller's job `pk` (staff: anybody's); 404 otherwise."""
    job = get_object_or_404(Job.objects.visible_to(request.user).only("id", "type", "status", "outputs"), pk=pk)
    output = maps.raster_output(job, name)
    if output is None:
        raise Http404(f"job {job.pk} has no raster output {quoted(name)}")
    return maps.output_raster(job, output)


class MapInTheMaking(APIException):
    status_code = 503
    default_detail = "the map is being made; ask again in a moment"
    wait = 2  # Retry-After


def _datafile(request, name):
    """The MapRaster of the caller's raster data file `name`; 404 otherwise, or when it has no place
    on a map (saying why)."""
    datafile = get_object_or_404(DataFile, owner=request.user, name=name)
    if datafile.kind != DataFile.Kind.RASTER:
        raise Http404(f"{quoted(name)} is a {datafile.kind} file, not a raster")
    try:
        return maps.datafile_raster(datafile)
    except NotReady as exc:
        raise MapInTheMaking(str(exc)) from None
    except Unreadable as exc:
        raise Http404(f"{quoted(name)} has no map: {exc}") from None


class RasterTileView(MapView):
    """One map tile of a raster in the WebMercatorQuad tile matrix set (the grid of web maps):
    nodata is transparent; 204 where the tile holds none of the raster."""

    def raster(self, request, **kwargs):
        raise NotImplementedError

    @extend_schema(parameters=STYLE_PARAMETERS, responses=IMAGE_RESPONSES)
    def get(self, request, z, x, y, image_format, **kwargs):
        style = MapStyleSerializer(data=request.query_params).map_style()
        maps.check_address(z, x, y)
        raster = self.raster(request, **kwargs)
        with readable(raster.name):
            etag = maps.tile_etag(raster, z, x, y, image_format, style)
            headers = {"ETag": etag, "Cache-Control": f"private, max-age={maps.CACHE_SECONDS}"}
            if not_modified(request, etag):
                return HttpResponse(status=304, headers=headers)
            image = maps.tile_image(raster, z, x, y, image_format, style)
        if image is None:
            return HttpResponse(status=204, headers=headers)
        return HttpResponse(image, content_type=render.FORMATS[image_format][1], headers=headers)


class TileJSONSerializer(serializers.Serializer):
    tilejson = serializers.CharField()
    name = serializers.CharField()
    tiles = serializers.ListField(child=serializers.CharField())
    bounds = serializers.ListField(child=serializers.FloatField(), help_text="west, south, east, north in degrees")
    minzoom = serializers.IntegerField()
    maxzoom = serializers.IntegerField()
    legend = serializers.DictField(help_text="style (colormap, grey or rgb), range [low, high], colormap, colors")


class RasterTileJSONView(MapView):
    """The TileJSON of a raster's map tiles: their URL, bounds, zooms and legend."""

    tile_route = None

    def raster(self, request, **kwargs):
        raise NotImplementedError

    @extend_schema(parameters=STYLE_PARAMETERS, responses=TileJSONSerializer)
    def get(self, request, **kwargs):
        style = MapStyleSerializer(data=request.query_params).map_style()
        raster = self.raster(request, **kwargs)
        url = reverse(self.tile_route, kwargs={**kwargs, "z": 0, "x": 0, "y": 0, "image_format": "png"}, request=request)
        url = url.replace("/0/0/0.png", "/{z}/{x}/{y}.png")
        # The file's version in the tiles' URL: a browser's cached tiles of a replaced file are not reused.
        query = request.query_params.copy()
        query["v"] = raster.version
        return Response(maps.tilejson(raster, f"{url}?{query.urlencode()}", style))


class OutputTileView(RasterTileView):
    __doc__ = "A job's raster output: " + RasterTileView.__doc__

    def raster(self, request, pk, name):
        return _job_output(request, pk, name)


class OutputTileJSONView(RasterTileJSONView):
    """The TileJSON of a job's raster output: its tile URL, bounds, zooms and legend."""

    tile_route = "job-output-tile"

    def raster(self, request, pk, name):
        return _job_output(request, pk, name)


class DataFileTileView(RasterTileView):
    __doc__ = "A raster data file (a copy of it at most 2,048 pixels wide and high): " + RasterTileView.__doc__

    def raster(self, request, name):
        return _datafile(request, name)


class DataFileTileJSONView(RasterTileJSONView):
    """The TileJSON of a raster data file's map tiles."""

    tile_route = "datafile-map-tile"

    def raster(self, request, name):
        return _datafile(request, name)


class OutputValueView(MapView):
    """The values of a job's raster output at a point given in WGS84 degrees."""

    @extend_schema(parameters=[OpenApiParameter("lon", float, required=True), OpenApiParameter("lat", float, required=True)],
                   responses=ValueSerializer)
    def get(self, request, pk, name):
        point = LonLatSerializer(data=request.query_params)
        point.is_valid(raise_exception=True)
        lon, lat = point.validated_data["lon"], point.validated_data["lat"]
        raster = _job_output(request, pk, name)
        with readable(raster.name):
            return Response({"lon": lon, "lat": lat, "values": maps.value_at(raster, lon, lat)})


class CollectionTileView(MapView):
    """One map tile of a collection as shaded relief (the base layer of the site's maps); 204 where
    the collection has no data, 400 below the least zoom its TileJSON gives."""

    @extend_schema(responses=IMAGE_RESPONSES)
    def get(self, request, pk, z, x, y, image_format):
        maps.check_address(z, x, y)
        collection = get_object_or_404(Collection, pk=pk)
        etag = maps.collection_etag(collection, z, x, y, image_format)
        headers = {"ETag": etag, "Cache-Control": f"private, max-age={maps.CACHE_SECONDS}"}
        if not_modified(request, etag):
            return HttpResponse(status=304, headers=headers)
        with readable(f"collection {collection.pk}"):
            image = maps.collection_tile(collection, z, x, y, image_format)
        if image is None:
            return HttpResponse(status=204, headers=headers)
        return HttpResponse(image, content_type=render.FORMATS[image_format][1], headers=headers)


class CollectionTileJSONView(MapView):
    """The TileJSON of a collection's shaded relief tiles."""

    @extend_schema(responses=TileJSONSerializer)
    def get(self, request, pk):
        collection = get_object_or_404(Collection, pk=pk)
        if collection.bounds is None or not collection.crs_wkt:
            raise Http404(f"collection {collection.pk} has no tiles")
        url = reverse("collection-map-tile", kwargs={"pk": collection.pk, "z": 0, "x": 0, "y": 0,
                                                      "image_format": "png"}, request=request)
        version = int(collection.updated.timestamp())  # a reloaded collection's tiles are new URLs
        with readable(f"collection {collection.pk}"):
            return Response(maps.collection_tilejson(collection, url.replace("/0/0/0.png", "/{z}/{x}/{y}.png")
                                                     + f"?v={version}"))
