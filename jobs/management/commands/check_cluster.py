from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs import health


class Command(BaseCommand):
    help = ("Exit non-zero unless a cluster has been alive within the last minute and tasks are being taken "
            "(for a service manager's health check: restart the cluster when it fails).")

    def handle(self, **options):
        status = health.clusters()
        if not status["alive"]:
            raise CommandError(f"no cluster has been alive in the last {health.ALIVE_SECONDS} s")
        waited = status["waiting_s"]
        if waited is not None and waited > settings.CLUSTER_STUCK_SECONDS:
            raise CommandError(f"{len(status['alive'])} clusters alive, but work has waited {waited:.0f} s "
                               "with nothing done: the clusters no longer take tasks")
        for cluster in status["alive"]:
            self.stdout.write(f"cluster alive on {cluster['host']} (pid {cluster['pid']}), seen {cluster['seen']}")
