from django.core.management import call_command

from osgeo import gdal

from jobs.models import Collection, Tile, Town
from jobs.raster.io import read_info


def test_it_generates_and_loads_a_numbered_index_and_three_towns(db, tmp_path, capsys):
    call_command("demo_data", "--dir", str(tmp_path), "--grid", "6", "--tile-size", "32")
    ids = sorted(Tile.objects.filter(collection_id="default").values_list("number", flat=True))
    assert len(ids) == 36 and ids[:7] == [4283, 4284, 4285, 4286, 4287, 4288, 4315]
    info = read_info(Tile.objects.get(number=4283).path)
    assert (info.epsg, info.dtype, info.nodata, info.width) == (25832, "Float32", -9999.0, 32)
    counts = sorted(town.tiles.filter(collection_id="default").count() for town in Town.objects.all())
    assert len(counts) == 3 and counts[0] > 0 and len(set(counts)) == 3


def test_a_second_collection_covers_the_same_ground_at_8_m(db, tmp_path, capsys):
    call_command("demo_data", "--dir", str(tmp_path), "--grid", "6", "--tile-size", "32")
    fine, coarse = Collection.objects.get(pk="default"), Collection.objects.get(pk="dem8m")
    assert (fine.pixel_width, coarse.pixel_width, fine.title, coarse.title) == (2.0, 8.0, "Demo DEM, 2 m", "Demo DEM, 8 m")
    assert fine.bounds == coarse.bounds and coarse.tile_count == 4  # 192 px at 2 m = 48 px at 8 m, tiles of 32
    assert sorted(coarse.tiles.values_list("number", flat=True)) == [9000, 9001, 9032, 9033]
    assert all(town.tiles.filter(collection_id="dem8m").exists() for town in Town.objects.all())
    fine_pixels = gdal.Open(str(Tile.objects.get(number=4283).path)).ReadAsArray()[:4, :4]
    coarse_pixel = gdal.Open(str(Tile.objects.get(number=9000).path)).ReadAsArray()[0, 0]
    if (fine_pixels != -9999.0).all():
        assert abs(float(coarse_pixel) - float(fine_pixels.astype("float64").mean())) < 1e-3
    else:
        assert coarse_pixel == -9999.0


def test_running_it_twice_is_harmless(db, tmp_path, capsys):
    call_command("demo_data", "--dir", str(tmp_path), "--grid", "3", "--tile-size", "32")
    first = list(Tile.objects.order_by("id").values_list("id", "path", "col", "row"))
    call_command("demo_data", "--dir", str(tmp_path), "--grid", "3", "--tile-size", "32")
    assert list(Tile.objects.order_by("id").values_list("id", "path", "col", "row")) == first
    assert "tiles already in" in capsys.readouterr().out
    assert Town.objects.count() == 3
