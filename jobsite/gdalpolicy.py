"""GDAL's process-wide configuration for jobsite: no network unless an operator allows hosts, and
no Python code run from inside a file. Applied at start in every process (web, cluster, commands,
the data file inspector); knows nothing of Django, so the inspector applies it too.

GDAL reaches the network through libcurl (`/vsicurl/`, `/vsis3/` and the other cloud file systems,
the HTTP, WMS and WFS drivers, GeoJSON `crs` links, SRS definitions by URL). Every one of those
requests goes through GDAL_HTTP_PROXY / GDAL_HTTPS_PROXY, which point at a proxy whose scheme
libcurl does not know: it refuses the request before it connects anywhere. libcurl sends the
hosts listed in `no_proxy` past the proxy, directly; that is the allow-list. A redirect to any
other host goes to the refusing proxy again, so an allowed host cannot redirect a request away.
A GDAL file name can carry options of its own (`/vsicurl?proxy=...&url=...`): no name a user
writes ever reaches GDAL, and load_tiles refuses such names in a tile index.
"""

import os
from contextlib import contextmanager

from osgeo import gdal, osr

# libcurl answers "Unsupported proxy scheme" for it, before any connection or name lookup.
REFUSING_PROXY = "jobsite-network-disabled://gdal"


def configure(*, allowed_hosts=(), timeout=30, connect_timeout=10, cache_mb=None):
    """Set GDAL's configuration for this process. `allowed_hosts` (host names or addresses, as
    libcurl's no_proxy takes them: "tiles.example.org" also allows its sub-domains) may be
    reached over HTTP(S), with the time-outs given in seconds; nothing else may. `cache_mb` bounds
    GDAL's block cache, which is otherwise 5 % of the machine's memory in every process."""
    for key, value in {
        "GDAL_VRT_ENABLE_PYTHON": "NO",  # Python pixel functions inside a VRT
        "GDAL_HTTP_PROXY": REFUSING_PROXY,
        "GDAL_HTTPS_PROXY": REFUSING_PROXY,
        "GDAL_HTTP_NETRC": "NO",  # never send the machine's credentials
        "GDAL_HTTP_TIMEOUT": str(timeout),
        "GDAL_HTTP_CONNECTTIMEOUT": str(connect_timeout),
        # A server that accepts and then trickles (or sends nothing) is given up after this.
        "GDAL_HTTP_LOW_SPEED_TIME": str(timeout),
        "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
        "GDAL_HTTP_MAX_RETRY": "0",
        "CPL_VSIL_CURL_USE_S3_REDIRECT": "NO",
    }.items():
        gdal.SetConfigOption(key, value)
    if cache_mb is not None:
        gdal.SetCacheMax(cache_mb * 1024 * 1024)
    osr.SetPROJEnableNetwork(False)  # PROJ fetches grids itself when proj.ini or PROJ_NETWORK says so
    hosts = ",".join(allowed_hosts)
    for name in ("no_proxy", "NO_PROXY"):
        if hosts:
            os.environ[name] = hosts
        else:
            os.environ.pop(name, None)


@contextmanager
def thread_config(**options):
    """GDAL configuration options for the calls made in this block, on this thread only."""
    previous = {key: gdal.GetThreadLocalConfigOption(key, None) for key in options}
    for key, value in options.items():
        gdal.SetThreadLocalConfigOption(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            gdal.SetThreadLocalConfigOption(key, value)
