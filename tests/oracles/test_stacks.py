"""Stacks as labs have them: gaps in z, 16-bit slices, voxels flatter than cubes, volumes begun by
an older emwrite.

A gap (a lost section) is named before anything runs; filled when asked, the volume holds zeros
there and every other slice exactly as the aligned PNGs (read through tensorstore). A 16-bit stack
goes through its window — numpy's integer formula, then Pillow's transform — and must match that
pixel for pixel; `emwrite window` suggests the window numpy's percentiles give. Voxels of 8×8×40 nm
keep z at the scales where x and y are still finer than it, and each scale is checked against
numpy's means over its own window. A volume whose infos an older emwrite wrote (shards of one
minishard) is finished in that layout and reads back the same.
"""

import json
import math
import shutil

import numpy as np
from PIL import Image

import zarr
from cloudvolume import CloudVolume
from ome_zarr_models.v05.image import Image as OmeImage

from conftest import generate_stack, run_emwrite
from expect import pillow_aligned, rotation
from test_volume import check_volume, open_scale, read, scale_factors
from test_zarr import open_zarr3


def drop_slices(data, stack, zs, **fields):
    """Rewrites data/stack.json without the slices `zs`, with `fields` added."""
    stack = {**stack, **fields, "slices": [s for s in stack["slices"] if s["z"] not in zs]}
    (data / "stack.json").write_text(json.dumps(stack))
    return stack


def test_a_gap_is_refused_by_name_then_filled_with_black_when_asked(emwrite, make_stack, tmp_path):
    data = tmp_path / "data"
    stack = generate_stack(make_stack, data, width=200, height=150, margin=40, slices=10, minz=3)
    stack = drop_slices(data, stack, {5, 6, 9})

    refused = run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data), check=False)
    assert refused.returncode != 0
    assert ("slices: z 3-12 has 3 missing slices (z 5-6, 9); give --fill-missing "
            '("fill-missing": true in a JSON stack file) to fill them with black') in refused.stderr
    assert not (data / "emdata" / "align").exists(), "nothing runs before the gap is settled"
    # The flag is the other way to consent; plan then counts the slices that exist.
    planned = run_emwrite(emwrite, "plan", str(data / "stack.json"), "--data-dir", str(data), "--fill-missing")
    assert "7 slices" in planned.stdout

    stack = drop_slices(data, stack, set(), **{"fill-missing": True})
    run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data))
    volume = data / "emdata"
    run_emwrite(emwrite, "verify", str(volume))
    # Every existing slice exactly as aligned, zeros in the gap, every scale the mean of the one
    # below (check_volume builds scale 0 from the slices listed, so the gap is zero there).
    check_volume(volume, stack, ((0, 256), (0, 192), (0, 16)))
    for z in (5, 6, 9):
        for encoding in ("raw", "jpeg"):
            assert not read(volume, encoding, 0, (0, 256), (0, 192), (z, z + 1)).any(), (encoding, z)
    assert read(volume, "raw", 0, (0, 256), (0, 192), (4, 5)).any()


def window_numpy(values, low, high):
    """The window as docs/design.md states it: integer, rounded half up, clamped."""
    v = values.astype(np.int64)
    mapped = (510 * (v - low) + (high - low)) // (2 * (high - low))
    return np.clip(mapped, 0, 255).astype(np.uint8)


