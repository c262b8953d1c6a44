from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from jobsite import georef

from jobsite.exceptions import quoted
from ..chains import is_chain, steps_of
from ..jobtypes import JOB_TYPES
from ..models import MAX_ID, Collection, InterimResults, Job, JobLog, JobStatus, JobTile, Priority, Start, Tile, Town
from ..services import chainruns, estimate, submit


class OutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    size = serializers.IntegerField(help_text="bytes")
    content_type = serializers.CharField()
    url = serializers.URLField()


class FeatureCollectionSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="FeatureCollection")
    features = serializers.ListField(child=serializers.DictField(), help_text="GeoJSON Features in WGS84")


class JobLinksSerializer(serializers.Serializer):
    self = serializers.URLField()
    tiles = serializers.URLField()
    logs = serializers.URLField()
    outputs = serializers.URLField()
    cancel = serializers.URLField(allow_null=True, help_text="null once the job has finished")
    resume = serializers.URLField(allow_null=True, help_text="null unless the job failed or was canceled")
    stac = serializers.URLField(allow_null=True, help_text="its STAC Item; null until it has succeeded")


def outputs_of(job, request):
    return [
        {"name": output["name"], "size": output["size"], "content_type": output["content_type"],
         "url": reverse("job-output", kwargs={"pk": job.pk, "name": output["name"]}, request=request)}
        for output in job.outputs
    ]


class JobUsageSerializer(serializers.Serializer):
    cpu_seconds = serializers.FloatField(help_text="CPU time of its tiles' successful work, tool processes included")
    peak_memory = serializers.IntegerField(help_text="bytes: the largest peak resident memory a tile's work reached")
    tile_bytes = serializers.IntegerField(help_text="bytes its tiles wrote")
    output_bytes = serializers.IntegerField(help_text="bytes of its merged results")


class EstimateSerializer(serializers.Serializer):
    type = serializers.CharField()
    tiles = serializers.IntegerField()
    pixels = serializers.IntegerField()
    megapixels = serializers.FloatField()
    worker_seconds = serializers.FloatField(help_text="worker time of its tiles and its merge")
    wall_seconds = serializers.FloatField(help_text="from submit to its result, with the share of the workers it would "
                                                    "get now")
    output_bytes = serializers.IntegerField(help_text="the expected size of its results")
    queue = serializers.DictField(help_text="jobs_ahead (queued or running at its priority or higher), "
                                            "users_sharing_workers (other users with work there), workers")
    waiting_for = serializers.ListField(child=serializers.CharField(),
                                        help_text="data files it would wait for, and \"tile N\" for each tile")
    waiting_for_tiles = serializers.ListField(child=serializers.IntegerField(),
                                              help_text="tile ids it would wait for (wait_for_tiles)")
    costs = serializers.DictField(help_text="the costs per megapixel it is priced with, measured on measured_jobs "
                                            "recent jobs of its type (0: this site's defaults)")
    allowed = serializers.DictField(help_text="ok: whether your limits allow a new job now; problems: what they refuse")


class UsageRowSerializer(serializers.Serializer):
    day = serializers.DateField(help_text="the day the jobs ended (UTC)")
    user = serializers.CharField()
    type = serializers.CharField(help_text="the job type")
    tiles = serializers.IntegerField()
    cpu_seconds = serializers.FloatField()
    tile_bytes = serializers.IntegerField()
    peak_memory = serializers.IntegerField()


class JobSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner_name", read_only=True)
    labels = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    tiles_done = serializers.IntegerField(read_only=True)
    tiles_failed = serializers.IntegerField(read_only=True)
    priority = serializers.CharField(source="get_priority_display", read_only=True,
                                     help_text="low, normal or high: which jobs the workers serve first")
    progress = serializers.SerializerMethodField(help_text="percent of the tiles done; 100 once the result exists")
    duration_s = serializers.SerializerMethodField(help_text="seconds from start to finish (or until now)")
    outputs = serializers.SerializerMethodField()
    inputs = serializers.SerializerMethodField(help_text="input name: data file name")
    steps = serializers.SerializerMethodField(help_text="a chain's steps (type chain), each with its type, params "
                                                        "and inputs, and, but in lists, tiles_done (its tiles that "
                                                        "have the step done) and interim_bytes (what its kept "
                                                        "results take; null for the last step); null for a job of "
                                                        "one type")
    waiting_for = serializers.SerializerMethodField(
        help_text="what it waits for: the names of data files not uploaded yet, and \"tile N\" for each tile not "
                  "loaded yet (their numbers are waiting_for_tiles)")
    links = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "type", "status", "priority", "owner", "collection", "params", "inputs", "steps", "labels", "town",
                  "interim_results",
                  "tiles_total", "tiles_done", "tiles_failed", "progress", "attempt", "created", "started", "finished",
                  "updated", "duration_s", "waiting_for", "waiting_for_tiles", "start", "wait_deadline", "outputs", "results", "error",
                  "interim_deleted", "webhooks", "links"]
        read_only_fields = fields

    def get_waiting_for(self, job) -> list[str]:
        tiles = [] if job.is_final else [f"tile {number}" for number in job.waiting_for_tiles]
        return [*job.waiting_for, *tiles]

    def get_progress(self, job) -> int:
        return job.progress(job.tiles_done)

    def get_duration_s(self, job) -> float | None:
        if job.started is None:
            return None
        return round(((job.finished or timezone.now()) - job.started).total_seconds(), 3)

    def get_inputs(self, job) -> dict[str, str]:
        job_type = JOB_TYPES.get(job.type)
        if job_type is not None and not job_type.inputs:  # it cannot have any: no query
            return {}
        return {job_input.name: job_input.file_name for job_input in job.inputs.all()}

    def get_steps(self, job) -> list[dict] | None:
        if not is_chain(job):
            return None
        listed = getattr(self.context.get("view"), "action", None) == "list"  # a page of jobs: no queries per job
        return steps_of(job, self.get_inputs(job), None if listed else chainruns.step_facts(job))

    @extend_schema_field(OutputSerializer(many=True))
    def get_outputs(self, job):
        return outputs_of(job, self.context.get("request"))

    @extend_schema_field(JobLinksSerializer)
    def get_links(self, job):
        url = reverse("job-detail", kwargs={"pk": job.pk}, request=self.context.get("request"))
        # The router puts a job's actions under its own URL (one reverse per job: lists of 500).
        return {"self": url, "tiles": f"{url}tiles/", "logs": f"{url}logs/", "outputs": f"{url}outputs/",
                "cancel": None if job.is_final else f"{url}cancel/", "resume": f"{url}resume/" if job.is_resumable else None,
                "stac": f"{url.rsplit('jobs/', 1)[0]}stac/collections/{job.type}/items/{job.pk}"  # api/v1/ + the STAC path
                if job.status == JobStatus.SUCCEEDED else None}


class NamedChoiceField(serializers.ChoiceField):
    """A choice whose refusal names the valid values, as the list filters' do."""

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            valid = ", ".join(str(choice) for choice in self.choices)
            raise serializers.ValidationError(f"{quoted(data)} is not a valid choice; the choices are {valid}",
                                              code="invalid_choice") from None


