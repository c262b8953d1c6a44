"""Once installed the sweep's schedule; jobs.queue declares it now and installs it after every migrate."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_interim_results"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = []
