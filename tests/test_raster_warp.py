"""jobs.raster.warp on its own: a reprojection tile by tile, mosaicked, against one gdal.Warp of the
whole area onto the same grid, with real GeoTIFFs. No database."""

from dataclasses import replace

import numpy as np
import pytest
from osgeo import gdal

from jobs.demo_terrain import fractal_terrain
from jobs.raster import warp
from jobs.raster.io import Cancelled, GridTile, IndexGrid, RasterError, crs_wkt_from_epsg, write_gtiff

from .conftest import assert_same_pixels

# 250 x 190 pixels of 5 m in EPSG:25832, in tiles of 64: the last column is 58 wide, the last row 62 high.
WIDTH, HEIGHT, SIZE, PIXEL = 250, 190, 64, 5.0
GRID = IndexGrid(WIDTH, HEIGHT, crs_wkt_from_epsg(25832), SIZE, SIZE)
GRID_GT = (400000.0, PIXEL, 0.0, 5700000.0, 0.0, -PIXEL)
BOUNDS = (GRID_GT[0], GRID_GT[3] - HEIGHT * PIXEL, GRID_GT[0] + WIDTH * PIXEL, GRID_GT[3])
NODATA = -9999.0

# A target pixel of 0.0001 degrees is 6.9 m by 11.1 m here; one of 7 m in EPSG:3857 is 4.4 m on
# the ground, one of 20 m is 12.5 m: upsampling, and downsampling by 2.5.
TARGETS = {"4326": (4326, 0.0001), "3857-7m": (3857, 7.0), "3857-20m": (3857, 20.0)}
INTERPOLATING = ("bilinear", "cubic", "cubicspline", "lanczos")


def write_tiles(folder, bands, nodata):
    """`bands` (bands first, the whole index) cut into GeoTIFF tiles; their GridTiles, row by row."""
    tiles = []
    for row in range(0, HEIGHT, SIZE):
        for col in range(0, WIDTH, SIZE):
            part = bands[:, row:row + SIZE, col:col + SIZE]
            gt = (GRID_GT[0] + col * PIXEL, PIXEL, 0.0, GRID_GT[3] - row * PIXEL, 0.0, -PIXEL)
            path = folder / f"tile_{col}_{row}.tif"
            write_gtiff(path, part, gt, GRID.crs_wkt, nodata, ["TILED=YES", "COMPRESS=DEFLATE"])
            tiles.append(GridTile(str(path), col, row, part.shape[2], part.shape[1]))
    return tiles


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    """Two bands: the second a terrain with nodata in its low parts and in a block across a tile
    edge, the first a constant (a tile read from the wrong band shows)."""
    dem = fractal_terrain(HEIGHT, WIDTH, 5)
    dem[dem < 60.0] = NODATA
    dem[100:110, 60:70] = NODATA
    return write_tiles(tmp_path_factory.mktemp("warp"), np.stack([np.full_like(dem, 1.0), dem]), NODATA)


@pytest.fixture(scope="module")
def int_tiles(tmp_path_factory):
    """The terrain in whole metres as Int16, without nodata."""
    dem = fractal_terrain(HEIGHT, WIDTH, 9).round().astype(np.int16)
    return write_tiles(tmp_path_factory.mktemp("warp-int"), dem[np.newaxis], None)


def target_grid(name, bounds=BOUNDS):
    epsg, resolution = TARGETS[name]
    return warp.output_grid(bounds, GRID.crs_wkt, crs_wkt_from_epsg(epsg), resolution)


def whole_area(tiles, target, resampling, band=2, src_nodata=NODATA, dst_nodata=NODATA):
    """One gdal.Warp of a VRT of all the tiles onto the target grid."""
    source = gdal.BuildVRT("", [t.path for t in tiles], bandList=[band])
    return gdal.Warp("", source, format="MEM", outputBounds=target.bounds, xRes=target.geotransform[1],
                     yRes=-target.geotransform[5], dstSRS=target.crs_wkt, errorThreshold=0, resampleAlg=resampling,
                     srcNodata=src_nodata, dstNodata=dst_nodata, multithread=False).ReadAsArray()


def reproject_all(tiles, target, resampling, out_dir, band=2, src_nodata=NODATA, dst_nodata=NODATA):
    outputs = []
    for tile in tiles:
        out = out_dir / f"{tile.col}_{tile.row}.tif"
        size = warp.reproject_tile(tile=tile, neighbours=tiles, grid=GRID, grid_geotransform=GRID_GT, band=band,
                                   src_nodata=src_nodata, target=target, resampling=resampling,
                                   dst_nodata=dst_nodata, out_path=out)
        assert size == out.stat().st_size
        outputs.append(out)
    return outputs


def mosaic(outputs, target):
    """The outputs as one VRT, nodata transparent, as the merge builds it: it lies on the target grid."""
    ds = gdal.BuildVRT("", [str(p) for p in outputs])
    assert (ds.RasterXSize, ds.RasterYSize) == (target.width, target.height)
    assert ds.GetGeoTransform() == pytest.approx(target.geotransform, rel=1e-12, abs=1e-9)
    return ds.ReadAsArray()


