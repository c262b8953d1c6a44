#!/usr/bin/env python
import importlib
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    os.environ.setdefault("JOBSITE_READ_ENV_FILE", "1")  # var/.env serves commands, not the WSGI web tier
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        importlib.import_module(os.environ["DJANGO_SETTINGS_MODULE"])  # takes every value from the environment
    except ImproperlyConfigured as error:
        # A missing or bad value: its one-line message says what to set; a traceback would bury it.
        sys.exit(f"jobsite: {error}")
    execute_from_command_line(sys.argv)
