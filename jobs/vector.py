"""Vector work with OGR: town polygons and tile-index vectors. Knows nothing of Django."""

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from osgeo import ogr, osr

from jobsite import georef

from .raster.io import Cancelled

georef.use_exceptions()


class VectorError(Exception):
    """A vector file could not be read as asked; the message names the problem."""


@dataclass(frozen=True)
class Area:
    id: int
    name: str
    wkt: str  # in the target CRS
    bounds: tuple  # (minx, miny, maxx, maxy)

    @cached_property
    def wkb(self):
        return bytes(ogr.CreateGeometryFromWkt(self.wkt).ExportToIsoWkb())


def _open_layer(path):
    try:
        ds = ogr.Open(str(path))
    except RuntimeError as exc:
        raise VectorError(f"{path}: {exc}") from None
    if ds is None or ds.GetLayerCount() == 0:
        raise VectorError(f"{path}: no vector layer found")
    return ds, ds.GetLayer(0)


def _transform_to(layer, target_wkt, path):
    source = layer.GetSpatialRef()
    if source is None:
        raise VectorError(f"{path}: the layer has no coordinate reference system")
    target = osr.SpatialReference(wkt=target_wkt)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    if source.IsSame(target):
        return None
    return osr.CoordinateTransformation(source, target)


def read_areas(path, id_field, name_field, target_wkt):
    """The polygons of the first layer of `path`, reprojected to `target_wkt`."""
    ds, layer = _open_layer(path)
    names = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    for field in (id_field, name_field):
        if field not in names:
            raise VectorError(f"{path}: no field {field!r}; the fields are {', '.join(names) or 'none'}")
    transform = _transform_to(layer, target_wkt, path)
    areas, seen = [], set()
    for feature in layer:
        fid = feature.GetFID()
        raw_id = feature.GetField(id_field)
        try:
            area_id = int(raw_id)
        except (TypeError, ValueError):
            raise VectorError(f"{path}: feature {fid} has {id_field}={raw_id!r}, not an integer id") from None
        if area_id in seen:
            raise VectorError(f"{path}: id {area_id} appears more than once")
        seen.add(area_id)
        wkt, bounds = _polygon(feature, transform, f"{path}: feature {fid} (id {area_id})")
        name = feature.GetField(name_field)
        areas.append(Area(area_id, str(name if name is not None else area_id), wkt, bounds))
    return areas


def _polygon(feature, transform, what):
    """(WKT, (minx, miny, maxx, maxy)) of a feature's polygon, reprojected and made valid."""
    geometry = _valid_polygon(feature.GetGeometryRef(), transform, what)
    minx, maxx, miny, maxy = geometry.GetEnvelope()
    return geometry.ExportToWkt(), (minx, miny, maxx, maxy)


def _valid_polygon(geometry, transform, what):
    """A copy of `geometry`, reprojected by `transform` (or None) and made valid; VectorError
    unless it is a polygon or a multipolygon."""
    if geometry is None or ogr.GT_Flatten(geometry.GetGeometryType()) not in (ogr.wkbPolygon, ogr.wkbMultiPolygon):
        raise VectorError(f"{what} is not a polygon")
    geometry = geometry.Clone()
    if transform is not None:
        geometry.Transform(transform)
    if not geometry.IsValid():
        geometry = geometry.MakeValid()
    return geometry


def intersects_box(wkb, bounds):
    """Whether the polygon `wkb` (ISO WKB) overlaps the box `bounds` (touching along an edge does
    not count)."""
    minx, miny, maxx, maxy = bounds
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((minx, miny), (maxx, miny), (maxx, maxy), (minx, maxy), (minx, miny)):
        ring.AddPoint_2D(x, y)
    box = ogr.Geometry(ogr.wkbPolygon)
    box.AddGeometry(ring)
    return ogr.CreateGeometryFromWkb(wkb).Intersection(box).GetArea() > 0


def read_tile_index(path, location_field="location"):
    """The raster paths listed by a `gdaltindex` vector, relative paths taken from its folder."""
    ds, layer = _open_layer(path)
    defn = layer.GetLayerDefn()
    if defn.GetFieldIndex(location_field) < 0:
        raise VectorError(f"{path}: no {location_field!r} field; is this a gdaltindex tile index?")
    folder = Path(path).resolve().parent
    paths = []
    for feature in layer:
        location = feature.GetField(location_field)
        if not location:
            raise VectorError(f"{path}: feature {feature.GetFID()} has an empty {location_field!r}")
        paths.append(str(Path(location) if Path(location).is_absolute() else folder / location))
    return paths


def write_polygons(path, features, source_wkt, target_epsg=4326, driver="GeoJSON"):
    """Write (id, name, polygon WKT in `source_wkt`) features as a polygon layer in EPSG:`target_epsg`."""
    source, target = osr.SpatialReference(wkt=source_wkt), georef.srs_from_epsg(target_epsg)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(source, target)
    Path(path).unlink(missing_ok=True)
    ds = ogr.GetDriverByName(driver).CreateDataSource(str(path))
    layer = ds.CreateLayer("areas", target, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("id", ogr.OFTInteger))
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    for area_id, name, wkt in features:
        geometry = ogr.CreateGeometryFromWkt(wkt)
        geometry.Transform(transform)
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("id", area_id)
        feature.SetField("name", name)
        feature.SetGeometry(geometry)
        layer.CreateFeature(feature)
    ds = None


