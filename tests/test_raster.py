"""jobs.raster on its own: halo processing, cancelling, errors and the merge, with real GeoTIFFs."""

import math
import os

import numpy as np
import pytest
from osgeo import gdal, gdal_array

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


@pytest.mark.parametrize("dtype,bands,nodata", [("float32", 1, -9999.0), ("uint8", 3, 0), ("float32", 2, None),
                                                 ("float64", 1, -3.4028234663852886e38), ("int16", 1, -32768),
                                                 ("float32", 1, float("nan"))])
def test_the_overviews_computed_in_strips_on_all_cores_are_those_the_cog_driver_computes(
        tmp_path, monkeypatch, dtype, bands, nodata):
    """Levels of an even number of rows in strips of a few rows on several threads, levels of an
    odd number whole: every level is the COG driver's own, and so is the image."""
    monkeypatch.setattr(mosaic, "COG_OPTIONS", tuple(o for o in mosaic.COG_OPTIONS if "BLOCKSIZE" not in o) + ("BLOCKSIZE=128",))
    monkeypatch.setattr(mosaic, "OVERVIEW_MEMORY_BYTES", 100_000)  # many strips
    rng = np.random.default_rng(bands)
    # Levels of 406 rows (from 812, in strips), 203 (from 406, in strips) and 101 (from 203, whole).
    width, height, size = 1001, 812, 300
    pixels = (rng.random((bands, height, width)) * 200 + 20).astype(dtype)
    if nodata is not None:
        pixels[:, rng.random((height, width)) < 0.05] = nodata
    paths = []
    for row in range(0, height, size):
        for col in range(0, width, size):
            paths.append(_tile(tmp_path / f"t{row}_{col}.tif", 1000.0 + col * 5.0, 9000.0 - row * 5.0,
                               pixels[:, row:row + size, col:col + size], nodata=nodata))
    mosaic.merge_to_cog(paths, tmp_path / "out.tif", tmp_path / "thumb.png")
    whole = gdal.Translate("", gdal.BuildVRT("", [str(p) for p in paths]), format="MEM")
    expected = gdal.Translate(str(tmp_path / "whole.cog"), whole, format="COG", creationOptions=list(mosaic.COG_OPTIONS))
    merged = gdal.Open(str(tmp_path / "out.tif"))
    assert merged.GetRasterBand(1).GetOverviewCount() == expected.GetRasterBand(1).GetOverviewCount() == 3
    for number in range(1, bands + 1):
        mine, theirs = merged.GetRasterBand(number), expected.GetRasterBand(number)
        assert [mine.GetNoDataValue(), theirs.GetNoDataValue()] == [nodata] * 2 or math.isnan(nodata) and \
            math.isnan(mine.GetNoDataValue()) and math.isnan(theirs.GetNoDataValue())
        assert mine.DataType == theirs.DataType
        assert_same_pixels(theirs.ReadAsArray(), mine.ReadAsArray())
        for level in range(3):
            assert_same_pixels(theirs.GetOverview(level).ReadAsArray(), mine.GetOverview(level).ReadAsArray())


@pytest.mark.parametrize("nodata", [-9999.0, float("nan")])
def test_a_mosaic_with_no_valid_pixel_merges_and_its_thumbnail_is_transparent(tmp_path, nodata):
    pixels = np.full((700, 900), nodata, dtype="float32")
    paths = [_tile(tmp_path / f"t{col}.tif", 1000.0 + col * 5.0, 9000.0, pixels[:, col:col + 300], nodata=nodata)
             for col in range(0, 900, 300)]
    mosaic.merge_to_cog(paths, tmp_path / "out.tif", tmp_path / "thumb.png", thumbnail_size=64)
    assert gdal.Open(str(tmp_path / "out.tif")).RasterXSize == 900
    thumbnail = gdal.Open(str(tmp_path / "thumb.png"))
    assert thumbnail.GetRasterBand(1).GetNoDataValue() == 0 and not thumbnail.ReadAsArray().any()


def test_the_cog_overview_levels_halve_until_one_fits_in_a_block():
    assert mosaic.cog_overview_sizes(8192, 4096, 512) == [(4096, 2048), (2048, 1024), (1024, 512), (512, 256)]
    assert mosaic.cog_overview_sizes(1025, 3, 512) == [(512, 1)]
    assert mosaic.cog_overview_sizes(2049, 1, 512) == [(1024, 1), (512, 1)]
    assert mosaic.cog_overview_sizes(512, 512, 512) == []


