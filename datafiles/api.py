"""REST API for data files: upload, replace, list, metadata, content, download, delete."""

import django_filters as filters
from django.conf import settings
from django.http import FileResponse, Http404, StreamingHttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.reverse import reverse

from jobsite import downloads
from jobsite.api.errors import ErrorSerializer
from jobsite.api.filters import ChoiceFilter, OrderingFilter
from jobsite.exceptions import Rejected, TooLarge, quoted

from . import services
from .formats import Unreadable
from .models import DataFile


class DataFileLinksSerializer(serializers.Serializer):
    self = serializers.URLField()
    download = serializers.URLField()
    content = serializers.URLField(allow_null=True, help_text="tables and text only")


class DataFileSerializer(serializers.ModelSerializer):
    links = serializers.SerializerMethodField()

    class Meta:
        model = DataFile
        fields = ["name", "kind", "size", "sha256", "uploaded", "metadata", "links"]

    @extend_schema_field(DataFileLinksSerializer)
    def get_links(self, datafile):
        request = self.context.get("request")

        def link(name):
            return reverse(name, kwargs={"name": datafile.name}, request=request)

        return {"self": link("datafile-detail"), "download": link("datafile-download"),
                "content": link("datafile-content") if datafile.kind in services.FORMATS else None}


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="the file; its name is the data file's name unless `name` is given")
    name = serializers.CharField(required=False, help_text="the name to store it under, with its extension")


class DeletedSerializer(serializers.Serializer):
    deleted = serializers.IntegerField()


class DataFileFilter(filters.FilterSet):
    kind = ChoiceFilter(choices=DataFile.Kind.choices)
    search = filters.CharFilter(field_name="name", lookup_expr="icontains", help_text="text in the name")
    ordering = OrderingFilter(fields=["name", "uploaded", "size", "kind"])

    class Meta:
        model = DataFile
        fields = []


UPLOAD_ERRORS = {409: ErrorSerializer, 413: ErrorSerializer}


class DataFileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's data files, by name."""

    serializer_class = DataFileSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    filter_backends = [DjangoFilterBackend]
    filterset_class = DataFileFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return DataFile.objects.none()
        return DataFile.objects.filter(owner=self.request.user)

    def _upload(self, request, replace, name=None):
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        length = int(raw_length) if raw_length.isascii() and raw_length.isdigit() else 0  # Django reads a bad one as no body
        if length > settings.DATAFILE_MAX_BYTES + 1024 * 1024:  # refuse before reading the body
            raise TooLarge(f"the upload is {length} bytes; the limit is {settings.DATAFILE_MAX_BYTES} bytes")
        serializer = UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        given = serializer.validated_data.get("name")
        if name is not None and given is not None and given != name:
            raise Rejected({"name": f"the URL names {quoted(name)}, the body {quoted(given)}"})
        datafile, created = services.datafile_store(owner=request.user, upload=serializer.validated_data["file"],
                                                    name=name or given, replace=replace)
        return Response(DataFileSerializer(datafile, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request={"multipart/form-data": UploadSerializer}, responses={201: DataFileSerializer, **UPLOAD_ERRORS})
    def create(self, request):
        """Upload a file; 409 if you already have one of that name, 413 over the size limit or your quota."""
        return self._upload(request, replace=False)

    @extend_schema(request={"multipart/form-data": UploadSerializer},
                   responses={200: DataFileSerializer, 201: DataFileSerializer, **UPLOAD_ERRORS})
    def update(self, request, name=None):
        """Replace the file of this name (or store it); 409 while a queued or running job reads it."""
        return self._upload(request, replace=True, name=name)

    @extend_schema(responses={204: None, 409: ErrorSerializer})
    def destroy(self, request, name=None):
        """Delete the file; 409 while a queued or running job reads it."""
        services.datafile_delete(datafile=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="api_v1_datafiles_destroy_all", responses={200: DeletedSerializer, 409: ErrorSerializer},
                   filters=False)
    def destroy_all(self, request):
        """Delete all your data files, or none while a queued or running job reads one of them."""
        return Response({"deleted": services.datafile_delete_all(owner=request.user)})

    @extend_schema(parameters=[OpenApiParameter("format", str, enum=["csv", "json", "html", "txt"],
                                                description="csv, json, html or txt (tables); txt, json or html (text)")],
                   responses={(200, content_type): OpenApiTypes.STR for content_type in services.CONTENT_TYPES.values()},
                   filters=False)
    @action(detail=True, methods=["get"], filter_backends=[])
    def content(self, request, name=None):
        """The content of a table or text file, in the format asked for, streamed."""
        content_type, chunks = services.datafile_content(self.get_object(), request.query_params.get("format", "txt"))
        return StreamingHttpResponse((chunk.encode() for chunk in chunks), content_type=f"{content_type}; charset=utf-8")

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY}, filters=False)
    @action(detail=True, methods=["get"], filter_backends=[])
    def download(self, request, name=None):
        """The file itself, streamed; a single byte range (`Range: bytes=a-b`) answers 206 with those bytes."""
        datafile = self.get_object()
        return downloads.serve_file(request, datafile.path, as_attachment=True, filename=datafile.name,
                                    content_type="application/octet-stream")

    @extend_schema(responses={(200, "application/geo+json"): OpenApiTypes.OBJECT}, filters=False)
    @action(detail=True, methods=["get"], filter_backends=[])
    def geojson(self, request, name=None):
        """A vector file's features as GeoJSON in WGS84, for maps: at most 20,000 of them (`truncated`
        says whether some were left out), each with its layer's name. Made once, by the confined reader."""
        datafile = self.get_object()
        if datafile.kind != DataFile.Kind.VECTOR:
            raise Http404(f"{quoted(datafile.name)} is a {datafile.kind} file, not a vector")
        try:
            path = services.datafile_map(datafile)
        except services.NotReady:
            return Response({"detail": "the map is being made; ask again in a moment"}, status=503,
                            headers={"Retry-After": "2"})
        except Unreadable as exc:
            raise Http404(f"{quoted(datafile.name)} has no map: {exc}") from None
        return FileResponse(path.open("rb"), content_type="application/geo+json")

    def get_parsers(self):
        if getattr(self, "action", None) in ("create", "update") or self.request and self.request.method in ("POST", "PUT"):
            return [MultiPartParser()]
        return super().get_parsers()
