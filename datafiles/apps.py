from django.apps import AppConfig


class DatafilesConfig(AppConfig):
    name = "datafiles"
    verbose_name = "Data files"

    def ready(self):
        from . import checks  # noqa: F401 (registers the deploy check)
