from django.core.management import call_command

from jobs.models import Tile, Town
from jobs.raster.io import read_info


def test_it_generates_and_loads_a_numbered_index_and_three_towns(db, tmp_path, capsys):
    call_command("demo_data", "--dir", str(tmp_path), "--grid", "6", "--tile-size", "32")
    ids = sorted(Tile.objects.values_list("id", flat=True))
    assert len(ids) == 36 and ids[:7] == [4283, 4284, 4285, 4286, 4287, 4288, 4315]
    info = read_info(Tile.objects.get(id=4283).path)
    assert (info.epsg, info.dtype, info.nodata, info.width) == (25832, "Float32", -9999.0, 32)
    counts = sorted(town.tiles.count() for town in Town.objects.all())
    assert len(counts) == 3 and counts[0] > 0 and len(set(counts)) == 3


def test_running_it_twice_is_harmless(db, tmp_path, capsys):
    call_command("demo_data", "--dir", str(tmp_path), "--grid", "3", "--tile-size", "32")
    first = list(Tile.objects.values_list("id", "path", "col", "row"))
    call_command("demo_data", "--dir", str(tmp_path), "--grid", "3", "--tile-size", "32")
    assert list(Tile.objects.values_list("id", "path", "col", "row")) == first
    assert "tiles already in" in capsys.readouterr().out
    assert Town.objects.count() == 3