def valid_counts(outputs, target):
    """In how many outputs each target pixel is valid."""
    counts = np.zeros((target.height, target.width), dtype=int)
    for path in outputs:
        ds = gdal.Open(str(path))
        gt, band = ds.GetGeoTransform(), ds.GetRasterBand(1)
        col = round((gt[0] - target.geotransform[0]) / target.geotransform[1])
        row = round((gt[3] - target.geotransform[3]) / target.geotransform[5])
        counts[row:row + ds.RasterYSize, col:col + ds.RasterXSize] += band.ReadAsArray() != band.GetNoDataValue()
    return counts


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("resampling", warp.RESAMPLING)
def test_the_mosaic_of_the_tiles_is_the_whole_area_warp(tiles, tmp_path, name, resampling):
    target = target_grid(name)
    outputs = reproject_all(tiles, target, resampling, tmp_path)
    expected = whole_area(tiles, target, resampling)
    assert_same_pixels(expected, mosaic(outputs, target))
    # Each pixel the whole area has is written by exactly one tile, and no other pixel by any.
    assert_same_pixels((expected != NODATA).astype(int), valid_counts(outputs, target))
    assert {gdal.Open(str(p)).GetRasterBand(1).DataType for p in outputs} == {gdal.GDT_Float32}


def test_a_coarse_target_differs_from_gdal_s_own_scale_by_little(tiles, tmp_path):
    """At 0.0003 degrees (4 to 7 source pixels a target pixel) GDAL estimates the whole area's scale
    from its target pixels' centres, 248 source pixels across, not 250: the interpolating kernels
    widen a little differently from the tiles' fixed scale. Measured on this 40 to 900 m terrain:
    bilinear 0.28 m, cubic 0.14, cubicspline 0.25, lanczos 0.32; near, average and mode are exact."""
    target = warp.output_grid(BOUNDS, GRID.crs_wkt, crs_wkt_from_epsg(4326), 0.0003)
    for resampling in warp.RESAMPLING:
        outputs = reproject_all(tiles, target, resampling, tmp_path / resampling)
        expected, actual = whole_area(tiles, target, resampling), mosaic(outputs, target)
        if resampling in INTERPOLATING:
            assert np.array_equal(expected == NODATA, actual == NODATA)
            assert 0 < np.abs(expected - actual).max() < 0.35
        else:
            assert_same_pixels(expected, actual)


@pytest.mark.parametrize("resampling", INTERPOLATING)
def test_a_halo_one_pixel_short_of_the_kernel_changes_the_mosaic(tiles, tmp_path, monkeypatch, resampling):
    halo_pixels = warp.halo_pixels
    monkeypatch.setattr(warp, "halo_pixels", lambda *args: halo_pixels(*args) - 2)  # no margin, one short
    target = target_grid("3857-7m")
    actual = mosaic(reproject_all(tiles, target, resampling, tmp_path), target)
    assert not np.array_equal(whole_area(tiles, target, resampling), actual)


@pytest.mark.parametrize("resampling", INTERPOLATING)
def test_a_halo_not_widened_to_downsample_changes_the_mosaic(tiles, tmp_path, monkeypatch, resampling):
    halo_pixels = warp.halo_pixels
    monkeypatch.setattr(warp, "halo_pixels", lambda name, src_pixel, dst_pixel: halo_pixels(name, 1.0, 1.0))
    # 30 m in EPSG:3857 is 18.7 m on the ground: a bilinear kernel widened to 3.7 pixels needs 4.
    target = warp.output_grid(BOUNDS, GRID.crs_wkt, crs_wkt_from_epsg(3857), 30.0)
    actual = mosaic(reproject_all(tiles, target, resampling, tmp_path), target)
    assert not np.array_equal(whole_area(tiles, target, resampling), actual)


def test_halo_pixels_cover_the_kernels_widened_to_downsample():
    assert {name: warp.halo_pixels(name, 5.0, 4.0) for name in warp.RESAMPLING} == {
        "near": 2, "bilinear": 2, "cubic": 3, "cubicspline": 3, "lanczos": 4, "average": 3, "mode": 3}
    assert {name: warp.halo_pixels(name, 5.0, 12.5) for name in warp.RESAMPLING} == {
        "near": 2, "bilinear": 4, "cubic": 6, "cubicspline": 6, "lanczos": 9, "average": 5, "mode": 5}
    with pytest.raises(ValueError, match="unknown resampling"):
        warp.halo_pixels("gauss", 5.0, 5.0)


@pytest.mark.parametrize("resampling", ["near", "bilinear"])
def test_an_integer_source_without_nodata_keeps_its_type(int_tiles, tmp_path, resampling):
    nodata = warp.default_nodata(gdal.GDT_Int16)
    target = target_grid("3857-20m")
    outputs = reproject_all(int_tiles, target, resampling, tmp_path, band=1, src_nodata=None, dst_nodata=nodata)
    expected = whole_area(int_tiles, target, resampling, band=1, src_nodata=None, dst_nodata=nodata)
    assert_same_pixels(expected, mosaic(outputs, target))
    assert {gdal.Open(str(p)).GetRasterBand(1).DataType for p in outputs} == {gdal.GDT_Int16}


