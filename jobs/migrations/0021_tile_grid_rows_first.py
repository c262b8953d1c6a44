from django.db import migrations, models


class Migration(migrations.Migration):
    """The tiles' grid index leads with the row: a batch's neighbours are a few rows of tiles, but
    any number of columns (see tileindex.neighbours)."""

    dependencies = [("jobs", "0020_result_extent")]

    operations = [
        migrations.RemoveIndex(model_name="tile", name="tile_grid_idx"),
        migrations.AddIndex(model_name="tile", index=models.Index(fields=["collection", "row", "col"], name="tile_grid_idx")),
    ]