class JobCreateSerializer(serializers.Serializer):
    type = serializers.CharField(required=False, help_text="A job type name, e.g. hillshade (see job-types/); or give steps")
    steps = serializers.ListField(child=serializers.JSONField(), required=False, max_length=100,
                                  help_text='A chain instead of type, params and inputs: steps run one after the '
                                            'other on each tile, each reading the result of the step before, e.g. '
                                            '[{"type": "slope"}, {"type": "color-relief", "inputs": {"color_table": '
                                            '"ramp.txt"}}]; the types a chain takes are hillshade, slope, aspect, '
                                            'color-relief (the last step only), calc (reading earlier steps with {"step": k}) and the '
                                            'tiled types a site declares')
    collection = serializers.CharField(required=False, max_length=64,
                                       help_text="The collection of tiles to run over (see collections/); the "
                                                 "site's default collection without it")
    tile_ids = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=MAX_ID), required=False,
                                     allow_empty=True, help_text="Tile ids of the collection; give this or town_id")
    town_id = serializers.IntegerField(min_value=0, max_value=MAX_ID, required=False,
                                       help_text="A town id; give this or tile_ids")
    params = serializers.DictField(required=False, help_text="Parameters of the job type")
    labels = serializers.ListField(child=serializers.CharField(allow_blank=True, trim_whitespace=False),
                                   required=False, default=list)
    interim_results = NamedChoiceField(choices=InterimResults.choices, required=False)
    priority = NamedChoiceField(choices=list(Priority.by_name()), required=False,
                                help_text="which jobs run first: high (staff only), normal (the default) or low")
    inputs = serializers.DictField(child=serializers.CharField(), required=False,
                                   help_text="input name: the name of one of your data files (see job-types/)")
    wait_timeout = serializers.IntegerField(min_value=1, max_value=Job.MAX_WAIT_SECONDS, required=False,
                                            help_text="seconds to wait for data files not uploaded yet, and for "
                                                      "tiles not loaded yet")
    wait_for_tiles = serializers.BooleanField(required=False, default=False,
                                              help_text="true: tile_ids may name tiles that the collection does not "
                                                        "have yet; the job waits for them (waiting_for_tiles)")
    start = NamedChoiceField(choices=Start.choices, required=False,
                             help_text="with tiles to wait for: all_arrived (the default) starts once the last has "
                                       "arrived; as_available runs each tile as soon as it and the neighbours it "
                                       "reads are there, and merges once all are")
    webhooks = serializers.DictField(child=serializers.CharField(max_length=2000), required=False,
                                     help_text='the job\'s own webhooks: {"update": URL, "finished": URL}; update gets '
                                               "job.started, job.progress and tile.failed, finished the end; signed "
                                               "with webhook_secret, which the answer gives once; successUri, "
                                               "inProgressUri and failedUri are an OGC API subscriber's callbacks, "
                                               "sent that standard's documents")

    def submit(self, owner, **options):
        """The job the request asks for, submitted for `owner` once the request is valid (`options`:
        more of job_submit's arguments)."""
        return submit.job_submit(owner=owner, **self.request_fields(), **options)

    def estimate(self, owner):
        """What the job the request asks for would cost, for `owner` (writing nothing)."""
        return estimate.job_estimate(owner=owner, **self.request_fields())

    def request_fields(self):
        self.is_valid(raise_exception=True)
        data = self.validated_data
        return {"job_type": data.get("type"), "steps": data.get("steps"), "tile_ids": data.get("tile_ids"),
                "town_id": data.get("town_id"), "params": data.get("params"), "labels": data["labels"], "interim_results": data.get("interim_results"),
                "inputs": data.get("inputs"), "wait_timeout": data.get("wait_timeout"),
                "collection": data.get("collection"), "webhooks": data.get("webhooks"), "priority": data.get("priority"),
                "wait_for_tiles": data["wait_for_tiles"], "start": data.get("start")}


class CreatedJobSerializer(JobSerializer):
    webhook_secret = serializers.CharField(read_only=True, help_text="signs the job's own webhooks (Standard "
                                                                     "Webhooks); given only here, when it has some")

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "webhook_secret"]
        read_only_fields = fields


class JobLogSerializer(serializers.ModelSerializer):
    tile = serializers.IntegerField(source="tile.number", allow_null=True, read_only=True,
                                    help_text="the number of the tile it is about, if any")

    class Meta:
        model = JobLog
        fields = ["id", "created", "level", "tile", "message"]


class JobTileSerializer(serializers.ModelSerializer):
    tile_id = serializers.IntegerField(source="tile.number", help_text="the tile's number in the job's collection")

    class Meta:
        model = JobTile
        fields = ["tile_id", "status", "attempts", "started", "finished", "output_size", "bytes_written", "cpu_seconds",
                  "peak_memory", "error"]


class TileSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="number", help_text="the tile's number in its collection")
    bounds = serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4, read_only=True,
                                   help_text="[minx, miny, maxx, maxy] in its collection's CRS")

    class Meta:
        model = Tile
        fields = ["id", "collection", "bounds", "width", "height", "col", "row"]


