"""A job's result files: the list, each file with byte ranges (jobsite.downloads), and shareable
links (jobs.api.links) that serve one file with no other credential until they expire."""

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from jobsite import downloads
from jobsite.exceptions import quoted

from ..models import Job
from . import links
from .maps import MapView
from .serializers import OutputSerializer, outputs_of

# What a browser map library reading a linked COG from another site may send and read.
LINK_CORS = {"Access-Control-Allow-Origin": "*",
             "Access-Control-Expose-Headers": "Accept-Ranges, Content-Length, Content-Range, ETag, Last-Modified"}


def _job(request, pk):
    return get_object_or_404(Job.objects.visible_to(request.user).only("id", "outputs"), pk=pk)


def _output(job, name):
    output = next((o for o in job.outputs if o["name"] == name), None)
    if output is None:
        raise Http404(f"job {job.pk} has no output {quoted(name)}")
    return output


def _serve(request, output):
    # Inline, so that a browser shows the thumbnail; it still saves the GeoTIFF under its name.
    return downloads.serve_file(request, output["path"], content_type=output["content_type"], filename=output["name"])


class OutputList(APIView):
    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request, pk):
        """The job's result files (empty until it has succeeded), each with the URL that serves it."""
        return Response(outputs_of(_job(request, pk), request))


class OutputFile(MapView):
    @extend_schema(responses={(200, "image/tiff"): OpenApiTypes.BINARY, (206, "image/tiff"): OpenApiTypes.BINARY,
                              (200, "image/png"): OpenApiTypes.BINARY})
    def get(self, request, pk, name):
        """One result file, streamed; a single byte range (`Range: bytes=a-b`) answers 206 with
        those bytes, which is how COG readers (GDAL's /vsicurl/, QGIS) read it."""
        return _serve(request, _output(_job(request, pk), name))


class OutputFileAsFirstGiven(OutputFile):
    """The same at the URL that earlier releases gave out, with a slash after the name; not in the
    schema, which gives each operation once."""

    @extend_schema(exclude=True)
    def get(self, request, pk, name):
        return super().get(request, pk, name)


class LinkSerializer(serializers.Serializer):
    expires_in = serializers.IntegerField(required=False, min_value=1,
                                          help_text="seconds the link lasts; default JOBSITE_OUTPUT_LINK_SECONDS")

    def validate_expires_in(self, value):
        if value > settings.OUTPUT_LINK_MAX_SECONDS:
            raise serializers.ValidationError(f"must be at most {settings.OUTPUT_LINK_MAX_SECONDS} seconds")
        return value


class LinkCreatedSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="serves the file, with byte ranges, to anyone who has it")
    expires = serializers.DateTimeField()


class OutputLink(APIView):
    @extend_schema(request=LinkSerializer, responses={201: LinkCreatedSerializer})
    def post(self, request, pk, name):
        """A link that serves this file with no other credential until it expires (for clients
        that cannot send an Authorization header: a map library in a browser, a URL in QGIS)."""
        output = _output(job := _job(request, pk), name)
        asked = LinkSerializer(data=request.data)
        asked.is_valid(raise_exception=True)
        url, expires = link_for(request, job, output["name"],
                                asked.validated_data.get("expires_in", settings.OUTPUT_LINK_SECONDS))
        return Response({"url": url, "expires": expires}, status=status.HTTP_201_CREATED)


def link_for(request, job, name, seconds):
    """The absolute URL of a new link to output `name` of `job` for the caller, and its expiry."""
    signed, expires = links.sign(job, name, request.user, seconds)
    return request.build_absolute_uri(reverse("output-link", kwargs={"signed": signed, "name": name})), expires


@require_http_methods(["GET", "HEAD", "OPTIONS"])
def linked_output(request, signed, name):
    """GET or HEAD of a file through a shareable link: 403 saying why for a link that was changed,
    has expired or was revoked; 404 once the job or its file is gone."""
    if request.method == "OPTIONS":  # a browser's preflight for a Range request from another site
        return HttpResponse(status=204, headers={**LINK_CORS, "Access-Control-Allow-Methods": "GET, HEAD",
                                                 "Access-Control-Allow-Headers": "Range, If-Range, If-None-Match, "
                                                                                 "If-Modified-Since",
                                                 "Access-Control-Max-Age": "3600"})
    try:
        user, job_id = links.verify(signed, name)
    except links.LinkRefused as refused:
        return JsonResponse({"detail": str(refused)}, status=403, headers=LINK_CORS)
    job = Job.objects.visible_to(user).only("id", "outputs").filter(pk=job_id).first()
    try:
        if job is None:
            raise Http404(f"job {job_id} no longer exists")
        response = _serve(request, _output(job, name))
    except Http404 as gone:  # said here: the API's own 404 would say less, and without CORS
        return JsonResponse({"detail": str(gone)}, status=404, headers=LINK_CORS)
    for header, value in LINK_CORS.items():
        response.headers[header] = value
    return response
