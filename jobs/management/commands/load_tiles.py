from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs.tileload import LoadError, load_tiles


class Command(BaseCommand):
    help = ("Load a collection of tiles from a directory of GeoTIFFs (the tile id is the last number in each file "
            "name) or from a tile-index vector made by gdaltindex. Checks every tile first and loads all or nothing; "
            "other collections are not touched.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="a directory of GeoTIFFs, or a gdaltindex vector file")
        parser.add_argument("--collection", default=None,
                            help=f"the collection to load into, created if new (default: {settings.DEFAULT_COLLECTION}, "
                                 "JOBSITE_DEFAULT_COLLECTION)")
        parser.add_argument("--title", default=None, help="the collection's title")
        parser.add_argument("--append", action="store_true",
                            help="add tiles to a collection that has tiles already: they must lie on its grid (its "
                                 "CRS, pixel size and alignment, bands, data type and nodata); jobs that wait for "
                                 "them take them")
        parser.add_argument("--replace-tiles", action="store_true",
                            help="with --append: load tiles of numbers the collection has anew (refused while an "
                                 "unfinished job uses them)")
        parser.add_argument("--replace", action="store_true",
                            help="make the collection exactly PATH: update tiles loaded before and remove those not in "
                                 "PATH")

    def handle(self, path, replace, collection, title, append, replace_tiles, **options):
        try:
            created, updated, deleted = load_tiles(path, replace=replace, collection=collection, title=title,
                                                   append=append, replace_tiles=replace_tiles)
        except LoadError as exc:
            raise CommandError(f"nothing loaded: {exc}") from None
        name = collection or settings.DEFAULT_COLLECTION
        self.stdout.write(f"collection {name}: {created} tiles added, {updated} updated, {deleted} removed")
