import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jobs import vector
from jobs.models import Town
from jobs.raster.io import crs_wkt_from_epsg


def box(minx, miny, maxx, maxy):
    return f"POLYGON (({minx} {miny}, {maxx} {miny}, {maxx} {maxy}, {minx} {maxy}, {minx} {miny}))"


@pytest.fixture
def towns_file(tmp_path, index):
    """Towns in WGS 84 (GeoJSON's own CRS), drawn in the index CRS."""
    path = tmp_path / "towns.geojson"
    wkt = crs_wkt_from_epsg(25832)
    vector.write_polygons(path, [
        (1, "Inside one tile", box(400010, 5699700, 400300, 5699990)),  # tile (0, 0) only
        (2, "Across four", box(400300, 5699700, 400340, 5699660)),  # around the corner of 4 tiles
        (3, "Far away", box(300000, 5000000, 300100, 5000100)),
    ], wkt)
    return path


def test_it_loads_towns_with_the_tiles_their_polygons_overlap(towns_file, index, capsys):
    call_command("load_towns", str(towns_file), "--id-field", "id", "--name-field", "name")
    assert list(Town.objects.get(id=1).tiles.values_list("number", flat=True)) == [index.id_at(0, 0)]
    assert sorted(Town.objects.get(id=2).tiles.values_list("number", flat=True)) == sorted(
        [index.id_at(0, 0), index.id_at(0, 1), index.id_at(1, 0), index.id_at(1, 1)])
    assert Town.objects.get(id=3).tiles.count() == 0
    captured = capsys.readouterr()
    assert "3 towns loaded" in captured.out
    assert "town 3 (Far away) overlaps no tile of the index" in captured.err


def test_a_polygon_touching_a_tile_only_along_its_edge_does_not_take_it(tmp_path, index):
    path = tmp_path / "edge.gpkg"
    vector.write_polygons(path, [(5, "Edge", box(400010, 5699700, 400320, 5699990))],
                          crs_wkt_from_epsg(25832), target_epsg=25832, driver="GPKG")
    call_command("load_towns", str(path), "--id-field", "id", "--name-field", "name")
    assert list(Town.objects.get(id=5).tiles.values_list("number", flat=True)) == [index.id_at(0, 0)]


def test_loading_again_replaces_a_towns_tiles(towns_file, index):
    call_command("load_towns", str(towns_file), "--id-field", "id", "--name-field", "name")
    call_command("load_towns", str(towns_file), "--id-field", "id", "--name-field", "name")
    assert Town.objects.count() == 3
    assert Town.objects.get(id=2).tiles.count() == 4


@pytest.mark.parametrize("id_field,name_field,message", [
    ("gid", "name", "no field 'gid'; the fields are id, name"),
    ("name", "name", "feature 1 has name='Inside one tile', not an integer id"),
])
def test_bad_fields_are_named_and_nothing_is_loaded(towns_file, id_field, name_field, message):
    with pytest.raises(CommandError, match=message):
        call_command("load_towns", str(towns_file), "--id-field", id_field, "--name-field", name_field)
    assert Town.objects.count() == 0


def test_an_unreadable_file_is_named(tmp_path, index):
    path = tmp_path / "towns.geojson"
    path.write_text("{ not json")
    with pytest.raises(CommandError, match="towns.geojson"):
        call_command("load_towns", str(path), "--id-field", "id", "--name-field", "name")


def test_towns_need_a_tile_index(db, tmp_path):
    path = tmp_path / "towns.geojson"
    vector.write_polygons(path, [(1, "A", box(0, 0, 1, 1))], crs_wkt_from_epsg(25832))
    with pytest.raises(CommandError, match="the tile index is empty"):
        call_command("load_towns", str(path), "--id-field", "id", "--name-field", "name")
