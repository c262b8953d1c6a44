from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from datafiles.signals import datafile_stored
        from jobs import broker, lifecycle
        from jobs.models import Job, JobTile

        from . import events, sender

        lifecycle.job_changing.connect(events.on_job_changing, sender=Job, dispatch_uid="notifications.job_changing")
        lifecycle.tiles_changed.connect(events.on_tiles_changed, sender=JobTile,
                                        dispatch_uid="notifications.tiles_changed")
        datafile_stored.connect(events.on_datafile_stored, dispatch_uid="notifications.datafile_stored")
        broker.every_second(sender.keep_running)
