"""The index loaded so far becomes the default collection (JOBSITE_DEFAULT_COLLECTION, `default`
unless set), with the CRS load_tiles stored for it and what its first readable tile says of the
grid, and every tile and job belongs to it. A migration of its own: PostgreSQL does not alter a
table in the transaction that has just updated its rows."""

from django.conf import settings
from django.db import migrations
from django.db.models import Max, Min


def _first_tile_facts(Tile):
    """What the first readable tile says: its CRS, pixel size, data type, bands and nodata."""
    from osgeo import gdal

    for path in Tile.objects.order_by("id").values_list("path", flat=True)[:10]:
        try:
            ds = gdal.Open(path)
        except RuntimeError:
            continue
        if ds is None:
            continue
        gt, band = ds.GetGeoTransform(), ds.GetRasterBand(1)
        return {"crs_wkt": ds.GetProjection(), "pixel_width": abs(gt[1]), "pixel_height": abs(gt[5]),
                "data_type": gdal.GetDataTypeName(band.DataType), "band_count": ds.RasterCount,
                "bands": [{"band": i} for i in range(1, ds.RasterCount + 1)], "nodata": band.GetNoDataValue()}
    return {}


def into_default(apps, schema_editor):
    Collection, Tile, Job = (apps.get_model("jobs", name) for name in ("Collection", "Tile", "Job"))
    slug = settings.DEFAULT_COLLECTION
    facts = _first_tile_facts(Tile) if Tile.objects.exists() else {}
    stored = apps.get_model("jobs", "IndexCrs").objects.values_list("wkt", flat=True).first()
    if stored:
        facts["crs_wkt"] = stored
    extent = Tile.objects.aggregate(minx=Min("minx"), miny=Min("miny"), maxx=Max("maxx"), maxy=Max("maxy"))
    Collection.objects.update_or_create(id=slug, defaults={
        "title": "Default collection", "tile_count": Tile.objects.count(), "origin_x": extent["minx"],
        "origin_y": extent["maxy"], **extent, **facts})
    Tile.objects.update(collection_id=slug)
    Job.objects.update(collection_id=slug)


def back_from_default(apps, schema_editor):
    Collection = apps.get_model("jobs", "Collection")
    others = list(Collection.objects.exclude(id=settings.DEFAULT_COLLECTION).values_list("id", flat=True))
    if others:
        raise RuntimeError(f"collections {', '.join(others)} would merge into one index; delete them first "
                           "(manage.py delete_collection)")
    crs = Collection.objects.filter(id=settings.DEFAULT_COLLECTION).values_list("crs_wkt", flat=True).first()
    if crs:
        apps.get_model("jobs", "IndexCrs").objects.update_or_create(pk=1, defaults={"wkt": crs})


class Migration(migrations.Migration):
    dependencies = [("jobs", "0009_collections")]

    operations = [migrations.RunPython(into_default, back_from_default)]
