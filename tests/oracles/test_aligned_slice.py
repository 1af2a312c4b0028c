"""alignedslice against Pillow: the aligned PNG must equal Pillow's transform of the same input.

The original service called `Image.transform((w, h), Image.AFFINE, inverse, resample=BICUBIC,
fillcolor=0)`; Pillow itself is the oracle. Both sides get the inverse coefficients from the same
closed form (documented in src/resample/affine.rs), so the comparison is exact.
"""

import json

import numpy as np
import pytest
from PIL import Image

from expect import CASES, em_like, pillow_aligned, reassemble, read_tile_pack


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
