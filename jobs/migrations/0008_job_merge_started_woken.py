"""A merge's start and a job's last wake-up get fields of their own; `updated` keeps meaning only
when the row last changed. Existing jobs take both from `updated`, which held them until now."""

from django.db import migrations, models
from django.db.models import F


def from_updated(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    Job.objects.filter(status="merging").update(merge_started=F("updated"))
    Job.objects.filter(status__in=["queued", "running"]).update(woken=F("updated"))


class Migration(migrations.Migration):
    dependencies = [("jobs", "0007_jobtile_claim_order")]

    operations = [
        migrations.AddField(
            model_name="job", name="merge_started",
            field=models.DateTimeField(blank=True, help_text="when its current merge started", null=True)),
        migrations.AddField(
            model_name="job", name="woken",
            field=models.DateTimeField(blank=True, help_text="when workers were last asked to run its tiles",
                                       null=True)),
        migrations.AlterField(
            model_name="job", name="updated",
            field=models.DateTimeField(auto_now=True, help_text="when the job's row last changed")),
        migrations.RunPython(from_updated, migrations.RunPython.noop),
    ]
