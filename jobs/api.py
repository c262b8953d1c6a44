"""REST API for jobs: serializers, viewsets and the error format."""

from django.http import FileResponse, Http404
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import exception_handler as drf_exception_handler

from . import services
from .exceptions import Conflict, Rejected
from .models import InterimResults, Job, JobLog


class ConflictError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def _flatten(errors, prefix=""):
    """'field: problem' lines of a nested DRF error dict, for the human-readable `detail`."""
    if isinstance(errors, dict):
        return [line for key, value in errors.items() for line in _flatten(value, f"{prefix}{key}." if prefix or key != "non_field_errors" else "")]
    if isinstance(errors, list):
        return [line for value in errors for line in _flatten(value, prefix)]
    return [f"{prefix[:-1]}: {errors}" if prefix else str(errors)]


def exception_handler(exc, context):
    """Every API error is JSON with a `detail`; validation errors also carry `errors` by field."""
    if isinstance(exc, Rejected):
        exc = ValidationError(exc.errors)
    elif isinstance(exc, Conflict):
        exc = ConflictError(str(exc))
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        response.data = {"detail": "; ".join(_flatten(exc.detail)), "errors": exc.detail}
    return response


class JobSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    labels = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    tiles_done = serializers.IntegerField(read_only=True)
    tiles_failed = serializers.IntegerField(read_only=True)
    progress = serializers.SerializerMethodField()
    outputs = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "type", "status", "owner", "params", "labels", "town", "interim_results", "tiles_total",
                  "tiles_done", "tiles_failed", "progress", "attempt", "created", "started", "finished", "updated",
                  "outputs", "error"]
        read_only_fields = fields

    def get_progress(self, job) -> int:
        return job.progress(job.tiles_done)

    def get_outputs(self, job) -> list:
        request = self.context.get("request")
        return [
            {"name": output["name"], "size": output["size"], "content_type": output["content_type"],
             "url": reverse("job-output", kwargs={"pk": job.pk, "name": output["name"]}, request=request)}
            for output in job.outputs
        ]


class JobCreateSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="A job type name, e.g. hillshade")
    tile_ids = serializers.ListField(child=serializers.IntegerField(), required=False, allow_empty=True,
                                     help_text="Tile ids of the index; give this or town_id")
    town_id = serializers.IntegerField(required=False, help_text="A town id; give this or tile_ids")
    params = serializers.DictField(required=False, default=dict, help_text="Parameters of the job type")
    labels = serializers.ListField(child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False,
                                   default=list)
    interim_results = serializers.ChoiceField(choices=InterimResults.choices, required=False)


class JobLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobLog
        fields = ["id", "created", "level", "tile", "message"]


class JobViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Jobs of the caller (staff: of everybody)."""

    def get_queryset(self):
        return (Job.objects.visible_to(self.request.user).with_counts()
                .select_related("owner").prefetch_related("labels"))

    def get_serializer_class(self):
        return JobCreateSerializer if self.action == "create" else JobSerializer

    def create(self, request, *args, **kwargs):
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = services.job_submit(owner=request.user, job_type=data["type"], tile_ids=data.get("tile_ids"),
                                  town_id=data.get("town_id"), params=data["params"], labels=data["labels"],
                                  interim_results=data.get("interim_results"))
        return Response(self._represent(job), status=status.HTTP_201_CREATED)

    def _represent(self, job):
        return JobSerializer(self.get_queryset().get(pk=job.pk), context=self.get_serializer_context()).data

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = services.job_cancel(job=self.get_object(), by=request.user)
        return Response(self._represent(job))

    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        logs = JobLog.objects.filter(job=self.get_object()).order_by("id")
        page = self.paginate_queryset(logs)
        return self.get_paginated_response(JobLogSerializer(page, many=True).data)

    @action(detail=True, methods=["get"], url_path=r"outputs/(?P<name>[^/]+)", url_name="output")
    def output(self, request, pk=None, name=None):
        job = self.get_object()
        output = next((o for o in job.outputs if o["name"] == name), None)
        path = services.media_path(output["path"]) if output else None
        if path is None or not path.is_file():
            raise Http404(f"job {job.pk} has no output {name!r}")
        return FileResponse(path.open("rb"), content_type=output["content_type"], as_attachment=True, filename=name)
