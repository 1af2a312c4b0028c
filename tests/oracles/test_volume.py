"""The volume read back through tensorstore: every scale, raw exact, JPEG within a stated bound.

The expected scale 0 is built from the aligned PNGs (already checked against Pillow): voxel
(x, y, z) is pixel (x, y) of slice z for z in [minz, maxz], and 0 everywhere else. Each coarser
scale must be the 2×2×2 mean, rounded to nearest, of the one below (2×2×1 where it keeps z).
"""

import json

import numpy as np
import pytest
import tensorstore as ts
from PIL import Image

from conftest import generate_stack, run_emwrite
from expect import JPEG_RMS_BOUND, mean_over, rms


def open_scale(volume_dir, encoding, scale):
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": {"driver": "file", "path": str(volume_dir / "neuroglancer" / encoding)},
        "scale_index": scale,
    }
    return ts.open(spec, read=True).result()


def read(volume_dir, encoding, scale, x, y, z):
    store = open_scale(volume_dir, encoding, scale)
    return store[x[0]:x[1], y[0]:y[1], z[0]:z[1], 0].read().result()


def expected_scale0(volume_dir, stack, x, y, z):
    """The expected voxels of region x × y × z (half-open ranges), indexed [x, y, z]."""
    out = np.zeros((x[1] - x[0], y[1] - y[0], z[1] - z[0]), np.uint8)
    for entry in stack["slices"]:
        zi = entry["z"]
        if z[0] <= zi < z[1]:
            aligned = np.asarray(Image.open(volume_dir / "align" / entry["img"]))  # [y, x]
            frame = np.zeros((y[1], x[1]), np.uint8)
            h, w = min(aligned.shape[0], y[1]), min(aligned.shape[1], x[1])
            frame[:h, :w] = aligned[:h, :w]
            out[:, :, zi - z[0]] = frame[y[0]:y[1], x[0]:x[1]].T
    return out


def scale_factors(volume_dir):
    """Each scale's factor per axis over the one below, from the info's voxel sizes: 2, or 1
    where a scale keeps z."""
    info = json.loads((volume_dir / "neuroglancer" / "raw" / "info").read_text())
    res = [scale["resolution"] for scale in info["scales"]]
    return [tuple(round(b / a) for a, b in zip(lower, upper)) for lower, upper in zip(res, res[1:])]


def check_volume(volume_dir, stack, region):
    """Checks both encodings at all five scales over `region` (each edge a multiple of 16): scale
    0 is the aligned slices, and every coarser scale the rounded mean over its windows of the one
    below (2×2×2, or 2×2×1 where the info says it keeps z)."""
    x, y, z = region
    expected = expected_scale0(volume_dir, stack, x, y, z)
    raw0 = read(volume_dir, "raw", 0, x, y, z)
    assert np.array_equal(raw0, expected), "raw scale 0 differs from the aligned slices"
    jpeg0 = read(volume_dir, "jpeg", 0, x, y, z)
    assert rms(jpeg0, expected) < JPEG_RMS_BOUND
    below, scaled = raw0, region
    for scale, factors in enumerate(scale_factors(volume_dir), start=1):
        scaled = tuple((lo // f, hi // f) for (lo, hi), f in zip(scaled, factors))
        raw = read(volume_dir, "raw", scale, *scaled)
        assert np.array_equal(raw, mean_over(below, factors)), f"raw scale {scale} is not the mean of scale {scale - 1}"
        jpeg = read(volume_dir, "jpeg", scale, *scaled)
        assert rms(jpeg, raw) < JPEG_RMS_BOUND, f"jpeg scale {scale}"
        below = raw


def test_volume_spanning_two_blocks_in_x_with_minz_above_zero(emwrite, make_stack, tmp_path):
    data = tmp_path / "data"
    stack = generate_stack(make_stack, data, width=1100, height=250, margin=100, slices=12, minz=5)
    assert stack["bbox"] == [1200, 350]
    result = run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data))
    assert "precomputed://" in result.stdout
    volume = data / "emdata"

    store = open_scale(volume, "jpeg", 0)
    assert list(store.domain.shape) == [2048, 1024, 1024, 1]
    # The aligned content, the edge of the bbox and zeros around it, in both x blocks.
    check_volume(volume, stack, ((0, 1216), (0, 368), (0, 32)))
    # Zero beyond the bbox and beyond maxz, at scale 0 in both encodings.
    for encoding in ("raw", "jpeg"):
        assert not read(volume, encoding, 0, (1200, 2048), (0, 1024), (0, 64)).any()
        assert not read(volume, encoding, 0, (0, 2048), (350, 1024), (0, 64)).any()
        assert not read(volume, encoding, 0, (0, 2048), (0, 1024), (17, 1024)).any()
        assert not read(volume, encoding, 0, (0, 2048), (0, 1024), (0, 5)).any()


def test_slices_across_a_z_block_boundary_stay_in_their_block(emwrite, make_stack, tmp_path):
    """The original read 1024 slices from max(block start, minz), running into the next block."""
    data = tmp_path / "data"
    stack = generate_stack(make_stack, data, width=200, height=150, margin=40, slices=8, minz=1020)
    run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data))
    volume = data / "emdata"
    assert list(open_scale(volume, "raw", 0).domain.shape) == [1024, 1024, 2048, 1]
    check_volume(volume, stack, ((0, 256), (0, 192), (1008, 1040)))
    for encoding in ("raw", "jpeg"):
        assert not read(volume, encoding, 0, (0, 256), (0, 256), (0, 1020)).any()
        assert not read(volume, encoding, 0, (0, 256), (0, 256), (1028, 2048)).any()
