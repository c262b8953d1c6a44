import math
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs import vector
from jobs.demo_terrain import fractal_terrain
from jobs.raster.io import crs_wkt_from_epsg, write_raster
from jobs.tileload import LoadError, load_tiles
from jobs.towns import load_towns

EPSG = 25832  # ETRS89 / UTM zone 32N
ORIGIN = (560000.0, 5940000.0)  # top left corner of the index
PIXEL = 2.0  # metres
FIRST_TILE = 4283
ROW_STRIDE = 32  # tile numbers grow by 32 from one row to the next, as in the index this imitates
NODATA = -9999.0
# A second collection covers the same ground: the same terrain at COARSE times the pixel size, its
# tile numbers from COARSE_FIRST_TILE (tile numbers are unique across collections).
COARSE_COLLECTION = "dem8m"
COARSE = 4
COARSE_FIRST_TILE = 9000

# (id, name, centre as a fraction of the index width and height, radius in tiles)
TOWNS = [
    (11850, "Nordhafen", (0.45, 0.5), 2.3),
    (11851, "Birkenfeld", (0.25, 0.3), 1.2),
    (11852, "Ostdorf", (0.8, 0.75), 0.55),
]


def tile_id(row, col):
    return FIRST_TILE + row * ROW_STRIDE + col


def town_polygon(centre, radius, corners=11):
    """An irregular polygon (WKT) around `centre` with a radius wobbling about `radius`."""
    points = []
    for i in range(corners + 1):
        angle = 2 * math.pi * (i % corners) / corners
        r = radius * (1 + 0.18 * math.sin(3 * angle) + 0.07 * math.cos(5 * angle))
        points.append(f"{centre[0] + r * math.cos(angle):.3f} {centre[1] + r * math.sin(angle):.3f}")
    return f"POLYGON (({', '.join(points)}))"


class Command(BaseCommand):
    help = ("Generate a synthetic DEM (fractal terrain, float32, EPSG:25832, with nodata lakes) cut into numbered "
            "tiles, the same terrain at 8 m in a second collection (dem8m), and three towns, and load them. "
            "Running it again is harmless.")

    def add_arguments(self, parser):
        parser.add_argument("--dir", default=None, help="where to write the data (default: var/demo)")
        parser.add_argument("--grid", type=int, default=6, help="tiles per side (default 6)")
        parser.add_argument("--tile-size", type=int, default=512, help="pixels per tile side (default 512)")
        parser.add_argument("--seed", type=int, default=11850)

    def handle(self, dir, grid, tile_size, seed, verbosity, **options):
        if not 1 <= grid <= ROW_STRIDE:
            raise CommandError(f"--grid must be between 1 and {ROW_STRIDE}")
        if not 16 <= tile_size <= 4096:
            raise CommandError("--tile-size must be between 16 and 4096")
        folder = Path(dir) if dir else Path(settings.VAR_DIR) / "demo"
        tiles_dir = folder / f"tiles-{grid}x{tile_size}-{seed}"
        coarse_dir = folder / f"tiles-{grid}x{tile_size}-{seed}-{COARSE_COLLECTION}"
        wkt = crs_wkt_from_epsg(EPSG)
        expected = [tiles_dir / f"dem_{tile_id(r, c)}.tif" for r in range(grid) for c in range(grid)]
        coarse_count = -(-(grid * tile_size // COARSE) // tile_size)
        expected += [coarse_dir / f"{COARSE_COLLECTION}_{COARSE_FIRST_TILE + r * ROW_STRIDE + c}.tif"
                     for r in range(coarse_count) for c in range(coarse_count)]
        if all(path.exists() for path in expected):
            if verbosity:
                self.stdout.write(f"tiles already in {tiles_dir}")
        else:
            self._write_tiles(tiles_dir, coarse_dir, grid, tile_size, seed, wkt)
        try:
            created, updated, deleted = load_tiles(tiles_dir, replace=True, title=f"Demo DEM, {PIXEL:g} m")
            load_tiles(coarse_dir, replace=True, collection=COARSE_COLLECTION, title=f"Demo DEM, {PIXEL * COARSE:g} m")
            span = grid * tile_size * PIXEL
            towns = [
                (town_id, name, town_polygon((ORIGIN[0] + fx * span, ORIGIN[1] - fy * span), radius * tile_size * PIXEL))
                for town_id, name, (fx, fy), radius in TOWNS
            ]
            towns_path = folder / "towns.geojson"
            vector.write_polygons(towns_path, towns, wkt)
            loaded, without_tiles = load_towns(towns_path, "id", "name")
        except LoadError as exc:
            raise CommandError(str(exc)) from None
        if verbosity:
            self.stdout.write(f"tile index: {created} tiles added, {updated} updated, {deleted} removed "
                              f"(ids {tile_id(0, 0)}-{tile_id(grid - 1, grid - 1)}); collection {COARSE_COLLECTION}: "
                              f"the same ground at {PIXEL * COARSE:g} m")
            for town in loaded:
                self.stdout.write(f"town {town.id} {town.name}")
        for town in without_tiles:
            self.stderr.write(self.style.WARNING(f"town {town.id} ({town.name}) overlaps no tile"))

    def _write_tiles(self, tiles_dir, coarse_dir, grid, tile_size, seed, wkt):
        size = grid * tile_size
        self.stdout.write(f"generating a {size} x {size} DEM in {tiles_dir} ...")
        dem = fractal_terrain(size, size, seed)
        dem[dem < 70.0] = NODATA  # lakes
        for r in range(grid):
            for c in range(grid):
                gt = (ORIGIN[0] + c * tile_size * PIXEL, PIXEL, 0.0, ORIGIN[1] - r * tile_size * PIXEL, 0.0, -PIXEL)
                part = dem[r * tile_size:(r + 1) * tile_size, c * tile_size:(c + 1) * tile_size]
                write_raster(tiles_dir / f"dem_{tile_id(r, c)}.tif", part, gt, wkt, nodata=NODATA)
        coarse = coarsened(dem)
        pixel, count = PIXEL * COARSE, -(-coarse.shape[0] // tile_size)
        for r in range(count):
            for c in range(count):
                gt = (ORIGIN[0] + c * tile_size * pixel, pixel, 0.0, ORIGIN[1] - r * tile_size * pixel, 0.0, -pixel)
                part = coarse[r * tile_size:(r + 1) * tile_size, c * tile_size:(c + 1) * tile_size]
                number = COARSE_FIRST_TILE + r * ROW_STRIDE + c
                write_raster(coarse_dir / f"{COARSE_COLLECTION}_{number}.tif", part, gt, wkt, nodata=NODATA)


def coarsened(dem):
    """`dem` at COARSE times the pixel size: the mean of each COARSE x COARSE block, nodata where
    any pixel of the block is (the rows and columns past the last whole block are dropped)."""
    height, width = dem.shape[0] // COARSE, dem.shape[1] // COARSE
    blocks = dem[:height * COARSE, :width * COARSE].reshape(height, COARSE, width, COARSE)
    mean = blocks.mean(axis=(1, 3), dtype="float64").astype(dem.dtype)
    mean[(blocks == NODATA).any(axis=(1, 3))] = NODATA
    return mean
