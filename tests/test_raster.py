"""jobs.raster on its own: halo processing, cancelling, errors and the merge, with real GeoTIFFs."""

import numpy as np
import pytest
from osgeo import gdal

from jobs.jobtypes import JOB_TYPES
from jobs.raster import mosaic
from jobs.raster.dem import process_tile
from jobs.raster.io import Cancelled, GridTile, IndexGrid, RasterError, crs_wkt_from_epsg, read_info

from .conftest import EPSG, assert_same_pixels, whole_area, write_tileset

# The index the module's tiles make: 150 x 110 pixels in tiles of at most 40.
GRID = IndexGrid(150, 110, crs_wkt_from_epsg(EPSG), 40, 40)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    tileset = write_tileset(tmp_path_factory.mktemp("grid"), 150, 110, 40, seed=3)
    tiles = []
    for path in sorted(tileset.folder.iterdir()):
        info = read_info(path)
        col = round((info.geotransform[0] - 400000.0) / 5.0)
        row = round((5700000.0 - info.geotransform[3]) / 5.0)
        tiles.append(GridTile(str(path), col, row, info.width, info.height))
    return tileset, tiles


def process_all(tiles, out_dir, processing, options, halo=1):
    outputs = []
    for tile in tiles:
        out = out_dir / f"{tile.col}_{tile.row}.tif"
        process_tile(tile=tile, neighbours=tiles, grid=GRID, halo=halo,
                     processing=processing, options=options, out_path=out)
        outputs.append(out)
    return outputs


CASES = [
    ("hillshade", {}),
    ("hillshade", {"mode": "multidirectional"}),
    ("hillshade", {"mode": "combined", "z_factor": 3.0, "azimuth": 90.0}),
    ("hillshade", {"mode": "igor", "algorithm": "ZevenbergenThorne"}),
    ("slope", {"units": "percent"}),
    ("slope", {"compute_edges": True}),
    ("aspect", {"zero_for_flat": True}),
    ("aspect", {"trigonometric": True, "compute_edges": True}),
]


@pytest.mark.parametrize("name,params", CASES)
def test_it_merges_tiles_into_the_whole_area_result(grid, tmp_path, name, params):
    tileset, tiles = grid
    kind = JOB_TYPES[name]
    options = kind.gdal_options(kind.clean_params(params))
    outputs = process_all(tiles, tmp_path, kind.processing, options, kind.halo)
    mosaic.merge_to_cog(outputs, tmp_path / "out.tif", tmp_path / "thumb.png")
    assert_same_pixels(whole_area(tileset.whole, kind.processing, **options), gdal.Open(str(tmp_path / "out.tif")).ReadAsArray())


def test_it_shows_seams_without_a_halo(grid, tmp_path):
    tileset, tiles = grid
    outputs = process_all(tiles, tmp_path, "hillshade", {}, halo=0)
    mosaic.merge_to_cog(outputs, tmp_path / "out.tif", tmp_path / "thumb.png")
    merged = gdal.Open(str(tmp_path / "out.tif")).ReadAsArray()
    assert np.count_nonzero(whole_area(tileset.whole, "hillshade") != merged) > 100


def test_it_writes_a_cloud_optimized_geotiff_with_overviews(tmp_path_factory, tmp_path):
    tileset = write_tileset(tmp_path_factory.mktemp("large"), 1300, 700, 512)
    tiles = sorted(tileset.folder.iterdir())
    sizes = mosaic.merge_to_cog(tiles, tmp_path / "out.tif", tmp_path / "thumb.png", thumbnail_size=130)
    info = gdal.Info(str(tmp_path / "out.tif"), format="json")
    assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"
    assert info["size"] == [1300, 700]
    whole = gdal.Info(str(tileset.whole), format="json")
    assert info["geoTransform"] == whole["geoTransform"]
    assert info["coordinateSystem"]["wkt"] == whole["coordinateSystem"]["wkt"]
    assert gdal.Open(str(tmp_path / "out.tif")).GetRasterBand(1).GetOverviewCount() >= 1
    assert_same_pixels(gdal.Open(str(tileset.whole)).ReadAsArray(), gdal.Open(str(tmp_path / "out.tif")).ReadAsArray())
    thumb = gdal.Open(str(tmp_path / "thumb.png"))
    assert (thumb.RasterXSize, thumb.RasterYSize) == (130, 70)
    assert thumb.GetRasterBand(1).DataType == gdal.GDT_Byte
    assert sizes == ((tmp_path / "out.tif").stat().st_size, (tmp_path / "thumb.png").stat().st_size)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_merge_refuses_missing_tile_outputs_instead_of_leaving_holes(tileset, tmp_path):
    tiles = sorted(tileset.folder.iterdir())
    with pytest.raises(RasterError, match="1 tile outputs are missing: .*gone.tif"):
        mosaic.merge_to_cog([*tiles, tmp_path / "gone.tif"], tmp_path / "out.tif", tmp_path / "thumb.png")
    assert list(tmp_path.iterdir()) == []


def test_it_stops_when_the_progress_callback_says_so_and_writes_nothing(grid, tmp_path):
    _, tiles = grid
    calls = []

    def progress(fraction):
        calls.append(fraction)
        return len(calls) < 3

    with pytest.raises(Cancelled):
        process_tile(tile=tiles[0], neighbours=tiles, grid=GRID, halo=1,
                     processing="hillshade", options={}, out_path=tmp_path / "out.tif", progress=progress)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []


def test_an_exception_in_the_callback_is_raised_after_gdal_stops(grid, tmp_path):
    _, tiles = grid

    def progress(fraction):
        raise ConnectionError("database went away")

    with pytest.raises(ConnectionError, match="database went away"):
        process_tile(tile=tiles[0], neighbours=[], grid=GRID, halo=1,
                     processing="slope", options={}, out_path=tmp_path / "out.tif", progress=progress)
    assert list(tmp_path.iterdir()) == []


def test_it_reports_gdals_own_error_for_an_unreadable_tile(tmp_path):
    broken = tmp_path / "dem_1.tif"
    broken.write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(RasterError, match="not recognized|TIFF"):
        read_info(broken)


def test_it_reports_gdals_own_error_when_a_neighbour_is_unreadable(grid, tmp_path):
    _, tiles = grid
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"garbage")
    neighbour = GridTile(str(broken), tiles[1].col, tiles[1].row, tiles[1].width, tiles[1].height)
    with pytest.raises(RasterError, match="broken.tif"):
        process_tile(tile=tiles[0], neighbours=[neighbour], grid=GRID, halo=1,
                     processing="hillshade", options={}, out_path=tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()


def test_read_info_refuses_a_raster_without_georeferencing(tmp_path):
    path = tmp_path / "plain.tif"
    gdal.GetDriverByName("GTiff").Create(str(path), 4, 4, 1, gdal.GDT_Float32)
    with pytest.raises(RasterError, match="no georeferencing"):
        read_info(path)


def test_a_mosaic_has_the_pixels_and_overviews_of_one_cog_of_the_whole_area_and_leaves_nothing_behind(
        grid, tmp_path, monkeypatch):
    """The tiles go through one plain GeoTIFF on their way to the COG: its image and each of its
    overviews are those of a COG written straight from the whole area's result."""
    tileset, tiles = grid
    # Blocks of the smallest size, so that this small index has overviews.
    monkeypatch.setattr(mosaic, "COG_OPTIONS", tuple(o for o in mosaic.COG_OPTIONS if "BLOCKSIZE" not in o) + ("BLOCKSIZE=128",))
    outputs = process_all(tiles, tmp_path, "slope", {})
    mosaic.merge_to_cog(outputs, tmp_path / "out.tif", tmp_path / "thumb.png")
    whole = gdal.DEMProcessing("", str(tileset.whole), "slope", format="MEM")
    gdal.Translate(str(tmp_path / "whole.cog"), whole, format="COG", creationOptions=list(mosaic.COG_OPTIONS))
    merged_ds, expected_ds = gdal.Open(str(tmp_path / "out.tif")), gdal.Open(str(tmp_path / "whole.cog"))
    merged, expected = merged_ds.GetRasterBand(1), expected_ds.GetRasterBand(1)
    assert_same_pixels(expected.ReadAsArray(), merged.ReadAsArray())
    assert merged.GetOverviewCount() == expected.GetOverviewCount() > 0
    for level in range(expected.GetOverviewCount()):
        assert_same_pixels(expected.GetOverview(level).ReadAsArray(), merged.GetOverview(level).ReadAsArray())
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith((".tif", ".cog")) or p.name == "out.tif") == [
        "out.tif", "thumb.png"]
