"""Record what maps and the STAC catalogue read of each succeeded job's results, for jobs merged
before jobsite recorded it: each raster output's facts (its grid, bounds and band statistics) and
where the results lie. Merges record both; run this once after upgrading. Safe to run again."""

from django.core.management.base import BaseCommand

from jobs.models import Job
from jobs.services.maps import describe_results


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        done, unreadable = describe_results(Job.objects.order_by("id"))
        self.stdout.write(f"described the results of {done} jobs")
        if unreadable:
            self.stderr.write(f"{unreadable} raster outputs could not be read (missing or damaged files); "
                              "their jobs have no map tiles")
