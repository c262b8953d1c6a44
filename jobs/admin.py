from django.contrib import admin, messages
from django.db.models import Count

from . import services
from .exceptions import Conflict, TooLarge
from .models import IndexCrs, Job, JobInput, JobLog, JobTile, Label, Tile, Town


@admin.register(Tile)
class TileAdmin(admin.ModelAdmin):
    list_display = ["id", "path", "width", "height", "col", "row", "loaded"]
    search_fields = ["=id", "path"]
    readonly_fields = ["loaded"]


@admin.register(IndexCrs)
class IndexCrsAdmin(admin.ModelAdmin):
    """Shown for reference; load_tiles sets it."""

    list_display = ["__str__", "updated"]
    readonly_fields = ["wkt", "updated"]

    def has_add_permission(self, request):
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


class JobInputInline(ReadOnlyInline):
    model = JobInput
    fields = ["name", "file_name", "datafile"]
    readonly_fields = fields


class JobLogInline(ReadOnlyInline):
    model = JobLog
    fields = ["created", "level", "tile", "message"]
    readonly_fields = fields


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "status", "owner", "tiles_total", "attempt", "created", "finished"]
    list_filter = ["status", "type", "interim_results", "labels", "created"]
    search_fields = ["=id", "owner__username", "labels__name", "error"]
    date_hierarchy = "created"
    raw_id_fields = ["town"]
    readonly_fields = ["status", "tiles_total", "attempt", "outputs", "results", "error", "waiting_for", "wait_deadline",
                       "created", "started", "finished", "updated", "interim_deleted"]
    inlines = [JobInputInline, JobTileInline, JobLogInline]
    list_select_related = ["owner"]

    actions = ["cancel_jobs", "resume_jobs"]

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request, queryset):
        self._each(request, queryset, lambda job: services.job_cancel(job=job, by=request.user), "canceled")

    @admin.action(description="Resume the selected jobs")
    def resume_jobs(self, request, queryset):
        self._each(request, queryset, lambda job: services.job_resume(job=job, by=request.user), "resumed")

    def _each(self, request, queryset, act, done):
        count = 0
        for job in queryset:
            try:
                act(job)
                count += 1
            except (Conflict, TooLarge) as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if count:
            self.message_user(request, f"{count} jobs {done}.", messages.SUCCESS)

    def has_delete_permission(self, request, obj=None):
        """Only finished jobs can be deleted; cancel a job first."""
        return super().has_delete_permission(request, obj) and (obj is None or obj.is_final)

    def delete_model(self, request, obj):
        services.job_delete(job=obj)

    def delete_queryset(self, request, queryset):
        for job in queryset:
            try:
                services.job_delete(job=job)
            except Conflict as exc:
                self.message_user(request, f"not deleted: {exc}", messages.ERROR)


@admin.register(JobLog)
class JobLogAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "tile", "level", "created", "message"]
    list_filter = ["level"]
    search_fields = ["message", "=job__id"]
    raw_id_fields = ["job", "tile"]