def _tile(path, x0, y0, pixels, nodata=None, pixel=5.0, bands_as="gray", south_up=False):
    """A GeoTIFF of `pixels` (rows, columns, or bands first) with its top left corner at (x0, y0)."""
    bands = pixels if pixels.ndim == 3 else pixels[np.newaxis]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), bands.shape[2], bands.shape[1], bands.shape[0],
                                              gdal_array.NumericTypeCodeToGDALTypeCode(pixels.dtype))
    ds.SetGeoTransform((x0, pixel, 0.0, y0, 0.0, pixel if south_up else -pixel))
    ds.SetProjection(crs_wkt_from_epsg(EPSG))
    for number, values in enumerate(bands, start=1):
        band = ds.GetRasterBand(number)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if bands_as == "rgba":
            band.SetColorInterpretation([gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand, gdal.GCI_AlphaBand][number - 1])
        elif bands_as == "palette":
            table = gdal.ColorTable()
            table.CreateColorRamp(0, (0, 0, 0, 255), 255, (255, 255, 255, 255))
            band.SetRasterColorTable(table)
        elif bands_as == "scaled":
            band.SetScale(0.5)
            band.SetOffset(10.0)
        band.WriteArray(values)
    ds = None
    return path


def _as_vrt_mosaics_them(paths, tmp_path):
    """The merged COG's pixels and bands are those of a VRT of the same tiles."""
    mosaic.merge_to_cog(paths, tmp_path / "out.tif", tmp_path / "thumb.png")
    expected = gdal.Translate("", gdal.BuildVRT("", [str(p) for p in paths]), format="MEM")
    merged = gdal.Open(str(tmp_path / "out.tif"))
    assert_same_pixels(expected.ReadAsArray(), merged.ReadAsArray())
    assert merged.GetGeoTransform() == expected.GetGeoTransform()
    for number in range(1, expected.RasterCount + 1):
        want, got = expected.GetRasterBand(number), merged.GetRasterBand(number)
        assert (got.GetNoDataValue(), got.GetColorInterpretation(), got.DataType, got.GetScale(), got.GetOffset()) == (
            want.GetNoDataValue(), want.GetColorInterpretation(), want.DataType, want.GetScale(), want.GetOffset())
        assert (got.GetColorTable() is None) == (want.GetColorTable() is None)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


LAYOUTS = {  # the second tile's left edge, pixel size and nodata; the first tile's nodata
    "side by side with a gap": (400200.0, 5.0, -9999.0, -9999.0),
    "overlapping": (400100.0, 5.0, -9999.0, -9999.0),
    "half a pixel apart": (400152.5, 5.0, -9999.0, -9999.0),
    "other pixel sizes": (400150.0, 2.5, -9999.0, -9999.0),
    "other nodata": (400200.0, 5.0, -1.0, -9999.0),
    "nodata in the second only": (400200.0, 5.0, -9999.0, None),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tiles_are_mosaicked_as_a_vrt_does(tmp_path, layout):
    x1, pixel, nodata, first_nodata = LAYOUTS[layout]
    rng = np.random.default_rng(7)
    first = rng.random((20, 30), dtype=np.float32) * 100
    second = rng.random((20, 30), dtype=np.float32) * 100
    second[:5, :5] = nodata  # where tiles overlap, the first tile's pixels show through
    paths = [_tile(tmp_path / "a.tif", 400000.0, 5700000.0, first, first_nodata),
             _tile(tmp_path / "b.tif", x1, 5700000.0 - 50.0, second, nodata, pixel=pixel)]
    out = tmp_path / "out"
    out.mkdir()
    _as_vrt_mosaics_them(paths, out)


@pytest.mark.parametrize("bands_as", ["palette", "scaled"])
def test_a_colour_table_and_a_scale_are_kept_as_a_vrt_keeps_them(tmp_path, bands_as):
    pixels = np.random.default_rng(10).integers(0, 255, (16, 16), dtype=np.uint8)
    paths = [_tile(tmp_path / f"{n}.tif", 400000.0 + n * 80.0, 5700000.0, pixels, bands_as=bands_as) for n in range(2)]
    out = tmp_path / "out"
    out.mkdir()
    _as_vrt_mosaics_them(paths, out)


def test_south_up_tiles_are_left_to_gdal(tmp_path):
    pixels = np.ones((16, 16), dtype=np.float32)
    paths = [_tile(tmp_path / f"{n}.tif", 400000.0, 5700000.0 + n * 80.0, pixels, south_up=True) for n in range(2)]
    assert mosaic.flatten(paths, tmp_path / "flat.tif") is None


def test_a_tile_that_breaks_in_the_copy_leaves_nothing_behind_or_open(tmp_path):
    pixels = np.random.default_rng(11).random((64, 64), dtype=np.float32)
    paths = [_tile(tmp_path / f"{n}.tif", 400000.0 + n * 320.0, 5700000.0, pixels, -9999.0) for n in range(3)]
    size = paths[2].stat().st_size
    with open(paths[2], "r+b") as broken:  # its header is read, its pixels are not there
        broken.truncate(size - 8000)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RasterError) as caught:  # kept, as a caller that logs or re-raises keeps it
        mosaic.merge_to_cog(paths, out / "out.tif", out / "thumb.png")
    assert list(out.iterdir()) == [] and "2.tif" in str(caught.value)
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            held.append(os.readlink(f"/proc/self/fd/{fd}"))  # "... (deleted)" for a file removed while open
        except OSError:
            pass  # the descriptor listdir itself had open
    assert not [name for name in held if str(out) in name or str(tmp_path / "2.tif") in name], held


