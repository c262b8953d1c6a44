from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        from django_q.signals import post_spawn

        from . import tasks

        post_spawn.connect(tasks.worker_spawned, dispatch_uid="jobs.worker_spawned")
