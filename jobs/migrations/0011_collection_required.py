"""Every tile and job now names its collection; the one-row index CRS gives way to the collections'."""

from django.db import migrations, models

import django.db.models.deletion

import jobs.models


class Migration(migrations.Migration):
    dependencies = [("jobs", "0010_default_collection")]

    operations = [
        migrations.AlterField(
            model_name="tile", name="collection",
            field=models.ForeignKey(default=jobs.models.default_collection,
                                    on_delete=django.db.models.deletion.PROTECT, related_name="tiles",
                                    to="jobs.collection")),
        migrations.AlterField(
            model_name="job", name="collection",
            field=models.ForeignKey(default=jobs.models.default_collection,
                                    on_delete=django.db.models.deletion.PROTECT, related_name="jobs",
                                    to="jobs.collection")),
        migrations.DeleteModel(name="IndexCrs"),
    ]
