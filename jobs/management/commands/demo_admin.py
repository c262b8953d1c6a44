import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Create the staff user 'admin' with a random password and print it; an existing user keeps its "
            "password unless --reset gives it a new one.")

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--reset", action="store_true", help="give an existing user a new password")

    def handle(self, username, reset, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        if not (created or reset):
            self.stdout.write(f"admin user: {username} (password unchanged; `manage.py demo_admin --reset` "
                              "gives it a new one)")
            return
        password = secrets.token_urlsafe(12)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"{'created' if created else 'reset'} admin user: {username} / {password}")
