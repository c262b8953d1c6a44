from django.contrib import admin, messages
from django.db.models import Count

from jobsite.exceptions import Conflict, LimitExceeded, TooLarge
from .chains import is_chain
from .jobtypes import JOB_TYPES
from .models import Collection, DailyUsage, Job, JobInput, JobLog, JobTile, Label, Priority, Tile, Town, UserLimits
from .services import control


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows that commands and workflows write: staff look, but add and change nothing here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Tile)
class TileAdmin(ViewOnlyAdmin):
    """The tile index, which `manage.py load_tiles` loads (and `--replace` replaces); jobs read it
    by number, so no tile is added, changed or deleted here."""

    list_display = ["number", "collection", "path", "width", "height", "col", "row", "loaded"]
    list_filter = ["collection"]
    search_fields = ["=number", "path"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    """load_tiles creates collections and records their grid; staff edit only how they are described."""

    list_display = ["id", "title", "tile_count", "data_type", "band_count", "updated"]
    search_fields = ["id", "title"]
    fields = ["id", "title", "description", "keywords", "tile_count", "crs_wkt", "pixel_width", "pixel_height",
              "origin_x", "origin_y", "data_type", "band_count", "bands", "nodata", "minx", "miny", "maxx", "maxy",
              "created", "updated"]
    readonly_fields = [name for name in fields if name not in ("title", "description", "keywords")]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Town)
class TownAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "tile_count"]
    search_fields = ["=id", "name"]
    raw_id_fields = ["tiles"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(tile_count=Count("tiles"))

    @admin.display(ordering="tile_count", description="tiles")
    def tile_count(self, town):
        return town.tile_count


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    search_fields = ["name"]


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class JobTileInline(ReadOnlyInline):
    model = JobTile
    fields = ["tile", "status", "attempts", "started", "finished", "output_size", "error", "lease_owner", "lease_expires"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tile")


class JobInputInline(ReadOnlyInline):
    model = JobInput
    fields = ["name", "file_name", "datafile"]
    readonly_fields = fields


class JobLogInline(ReadOnlyInline):
    model = JobLog
    fields = ["created", "level", "tile", "message"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tile")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "status", "priority", "owner", "tiles_total", "attempt", "created", "finished"]
    list_filter = ["status", "priority", "type", "interim_results", "labels", "created"]
    search_fields = ["=id", "owner__username", "labels__name", "error"]
    date_hierarchy = "created"
    # A job's history depends on all but its labels and interim results policy. Jobs are created
    # by jobs.services.submit.job_submit (the dashboard's new-job form and the API), never here.
    editable_fields = ["labels", "interim_results"]
    readonly_fields = ["type", "type_version", "type_source", "owner", "params", "town", "status", "priority", "tiles_total", "attempt", "outputs", "outputs_size",
                       "results", "error", "waiting_for", "wait_deadline", "interim_deleted", "created", "started",
                       "finished", "merge_started", "woken", "updated"]
    inlines = [JobInputInline, JobTileInline, JobLogInline]
    list_select_related = ["owner"]

    actions = ["cancel_jobs", "resume_jobs", "set_high_priority", "set_normal_priority", "set_low_priority"]

    @admin.display(description="type comes from")
    def type_source(self, job):
        kind = JOB_TYPES.get(job.type)
        if is_chain(job):
            return "a chain of built-in types"
        return kind.source if kind else "no longer declared"

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request, queryset):
        self._each(request, queryset, lambda job: control.job_cancel(job=job, by=request.user), "canceled")

    @admin.action(description="Resume the selected jobs")
    def resume_jobs(self, request, queryset):
        self._each(request, queryset, lambda job: control.job_resume(job=job, by=request.user), "resumed")

    @admin.action(description="Set high priority (jobs not yet merging)")
    def set_high_priority(self, request, queryset):
        self._set_priority(request, queryset, Priority.HIGH)

    @admin.action(description="Set normal priority (jobs not yet merging)")
    def set_normal_priority(self, request, queryset):
        self._set_priority(request, queryset, Priority.NORMAL)

    @admin.action(description="Set low priority (jobs not yet merging)")
    def set_low_priority(self, request, queryset):
        self._set_priority(request, queryset, Priority.LOW)

    def _set_priority(self, request, queryset, priority):
        changed = control.jobs_set_priority(queryset, priority)
        self.message_user(request, f"{changed} jobs now have {Priority(priority).label} priority; jobs merging or "
                                   "finished, and those that had it already, are unchanged.", messages.SUCCESS)

    def _each(self, request, queryset, act, done):
        count = 0
        for job in queryset:
            try:
                act(job)
                count += 1
            except (Conflict, TooLarge, LimitExceeded) as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if count:
            self.message_user(request, f"{count} jobs {done}.", messages.SUCCESS)

    def get_fields(self, request, obj=None):
        return [*self.readonly_fields[:4], *self.editable_fields, *self.readonly_fields[4:]]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        """Write only what the form edits: a whole-row save would put back the status and counts
        read when the form was posted over a worker's newer ones."""
        changed = [name for name in form.changed_data if name != "labels"]  # labels: save_related
        if changed:
            obj.save(update_fields=[*changed, "updated"])

    def has_delete_permission(self, request, obj=None):
        """Only finished jobs can be deleted; cancel a job first."""
        return super().has_delete_permission(request, obj) and (obj is None or obj.is_final)

    def delete_model(self, request, obj):
        control.job_delete(job=obj)

    def delete_queryset(self, request, queryset):
        for job in queryset:
            try:
                control.job_delete(job=job)
            except Conflict as exc:
                self.message_user(request, f"not deleted: {exc}", messages.ERROR)


@admin.register(JobLog)
class JobLogAdmin(ViewOnlyAdmin):
    """What happened to jobs, as it happened: never added or changed here. Deleting a job in the
    admin deletes its logs, so delete stays allowed."""

    list_display = ["id", "job", "tile", "level", "created", "message"]
    list_select_related = ["job", "tile"]
    list_filter = ["level"]
    search_fields = ["message", "=job__id"]
    raw_id_fields = ["job", "tile"]


@admin.register(UserLimits)
class UserLimitsAdmin(admin.ModelAdmin):
    """Limits of single users that differ from the site's settings."""

    list_display = ["user", "max_running_tiles", "pixels_per_day", "cpu_seconds_per_day", "job_storage_bytes"]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]


@admin.register(DailyUsage)
class DailyUsageAdmin(ViewOnlyAdmin):
    """The quotas' ledger: what each user's jobs used per day (UTC), kept when the jobs are deleted."""

    list_display = ["day", "user", "jobs", "pixels", "cpu_seconds"]
    list_filter = ["day"]
    search_fields = ["user__username"]
    date_hierarchy = "day"

    def has_delete_permission(self, request, obj=None):
        return False