@dataclass(frozen=True)
class Polygon:
    index: int  # its position in the layer
    wkb: bytes  # ISO WKB, in the target CRS
    bounds: tuple  # (minx, miny, maxx, maxy)
    properties: dict


PROGRESS_EVERY = 1000


def read_polygons(ds, target_wkt, name, limit=None, max_bytes=None, progress=None):
    """The polygons of the first layer of the open dataset `ds` (a user's file called `name`),
    reprojected to `target_wkt`. VectorError past `limit` polygons or `max_bytes` bytes of
    geometry, counted as they are read (not as the file declares them), and for any polygon whose
    bounds are not finite. `progress(0.0)` is called every PROGRESS_EVERY polygons; Cancelled
    when it returns False. Read through GDAL's columnar (Arrow) interface: a hundred thousand
    features cost a fraction of a second, not seconds."""
    layer = ds.GetLayer(0)
    transform = _transform_to(layer, target_wkt, name)
    defn = layer.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    geometry_column = layer.GetGeometryColumn() or "wkb_geometry"
    polygons, size = [], 0
    try:
        for batch in layer.GetArrowStreamAsNumPy():
            fids = batch[layer.GetFIDColumn() or "OGC_FID"].tolist()
            columns = [[_plain(value) for value in batch[field].tolist()] for field in fields]
            for row, (fid, wkb) in enumerate(zip(fids, batch[geometry_column], strict=True)):
                if progress is not None and len(polygons) % PROGRESS_EVERY == 0 and not progress(0.0):
                    raise Cancelled("stopped by the progress callback")
                if limit is not None and len(polygons) >= limit:
                    raise VectorError(f"{name} has more than {limit:,} features; the limit is {limit:,}")
                polygon = _polygon_of(wkb, transform, f"{name}: feature {fid}")
                size += len(polygon[0])
                if max_bytes is not None and size > max_bytes:
                    raise VectorError(f"{name} has more than {max_bytes:,} bytes of polygons; the limit is {max_bytes:,}")
                polygons.append(Polygon(len(polygons), *polygon,
                                        {field: column[row] for field, column in zip(fields, columns, strict=True)}))
    except RuntimeError as exc:  # GDAL's, for a record it cannot decode
        raise VectorError(f"{name} cannot be read: {exc}") from None
    if not polygons:
        raise VectorError(f"{name}: the layer has no polygons")
    return polygons


def _polygon_of(wkb, transform, what):
    """(ISO WKB, bounds) of one feature's geometry, as WKB: reprojected and made valid where
    needed; VectorError unless it is a polygon with finite bounds."""
    geometry = ogr.CreateGeometryFromWkb(wkb) if wkb else None
    if geometry is None or ogr.GT_Flatten(geometry.GetGeometryType()) not in (ogr.wkbPolygon, ogr.wkbMultiPolygon):
        raise VectorError(f"{what} is not a polygon")
    if transform is not None or not geometry.IsValid():
        try:
            geometry = _valid_polygon(geometry, transform, what)
        except RuntimeError as exc:  # GDAL's: a reprojection that fails
            raise VectorError(f"{what} cannot be used: {exc}") from None
        wkb = geometry.ExportToIsoWkb()
    minx, maxx, miny, maxy = geometry.GetEnvelope()
    if not all(math.isfinite(value) for value in (minx, miny, maxx, maxy)):
        raise VectorError(f"{what} has coordinates that are not finite numbers")
    return bytes(wkb), (minx, miny, maxx, maxy)


def _plain(value):
    """A field value as JSON can hold it (dates and times as ISO text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def wkt_bounds(wkt):
    """(minx, miny, maxx, maxy) of a geometry given as WKT."""
    minx, maxx, miny, maxy = ogr.CreateGeometryFromWkt(wkt).GetEnvelope()
    return (minx, miny, maxx, maxy)


def reprojected(area, from_wkt, to_wkt, steps=64):
    """`area` (in the CRS `from_wkt`) as an Area in the CRS `to_wkt`, transformed with OGR: its
    edges densified first (a straight edge may curve in the other CRS) and the result made valid.
    VectorError when PROJ cannot transform it."""
    source, target = osr.SpatialReference(wkt=from_wkt), osr.SpatialReference(wkt=to_wkt)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    geometry = ogr.CreateGeometryFromWkt(area.wkt)
    if not source.IsSame(target):
        minx, maxx, miny, maxy = geometry.GetEnvelope()
        if max(maxx - minx, maxy - miny) > 0:
            geometry.Segmentize(max(maxx - minx, maxy - miny) / steps)
        try:
            geometry.Transform(osr.CoordinateTransformation(source, target))
        except RuntimeError as exc:
            raise VectorError(f"area {area.id} ({area.name}) cannot be reprojected: {exc}") from None
        if not geometry.IsValid():
            geometry = geometry.MakeValid()
    minx, maxx, miny, maxy = geometry.GetEnvelope()
    return Area(area.id, area.name, geometry.ExportToWkt(), (minx, miny, maxx, maxy))
