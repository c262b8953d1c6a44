"""Where a raster lies and in which coordinate reference system, as GDAL answers it: the facts
that the raster code (jobs.raster) and the data file inspector (datafiles.metadata) both report,
computed in one place so that a tile and an uploaded file get the same answers. Knows nothing of
Django, so the sandboxed inspector imports it too.

GDAL, OGR and OSR report failures by exception in every module of jobsite (`use_exceptions`):
the code catches RuntimeError and never checks return codes.
"""

from osgeo import gdal, ogr, osr


def use_exceptions():
    """Have GDAL, OGR and OSR raise RuntimeError where a call fails, rather than return an error
    code and carry on. This module, jobs.raster.io, jobs.vector and datafiles.formats call it when
    they are imported, so every module built on them has it on."""
    gdal.UseExceptions()
    ogr.UseExceptions()
    osr.UseExceptions()


use_exceptions()


def bounds(geotransform, width, height):
    """(minx, miny, maxx, maxy) spanned by the top left corner of a `width` x `height` raster and
    its bottom right corner, whichever way its pixel sizes point. Exact for a north-up raster;
    for a rotated one it is the box of those two corners only, not of all four."""
    x0, px, rx, y0, ry, py = geotransform
    xs = (x0, x0 + px * width + rx * height)
    ys = (y0, y0 + ry * width + py * height)
    return (min(xs), min(ys), max(xs), max(ys))


def identified(crs):
    """A new SpatialReference for `crs` (WKT, or a SpatialReference, which is left as it is) with
    its EPSG authority filled in where GDAL recognises it as an EPSG CRS."""
    srs = osr.SpatialReference(wkt=crs) if isinstance(crs, str) else crs.Clone()
    try:
        srs.AutoIdentifyEPSG()
    except RuntimeError:  # "Unsupported SRS": no EPSG code fits it (a custom projection, say)
        pass
    return srs


def epsg_code(srs):
    """The EPSG code a SpatialReference names at its root, or None (see `identified`)."""
    code = srs.GetAuthorityCode(None)
    return int(code) if code and code.isdigit() else None


def epsg_of(crs):
    """The EPSG code of `crs` (WKT or a SpatialReference), if it has one. Identifying it is slow:
    callers look it up when it is asked for."""
    return epsg_code(identified(crs))


def same_crs(wkt_a, wkt_b):
    """Whether two WKT strings describe the same CRS, however differently they are written."""
    return bool(osr.SpatialReference(wkt=wkt_a).IsSame(osr.SpatialReference(wkt=wkt_b)))


def srs_from_epsg(code):
    """The SpatialReference of EPSG:`code`, from PROJ's database."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(code)
    return srs


def crs_name(wkt):
    """The name a CRS gives itself, such as "ETRS89 / UTM zone 32N"."""
    return osr.SpatialReference(wkt=wkt).GetName()


def lonlat_bounds(box, wkt, densify=21):
    """(west, south, east, north) in WGS84 degrees of `box` (minx, miny, maxx, maxy in the CRS
    `wkt`): its edges, densified, transformed with OSR in longitude/latitude order."""
    return edge_bounds(box, wkt, srs_from_epsg(4326).ExportToWkt(), densify)


def edge_bounds(box, src_wkt, dst_wkt, densify=21):
    """The box in the CRS `dst_wkt` that holds `box` (minx, miny, maxx, maxy in `src_wkt`): its four
    edges, each as `densify` points, transformed (in x/y order in both). Cheaper than OSR's
    TransformBounds, which also looks for poles and the antimeridian inside the box."""
    minx, miny, maxx, maxy = box
    steps = [i / (densify - 1) for i in range(densify)]
    edge = ([(minx + (maxx - minx) * t, miny) for t in steps] + [(minx + (maxx - minx) * t, maxy) for t in steps]
            + [(minx, miny + (maxy - miny) * t) for t in steps] + [(maxx, miny + (maxy - miny) * t) for t in steps])
    points = transformed_points(edge, src_wkt, dst_wkt)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def transformed_bounds(box, src_wkt, dst_wkt, densify=21):
    """`box` (minx, miny, maxx, maxy in the CRS `src_wkt`) as the box that holds it in the CRS
    `dst_wkt`, its edges densified (OSR's TransformBounds), in x/y order in both."""
    if src_wkt == dst_wkt:
        return tuple(box)
    source, target = osr.SpatialReference(wkt=src_wkt), osr.SpatialReference(wkt=dst_wkt)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return tuple(osr.CoordinateTransformation(source, target).TransformBounds(*box, densify))


def transformed_points(points, src_wkt, dst_wkt):
    """[(x, y)] of `points` in the CRS `src_wkt` transformed to `dst_wkt`, in x/y order in both."""
    source, target = osr.SpatialReference(wkt=src_wkt), osr.SpatialReference(wkt=dst_wkt)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return [(p[0], p[1]) for p in osr.CoordinateTransformation(source, target).TransformPoints(list(points))]


def lonlat_outline(box, wkt, densify=5):
    """A GeoJSON Polygon in WGS84 degrees of `box` (minx, miny, maxx, maxy in the CRS `wkt`): its
    edges, each cut into `densify` - 1 pieces, counter-clockwise as GeoJSON (RFC 7946) wants."""
    minx, miny, maxx, maxy = box
    steps = [i / (densify - 1) for i in range(densify - 1)]
    ring = ([(minx + (maxx - minx) * t, miny) for t in steps] + [(maxx, miny + (maxy - miny) * t) for t in steps]
            + [(maxx - (maxx - minx) * t, maxy) for t in steps] + [(minx, maxy - (maxy - miny) * t) for t in steps])
    points = transformed_points(ring, wkt, srs_from_epsg(4326).ExportToWkt())
    ring = [[round(x, 9), round(y, 9)] for x, y in points]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
