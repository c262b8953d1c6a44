"""Installs the periodic sweep that returns the tiles of dead workers and wakes stalled jobs."""

from django.db import migrations

NAME = "jobsite: sweep stale tiles and stalled jobs"


def install(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=NAME, defaults={"func": "jobs.tasks.sweep", "schedule_type": "I", "minutes": 1, "repeats": -1})


def uninstall(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_interim_results"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
