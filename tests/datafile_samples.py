"""Real files of every kind, made with GDAL/OGR, for the data file tests."""

import io
import zipfile

import numpy as np

from jobs import vector
from jobs.raster.io import crs_wkt_from_epsg, write_raster

from .conftest import EPSG, ORIGIN, PIXEL


def geotiff_bytes(tmp_path, width=20, height=10):
    path = tmp_path / "sample.tif"
    write_raster(path, np.arange(width * height, dtype=np.float32).reshape(height, width),
                 (ORIGIN[0], PIXEL, 0, ORIGIN[1], 0, -PIXEL), crs_wkt_from_epsg(EPSG), nodata=-9999.0)
    return path.read_bytes()


def box(minx, miny, maxx, maxy):
    return f"POLYGON (({minx} {miny}, {maxx} {miny}, {maxx} {maxy}, {minx} {maxy}, {minx} {miny}))"


# Two zones in the index CRS over the session tileset: one inside tile 100, one across four tiles.
ZONES = [(1, "north", box(400012.5, 5699702.5, 400297.5, 5699987.5)),
         (2, "middle", box(400200.0, 5699500.0, 400500.0, 5699700.0))]


def polygons_bytes(tmp_path, driver="GeoJSON", suffix=".geojson", target_epsg=4326, zones=ZONES):
    path = tmp_path / f"zones{suffix}"
    vector.write_polygons(path, zones, crs_wkt_from_epsg(EPSG), target_epsg=target_epsg, driver=driver)
    return path.read_bytes()


def zipped_shapefile_bytes(tmp_path):
    folder = tmp_path / "shp"
    folder.mkdir(exist_ok=True)
    vector.write_polygons(folder / "zones.shp", ZONES, crs_wkt_from_epsg(EPSG), target_epsg=EPSG,
                          driver="ESRI Shapefile")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for part in folder.iterdir():
            archive.write(part, part.name)
    return buffer.getvalue()


CSV = "station,height,name\n1,12.5,Nord\n2,7.25,Süd\n3,0,<Mitte>\n"
COLOR_TABLE = "nv 0 0 0 0\n60 20 60 180\n300 60 160 60\n600 200 180 120\n900 255 255 255\n"
