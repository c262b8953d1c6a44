"""Synthetic elevation models for the demo data (manage.py demo_data), the tests and the
benchmarks: smooth, hilly terrain that any size and seed reproduce exactly. Knows nothing of
Django or GDAL; numpy arrays out.
"""

import numpy as np


def fractal_terrain(height, width, seed, octaves=7, persistence=0.5):
    """A float32 elevation model in metres made of `octaves` layers of smoothed value noise."""
    rng = np.random.default_rng(seed)
    terrain = np.zeros((height, width), dtype=np.float64)
    amplitude = 1.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        lattice = rng.random((cells + 1, cells + 1))
        ys, xs = np.linspace(0, cells, height, endpoint=False), np.linspace(0, cells, width, endpoint=False)
        yi, xi = ys.astype(int), xs.astype(int)
        fy, fx = _smoothstep(ys - yi)[:, None], _smoothstep(xs - xi)[None, :]
        top = lattice[yi][:, xi] * (1 - fx) + lattice[yi][:, xi + 1] * fx
        bottom = lattice[yi + 1][:, xi] * (1 - fx) + lattice[yi + 1][:, xi + 1] * fx
        terrain += amplitude * (top * (1 - fy) + bottom * fy)
        amplitude *= persistence
    terrain = (terrain - terrain.min()) / (terrain.max() - terrain.min())
    return (40.0 + 860.0 * terrain**1.6).astype(np.float32)


def _smoothstep(t):
    return t * t * (3 - 2 * t)
