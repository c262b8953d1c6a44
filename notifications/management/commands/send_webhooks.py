import signal

from django.core.management.base import BaseCommand

from jobsite.supervised import on_signals
from notifications import sender


class Command(BaseCommand):
    help = ("Send the owed webhooks until SIGTERM or Ctrl-C (each cluster runs one itself; more, on other "
            "hosts, share the work).")

    def handle(self, **options):
        sender.run(on_signals((signal.SIGTERM, signal.SIGINT)))
