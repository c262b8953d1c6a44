"""`manage.py check --deploy`: say so when uploads cannot be inspected in a network namespace."""

from django.core import checks

from . import sandbox


@checks.register(checks.Tags.security, deploy=True)
def inspector_isolation(app_configs, **kwargs):
    isolation, _ = sandbox.isolation()
    if isolation != "GDAL configuration only":
        return []
    return [checks.Warning(
        "uploaded files are inspected without a network namespace of their own: only GDAL's configuration keeps "
        "the inspector off the network",
        hint="run jobsite as root, or allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)",
        id="datafiles.W001")]
