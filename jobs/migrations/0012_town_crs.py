"""A town's polygon records the CRS it is stored in, so that it can be reprojected into each
collection's; towns loaded so far are in the default collection's CRS."""

from django.conf import settings
from django.db import migrations, models


def from_default(apps, schema_editor):
    crs = (apps.get_model("jobs", "Collection").objects.filter(id=settings.DEFAULT_COLLECTION)
           .values_list("crs_wkt", flat=True).first())
    apps.get_model("jobs", "Town").objects.exclude(geometry_wkt="POLYGON EMPTY").update(crs_wkt=crs or "")


class Migration(migrations.Migration):
    dependencies = [("jobs", "0011_collection_required")]

    operations = [
        migrations.AddField(model_name="town", name="crs_wkt",
                            field=models.TextField(blank=True, help_text="the CRS of its polygon, as WKT")),
        migrations.AlterField(model_name="town", name="geometry_wkt",
                              field=models.TextField(help_text="its polygon, as WKT, in the CRS crs_wkt")),
        migrations.RunPython(from_default, migrations.RunPython.noop),
    ]
