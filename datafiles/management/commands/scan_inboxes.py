"""`manage.py scan_inboxes`: store the complete files of the inbox folders now (datafiles.inbox)."""

from django.core.management.base import BaseCommand, CommandError

from datafiles.inbox import scan_inboxes, watched_folders


class Command(BaseCommand):
    help = ("Store the complete files of the inbox folders (JOBSITE_INBOXES) as their users' data files, and add "
            "those of the tile inboxes (JOBSITE_TILE_INBOXES) to their collections, as the cluster's sweep does "
            "every minute; refused files go to rejected/ with the reason.")

    def handle(self, **options):
        if not watched_folders():
            raise CommandError("no inbox folders: set JOBSITE_INBOXES (PATH=USERNAME or PATH, comma-separated) or "
                               "JOBSITE_TILE_INBOXES (PATH=COLLECTION, comma-separated)")
        counts = scan_inboxes()
        self.stdout.write(f"{counts['stored']} stored, {counts['rejected']} refused")
