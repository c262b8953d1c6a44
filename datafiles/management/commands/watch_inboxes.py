"""`manage.py watch_inboxes`: store what arrives in the inbox folders until SIGTERM or Ctrl-C."""

import signal

from django.core.management.base import BaseCommand, CommandError

from datafiles import watch
from datafiles.inbox import watched_folders
from jobsite.supervised import on_signals


class Command(BaseCommand):
    help = ("Store the files delivered to the inbox folders (JOBSITE_INBOXES, JOBSITE_TILE_INBOXES) as they "
            "complete, until SIGTERM or Ctrl-C; each cluster runs one itself.")

    def handle(self, **options):
        if not watched_folders():
            raise CommandError("no inbox folders: set JOBSITE_INBOXES (PATH=USERNAME or PATH, comma-separated) or "
                               "JOBSITE_TILE_INBOXES (PATH=COLLECTION, comma-separated)")
        watch.run(on_signals((signal.SIGTERM, signal.SIGINT)))
