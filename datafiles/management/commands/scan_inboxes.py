"""`manage.py scan_inboxes`: store the complete files of the inbox folders now (datafiles.inbox)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from datafiles.inbox import scan_inboxes


class Command(BaseCommand):
    help = ("Store the complete files of the inbox folders (JOBSITE_INBOXES) as their users' data files, "
            "as the cluster's sweep does every minute; refused files go to rejected/ with the reason.")

    def handle(self, **options):
        if not settings.INBOXES:
            raise CommandError("no inbox folders: set JOBSITE_INBOXES (PATH=USERNAME or PATH, comma-separated)")
        counts = scan_inboxes()
        self.stdout.write(f"{counts['stored']} stored, {counts['rejected']} refused")
