"""alignedslice against Pillow: the aligned PNG must equal Pillow's transform of the same input.

The original service called `Image.transform((w, h), Image.AFFINE, inverse, resample=BICUBIC,
fillcolor=0)`; Pillow itself is the oracle. Both sides get the inverse coefficients from the same
closed form (documented in src/resample/affine.rs), so the comparison is exact.
"""

import io
import json
import math
import struct

import numpy as np
import pytest
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


@pytest.mark.parametrize("case", sorted(CASES))
def test_aligned_slice_equals_pillow(server, case):
    (w, h), transform, bbox = CASES[case]
    source = em_like(w, h, seed=len(case))
    raw_dir = server.data_dir / "lab" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(source).save(raw_dir / f"{case}.png")
    status, body = server.post("alignedslice", {
        "img": f"{case}.png", "transform": json.dumps(transform), "bbox": f"[{bbox[0]}, {bbox[1]}]",
        "dest": "lab", "dest-tmp": "lab-tmp", "slice": 7, "shard-size": 64,
    })
    assert (status, body) == (200, "success")

    ours = np.asarray(Image.open(server.data_dir / "lab" / "align" / f"{case}.png"))
    expected = pillow_aligned(Image.fromarray(source), transform, bbox)
    assert ours.shape == expected.shape == (bbox[1], bbox[0])
    differing = np.argwhere(ours != expected)
    assert len(differing) == 0, f"{len(differing)} pixels differ, first at {differing[:5].tolist()}"

    width, height, tile, tiles = read_tile_pack((server.data_dir / "lab-tmp" / "7").read_bytes())
    assert (width, height, tile) == (bbox[0], bbox[1], 64)
    assert np.array_equal(reassemble(width, height, tile, tiles), ours)


def test_numpy_inverse_differs_at_most_by_one_grey_level(server):
    """The original may have inverted with numpy; a different float path moves at most ±1."""
    (w, h), transform, bbox = CASES["rotation"]
    source = Image.fromarray(em_like(w, h, seed=len("rotation")))
    ours = np.asarray(Image.open(server.data_dir / "lab" / "align" / "rotation.png")).astype(int)
    m = np.array([[transform[0], transform[2], transform[4]], [transform[1], transform[3], transform[5]], [0, 0, 1]])
    inv = np.linalg.inv(m)
    numpy_version = np.asarray(source.transform(tuple(bbox), Image.AFFINE, tuple(inv[:2].ravel()),
                                                resample=Image.BICUBIC, fillcolor=0)).astype(int)
    assert np.abs(ours - numpy_version).max() <= 1


def test_stack_slice_equals_pillow(server, make_stack):
    """A slice of the generated example stack, with its real transform."""
    from conftest import generate_stack
    stack = generate_stack(make_stack, server.data_dir, dest="stack", dest_tmp="stack-tmp",
                           width=400, height=300, slices=2, minz=10)
    entry = stack["slices"][1]
    status, body = server.post("alignedslice", {
        "img": entry["img"], "transform": str(entry["transform"]), "bbox": str(stack["bbox"]),
        "dest": "stack", "dest-tmp": "stack-tmp", "slice": str(entry["z"]),
    })
    assert (status, body) == (200, "success")
    source = Image.open(server.data_dir / "stack" / "raw" / entry["img"])
    expected = pillow_aligned(source, entry["transform"], stack["bbox"])
    ours = np.asarray(Image.open(server.data_dir / "stack" / "align" / entry["img"]))
    assert np.array_equal(ours, expected)
