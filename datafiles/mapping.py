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
WEB_MERCATOR = "EPSG:3857"
# Features of a vector's copy, over all its layers; the copy says when it left some out.
MAX_FEATURES = 20000


def raster_copy(stored, out_path, max_side=MAX_SIDE):
    """Write a COG of the raster warped to Web Mercator (EPSG:3857), at most `max_side` pixels wide
    and high, with none of its metadata: its first three or four bands where they are 8-bit
    (colours, an alpha band kept as alpha), else its first band, and an alpha band of where it has
    data. The web process reads only this copy, in a CRS it knows; a raster whose CRS cannot be
    taken there has no map."""
    ds = stored.open("raster")
    with stored.reading():
        if ds.GetGeoTransform(can_return_null=True) is None or not ds.GetProjection():
            raise Unreadable(f"{stored.name} has no georeferencing: it has no place on a map")
        bands = [ds.GetRasterBand(i) for i in range(1, ds.RasterCount + 1)]
        data = [i for i, band in enumerate(bands, start=1) if band.GetColorInterpretation() != gdal.GCI_AlphaBand]
        if not data:
            raise Unreadable(f"{stored.name} has only an alpha band: nothing to show on a map")
        colours = len(data) >= 3 and all(bands[i - 1].DataType == gdal.GDT_Byte for i in data[:3])
        try:
            suggested = gdal.Warp("", ds, format="VRT", dstSRS=WEB_MERCATOR)
        except RuntimeError:
            raise Unreadable(f"{stored.name}'s coordinate reference system cannot be put on a web map") from None
        scale = min(1.0, max_side / max(suggested.RasterXSize, suggested.RasterYSize))
        alpha = [i for i in range(1, ds.RasterCount + 1) if i not in data][:1]  # kept as the copy's alpha
        source = gdal.Translate("", ds, format="VRT", bandList=(data[:3] if colours else data[:1]) + alpha)
        gdal.Warp(str(out_path), source, format="COG", dstSRS=WEB_MERCATOR, copyMetadata=False,
                  width=max(1, round(suggested.RasterXSize * scale)), height=max(1, round(suggested.RasterYSize * scale)),
                  resampleAlg="near" if colours else "bilinear", dstAlpha=True,
                  creationOptions=["COMPRESS=DEFLATE", "OVERVIEWS=AUTO", "BLOCKSIZE=256"])


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
                if geometry is None or geometry.IsEmpty():
                    continue
                if written == max_features:
                    truncated = True
                    break
                geometry = geometry.Clone()
                geometry.Transform(transform)
                exported = geometry.ExportToJson(["COORDINATE_PRECISION=7"])
                if exported is None:  # a geometry GeoJSON cannot hold
                    continue
                shape = json.loads(exported)
                out.write(("," if written else "") + json.dumps(
                    {"type": "Feature", "geometry": shape, "properties": {"layer": layer.GetName()}}))
                written += 1
            if truncated:
                break
        out.write(f'], "truncated": {json.dumps(truncated)}}}')
    return written
