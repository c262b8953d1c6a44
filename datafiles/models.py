from django.conf import settings
from django.db import models
from django.utils import timezone

from jobsite.media import media_path

from .formats import StoredFile


class DataFile(models.Model):
    """An uploaded file and the metadata GDAL/OGR (or the CSV and JSON readers) found in it."""

    class Kind(models.TextChoices):
        RASTER = "raster"
        VECTOR = "vector"
        TABLE = "table"
        TEXT = "text"

    MAX_NAME = 200

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datafiles")
    name = models.CharField(max_length=MAX_NAME, help_text="The file name with its extension, unique per owner")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    size = models.BigIntegerField(help_text="bytes")
    sha256 = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    path = models.CharField(max_length=300, help_text="Relative to MEDIA_ROOT, built from ids")
    uploaded = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="datafile_unique_name_per_owner")]
        indexes = [models.Index(fields=["owner", "kind"], name="datafile_owner_kind_idx")]

    def __str__(self):
        return self.name

    @property
    def extension(self):
        return self.name.rsplit(".", 1)[-1].lower()

    @property
    def stored(self):
        """The file as GDAL must open it: by the drivers of its extension, nothing outside it."""
        return StoredFile(str(media_path(self.path)), self.extension, self.name)
