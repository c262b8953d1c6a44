"""Blocks: tiles of one batch that together cover a rectangle of the index grid exactly, so that an
operation runs once over the rectangle (read with its halo) and writes one file, instead of once
per tile. On small tiles, creating a file costs more than the operation itself; the result is the
same, pixel for pixel, because every pixel sees the same neighbourhood either way.
"""

from .io import GridTile

# A block is at most this many pixels (64 MB of float32), however many tiles a batch holds.
MAX_BLOCK_PIXELS = 16 * 1024 * 1024


def blocks(tiles, max_pixels=MAX_BLOCK_PIXELS):
    """The GridTiles `tiles` (which do not overlap) grouped into blocks: lists of tiles that
    together cover a rectangle, each in row-major order, so that its first tile is at its top left.
    Tiles of one grid row that touch side by side make a run; runs over the same columns that
    touch top to bottom make a block. Every tile is in exactly one block; a tile that joins no
    other is a block of its own."""
    rows = {}
    for tile in tiles:
        rows.setdefault((tile.row, tile.height), []).append(tile)
    runs = []
    for (_, height), in_row in rows.items():
        in_row.sort(key=lambda tile: tile.col)
        run, width = [in_row[0]], in_row[0].width
        for tile in in_row[1:]:
            last = run[-1]
            if tile.col == last.col + last.width and (width + tile.width) * height <= max_pixels:
                run.append(tile)
                width += tile.width
            else:
                runs.append(run)
                run, width = [tile], tile.width
        runs.append(run)
    runs.sort(key=lambda run: (run[0].col, _right(run), run[0].row))
    grouped = []
    for run in runs:
        block = grouped[-1] if grouped else None
        if (block is not None and (block[0].col, _right(block)) == (run[0].col, _right(run))
                and _bottom(block) == run[0].row
                and (_right(run) - run[0].col) * (_bottom(run) - block[0].row) <= max_pixels):
            block.extend(run)
        else:
            grouped.append(list(run))
    return grouped


def area(block):
    """The rectangle a block covers, as a GridTile with the path of its top left tile."""
    first = block[0]
    return GridTile(first.path, first.col, first.row, _right(block) - first.col, _bottom(block) - first.row)


def _right(tiles):
    return max(tile.col + tile.width for tile in tiles)


def _bottom(tiles):
    return max(tile.row + tile.height for tile in tiles)
