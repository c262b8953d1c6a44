from django.core.management.base import BaseCommand, CommandError

from jobs.tileindex import LoadError
from jobs.towns import load_towns


class Command(BaseCommand):
    help = ("Load towns from polygons (GeoJSON, GeoPackage, Shapefile, ...). Each town's tiles are those whose "
            "footprint overlaps its polygon; a town loaded before is replaced.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="a vector file with polygons")
        parser.add_argument("--id-field", required=True, help="the field that holds each town's integer id")
        parser.add_argument("--name-field", required=True, help="the field that holds each town's name")

    def handle(self, path, id_field, name_field, **options):
        try:
            towns, without_tiles = load_towns(path, id_field, name_field)
        except LoadError as exc:
            raise CommandError(f"nothing loaded: {exc}") from None
        self.stdout.write(f"{len(towns)} towns loaded")
        for town in without_tiles:
            self.stderr.write(self.style.WARNING(f"town {town.id} ({town.name}) overlaps no tile of the index"))
