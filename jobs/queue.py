"""The django-q2 tasks of jobsite, by name, and the only place that puts them on the broker.

The functions behind the names are in `jobs.tasks`. Each enqueue happens at once: callers inside
a transaction wrap it in `transaction.on_commit`, so that no worker looks for work that is not
committed yet. The periodic sweep is declared here too, and installed after every migrate.
"""

from django.db import transaction
from django_q.tasks import async_task

RUN_TILES = "jobs.tasks.run_tiles"
MERGE = "jobs.tasks.merge"
REMOVE_FILES = "jobs.tasks.remove_files"
SWEEP = "jobs.tasks.sweep"
SCAN_INBOXES = "jobs.tasks.scan_inboxes"

SWEEP_SCHEDULE = {"name": "jobsite: sweep stale tiles and stalled jobs", "func": SWEEP, "schedule_type": "I",
                  "minutes": 1, "repeats": -1}
REMOVE_BATCH = 1000


def send_runner(slot, token):
    """The task of a runner (jobs.runners): it claims tiles of any job, as the scheduler chooses,
    until none is left."""
    async_task(RUN_TILES, slot, token, task_name=f"runner {slot}")


def enqueue_merge(job_id):
    async_task(MERGE, job_id, task_name=f"job {job_id} merge")


def enqueue_inbox_scan():
    async_task(SCAN_INBOXES, task_name="scan the inbox folders")


def remove_files_later(relpaths):
    """Once committed, hand the removal of these media files to the workers, a thousand files a
    task, so that a large deletion does not hold up a web request."""
    relpaths = list(relpaths)
    for start in range(0, len(relpaths), REMOVE_BATCH):
        batch = relpaths[start:start + REMOVE_BATCH]
        transaction.on_commit(lambda batch=batch: async_task(REMOVE_FILES, batch, task_name="remove files"))


def install_schedules(using="default", apps=None, **kwargs):
    """django's post_migrate signal: the sweep's schedule exists, exactly as declared above, on the
    database that holds django-q2's tables (with the models as the migrations left them)."""
    from django.apps import apps as installed
    from django.db import connections, router

    try:
        Schedule = (apps or installed).get_model("django_q", "Schedule")  # a flush sends no apps
    except LookupError:  # django-q2 is not (or no longer) migrated
        return
    if not router.allow_migrate_model(using, Schedule):
        return
    if Schedule._meta.db_table not in connections[using].introspection.table_names():
        return  # django-q2's tables were migrated away
    defaults = {key: value for key, value in SWEEP_SCHEDULE.items() if key != "name"}
    Schedule.objects.using(using).update_or_create(name=SWEEP_SCHEDULE["name"], defaults=defaults)