def test_a_merge_whose_overviews_fail_leaves_no_level_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(mosaic, "COG_OPTIONS", tuple(o for o in mosaic.COG_OPTIONS if "BLOCKSIZE" not in o) + ("BLOCKSIZE=128",))
    pixels = np.random.default_rng(12).random((600, 300), dtype=np.float32)
    paths = [_tile(tmp_path / f"{n}.tif", 400000.0 + n * 1500.0, 5700000.0, pixels, -9999.0) for n in range(2)]

    def full_disk(*args):
        raise RuntimeError("No space left on device")

    monkeypatch.setattr(mosaic, "_overview_strip", full_disk)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RasterError, match="No space left"):
        mosaic.merge_to_cog(paths, out / "out.tif", out / "thumb.png")
    assert list(out.iterdir()) == []


def test_rgba_tiles_keep_their_alpha_band(tmp_path):
    rng = np.random.default_rng(8)
    paths = []
    for number in range(3):
        pixels = rng.integers(0, 255, (4, 16, 16), dtype=np.uint8)
        pixels[3] = np.where(pixels[0] > 128, 255, 0)
        paths.append(_tile(tmp_path / f"{number}.tif", 400000.0 + number * 80.0, 5700000.0, pixels, bands_as="rgba"))
    out = tmp_path / "out"
    out.mkdir()
    _as_vrt_mosaics_them(paths, out)
    assert gdal.Open(str(out / "out.tif")).GetRasterBand(4).GetColorInterpretation() == gdal.GCI_AlphaBand


MERGE_MEMORY = """
import sys
from pathlib import Path
from osgeo import gdal, gdal_array
gdal.UseExceptions()
gdal.SetCacheMax(16 * 2**20)
from jobs.raster import mosaic

def status(key):
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(key))
    return int(line.split()[1])

paths = sys.argv[1:]
before = status("VmRSS:")
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) counts from here
mosaic.merge_to_cog(paths, paths[0] + ".out.tif", paths[0] + ".png")
print(status("VmHWM:") - before)
"""


def test_the_memory_of_a_merge_does_not_grow_with_its_tiles(tmp_path):
    """How much a merge grows its process at its peak (in a child process each), for one area of
    2048 x 1024 pixels in 128 tiles and in 8,192: the tiles are copied one at a time, so 64 times
    the tiles cost less than 8 MB more (a VRT of them held 32 MB more; of 100,000 tiles, 600 MB)."""
    import subprocess
    import sys
    from pathlib import Path

    elevations = np.random.default_rng(9).random((1024, 2048), dtype=np.float32)
    peaks = {}
    for side in (128, 16):
        folder = tmp_path / str(side)
        folder.mkdir()
        paths = [str(_tile(folder / f"{row}_{col}.tif", 400000.0 + col * side * 5.0, 5700000.0 - row * side * 5.0,
                           elevations[row * side:(row + 1) * side, col * side:(col + 1) * side], -9999.0))
                 for row in range(1024 // side) for col in range(2048 // side)]
        child = subprocess.run([sys.executable, "-c", MERGE_MEMORY, *paths], capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parent.parent)
        assert child.returncode == 0, child.stderr
        peaks[len(paths)] = int(child.stdout) / 1024
    print(f"memory a merge takes at its peak: {peaks} MB")
    assert peaks[8192] - peaks[128] < 8, peaks
