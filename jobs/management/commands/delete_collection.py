from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from jobs.crosscollection import jobs_reading
from jobs.models import Collection, Job, JobStatus
from jobsite.exceptions import id_list


class Command(BaseCommand):
    help = ("Delete a collection and its tiles (the files stay where they are). Refused for the default collection "
            "and while any job reads the collection: unfinished jobs must end first, finished ones be deleted.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="the collection's id")

    def handle(self, name, **options):
        if name == settings.DEFAULT_COLLECTION:
            raise CommandError(f"{name} is the default collection (JOBSITE_DEFAULT_COLLECTION); it cannot be deleted")
        with transaction.atomic():
            collection = Collection.objects.select_for_update().filter(pk=name).first()
            if collection is None:
                raise CommandError(f"there is no collection {name!r}")
            reading = collection.jobs.all() | Job.objects.filter(pk__in=jobs_reading(name))
            unfinished = list(reading.filter(status__in=JobStatus.active()).values_list("id", flat=True))
            if unfinished:
                raise CommandError(f"jobs {id_list(unfinished)} read collection {name} and have not finished; wait for "
                                   "them or cancel them, then delete them")
            finished = list(reading.values_list("id", flat=True))
            if finished:
                raise CommandError(f"finished jobs {id_list(finished)} read collection {name}; delete them first "
                                   "(DELETE /api/v1/jobs/{id}/), their outputs with them")
            tiles = collection.tiles.count()
            collection.tiles.all().delete()
            collection.delete()
        self.stdout.write(f"collection {name} deleted with its {tiles} tiles")

