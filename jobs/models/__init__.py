import functools

from django.conf import settings
from django.db import connection, models
from django.db.models import F, Func, OuterRef, Subquery
from django.utils import timezone

from datafiles.models import DataFile

from jobsite.exceptions import Rejected

from .scheduling import ClusterHeartbeat, DailyUsage, Priority, Runner, Share, UserLimits  # noqa: F401 (models of this app)


# The largest id a PositiveIntegerField holds on every database; larger ones cannot exist, and
# would overflow inside the database if they reached a query.
MAX_ID = 2_147_483_647


def default_collection():
    """The collection a tile or job belongs to when none is named (JOBSITE_DEFAULT_COLLECTION)."""
    return settings.DEFAULT_COLLECTION


class Collection(models.Model):
    """A raster layer of the site cut into tiles of one grid: one CRS, one pixel size, one data
    type and band layout. load_tiles creates it and records what its tiles share."""

    id = models.SlugField(primary_key=True, max_length=64, help_text="a short name, such as dem1m")
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    keywords = models.JSONField(default=list, blank=True)
    crs_wkt = models.TextField(blank=True, help_text="the CRS all its tiles share, as WKT")
    pixel_width = models.FloatField(null=True, blank=True)
    pixel_height = models.FloatField(null=True, blank=True, help_text="positive, in CRS units")
    origin_x = models.FloatField(null=True, blank=True, help_text="left edge of its grid")
    origin_y = models.FloatField(null=True, blank=True, help_text="top edge of its grid")
    data_type = models.CharField(max_length=16, blank=True)
    band_count = models.PositiveIntegerField(default=1)
    bands = models.JSONField(default=list, blank=True, help_text="[{band}] for each band")
    nodata = models.FloatField(null=True, blank=True)
    minx = models.FloatField(null=True, blank=True)
    miny = models.FloatField(null=True, blank=True)
    maxx = models.FloatField(null=True, blank=True)
    maxy = models.FloatField(null=True, blank=True)
    tile_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.title or self.id

    @property
    def bounds(self):
        return None if self.minx is None else (self.minx, self.miny, self.maxx, self.maxy)


class Tile(models.Model):
    """One raster of a collection. Users know it by its `number`, the collection's own tile number
    (unique within the collection: two collections may both have a tile 4315); `id` is the
    database's key, which nothing outside shows."""

    id = models.BigAutoField(primary_key=True)
    number = models.PositiveIntegerField(help_text="the collection's own tile number")
    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="tiles", default=default_collection)
    path = models.CharField(max_length=1024)
    minx = models.FloatField()
    miny = models.FloatField()
    maxx = models.FloatField()
    maxy = models.FloatField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    # Place on the index grid, in pixels from the index's top left corner.
    col = models.PositiveIntegerField()
    row = models.PositiveIntegerField()
    loaded = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["collection_id", "number"]
        constraints = [models.UniqueConstraint(fields=["collection", "number"], name="tile_number_per_collection")]
        indexes = [models.Index(fields=["collection", "row", "col"], name="tile_grid_idx")]

    def __str__(self):
        return f"tile {self.number}" + ("" if self.collection_id == settings.DEFAULT_COLLECTION else f" of {self.collection_id}")

    @property
    def bounds(self):
        return (self.minx, self.miny, self.maxx, self.maxy)


class Town(models.Model):
    """A named area on the ground; its tiles, in every collection, are those whose footprint
    overlaps its polygon."""

    id = models.PositiveIntegerField(primary_key=True)
    name = models.CharField(max_length=200)
    geometry_wkt = models.TextField(help_text="its polygon, as WKT, in the CRS crs_wkt")
    crs_wkt = models.TextField(blank=True, help_text="the CRS of its polygon, as WKT")
    tiles = models.ManyToManyField(Tile, related_name="towns", blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.name} ({self.id})"


