import shutil
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from osgeo import gdal

from jobs.models import Tile
from jobs.raster.io import read_info

from .conftest import write_tileset


@pytest.fixture
def tiles_copy(tileset, tmp_path):
    folder = tmp_path / "tiles"
    shutil.copytree(tileset.folder, folder)
    return folder


def load(path, *args):
    call_command("load_tiles", str(path), *args)


def test_it_loads_a_directory_of_geotiffs_and_places_them_on_the_grid(db, tileset):
    load(tileset.folder)
    assert sorted(Tile.objects.values_list("number", flat=True)) == sorted(tileset.ids)
    corner = Tile.objects.get(number=tileset.id_at(0, 0))
    assert (corner.col, corner.row, corner.width, corner.height) == (0, 0, 64, 64)
    last = Tile.objects.get(number=tileset.id_at(tileset.rows - 1, tileset.columns - 1))
    assert (last.col, last.row, last.width, last.height) == (192, 128, 58, 62)
    assert last.bounds == (400000.0 + 192 * 5, 5700000.0 - 190 * 5, 400000.0 + 250 * 5, 5700000.0 - 128 * 5)


def test_it_loads_a_gdaltindex_vector(db, tileset, tmp_path):
    index = tmp_path / "index.gpkg"
    subprocess.run(["gdaltindex", "-f", "GPKG", str(index), *map(str, sorted(tileset.folder.iterdir()))], check=True,
                   capture_output=True)
    load(index)
    assert Tile.objects.count() == len(tileset.ids)


def test_a_relative_location_in_the_vector_is_taken_from_its_folder(db, tiles_copy):
    index = tiles_copy / "index.shp"
    subprocess.run(["gdaltindex", str(index), *sorted(p.name for p in tiles_copy.iterdir())], check=True,
                   capture_output=True, cwd=tiles_copy)
    load(index)
    assert Tile.objects.first().path.startswith(str(tiles_copy))


def test_loading_again_without_replace_names_the_clash_and_changes_nothing(index):
    before = list(Tile.objects.values_list("number", "loaded"))
    with pytest.raises(CommandError, match="already loaded; use --append --replace-tiles to load them anew, or --replace"):
        load(index.folder)
    assert list(Tile.objects.values_list("number", "loaded")) == before


def test_replace_makes_the_index_exactly_the_source(index, tiles_copy):
    removed = tiles_copy / f"dem_{index.id_at(0, 0)}.tif"
    removed.unlink()
    load(tiles_copy, "--replace")
    assert Tile.objects.count() == len(index.ids) - 1
    assert not Tile.objects.filter(number=index.id_at(0, 0)).exists()
    assert Tile.objects.get(number=index.id_at(0, 1)).path.startswith(str(tiles_copy))


def expect_nothing_loaded(path, message):
    with pytest.raises(CommandError, match=message):
        load(path)
    assert Tile.objects.count() == 0


def test_an_unreadable_tile_is_named_and_nothing_is_loaded(db, tiles_copy):
    (tiles_copy / "dem_999.tif").write_bytes(b"not a tiff at all")
    expect_nothing_loaded(tiles_copy, r"nothing loaded: .*dem_999.tif: .*not recognized")


def test_a_large_load_reads_its_tiles_in_parallel_with_the_same_checks(db, tiles_copy, monkeypatch):
    from jobs import tileload

    monkeypatch.setattr(tileload, "PARALLEL_READ_FROM", 2)
    (tiles_copy / "dem_999.tif").write_bytes(b"not a tiff at all")
    expect_nothing_loaded(tiles_copy, r"nothing loaded: .*dem_999.tif: .*not recognized")
    (tiles_copy / "dem_999.tif").unlink()
    load(tiles_copy)
    assert Tile.objects.count() == 12 and Tile.objects.get(number=123).col == 192


def test_a_tile_without_a_number_is_named(db, tiles_copy):
    shutil.copy(tiles_copy / "dem_100.tif", tiles_copy / "extra.tif")
    expect_nothing_loaded(tiles_copy, r"extra.tif: no tile number in the file name")


def test_two_files_with_the_same_number_are_named(db, tiles_copy):
    shutil.copy(tiles_copy / "dem_100.tif", tiles_copy / "copy_of_100.tif")
    expect_nothing_loaded(tiles_copy, r"tile number 100 is also used by")


def test_a_tile_in_another_crs_is_named(db, tiles_copy):
    gdal.Warp(str(tiles_copy / "dem_900.tif"), str(tiles_copy / "dem_100.tif"), dstSRS="EPSG:4326")
    expect_nothing_loaded(tiles_copy, r"dem_900.tif: .*(pixel size|CRS)")


def test_a_tile_with_another_pixel_size_is_named(db, tiles_copy):
    gdal.Translate(str(tiles_copy / "dem_900.tif"), str(tiles_copy / "dem_100.tif"), xRes=10, yRes=10)
    expect_nothing_loaded(tiles_copy, r"dem_900.tif: pixel size \(10.0, -10.0\) differs")


def test_a_tile_off_the_pixel_grid_is_named(db, tiles_copy):
    gdal.Translate(str(tiles_copy / "dem_900.tif"), str(tiles_copy / "dem_100.tif"),
                   outputBounds=[400002.5, 5700320.0, 400322.5, 5700000.0])
    expect_nothing_loaded(tiles_copy, r"dem_900.tif: the tile is not aligned with the pixel grid")


def test_an_empty_directory_and_a_missing_path_are_errors(db, tmp_path):
    expect_nothing_loaded(tmp_path, "no GeoTIFF")
    expect_nothing_loaded(tmp_path / "nowhere", "no such file or directory")


def test_a_vector_that_is_no_tile_index_is_named(db, tmp_path):
    path = tmp_path / "towns.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"id": 1}, '
                    '"geometry": {"type": "Point", "coordinates": [1, 2]}}]}')
    expect_nothing_loaded(path, "no 'location' field; is this a gdaltindex tile index")


def test_tiles_added_later_join_the_same_grid(db, tmp_path):
    tileset = write_tileset(tmp_path / "a", 128, 64, 64)
    west = tmp_path / "west"
    west.mkdir()
    shutil.move(tileset.folder / "dem_100.tif", west / "dem_100.tif")
    load(tileset.folder)
    assert Tile.objects.get(number=101).col == 0
    load(west)
    assert [(t.number, t.col) for t in Tile.objects.order_by("number")] == [(100, 0), (101, 64)]
    assert read_info(Tile.objects.get(number=101).path).width == 64