@pytest.mark.parametrize("resampling", warp.RESAMPLING)
def test_a_target_grid_over_part_of_the_index_is_a_crop_of_the_whole(tiles, tmp_path, resampling):
    """Over the top left 40 x 40 pixels: a tile outside the target grid writes one nodata pixel."""
    whole = target_grid("3857-20m")
    target = target_grid("3857-20m", bounds=(BOUNDS[0], BOUNDS[3] - 40 * PIXEL, BOUNDS[0] + 40 * PIXEL, BOUNDS[3]))
    col = round((target.geotransform[0] - whole.geotransform[0]) / whole.geotransform[1])
    row = round((target.geotransform[3] - whole.geotransform[3]) / whole.geotransform[5])
    outputs = reproject_all(tiles, target, resampling, tmp_path)
    expected = whole_area(tiles, whole, resampling)[row:row + target.height, col:col + target.width]
    assert_same_pixels(expected, mosaic(outputs, target))
    far = gdal.Open(str(outputs[-1]))
    assert (far.RasterXSize, far.RasterYSize) == (1, 1) and far.ReadAsArray()[0, 0] == NODATA


def test_default_nodata_is_the_least_integer_or_minus_9999():
    assert [warp.default_nodata(t) for t in (gdal.GDT_Byte, gdal.GDT_UInt16, gdal.GDT_Int16, gdal.GDT_Int32)] == [
        0.0, 0.0, -32768.0, -2147483648.0]
    assert warp.default_nodata(gdal.GDT_Float32) == warp.default_nodata(gdal.GDT_Float64) == -9999.0


@pytest.mark.parametrize("name", TARGETS)
def test_the_output_grid_is_the_least_aligned_one_that_covers_the_area(tiles, name):
    target = target_grid(name)
    _, resolution = TARGETS[name]
    minx, miny, maxx, maxy = target.bounds
    assert [round(v / resolution) * resolution for v in target.bounds] == pytest.approx(target.bounds, abs=1e-9)
    area = warp._transformation(GRID.crs_wkt, target.crs_wkt).TransformBounds(*BOUNDS, 21)
    assert minx <= area[0] < minx + resolution and maxx - resolution < area[2] <= maxx
    assert miny <= area[1] < miny + resolution and maxy - resolution < area[3] <= maxy
    # Where gdalwarp -tap starts too; it may end a pixel short, having rounded a part of one away.
    tap = gdal.Warp("", gdal.BuildVRT("", [t.path for t in tiles]), format="VRT", dstSRS=target.crs_wkt,
                    xRes=resolution, yRes=resolution, targetAlignedPixels=True)
    assert tap.GetGeoTransform() == pytest.approx(target.geotransform, rel=1e-12)
    assert 0 <= target.width - tap.RasterXSize <= 1 and 0 <= target.height - tap.RasterYSize <= 1


def test_the_output_grid_refuses_a_gigantic_raster():
    with pytest.raises(ValueError, match=r"makes a grid of 18\d x 8\d pixels, more than the 10000 allowed"):
        warp.output_grid(BOUNDS, GRID.crs_wkt, crs_wkt_from_epsg(4326), 0.0001, max_pixels=10000)
    with pytest.raises(ValueError, match="more than the 2147483648 allowed"):
        warp.output_grid(BOUNDS, GRID.crs_wkt, crs_wkt_from_epsg(3857), 0.001)
    with pytest.raises(ValueError, match="must be positive"):
        warp.output_grid(BOUNDS, GRID.crs_wkt, crs_wkt_from_epsg(3857), 0.0)


def test_a_cancel_stops_the_tile_and_leaves_nothing(tiles, tmp_path):
    out = tmp_path / "out" / "tile.tif"
    with pytest.raises(Cancelled):
        warp.reproject_tile(tile=tiles[5], neighbours=tiles, grid=GRID, grid_geotransform=GRID_GT, band=2,
                            src_nodata=NODATA, target=target_grid("4326"), resampling="cubic", dst_nodata=NODATA,
                            out_path=out, progress=lambda fraction: False)
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("which", ["tile", "neighbour"])
def test_a_missing_tile_file_is_named(tiles, tmp_path, which):
    missing = tmp_path / "gone.tif"
    tile, neighbours = tiles[0], list(tiles[1:])
    if which == "tile":
        tile = replace(tile, path=str(missing))
    else:
        neighbours[0] = replace(neighbours[0], path=str(missing))
    with pytest.raises(RasterError, match="gone.tif"):
        warp.reproject_tile(tile=tile, neighbours=neighbours, grid=GRID, grid_geotransform=GRID_GT, band=2,
                            src_nodata=NODATA, target=target_grid("3857-20m"), resampling="bilinear",
                            dst_nodata=NODATA, out_path=tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()
