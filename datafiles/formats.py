"""How GDAL/OGR may open a user's file: only with the drivers its extension allows, reading
nothing outside the file itself, and only within the sizes it may declare. Knows nothing of Django.

GDAL picks a driver by a file's content, not by its name, and some of its formats (VRT, OGR VRT,
and others) name other files or URLs to read. So a file is opened with an explicit list of drivers
for its extension, and after opening, every file the dataset says it reads must be the upload
itself (or, for a zip, lie inside it). Messages name the user's own file name, never a path here.
"""

import os
import re
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass

from osgeo import gdal

from jobsite import georef
from jobsite.gdalpolicy import REFUSING_PROXY, thread_config

georef.use_exceptions()

# Extension -> the GDAL/OGR drivers that may read it. Tables and text are read by Python.
DRIVERS = {
    "tif": ("GTiff", "COG"), "tiff": ("GTiff", "COG"),
    "gpkg": ("GPKG",), "geojson": ("GeoJSON",), "json": ("GeoJSON",), "zip": ("ESRI Shapefile",),
}
FORMAT_NAMES = {"tif": "GeoTIFF", "tiff": "GeoTIFF", "gpkg": "GeoPackage", "geojson": "GeoJSON", "json": "GeoJSON",
                "zip": "zipped shapefile"}
# A GeoPackage opened immutable is never written to: no journal, -wal or -shm file appears beside it.
OPEN_OPTIONS = {"gpkg": ("IMMUTABLE=YES",)}
# While a user's file is opened and read: no side-car file (.aux.xml, .ovr, .msk, world files) is
# looked for or written beside it.
READ_CONFIG = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_PAM_ENABLED": "NO"}


class Unreadable(Exception):
    """The file is not what its extension says, or cannot be read. `transient`: the reader did not
    finish for a reason of this moment (out of time on a busy machine, killed), not of the file."""

    def __init__(self, message, transient=False):
        super().__init__(message)
        self.transient = transient


class Refused(Unreadable):
    """The file was read and breaks a rule: it refers to something outside itself, or declares
    more than the limits allow. No other reading of it (as text, say) is tried."""


@dataclass(frozen=True)
class Limits:
    """What a file may declare, checked from its metadata before any pixel or feature is read."""

    max_pixels: int = 10**9  # width x height x bands of a raster
    max_layers: int = 100
    max_fields: int = 1000  # of a vector layer, or columns of a table
    max_unpacked_bytes: int = 2 * 1024**3  # what the members of a zip hold together


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class StoredFile:
    """A user's file on disk (`path`), of extension `extension`, that the user calls `name`."""

    path: str
    extension: str
    name: str

    @property
    def gdal_name(self):
        """The name GDAL opens it by: a zipped shapefile is read inside the zip."""
        if self.extension != "zip":
            return self.path
        try:
            with zipfile.ZipFile(self.path) as archive:
                shapefiles = [n for n in archive.namelist() if n.lower().endswith(".shp") and not n.startswith("__MACOSX")]
        except (zipfile.BadZipFile, OSError) as exc:
            raise Unreadable(f"{self.name} is not a zip archive: {self.scrub(str(exc))}") from None
        if len(shapefiles) != 1:
            raise Unreadable(f"a zip must hold exactly one shapefile (.shp), {self.name} holds {len(shapefiles)}")
        return f"/vsizip/{self.path}/{shapefiles[0]}"

    def scrub(self, message):
        """GDAL's message with every path of this machine replaced by the user's file name."""
        for own in sorted({self.path, os.path.dirname(self.path)}, key=len, reverse=True):
            if own:
                message = message.replace(f"/vsizip/{own}", self.name).replace(own, self.name)
        return PATH.sub(lambda match: match.group(1) + "(a path)", message)

    def open(self, kind):
        """The dataset, opened as `kind` (raster or vector) by the drivers of its extension;
        Unreadable if it is something else, Refused if it reads any file outside itself."""
        drivers = DRIVERS.get(self.extension)
        if drivers is None:
            raise Unreadable(f"{self.name}: .{self.extension} files are not read by GDAL")
        flags = (gdal.OF_RASTER if kind == "raster" else gdal.OF_VECTOR) | gdal.OF_READONLY
        with self.reading():
            try:
                ds = gdal.OpenEx(self.gdal_name, flags, allowed_drivers=list(drivers),
                                 open_options=list(OPEN_OPTIONS.get(self.extension, ())))
            except RuntimeError as exc:
                raise Unreadable(f"{self.name} is not a {FORMAT_NAMES[self.extension]} "
                                 f"({self.scrub(str(exc))})") from None
            if ds is None:
                raise Unreadable(f"{self.name} is not a {FORMAT_NAMES[self.extension]}")
            self.check_inside(ds.GetFileList() or [])
        return ds

    @contextmanager
    def reading(self):
        """Open or read this file in this block: with GDAL's configuration for user files, and
        Refused if GDAL tried to reach the network for it (a GeoJSON `crs` link, an SRS given by
        URL), which the process-wide configuration refuses (jobsite/gdalpolicy.py)."""
        messages = []
        gdal.PushErrorHandler(lambda _class, _number, message: messages.append(message))
        try:
            with thread_config(**READ_CONFIG):
                yield
        finally:
            gdal.PopErrorHandler()
        if any(REFUSING_PROXY in message or "CURL error" in message for message in messages):
            raise Refused(f"{self.name} refers to a resource on the network; data files must hold "
                          "everything they need")

    def check_inside(self, files):
        """Unreadable unless every file in `files` is this file or, for a zip, lies inside it."""
        for name in files:
            if not self._inside(name):
                raise Refused(f"{self.name} refers to files outside itself")

    def _inside(self, name):
        if self.extension == "zip":
            prefix = f"/vsizip/{self.path}/"
            return name.startswith(prefix) and ".." not in name[len(prefix):].split("/")
        return not name.startswith("/vsi") and os.path.realpath(name) == os.path.realpath(self.path)


# An absolute path, or a GDAL virtual file name, standing alone in a message.
PATH = re.compile(r"(^|[\s'\"`(])(/vsi\w+/\S+|/(?:[\w.@+-]+/)+[\w.@+-]*)")


def without_paths(message):
    """A message for a user: each path of this machine in it cut to its last part (a tile's file
    name, not the folders of the site's storage)."""
    return PATH.sub(lambda match: match.group(1) + match.group(2).rstrip("/").rsplit("/", 1)[-1], message)


def check_unpacked_size(stored, limits):
    """Refused when the members of a zip would unpack to more than the limit (a zip bomb: GDAL
    reads the members inflated)."""
    try:
        with zipfile.ZipFile(stored.path) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise Unreadable(f"{stored.name} is not a zip archive: {stored.scrub(str(exc))}") from None
    if unpacked > limits.max_unpacked_bytes:
        raise Refused(f"{stored.name} unpacks to {unpacked:,} bytes; the limit is {limits.max_unpacked_bytes:,}")


def check_raster_size(name, width, height, bands, limits):
    values = width * height * bands
    if values > limits.max_pixels:
        raise Refused(f"{name} is {width:,} x {height:,} pixels in {bands:,} bands ({values:,} values); "
                         f"the limit is {limits.max_pixels:,}")
