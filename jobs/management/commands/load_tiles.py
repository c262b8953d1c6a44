from django.core.management.base import BaseCommand, CommandError

from jobs.tileindex import LoadError, load_tiles


class Command(BaseCommand):
    help = ("Load the tile index from a directory of GeoTIFFs (the tile id is the last number in each file name) "
            "or from a tile-index vector made by gdaltindex. Checks every tile first and loads all or nothing.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="a directory of GeoTIFFs, or a gdaltindex vector file")
        parser.add_argument("--replace", action="store_true",
                            help="make the index exactly PATH: update tiles loaded before and remove those not in PATH")

    def handle(self, path, replace, **options):
        try:
            created, updated, deleted = load_tiles(path, replace=replace)
        except LoadError as exc:
            raise CommandError(f"nothing loaded: {exc}") from None
        self.stdout.write(f"tile index: {created} tiles added, {updated} updated, {deleted} removed")
