"""Collections become the unit of the tile index: the table, and the columns that name a tile's
and a job's collection (filled by 0010)."""

from django.db import migrations, models

import django.db.models.deletion
import django.utils.timezone


class Migration(migrations.Migration):
    dependencies = [("jobs", "0008_job_merge_started_woken")]

    operations = [
        migrations.CreateModel(
            name="Collection",
            fields=[
                ("id", models.SlugField(help_text="a short name, such as dem1m", max_length=64, primary_key=True,
                                        serialize=False)),
                ("title", models.CharField(blank=True, max_length=200)),
                ("description", models.TextField(blank=True)),
                ("keywords", models.JSONField(blank=True, default=list)),
                ("crs_wkt", models.TextField(blank=True, help_text="the CRS all its tiles share, as WKT")),
                ("pixel_width", models.FloatField(blank=True, null=True)),
                ("pixel_height", models.FloatField(blank=True, help_text="positive, in CRS units", null=True)),
                ("origin_x", models.FloatField(blank=True, help_text="left edge of its grid", null=True)),
                ("origin_y", models.FloatField(blank=True, help_text="top edge of its grid", null=True)),
                ("data_type", models.CharField(blank=True, max_length=16)),
                ("band_count", models.PositiveIntegerField(default=1)),
                ("bands", models.JSONField(blank=True, default=list, help_text="[{band}] for each band")),
                ("nodata", models.FloatField(blank=True, null=True)),
                ("minx", models.FloatField(blank=True, null=True)),
                ("miny", models.FloatField(blank=True, null=True)),
                ("maxx", models.FloatField(blank=True, null=True)),
                ("maxy", models.FloatField(blank=True, null=True)),
                ("tile_count", models.PositiveIntegerField(default=0)),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"ordering": ["id"]},
        ),
        migrations.AddField(
            model_name="tile", name="collection",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="tiles",
                                    to="jobs.collection")),
        migrations.AddField(
            model_name="job", name="collection",
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name="jobs",
                                    to="jobs.collection")),
    ]
