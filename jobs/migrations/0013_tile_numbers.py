"""Tile numbers are unique within a collection, no longer across the site: a tile's number moves
from its primary key to `number`, and the key becomes the database's own. Existing tiles keep
their key (equal to their number), so every job tile, log line and town that refers to one still
does."""

from django.db import migrations, models


def copy_numbers(apps, schema_editor):
    Tile = apps.get_model("jobs", "Tile")
    Tile.objects.update(number=models.F("id"))


def refuse_shared_numbers(apps, schema_editor):
    """Going back makes the number the key again: only while every tile's number is its key."""
    Tile = apps.get_model("jobs", "Tile")
    moved = Tile.objects.exclude(number=models.F("id"))
    if moved.exists():
        raise RuntimeError(f"{moved.count()} tiles have a number that is not their key (tile numbers are used by "
                           "more than one collection); delete those tiles before migrating back")


def continue_the_keys(apps, schema_editor):
    """PostgreSQL's new identity column would start at 1, under the keys the tiles already have."""
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite's AUTOINCREMENT continues after the largest key
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('jobs_tile', 'id'), "
                       "GREATEST((SELECT MAX(id) FROM jobs_tile), 1))")


class Migration(migrations.Migration):
    dependencies = [("jobs", "0012_town_crs")]

    operations = [
        migrations.AddField(model_name="tile", name="number", field=models.PositiveIntegerField(
            null=True, help_text="the collection's own tile number")),
        migrations.RunPython(copy_numbers, refuse_shared_numbers),
        migrations.AlterField(model_name="tile", name="number", field=models.PositiveIntegerField(
            help_text="the collection's own tile number")),
        migrations.AlterField(model_name="tile", name="id", field=models.BigAutoField(primary_key=True, serialize=False)),
        migrations.RunPython(continue_the_keys, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="tile", name="tile_grid_idx"),
        migrations.AddIndex(model_name="tile", index=models.Index(fields=["collection", "col", "row"], name="tile_grid_idx")),
        migrations.AddConstraint(model_name="tile", constraint=models.UniqueConstraint(
            fields=["collection", "number"], name="tile_number_per_collection")),
        migrations.AlterModelOptions(name="tile", options={"ordering": ["collection_id", "number"]}),
    ]
