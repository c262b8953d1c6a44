from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import DataFile


@admin.register(DataFile)
class DataFileAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "kind", "size", "uploaded"]
    list_filter = ["kind", "uploaded"]
    search_fields = ["name", "owner__username", "sha256"]
    readonly_fields = ["owner", "name", "kind", "size", "sha256", "metadata", "path", "uploaded", "download"]
    list_select_related = ["owner"]

    def has_add_permission(self, request):
        return False  # files arrive by upload, checked by GDAL

    @admin.display(description="file")
    def download(self, datafile):
        return format_html('<a href="{}">download</a>', reverse("admin-datafile-download", args=[datafile.pk]))