class Label(models.Model):
    MAX_NAME = 64

    name = models.CharField(max_length=MAX_NAME, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class JobStatus(models.TextChoices):
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    MERGING = "merging"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @classmethod
    def active(cls):
        return [cls.WAITING, cls.QUEUED, cls.RUNNING, cls.MERGING]

    @classmethod
    def final(cls):
        return [cls.SUCCEEDED, cls.FAILED, cls.CANCELED]


class TileStatus(models.TextChoices):
    WAITING = "waiting"  # a job that starts as its tiles arrive: a neighbour its halo reads may arrive still
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Start(models.TextChoices):
    """When a job that waits for tiles (wait_for_tiles) starts."""

    ALL_ARRIVED = "all_arrived"  # once its last tile has arrived
    AS_AVAILABLE = "as_available"  # at once, each tile as soon as it and the neighbours it reads are there


class InterimResults(models.TextChoices):
    ALWAYS = "always"
    ON_ERROR = "on_error"
    NEVER = "never"


@functools.cache
def _tile_count(status):
    """(SELECT COUNT(id) FROM jobtile WHERE job_id = job.id AND status = ...): COUNT as a plain
    function, so there is no GROUP BY to build, which makes the query quicker to compile. Built
    once per status and reused (annotating copies it): building it for each request cost 0.4 ms."""
    counts = (JobTile.objects.filter(job=OuterRef("pk"), status=status).order_by()
              .annotate(n=Func(F("id"), function="COUNT")).values("n"))
    return Subquery(counts, output_field=models.IntegerField())


class JobQuerySet(models.QuerySet):
    def update(self, **fields):
        """Every change goes through a queryset update (the conditional transitions); stamp it."""
        fields.setdefault("updated", timezone.now())
        return super().update(**fields)

    def visible_to(self, user):
        return self if user.is_staff else self.filter(owner=user)

    def with_counts(self):
        """Annotate tiles_done and tiles_failed, counted per job in a subquery (no GROUP BY over jobs)."""
        return self.annotate(tiles_done=_tile_count(TileStatus.SUCCEEDED), tiles_failed=_tile_count(TileStatus.FAILED))

    def for_api(self):
        """What the API's job representation reads beside the job's row: the tile counts and the
        owner's name (one column rather than a join that loads the whole user)."""
        return self.with_counts().annotate(owner_name=F("owner__username"))


# A job's own webhooks, by name (as actinia names them), and the event types each is sent.
JOB_WEBHOOKS = {
    "update": ("job.started", "job.progress", "tile.failed"),
    "finished": ("job.succeeded", "job.failed", "job.canceled"),
    # OGC API - Processes' subscriber: its callbacks get that standard's documents (jobs.ogcapi).
    "successUri": ("job.succeeded",),
    "inProgressUri": ("job.started", "job.progress"),
    "failedUri": ("job.failed",),
}


class Job(models.Model):
    MAX_LABELS = 20
    MAX_WAIT_SECONDS = 30 * 24 * 3600  # the longest a job may wait for its data files

    type = models.CharField(max_length=64)
    type_version = models.CharField(max_length=32, default="1", help_text="the version of its type it ran with")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    params = models.JSONField(default=dict, blank=True)
    labels = models.ManyToManyField(Label, related_name="jobs", blank=True)
    # None for a job of no tiles (jobs.jobschema.JobType.uses_tiles).
    collection = models.ForeignKey(Collection, on_delete=models.PROTECT, related_name="jobs", default=default_collection,
                                   null=True, blank=True)
    town = models.ForeignKey(Town, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    interim_results = models.CharField(max_length=16, choices=InterimResults.choices, default=InterimResults.ON_ERROR)
    tiles_total = models.PositiveIntegerField(default=0)
    attempt = models.PositiveIntegerField(default=1)
    outputs = models.JSONField(default=list, blank=True)
    outputs_size = models.BigIntegerField(default=0, help_text="bytes of its result files")
    error = models.TextField(blank=True)
    waiting_for = models.JSONField(default=list, blank=True, help_text="names of the data files the job waits for")
    waiting_for_tiles = models.JSONField(default=list, blank=True,
                                         help_text="numbers of its tiles that its collection does not have yet")
    start = models.CharField(max_length=16, choices=Start.choices, default=Start.ALL_ARRIVED,
                             help_text="with tiles to wait for: whether it starts once all arrived or as they arrive")
    wait_deadline = models.DateTimeField(null=True, blank=True, help_text="a waiting job fails after this")
    results = models.JSONField(null=True, blank=True, help_text="results kept on the job, e.g. zonal statistics")
    # Where its results lie, in WGS84 degrees: set when it succeeds, for searching them by area (STAC).
    west = models.FloatField(null=True, blank=True)
    south = models.FloatField(null=True, blank=True)
    east = models.FloatField(null=True, blank=True)
    north = models.FloatField(null=True, blank=True)
    webhooks = models.JSONField(default=dict, blank=True, help_text="its own webhooks: name (JOB_WEBHOOKS) to URL")
    webhook_secret = models.CharField(max_length=64, blank=True, editable=False,
                                      help_text="signs its own webhooks; shown to its owner once, at submit")
    interim_deleted = models.DateTimeField(
        null=True, blank=True, help_text="When its interim results were deleted by a storage cleanup; "
                                         "a resume then recomputes every tile")
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    merge_started = models.DateTimeField(null=True, blank=True, help_text="when its current merge started")
    woken = models.DateTimeField(null=True, blank=True, help_text="when workers were last asked to run its tiles")
    updated = models.DateTimeField(auto_now=True, help_text="when the job's row last changed")

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["status", "-created"], name="job_status_created_idx"),
            models.Index(fields=["owner", "-created"], name="job_owner_created_idx"),
            models.Index(fields=["-created"], name="job_created_idx"),
            models.Index(fields=["finished"], name="job_finished_idx"),
            # The scheduler walks a user's jobs of one priority that may run, oldest first.
            models.Index(fields=["owner", "priority", "created", "id"], name="job_schedulable_idx",
                         condition=models.Q(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])),
        ]

    def __str__(self):
        return f"job {self.pk} ({self.type}, {self.status})"

    @property
    def is_final(self):
        return self.status in JobStatus.final()

    @property
    def is_resumable(self):
        return self.status in (JobStatus.FAILED, JobStatus.CANCELED)

    def input_files(self):
        """{input name: its data file as GDAL must open it}; Rejected if one is gone."""
        files = {}
        for job_input in self.inputs.select_related("datafile"):
            if job_input.datafile is None:
                raise Rejected({"inputs": {job_input.name: f"the data file {job_input.file_name} is gone"}})
            files[job_input.name] = job_input.datafile.stored
        return files

    def progress(self, tiles_done):
        """Percentage of tiles done; 100 only once the merged result exists."""
        if self.status == JobStatus.SUCCEEDED:
            return 100
        if not self.tiles_total:
            return 0
        return min(99, int(100 * tiles_done / self.tiles_total))


