"""What the outputs are compared with, for the oracle tests and for the system tests that repeat
them on other stores (GCS): Pillow's transform, EM-like test images, the tile pack read back, the
2×2×2 mean and the JPEG bound.
"""

import io
import math
import struct

import numpy as np
from PIL import Image


def inverse_coefficients(t):
    a, b, c, d, e, f = t
    det = a * d - b * c
    return (d / det, -c / det, (c * f - d * e) / det, -b / det, a / det, (b * e - a * f) / det)


def pillow_aligned(source: Image.Image, transform, bbox) -> np.ndarray:
    out = source.transform(tuple(bbox), Image.AFFINE, inverse_coefficients(transform),
                           resample=Image.BICUBIC, fillcolor=0)
    return np.asarray(out)


def em_like(width: int, height: int, seed: int) -> np.ndarray:
    """Smooth structure plus noise, so that every bicubic weight matters."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    smooth = 128 + 60 * np.sin(x / 7.0 + seed) * np.cos(y / 11.0) + 30 * np.sin((x + y) / 3.0)
    return np.clip(smooth + rng.normal(0, 25, (height, width)), 0, 255).astype(np.uint8)


def rotation(degrees, cx, cy, shift=(0.0, 0.0), scale=1.0):
    """Columns [a, b, c, d, e, f] of a rotation by `degrees` about (cx, cy), then a shift."""
    r = math.radians(degrees)
    a, b = scale * math.cos(r), scale * math.sin(r)
    c, d = -b, a
    e = cx - a * cx - c * cy + shift[0]
    f = cy - b * cx - d * cy + shift[1]
    return [a, b, c, d, e, f]


CASES = {
    "identity": ((64, 48), [1, 0, 0, 1, 0, 0], (64, 48)),
    "rotation": ((300, 200), rotation(12.5, 150, 100, (20, -7)), (340, 230)),
    "upscale": ((80, 60), [1.7, 0, 0, 1.7, 3.25, -2.5], (150, 110)),
    "downscale": ((400, 300), [0.6, 0.02, -0.02, 0.6, 1, 2], (250, 190)),
    "shear": ((200, 150), [1, 0.1, 0.3, 1, -20, 5], (260, 180)),
    "translation_past_bbox": ((120, 90), [1, 0, 0, 1, 5000, -3000], (100, 80)),
    "one_pixel_source": ((1, 1), [1, 0, 0, 1, 0.25, 0.5], (3, 2)),
    "bbox_larger_than_source": ((50, 40), rotation(-3, 25, 20, (120, 80), 1.02), (300, 200)),
    "flip": ((90, 70), [-1, 0, 0, 1, 90, 0], (90, 70)),
}


def read_tile_pack(data: bytes):
    width, height, tile = struct.unpack_from("<3Q", data, 0)
    n = math.ceil(width / tile) * math.ceil(height / tile)
    offsets = struct.unpack_from(f"<{n + 1}Q", data, 24)
    assert offsets[0] == 24 + 8 * (n + 1) and offsets[-1] == len(data)
    tiles = [np.asarray(Image.open(io.BytesIO(data[offsets[i]:offsets[i + 1]]))) for i in range(n)]
    return width, height, tile, tiles


def reassemble(width, height, tile, tiles) -> np.ndarray:
    image = np.zeros((height, width), np.uint8)
    per_row = math.ceil(width / tile)
    for i, t in enumerate(tiles):
        ty, tx = divmod(i, per_row)
        image[ty * tile:ty * tile + t.shape[0], tx * tile:tx * tile + t.shape[1]] = t
    return image


# JPEG at tensorstore's default quality 75 on noisy EM-like content: measured RMS ≈ 3–5 grey
# levels against the raw voxels; the bound leaves room for encoder differences.
JPEG_RMS_BOUND = 8.0


def mean_over(voxels, factors):
    """The means over windows of `factors` voxels per axis (x, y, z), rounded half up."""
    v = voxels.astype(np.uint32)
    s = sum(v[dx::factors[0], dy::factors[1], dz::factors[2]]
            for dx in range(factors[0]) for dy in range(factors[1]) for dz in range(factors[2]))
    n = factors[0] * factors[1] * factors[2]
    return ((s + n // 2) // n).astype(np.uint8)


def mean_2x2x2(voxels):
    return mean_over(voxels, (2, 2, 2))


def rms(a, b):
    return float(np.sqrt(np.mean((a.astype(float) - b.astype(float)) ** 2)))
