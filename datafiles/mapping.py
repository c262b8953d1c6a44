"""Copies of a user's data file for maps, made in the confined reader (datafiles.sandbox): a raster
as a small Cloud-Optimized GeoTIFF in its own CRS, a vector's features as GeoJSON in WGS84. The web
process then serves map tiles and features from these files, which GDAL wrote here, and never opens
the upload itself. Knows nothing of Django.
"""

import json

from osgeo import gdal, osr

from .formats import Unreadable

# The longest side of a raster's copy: a preview on a map, not the data (jobs read the upload).
MAX_SIDE = 2048
# Features of a vector's copy, over all its layers; the copy says when it left some out.
MAX_FEATURES = 20000


def raster_copy(stored, out_path, max_side=MAX_SIDE):
    """Write a COG of the raster at most `max_side` pixels wide and high: its first three or four
    bands where they are 8-bit (colours), else its first band."""
    ds = stored.open("raster")
    with stored.reading():
        if ds.GetGeoTransform(can_return_null=True) is None or not ds.GetProjection():
            raise Unreadable(f"{stored.name} has no georeferencing: it has no place on a map")
        types = [ds.GetRasterBand(i).DataType for i in range(1, ds.RasterCount + 1)]
        colours = ds.RasterCount in (3, 4) and all(t == gdal.GDT_Byte for t in types)
        scale = min(1.0, max_side / max(ds.RasterXSize, ds.RasterYSize))
        gdal.Translate(str(out_path), ds, format="COG", bandList=list(range(1, ds.RasterCount + 1)) if colours else [1],
                       width=max(1, round(ds.RasterXSize * scale)), height=max(1, round(ds.RasterYSize * scale)),
                       resampleAlg="nearest", creationOptions=["COMPRESS=DEFLATE", "OVERVIEWS=AUTO", "BLOCKSIZE=256"])


def vector_copy(stored, out_path, max_features=MAX_FEATURES):
    """Write the features of every layer with a CRS as a GeoJSON FeatureCollection in WGS84, at most
    `max_features` of them, each with its layer's name; "truncated" says whether some were left out.
    Returns how many were written."""
    ds = stored.open("vector")
    target = osr.SpatialReference()
    target.ImportFromEPSG(4326)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    written, truncated = 0, False
    with stored.reading(), open(out_path, "w", encoding="utf-8") as out:
        out.write('{"type": "FeatureCollection", "features": [')
        for index in range(ds.GetLayerCount()):
            layer = ds.GetLayer(index)
            source = layer.GetSpatialRef()
            if source is None:
                continue  # no place on a map
            source = source.Clone()
            source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            transform = osr.CoordinateTransformation(source, target)
            for feature in layer:
                geometry = feature.GetGeometryRef()
                if geometry is None:
                    continue
                if written == max_features:
                    truncated = True
                    break
                geometry = geometry.Clone()
                geometry.Transform(transform)
                shape = json.loads(geometry.ExportToJson(["COORDINATE_PRECISION=7"]))
                out.write(("," if written else "") + json.dumps(
                    {"type": "Feature", "geometry": shape, "properties": {"layer": layer.GetName()}}))
                written += 1
            if truncated:
                break
        out.write(f'], "truncated": {json.dumps(truncated)}}}')
    return written
