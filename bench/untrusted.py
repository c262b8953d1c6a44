"""What reading untrusted files safely costs, each against a baseline measured in the same run.

  inspect   an upload's inspection in the confined child (datafiles.sandbox: a new process with
            limits, in a network namespace of its own) against the same reading in this process
            (datafiles.metadata.inspect), on a 2048 x 2048 float32 GeoTIFF, a GeoJSON of 20,000
            polygons and a 20 MB CSV.
  preview   a raster's preview drawn in the child against the same drawing in this process, on a
            4096 x 4096 tiled GeoTIFF and on a sparse 100,000 x 100,000 one (sampled by blocks).
  polygons  the polygons of a zipped shapefile of 200,000 squares read through GDAL's Arrow stream
            (jobs.vector.read_polygons) against OGR's feature-by-feature loop, which the service
            used before; and choosing their tiles from a grid of 400 tiles (jobs.tileindex).

Medians of --runs runs.

    .venv/bin/python bench/untrusted.py [--runs 5] [--database-url postgres://...]
"""

import argparse
import random
import statistics
import time

import harness


def timed(call, runs):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def write_samples(folder):
    import numpy as np
    from osgeo import gdal, ogr, osr

    from jobs.demo_terrain import fractal_terrain
    from jobs.raster.io import crs_wkt_from_epsg, write_raster

    wkt = crs_wkt_from_epsg(25832)
    dem = fractal_terrain(2048, 2048, seed=3)
    write_raster(folder / "dem.tif", dem, (400000.0, 1.0, 0.0, 5700000.0, 0.0, -1.0), wkt)
    big = np.tile(dem, (2, 2))
    write_raster(folder / "large.tif", big, (400000.0, 1.0, 0.0, 5700000.0, 0.0, -1.0), wkt)
    sparse = gdal.GetDriverByName("GTiff").Create(str(folder / "sparse.tif"), 100_000, 100_000, 1, gdal.GDT_Float32,
                                                  ["TILED=YES", "SPARSE_OK=TRUE", "BIGTIFF=YES", "COMPRESS=DEFLATE"])
    sparse.SetGeoTransform((400000.0, 1.0, 0.0, 5700000.0, 0.0, -1.0))
    sparse.SetProjection(wkt)
    sparse.GetRasterBand(1).WriteArray(dem[:256, :256], 5000, 5000)
    sparse = None
    srs = osr.SpatialReference(wkt=wkt)
    for name, driver, count in (("zones.geojson", "GeoJSON", 20_000), ("squares", "ESRI Shapefile", 200_000)):
        ds = ogr.GetDriverByName(driver).CreateDataSource(str(folder / name))
        layer = ds.CreateLayer("squares", srs, ogr.wkbPolygon)
        layer.CreateField(ogr.FieldDefn("id", ogr.OFTInteger))
        rng = random.Random(1)
        layer.StartTransaction()
        for number in range(count):
            x, y = 400000.0 + rng.random() * 19_990, 5680000.0 + rng.random() * 19_990
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetField("id", number)
            feature.SetGeometry(ogr.CreateGeometryFromWkt(
                f"POLYGON (({x} {y}, {x + 10} {y}, {x + 10} {y + 10}, {x} {y + 10}, {x} {y}))"))
            layer.CreateFeature(feature)
        layer.CommitTransaction()
        ds = None
    with open(folder / "table.csv", "w") as out:
        out.write("station,height,name\n")
        out.writelines(f"{number},{number * 0.25},station number {number}\n" for number in range(20 * 1024 * 1024 // 38))


def per_feature_polygons(path, wkt):
    """The polygons of a layer read one OGR feature at a time, as jobs.vector did before."""
    from osgeo import ogr

    ds = ogr.Open(str(path))  # kept: a layer outliving its dataset crashes GDAL
    layer = ds.GetLayer(0)
    fields = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    polygons = []
    for feature in layer:
        geometry = feature.GetGeometryRef().Clone()
        if not geometry.IsValid():
            geometry = geometry.MakeValid()
        polygons.append((geometry.ExportToWkt(), geometry.GetEnvelope(), {f: feature.GetField(f) for f in fields}))
    return polygons


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    harness.database_arguments(parser)
    args = parser.parse_args()
    work = harness.configure(args.database_url)
    write_samples(work)

    from datafiles import metadata, sandbox
    from datafiles.formats import StoredFile
    from jobs import vector
    from jobs.models import Tile
    from jobs.raster.io import crs_wkt_from_epsg

    figures = {}
    for name, extension in (("dem.tif", "tif"), ("zones.geojson", "geojson"), ("table.csv", "csv")):
        stored = StoredFile(str(work / name), extension, name)
        child = timed(lambda stored=stored: sandbox.inspect(stored), args.runs)
        alone = timed(lambda stored=stored: metadata.inspect(stored), args.runs)
        figures[f"inspect {name}"] = {"child_s": round(child, 3), "in_process_s": round(alone, 3),
                                      "ratio": round(child / alone, 2), "overhead_ms": round((child - alone) * 1000)}
    for name in ("large.tif", "sparse.tif"):
        stored = StoredFile(str(work / name), "tif", name)
        child = timed(lambda stored=stored: sandbox.preview(stored, work / "preview.png"), args.runs)
        alone = timed(lambda stored=stored: metadata.preview_png(stored, work / "preview.png"), args.runs)
        figures[f"preview {name}"] = {"child_s": round(child, 3), "in_process_s": round(alone, 3),
                                      "ratio": round(child / alone, 2)}

    from osgeo import ogr

    wkt = crs_wkt_from_epsg(25832)
    shapefile = work / "squares" / "squares.shp"
    arrow = timed(lambda: vector.read_polygons(ogr.Open(str(shapefile)), wkt, "squares"), args.runs)
    loop = timed(lambda: per_feature_polygons(shapefile, wkt), args.runs)
    Tile.objects.bulk_create([Tile(id=row * 20 + col, path=f"/tiles/{row * 20 + col}.tif",
                                   minx=400000.0 + col * 1000, maxx=401000.0 + col * 1000,
                                   miny=5699000.0 - row * 1000, maxy=5700000.0 - row * 1000,
                                   width=1000, height=1000, col=col * 1000, row=row * 1000)
                              for row in range(20) for col in range(20)])
    from jobs import towns

    polygons = vector.read_polygons(ogr.Open(str(shapefile)), wkt, "squares")
    choose = timed(lambda: towns.tiles_overlapping(polygons), args.runs)
    figures["polygons 200,000"] = {"arrow_s": round(arrow, 3), "per_feature_s": round(loop, 3),
                                   "ratio": round(arrow / loop, 2), "choose_tiles_s": round(choose, 3),
                                   "tiles": len(towns.tiles_overlapping(polygons))}
    harness.record("untrusted", {"runs": args.runs, **figures})


if __name__ == "__main__":
    main()
