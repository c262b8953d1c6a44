"""Raster work with GDAL, a module per subject. Plain Python over paths and numbers: it knows
nothing of Django, so it can be used and tested on its own. Import the module you need; this
package re-exports nothing.

- `io`: the base the others build on. Errors (RasterError, Cancelled), what a tile and the index
  grid are (GridTile, IndexGrid, RasterInfo), how tiles are opened (TILE_OPEN_OPTIONS, open_tile,
  kept open per thread), reading a raster's metadata (read_info) and a window of the index grid
  (read_window), GDAL progress callbacks, and writing rasters, JSON and CSV atomically.
- `dem`: a gdal.DEMProcessing operation over one tile, with a halo read from its neighbours
  (process_tile), or over a block of adjacent tiles at once (process_block).
- `blocks`: the tiles of a batch grouped into blocks that cover a rectangle of the grid exactly.
- `mosaic`: the merge of tile outputs into a Cloud-Optimized GeoTIFF and its thumbnail
  (merge_to_cog).
- `zonal`: polygons over tiles: pixel masks (polygon_mask), zonal statistics summed per tile and
  combined (zonal_partial, zonal_combine), and clipping a tile (mask_tile).
- `calc`: band math: an expression checked against an allow-list (check_expression) and evaluated
  with numexpr (evaluate), with its nodata policy.
- `command`: a command-line tool run over one tile with its halo, in a temporary folder, as an
  argument list (run_on_tile), or once over a mosaic (run_on_raster).
- `toolprocess`: a tool's process: clean environment, limits, its own process group, stopped on
  cancel or at its time limit, and ended when its worker dies (sweep_orphans).
- `warp`: one tile warped onto the target grid of a reprojection (output_grid, reproject_tile),
  writing only the target pixels it owns, so that the tiles mosaic into one whole warp.

Where a raster lies and in which CRS (bounds, EPSG codes, comparing CRS) is jobsite.georef's, which
the data file inspector shares.
"""
