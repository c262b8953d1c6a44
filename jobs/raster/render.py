"""Map tile pixels (jobs.raster.maptiles.TileData) as images: grey, a named colour map over a value
range, or a raster's own red, green and blue, with no data transparent; encoded as PNG or WebP
by GDAL's drivers. Knows nothing of Django.
"""

import uuid
from functools import lru_cache

import numpy as np
from cmap import Colormap
from osgeo import gdal

from jobsite.gdalpolicy import thread_config

# The colour maps a request may name (cmap's catalogue has hundreds; these suit terrain results).
# Each has a reversed twin, NAME_r.
COLORMAPS = ("viridis", "cividis", "magma", "inferno", "plasma", "turbo", "terrain", "spectral", "rdylbu",
             "rdylgn", "greys", "blues", "reds")
DEFAULT_COLORMAP = "viridis"
FORMATS = {"png": ("PNG", "image/png", ["ZLEVEL=1"]), "webp": ("WEBP", "image/webp", ["LOSSLESS=TRUE"])}
STYLES = ("grey", "colormap", "rgb")


def colormap_names():
    return COLORMAPS + tuple(f"{name}_r" for name in COLORMAPS)


@lru_cache(maxsize=64)
def lookup_table(name):
    """The colour map `name` (of colormap_names()) as 256 RGBA rows of 8 bits."""
    if name not in colormap_names():
        raise ValueError(f"unknown colour map {name!r}")
    base, reverse = (name[:-2], True) if name.endswith("_r") else (name, False)
    table = np.round(Colormap(base).lut(256) * 255).astype(np.uint8)
    return table[::-1].copy() if reverse else table


def style_of(bands, render_as=None):
    """How to show a raster of `bands` (describe()'s band facts): its own colours where its first
    three bands are 8-bit (red, green, blue; a fourth is its alpha or not shown), else `render_as`
    (a job type's choice: grey or colormap), else a colour map."""
    bands = [band for band in bands if band.get("colour") != "alpha"]  # an alpha band is the tile's alpha
    if len(bands) >= 3 and all(band["data_type"] == "byte" for band in bands[:3]):
        return "rgb"
    return render_as if render_as in ("grey", "colormap") else "colormap"


def rgba(tile, style, value_range=None, colormap=DEFAULT_COLORMAP):
    """A (256, 256, 4) array of 8-bit RGBA for `tile`. `value_range` (low, high) is stretched over the
    colour map, or over black to white for grey (0 to 255 without it)."""
    valid = tile.valid
    if style == "rgb":  # its first three bands; its alpha band, if any, is the tile's alpha
        out = np.zeros(valid.shape + (4,), np.uint8)
        for index in range(3):
            out[..., index] = tile.bands[index]
        out[..., 3] = tile.alpha
        return out
    values = tile.bands[0].astype(np.float64)
    low, high = value_range if value_range else (0.0, 255.0)
    span = high - low if high > low else 1.0
    scaled = np.clip((values - low) / span, 0.0, 1.0)
    index = np.nan_to_num(np.round(scaled * 255), nan=0).astype(np.uint8)
    if style == "grey":
        out = np.repeat(index[..., None], 4, axis=2)
        out[..., 3] = 255
    else:
        out = lookup_table(colormap)[index]
    out[..., 3] = np.where(valid & np.isfinite(values), out[..., 3], 0)
    return out


def encode(pixels, image_format):
    """`pixels` (h, w, 4 of uint8) as the bytes of a PNG or WebP (`image_format`: a key of FORMATS)."""
    driver, _, options = FORMATS[image_format]
    height, width, _ = pixels.shape
    mem = gdal.GetDriverByName("MEM").Create("", width, height, 4, gdal.GDT_Byte)
    for index in range(4):
        mem.GetRasterBand(index + 1).WriteArray(pixels[..., index])
    name = f"/vsimem/tile-{uuid.uuid4().hex}.{image_format}"
    try:
        with thread_config(GDAL_PAM_ENABLED="NO"):
            gdal.GetDriverByName(driver).CreateCopy(name, mem, options=options)
        handle = gdal.VSIFOpenL(name, "rb")
        try:
            return bytes(gdal.VSIFReadL(1, gdal.VSIStatL(name).size, handle))
        finally:
            gdal.VSIFCloseL(handle)
    finally:
        gdal.Unlink(name)


def empty_tile(image_format, size=256):
    """A fully transparent tile."""
    return encode(np.zeros((size, size, 4), np.uint8), image_format)
