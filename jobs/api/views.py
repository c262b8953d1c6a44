"""REST API viewsets. Thin: querysets, filters and serializers here; workflows in jobs.services."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, DurationField, ExpressionWrapper, F, Prefetch, Q, Sum
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed, Throttled, ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import health, queue, storage

from ..jobtypes import JOB_TYPES, get_job_type
from jobsite.exceptions import quoted
from datafiles.models import DataFile

from ..models import Collection, Job, JobLog, JobStatus, JobTile, Label, Tile, TileStatus, Town
from ..services import control, footprints, quotas, usage
from .auth import TOO_MANY_ATTEMPTS, PasswordAttemptThrottle, token_for
from jobsite.api.errors import ErrorSerializer, QuotaErrorSerializer
from .filters import JobFilter, JobTileFilter, TileFilter
from .pagination import AfterCursorPagination
from .accounting import CleanupSerializer, QuotasSerializer, StorageSerializer
from .serializers import (CollectionSerializer, EstimateSerializer, JobCreateSerializer, JobLogSerializer,
                          CreatedJobSerializer, FeatureCollectionSerializer, JobSerializer, JobTileSerializer, JobTypeSerializer, LabelSerializer, ResumedJobSerializer, ResumeSerializer,
                          TileSerializer, TownSerializer, JobUsageSerializer, UsageRowSerializer)

CONFLICT = {409: ErrorSerializer}


class JobViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                 mixins.DestroyModelMixin, viewsets.GenericViewSet):
    http_method_names = ["get", "post", "put", "delete", "head", "options"]
    """Jobs of the caller (staff: of everybody). Another user's job answers 404."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = JobFilter
    lookup_value_regex = r"\d{1,18}"  # within a 64-bit id: a longer number is a 404, not an overflow

    def get_object(self):
        """The job by id among those the caller may see; the list's filters do not apply."""
        job = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
        self.check_object_permissions(self.request, job)
        return job

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # generating the schema: there is no user
            return Job.objects.none()
        jobs = Job.objects.visible_to(self.request.user).for_api()
        if self.action == "list":
            # What the ordering filter may sort by; a page's labels and inputs in one query each.
            # One job (the status that clients poll) reads its own: cheaper than a prefetch.
            jobs = jobs.annotate(duration=ExpressionWrapper(F("finished") - F("started"), output_field=DurationField()))
            jobs = jobs.prefetch_related("labels", "inputs")
        return jobs

    def get_serializer_class(self):
        return JobCreateSerializer if self.action in ("create", "estimate") else JobSerializer


    def _represent(self, job, code=status.HTTP_200_OK):
        job = self.get_queryset().get(pk=job.pk)
        return Response(JobSerializer(job, context=self.get_serializer_context()).data, status=code)

    @extend_schema(request=JobCreateSerializer, responses={201: CreatedJobSerializer, 429: QuotaErrorSerializer})
    def create(self, request, *args, **kwargs):
        job = JobCreateSerializer(data=request.data).submit(request.user)
        represented = self.get_queryset().get(pk=job.pk)
        represented.webhook_secret = job.webhook_secret or None
        return Response(CreatedJobSerializer(represented, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=JobCreateSerializer, responses={200: EstimateSerializer})
    @action(detail=False, methods=["post"], filter_backends=[], pagination_class=None)
    def estimate(self, request):
        """What a submit of this body would cost on this site now, writing nothing."""
        return Response(JobCreateSerializer(data=request.data).estimate(request.user))

    @extend_schema(responses={204: None, **CONFLICT})
    def destroy(self, request, *args, **kwargs):
        """Delete a finished job with its tiles, logs and files; 409 while it has not finished."""
        control.job_delete(job=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: JobSerializer, **CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a job that has not finished; 409 once it has."""
        return self._represent(control.job_cancel(job=self.get_object(), by=request.user))

    @extend_schema(request=ResumeSerializer, responses={200: ResumedJobSerializer, **CONFLICT})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Run a failed or canceled job again from its interim results, optionally with changed
        parameters (which recompute every tile when they change the result; a chain's tiles from
        the first changed step); 409 otherwise."""
        serializer = ResumeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job, to_run = control.job_resume(job=self.get_object(), by=request.user,
                                          params=serializer.validated_data.get("params"))
        job = self.get_queryset().get(pk=job.pk)
        job.tiles_to_run = to_run
        return Response(ResumedJobSerializer(job, context=self.get_serializer_context()).data)

    @extend_schema(request=ResumeSerializer, responses={200: ResumedJobSerializer, **CONFLICT})
    def update(self, request, *args, **kwargs):
        """The same as POST resume/, for clients that resume with PUT."""
        return self.resume(request, pk=kwargs.get("pk"))

    @extend_schema(responses=JobLogSerializer(many=True), filters=False, parameters=[
        OpenApiParameter("tile", int, description="only the lines about this tile (its number)")])
    @action(detail=True, methods=["get"], pagination_class=AfterCursorPagination, filter_backends=[])
    def logs(self, request, pk=None):
        """The job's log, oldest first (`?tile=` for one tile's lines). Follow `next` to read only what
        was logged since."""
        job = self.get_object()
        logs = JobLog.objects.filter(job=job).select_related("tile")
        tile = request.query_params.get("tile")
        if tile is not None:
            if not (tile.isascii() and tile.isdigit() and len(tile) <= 9):
                raise ValidationError({"tile": f"must be a tile number, not {quoted(tile)}"})
            logs = logs.filter(tile__number=int(tile), tile__collection_id=job.collection_id)
        page = self.paginate_queryset(logs)
        return self.get_paginated_response(JobLogSerializer(page, many=True).data)

    @extend_schema(responses=JobTileSerializer(many=True), filters=False, parameters=[
        OpenApiParameter("status", str, description="any of these tile statuses, comma-separated")])
    @action(detail=True, methods=["get"], filter_backends=[])
    def tiles(self, request, pk=None):
        """Each tile of the job with its status, attempts, timings and error."""
        filterset = JobTileFilter(request.query_params, queryset=self.get_object().tiles.select_related("tile").order_by("tile__number"))
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        page = self.paginate_queryset(filterset.qs)
        return self.get_paginated_response(JobTileSerializer(page, many=True).data)

    @extend_schema(responses=FeatureCollectionSerializer, filters=False, parameters=[
        OpenApiParameter("tile", int, description="only this tile (its number)")])
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def footprints(self, request, pk=None):
        """The job's tiles as GeoJSON in WGS84: a Feature per tile, its number as id, with its status,
        attempts and error, for a map of the job's progress (`?tile=` for one)."""
        tile = request.query_params.get("tile")
        if tile is not None and not (tile.isascii() and tile.isdigit() and len(tile) <= 9):
            raise ValidationError({"tile": f"must be a tile number, not {quoted(tile)}"})
        return Response(footprints.job_footprints(self.get_object(), None if tile is None else int(tile)))

    @extend_schema(responses=JobUsageSerializer, filters=False)
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def usage(self, request, pk=None):
        """What the job's tiles used so far: CPU seconds, the largest peak memory, and bytes written."""
        return Response(usage.job_usage(self.get_object()))


class CollectionViewSet(viewsets.ReadOnlyModelViewSet):
    """The collections of tiles: raster layers, each cut into tiles of one grid."""

    queryset = Collection.objects.order_by("id")
    serializer_class = CollectionSerializer
    lookup_value_regex = "[a-z0-9][a-z0-9_-]{0,63}"

    @extend_schema(responses=FeatureCollectionSerializer, filters=False, parameters=[
        OpenApiParameter("bbox", str, description="west,south,east,north in WGS84 degrees")])
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def footprints(self, request, pk=None):
        """The collection's tiles as GeoJSON in WGS84: a Feature per tile, its number as id; those
        meeting `bbox` (west,south,east,north in degrees), at most 5,000 (`truncated` says whether
        there were more)."""
        raw = request.query_params.get("bbox")
        return Response(footprints.collection_footprints(
            self.get_object(), None if raw is None else footprints.parse_bbox(raw)))


class TileViewSet(viewsets.ReadOnlyModelViewSet):
    """The tiles of every collection (`?collection=` for one). A tile is found by its number in
    `?collection=`, or in the default collection without it."""

    queryset = Tile.objects.order_by("collection_id", "number")
    serializer_class = TileSerializer
    lookup_field = "number"
    lookup_value_regex = r"\d{1,9}"
    filter_backends = [DjangoFilterBackend]
    filterset_class = TileFilter

    @extend_schema(parameters=[OpenApiParameter("collection", str, description="the tile's collection; "
                                                "the default collection without it")])
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    def get_queryset(self):
        if self.action == "retrieve" and not self.request.query_params.get("collection"):
            return self.queryset.filter(collection_id=settings.DEFAULT_COLLECTION)
        return self.queryset


class TownViewSet(viewsets.ReadOnlyModelViewSet):
    """Towns with the ids of their tiles."""

    queryset = Town.objects.order_by("id").prefetch_related(
        Prefetch("tiles", queryset=Tile.objects.only("id", "number", "collection_id")))
    serializer_class = TownSerializer
    lookup_value_regex = r"\d{1,9}"

    @extend_schema(responses=FeatureCollectionSerializer, filters=False)
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def geojson(self, request):
        """Every town's polygon as GeoJSON in WGS84: a Feature per town, its id as id, with its name
        and tile count."""
        return Response(footprints.town_features(footprints.towns_with_counts()))


class JobTypeViewSet(viewsets.ViewSet):
    """The job types and the schema of their parameters, enough to build a form from."""

    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    @extend_schema(responses=JobTypeSerializer(many=True))
    def list(self, request):
        return Response([JOB_TYPES[name].schema() for name in sorted(JOB_TYPES)])

    @extend_schema(responses=JobTypeSerializer)
    def retrieve(self, request, name=None):
        if name not in JOB_TYPES:
            raise Http404(f"no job type {quoted(name)}")
        return Response(get_job_type(name).schema())


class LabelViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The labels on the caller's jobs (staff: on all jobs), with how many jobs carry each."""

    serializer_class = LabelSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Label.objects.none()
        user = self.request.user
        visible = Q() if user.is_staff else Q(jobs__owner=user)
        return (Label.objects.annotate(job_count=Count("jobs", filter=visible)).filter(job_count__gt=0)
                .order_by("name"))


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class TokenView(ObtainAuthToken):
    """Exchange a username and password for the API token to send as `Authorization: Token <key>`
    (a new one once it has expired); DELETE revokes the caller's token."""

    throttle_classes = [PasswordAttemptThrottle]

    def get_permissions(self):
        return [IsAuthenticated()] if self.request.method == "DELETE" else [AllowAny()]

    def perform_authentication(self, request):
        # A password exchange needs no other credentials: an expired token sent along must not refuse it.
        if request.method != "POST":
            super().perform_authentication(request)

    def throttled(self, request, wait):
        raise Throttled(wait, detail=TOO_MANY_ATTEMPTS)

    @extend_schema(request=AuthTokenSerializer, responses={200: TokenSerializer, 429: ErrorSerializer})
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response({"token": token_for(serializer.validated_data["user"]).key})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, *args, **kwargs):
        """Revoke the caller's token: it no longer works; POST a username and password for a new one."""
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class StorageView(APIView):
    """Disk space taken by job files and the jobs kept, with each user's limits: the caller's (staff:
    everybody's, per user)."""

    @extend_schema(responses=StorageSerializer)
    def get(self, request):
        return Response(storage.usage(request.user))

    @extend_schema(parameters=[OpenApiParameter("older_than", int, description="days since the job ended")],
                   responses={202: CleanupSerializer})
    def delete(self, request):
        """Delete the interim results of the caller's jobs that ended failed or canceled more than
        `older_than` days ago (all of them without it). Those jobs can then only be resumed by
        recomputing every tile. The files are removed in the background."""
        raw = request.query_params.get("older_than")
        days = None
        if raw is not None:
            try:
                days = int(raw)
            except ValueError:
                raise ValidationError({"older_than": f"must be a whole number of days, not {quoted(raw)}"}) from None
            if not 0 <= days <= 36500:
                raise ValidationError({"older_than": "must be between 0 and 36500 days"})
        jobs, files, size = storage.cleanup(owner=request.user, older_than_days=days, remove=queue.remove_files_later)
        return Response({"jobs": jobs, "files": files, "bytes": size}, status=status.HTTP_202_ACCEPTED)


class QuotasView(APIView):
    """The caller's limits and quotas with what they use of each (staff: one user's with `user`), and
    when the daily quotas reset: what a client needs to plan its submits."""

    @extend_schema(parameters=[OpenApiParameter("user", str, description="staff only: one user's name")],
                   responses=QuotasSerializer)
    def get(self, request):
        user = request.user
        if "user" in request.query_params:
            if not request.user.is_staff:
                raise ValidationError({"user": "only staff may see another user's quotas"})
            user = get_object_or_404(get_user_model(), username=request.query_params["user"])
        jobs_kept, job_bytes = storage.job_usage(user)
        return Response(quotas.quotas_of(
            user, active_jobs=Job.objects.filter(owner=user, status__in=JobStatus.active()).count(), jobs_kept=jobs_kept,
            job_bytes=job_bytes, data_bytes=DataFile.objects.filter(owner=user).aggregate(n=Sum("size"))["n"] or 0,
            running_tiles=JobTile.objects.filter(job__owner=user, status=TileStatus.RUNNING).count()))


class UsageView(APIView):
    """What the caller's jobs that ended in the last `days` days used, per day of their end (UTC) and
    job type, newest first (staff: everybody's, or one user's with `user`): tiles done, CPU seconds,
    bytes written and the largest peak memory."""

    @extend_schema(parameters=[OpenApiParameter("days", int, description="how many days back (1 to 366; 30)"),
                               OpenApiParameter("user", str, description="staff only: one user's name")],
                   responses=UsageRowSerializer(many=True))
    def get(self, request):
        raw = request.query_params.get("days", "30")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= 366:
            raise ValidationError({"days": f"must be a whole number of days from 1 to 366, not {quoted(raw)}"})
        owner = request.user
        if request.user.is_staff:
            name = request.query_params.get("user")
            owner = None if name is None else get_object_or_404(get_user_model(), username=name)
        elif "user" in request.query_params:
            raise ValidationError({"user": "only staff may see another user's usage"})
        return Response(usage.daily_usage(owner=owner, days=int(raw)))


class HealthView(APIView):
    """Database, broker and cluster: 200 when all answer, 503 otherwise. No credentials needed:
    anybody learns only `{"status": "ok"}` or `{"status": "failing"}`; staff also get each check."""

    permission_classes = []

    def perform_authentication(self, request):
        # Credentials only decide how much the answer tells: bad ones make an anonymous caller, not a 401.
        try:
            request.user  # noqa: B018 (reading it authenticates)
        except AuthenticationFailed:
            pass

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT})
    def get(self, request):
        ok, checks = health.report()
        answer = {"status": "ok" if ok else "failing"}
        if getattr(request.user, "is_staff", False):
            answer.update(checks)
        return Response(answer, status=status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE)