class JobInput(models.Model):
    """A data file a job reads: by its name among the owner's files, and the file once it exists."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="inputs")
    name = models.CharField(max_length=64, help_text="the job type's input name")
    file_name = models.CharField(max_length=DataFile.MAX_NAME)
    datafile = models.ForeignKey(DataFile, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="job_inputs")

    class Meta:
        ordering = ["job", "name"]
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="jobinput_unique_name_per_job")]

    def __str__(self):
        return f"job {self.job_id} {self.name}={self.file_name}"


class JobTileQuerySet(models.QuerySet):
    def add_pending(self, job_id, tile_ids, chunk=5000, status=TileStatus.PENDING):
        """Insert a pending row (or one of `status`) of job `job_id` for each of `tile_ids`, in one
        statement per `chunk` rows with their values bound: bulk_create makes a model instance and
        compiles each of its fields for every row, which took most of a large job's submit."""
        fields = [field for field in self.model._meta.concrete_fields if not field.primary_key]
        given = {"job": job_id, "status": status}
        defaults = [field.get_db_prep_save(given.get(field.name, field.get_default()), connection) for field in fields]
        where = next(i for i, field in enumerate(fields) if field.name == "tile")
        quote = connection.ops.quote_name
        sql = (f"INSERT INTO {quote(self.model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
               f"VALUES ({', '.join(['%s'] * len(fields))})")
        with connection.cursor() as cursor:
            for start in range(0, len(tile_ids), chunk):
                cursor.executemany(sql, [(*defaults[:where], tile_id, *defaults[where + 1:])
                                         for tile_id in tile_ids[start:start + chunk]])


class JobTile(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="tiles")
    tile = models.ForeignKey(Tile, on_delete=models.PROTECT, related_name="job_tiles")
    status = models.CharField(max_length=16, choices=TileStatus.choices, default=TileStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    output_path = models.CharField(max_length=1024, blank=True)
    output_size = models.BigIntegerField(null=True, blank=True)
    bytes_written = models.BigIntegerField(null=True, blank=True, help_text="bytes its successful attempt wrote "
                                                                             "(output_size: those still kept)")
    cpu_seconds = models.FloatField(null=True, blank=True, help_text="CPU time its successful attempt used, "
                                                                     "its tool processes' included")
    peak_memory = models.BigIntegerField(null=True, blank=True, help_text="bytes: the peak resident memory of the "
                                                                         "worker process during its work")
    error = models.TextField(blank=True)
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires = models.DateTimeField(null=True, blank=True)
    # A chain's tile (jobs.chains): its steps' interim results, the step its next run starts at, the
    # step it failed at and how often each step ran (jobs.services.chainruns).
    steps = models.JSONField(default=dict, blank=True)
    steps_size = models.BigIntegerField(default=0, help_text="bytes of its steps' interim results still kept "
                                                              "(a block's tiles each count their share)")

    objects = JobTileQuerySet.as_manager()

    class Meta:
        ordering = ["job", "tile"]
        constraints = [models.UniqueConstraint(fields=["job", "tile"], name="jobtile_unique_tile_per_job")]
        indexes = [
            # Claims walk a job's pending tiles in id order and stop after a batch.
            models.Index(fields=["job", "status", "id"], name="jobtile_job_status_id_idx"),
            models.Index(fields=["status", "lease_expires"], name="jobtile_lease_idx"),
        ]

    def __str__(self):
        return f"job {self.job_id} {self.tile} ({self.status})"


class JobLog(models.Model):
    MAX_MESSAGE = 1000

    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="logs")
    tile = models.ForeignKey(Tile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.CharField(max_length=MAX_MESSAGE)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["job", "id"], name="joblog_job_idx")]

    def __str__(self):
        return self.message
