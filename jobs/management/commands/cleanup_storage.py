from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from jobs import storage


class Command(BaseCommand):
    help = ("Delete the interim results (tile outputs) of jobs that ended failed or canceled, of every user or "
            "one. Those jobs can then only be resumed by recomputing every tile.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, metavar="DAYS",
                            help="only jobs that ended more than DAYS days ago (default: all)")
        parser.add_argument("--user", help="only this user's jobs")

    def handle(self, older_than, user, **options):
        if older_than is not None and older_than < 0:
            raise CommandError("--older-than must be 0 or more days")
        owner = None
        if user:
            owner = get_user_model().objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"no user {user!r}")
        jobs, files, size = storage.cleanup(owner=owner, older_than_days=older_than)
        self.stdout.write(f"deleted the interim results of {jobs} jobs: {files} files, {size} bytes")
