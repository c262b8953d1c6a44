from django.apps import AppConfig
from django.conf import settings


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        from django_q.signals import post_spawn

        from jobsite import gdalpolicy

        from . import tasks

        gdalpolicy.configure(allowed_hosts=settings.GDAL_HTTP_HOSTS, timeout=settings.GDAL_HTTP_TIMEOUT,
                             connect_timeout=settings.GDAL_HTTP_CONNECT_TIMEOUT)
        post_spawn.connect(tasks.worker_spawned, dispatch_uid="jobs.worker_spawned")