class CollectionSerializer(serializers.ModelSerializer):
    crs = serializers.SerializerMethodField(help_text="the CRS's name")
    epsg = serializers.SerializerMethodField()
    pixel_size = serializers.SerializerMethodField(help_text="[width, height] of a pixel in CRS units")
    bounds = serializers.SerializerMethodField(help_text="[minx, miny, maxx, maxy] in the collection's CRS")
    bounds_wgs84 = serializers.SerializerMethodField(help_text="[west, south, east, north] in WGS84 degrees")
    links = serializers.SerializerMethodField()

    class Meta:
        model = Collection
        fields = ["id", "title", "description", "keywords", "crs", "epsg", "crs_wkt", "pixel_size", "origin_x",
                  "origin_y", "data_type", "band_count", "bands", "nodata", "bounds", "bounds_wgs84", "tile_count",
                  "created", "updated", "links"]
        read_only_fields = fields

    def get_crs(self, collection) -> str | None:
        return georef.crs_name(collection.crs_wkt) if collection.crs_wkt else None

    def get_epsg(self, collection) -> int | None:
        return georef.epsg_of(collection.crs_wkt) if collection.crs_wkt else None

    def get_pixel_size(self, collection) -> list[float] | None:
        return None if collection.pixel_width is None else [collection.pixel_width, collection.pixel_height]

    def get_bounds(self, collection) -> list[float] | None:
        return None if collection.bounds is None else list(collection.bounds)

    def get_bounds_wgs84(self, collection) -> list[float] | None:
        if collection.bounds is None or not collection.crs_wkt:
            return None
        try:
            return [round(value, 7) for value in georef.lonlat_bounds(collection.bounds, collection.crs_wkt)]
        except RuntimeError:  # a CRS that PROJ cannot take to WGS84
            return None

    def get_links(self, collection) -> dict:
        request = self.context.get("request")
        return {"self": reverse("collection-detail", args=[collection.pk], request=request),
                "tiles": reverse("tile-list", request=request) + f"?collection={collection.pk}"}


class TownSerializer(serializers.ModelSerializer):
    tile_ids = serializers.SerializerMethodField(help_text="its tiles in the default collection")
    tiles_by_collection = serializers.SerializerMethodField(help_text="collection: the ids of its tiles there")

    class Meta:
        model = Town
        fields = ["id", "name", "tile_ids", "tiles_by_collection"]

    def get_tile_ids(self, town) -> list[int]:
        return self.get_tiles_by_collection(town).get(settings.DEFAULT_COLLECTION, [])

    def get_tiles_by_collection(self, town) -> dict[str, list[int]]:
        found = {}
        for tile in sorted(town.tiles.all(), key=lambda tile: (tile.collection_id, tile.number)):
            found.setdefault(tile.collection_id, []).append(tile.number)
        return found


class InputSchemaSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["raster", "vector", "table", "text"], help_text="the data file kind it needs")
    help = serializers.CharField()


class JobTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField(help_text="a job records the version it ran with")
    title = serializers.CharField()
    description = serializers.CharField()
    keywords = serializers.ListField(child=serializers.CharField())
    source = serializers.CharField(help_text='"built-in", "file NAME" for a type a site\'s file declares, or "python DOTTED.PATH"')
    params = serializers.JSONField(help_text="the parameters as a JSON Schema (draft 2020-12) object: `properties` "
                                             "with type, default, bounds, `enum` or an anchored `pattern`, and "
                                             "`x-unused-with` where other parameters' values leave one unused; "
                                             "`required`; no other properties")
    inputs = InputSchemaSerializer(many=True, help_text="data files the job names in `inputs`")


class LabelSerializer(serializers.Serializer):
    name = serializers.CharField()
    jobs = serializers.IntegerField(source="job_count", help_text="jobs with this label that the caller can see")



class ResumeSerializer(serializers.Serializer):
    params = serializers.DictField(required=False, help_text="Parameters to change; the others stay as they were")


class ResumedJobSerializer(JobSerializer):
    tiles_to_run = serializers.IntegerField(read_only=True, help_text="tiles that will run; the others are kept")

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "tiles_to_run"]
        read_only_fields = fields
