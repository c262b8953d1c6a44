"""The index loaded so far becomes the collection `default` (with the CRS load_tiles stored for
it), and every tile and job belongs to it. A migration of its own: PostgreSQL does not alter a
table in the transaction that has just updated its rows."""

from django.db import migrations
from django.db.models import Max, Min

DEFAULT = "default"


def into_default(apps, schema_editor):
    Collection, Tile, Job = (apps.get_model("jobs", name) for name in ("Collection", "Tile", "Job"))
    crs = apps.get_model("jobs", "IndexCrs").objects.values_list("wkt", flat=True).first() or ""
    extent = Tile.objects.aggregate(minx=Min("minx"), miny=Min("miny"), maxx=Max("maxx"), maxy=Max("maxy"))
    Collection.objects.update_or_create(id=DEFAULT, defaults={
        "title": "Default collection", "crs_wkt": crs, "tile_count": Tile.objects.count(),
        "origin_x": extent["minx"], "origin_y": extent["maxy"], **extent})
    Tile.objects.update(collection_id=DEFAULT)
    Job.objects.update(collection_id=DEFAULT)


def back_from_default(apps, schema_editor):
    crs = apps.get_model("jobs", "Collection").objects.filter(id=DEFAULT).values_list("crs_wkt", flat=True).first()
    if crs:
        apps.get_model("jobs", "IndexCrs").objects.update_or_create(pk=1, defaults={"wkt": crs})


class Migration(migrations.Migration):
    dependencies = [("jobs", "0009_collections")]

    operations = [migrations.RunPython(into_default, back_from_default)]