def sixteen_bit_slice(width, height, seed):
    """A detector-like 16-bit slice: a smooth field around 20,000 plus noise, over the whole range."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    field = 20_000 + 12_000 * np.sin(x / 9.0 + seed) * np.cos(y / 13.0) + rng.normal(0, 3_000, (height, width))
    return np.clip(field, 0, 65535).astype(np.uint16)


def test_a_sixteen_bit_stack_goes_through_its_window_exactly(emwrite, tmp_path):
    data = tmp_path / "data"
    raw = data / "lab" / "raw"
    raw.mkdir(parents=True)
    width, height, bbox = 160, 120, [180, 140]
    slices, values = [], {}
    for z, name in enumerate(["s0.png", "s1.tif", "s2.png"]):
        values[name] = sixteen_bit_slice(width, height, seed=z)
        Image.fromarray(values[name]).save(raw / name)
        slices.append({"z": z, "img": name, "transform": rotation(4.0 * z - 3, 80, 60, (10, 8), 1.01)})
    with Image.open(raw / "s1.tif") as tif, Image.open(raw / "s0.png") as png:
        assert tif.mode == png.mode == "I;16", "the inputs really are 16-bit"
    stack = {"dest": "lab", "dest-tmp": "lab-tmp", "bbox": bbox, "writeRaw": True, "slices": slices}
    (data / "stack.json").write_text(json.dumps(stack))

    # Without a window the slices are refused, naming the field to give.
    refused = run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data), check=False)
    assert refused.returncode != 0
    assert "give a window: [low, high]" in refused.stdout + refused.stderr

    # The suggestion: numpy's 0.5th and 99.5th percentiles (the smallest value with at least that
    # share of the pixels at or below it) of every sampled slice, all three here.
    suggested = run_emwrite(emwrite, "window", str(data / "stack.json"), "--data-dir", str(data))
    every = np.sort(np.concatenate([v.ravel() for v in values.values()]))
    low = int(every[math.ceil(every.size * 0.005) - 1])
    high = int(every[math.ceil(every.size * 0.995) - 1])
    assert f"--window {low},{high}" in suggested.stdout

    run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data), "--window", f"{low},{high}")
    for entry in slices:
        eight_bit = Image.fromarray(window_numpy(values[entry["img"]], low, high))
        expected = pillow_aligned(eight_bit, entry["transform"], bbox)
        ours = np.asarray(Image.open(data / "lab" / "align" / entry["img"]))
        differing = np.argwhere(ours != expected)
        assert len(differing) == 0, f"{entry['img']}: {len(differing)} pixels differ, first {differing[:5].tolist()}"
    check_volume(data / "lab", stack, ((0, 192), (0, 144), (0, 16)))


def test_flat_voxels_keep_z_until_x_and_y_pass_it(emwrite, make_stack, tmp_path):
    """`resolution: [8, 8, 40]`: x and y halve at every scale, z only once they would pass it
    (8×8×40 → 16×16×40 → 32×32×40 → 64×64×80 → 128×128×160); the info says so per scale, every
    scale is the rounded mean over its own window (2×2×1, then 2×2×2), blocks built as two halves
    own whole shards, and tensorstore, CloudVolume, zarr-python and the OME-Zarr transforms agree."""
    data = tmp_path / "data"
    stack = generate_stack(make_stack, data, width=200, height=150, margin=40, slices=6, minz=0)
    stack = drop_slices(data, stack, set(), resolution=[8, 8, 40], format="both")
    run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data), "--split", "always")
    volume = data / "emdata"
    run_emwrite(emwrite, "verify", str(volume))

    nm = [[8, 8, 40], [16, 16, 40], [32, 32, 40], [64, 64, 80], [128, 128, 160]]
    z_shifts = [0, 0, 0, 1, 2]
    info = json.loads((volume / "neuroglancer" / "raw" / "info").read_text())
    for k, scale in enumerate(info["scales"]):
        assert scale["resolution"] == nm[k], k
        assert scale["size"] == [1024 >> k, 1024 >> k, 1024 >> z_shifts[k]], k
        assert scale["chunk_sizes"] == [[64, 64, 64]], k
        # A block is 16 >> k chunks wide and 16 >> z deep: its shards are the largest cube of
        # chunks it holds whole (at most 8 per edge), each of minishards of 2×2×1 chunks (the
        # preshift is x0 and y0), and the shard bits hold the rest of the id of a 2^17-voxel frame.
        cube_bits = min(3, (16 >> k).bit_length() - 1)
        id_bits = 3 * 11 - 2 * k - z_shifts[k]
        preshift = min(2, 3 * cube_bits)
        sharding = scale["sharding"]
        bits = (sharding["preshift_bits"], sharding["minishard_bits"], sharding["shard_bits"])
        assert bits == (preshift, 3 * cube_bits - preshift, id_bits - 3 * cube_bits), k
        store = open_scale(volume, "raw", k)
        units = [(unit.multiplier, unit.base_unit) for unit in store.dimension_units[:3]]
        assert units == [(float(n), "nm") for n in nm[k]], k
    assert scale_factors(volume) == [(2, 2, 1), (2, 2, 1), (2, 2, 2), (2, 2, 2)]
    check_volume(volume, stack, ((0, 256), (0, 192), (0, 16)))

    # CloudVolume (igneous's reader) sees the same scales and voxels.
    for k in range(len(nm)):
        cv = CloudVolume(f"file://{volume / 'neuroglancer' / 'raw'}", mip=k, progress=False)
        assert [float(n) for n in cv.resolution] == nm[k], k
        assert [int(n) for n in cv.volume_size] == info["scales"][k]["size"], k
        raw = read(volume, "raw", k, (0, 64), (0, 64), (0, 64))
        assert np.array_equal(cv[0:64, 0:64, 0:64][..., 0], raw), f"cloudvolume scale {k}"

    # The OME-Zarr image: the same scales, the same voxels, and each array's transform its voxel
    # size (axes z, y, x).
    group = zarr.open_group(str(volume / "ome-zarr"), mode="r")
    datasets = OmeImage.from_zarr(group).attributes.ome.multiscales[0].datasets
    for k, dataset in enumerate(datasets):
        assert list(dataset.coordinateTransformations[0].scale) == [float(n) for n in reversed(nm[k])], k
        store = open_zarr3(volume, k)
        assert store.shape == tuple(reversed(info["scales"][k]["size"])), k
        raw = read(volume, "raw", k, (0, 64), (0, 64), (0, 64))  # [x, y, z]
        assert raw.any(), f"scale {k} holds data"
        got = store[:64, :64, :64].read().result()
        assert np.array_equal(got, np.transpose(raw, (2, 1, 0))), f"zarr3 scale {k}"


def test_a_volume_begun_without_minishards_is_finished_in_its_layout(emwrite, make_stack, tmp_path):
    """A volume whose infos an older emwrite wrote (each shard one minishard, its chunks in id
    order) keeps them on a rerun: ngmeta counts as finished, and the blocks still to build are
    written in that layout, as two halves and a merge, which verify and tensorstore read back."""
    data = tmp_path / "data"
    stack = generate_stack(make_stack, data, width=200, height=150, margin=40, slices=10, minz=3)
    run = ["pipeline", str(data / "stack.json"), "--data-dir", str(data)]
    run_emwrite(emwrite, *run)
    volume = data / stack["dest"] / "neuroglancer"
    earlier = {}
    for encoding in ("jpeg", "raw"):
        info = json.loads((volume / encoding / "info").read_text())
        assert info["scales"][0]["sharding"]["minishard_bits"] == 7
        for scale in info["scales"]:
            sharding = scale["sharding"]
            sharding["preshift_bits"] += sharding["minishard_bits"]
            sharding["minishard_bits"] = 0
        (volume / encoding / "info").write_text(json.dumps(info))
        earlier[encoding] = info
        # The blocks are still to build: no shard yet.
        for scale_dir in (volume / encoding).iterdir():
            if scale_dir.is_dir():
                shutil.rmtree(scale_dir)
    shutil.rmtree(volume / "blocks")

    rerun = run_emwrite(emwrite, *run, "--split", "always")
    assert "meta: 1 tasks already finished, skipped" in rerun.stderr, rerun.stderr
    for encoding in ("jpeg", "raw"):
        assert json.loads((volume / encoding / "info").read_text()) == earlier[encoding], encoding
    run_emwrite(emwrite, "verify", str(data / stack["dest"]))
    check_volume(data / stack["dest"], stack, ((0, 256), (0, 192), (0, 16)))
