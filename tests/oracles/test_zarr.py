"""OME-Zarr output (#19): the same voxels as the raw precomputed volume, read by other readers.

`pipeline` with format "both" writes the precomputed volumes and the OME-Zarr 0.5 image from one
pyramid. Every scale read through tensorstore's `zarr3` driver and through zarr-python must equal
the raw precomputed scale exactly (axes z, y, x there, x, y, z in precomputed); the metadata must
validate as an NGFF 0.5 image (ome-zarr-models' models of the spec); and each block writes whole
shards only, one per precomputed shard. With format "ome-zarr" alone nothing precomputed is
written but the block manifests, and the shards are the same bytes. Neuroglancer renders the
image: tests/system/test_view.py.
"""

import json

import numpy as np
import tensorstore as ts
import zarr
from ome_zarr_models.v05.image import Image as OmeImage

from conftest import generate_stack, run_emwrite
from test_volume import read

SCALES = 5


def open_zarr3(volume, scale):
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(volume / "ome-zarr" / str(scale))}}
    return ts.open(spec, read=True).result()


def shard_files(volume):
    return sorted(str(p.relative_to(volume / "ome-zarr")) for p in (volume / "ome-zarr").rglob("c/*/*/*"))


def write_stack(data, stack, **fields):
    stack = {**stack, **fields}
    (data / "stack.json").write_text(json.dumps(stack))
    return stack


def test_ome_zarr_scales_equal_the_raw_precomputed_volume(emwrite, make_stack, tmp_path):
    data = tmp_path / "data"
    stack = generate_stack(make_stack, data, width=200, height=150, margin=40, slices=10, minz=3)
    write_stack(data, stack, writeRaw=True, format="both")
    run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data))
    volume = data / "emdata"
    run_emwrite(emwrite, "verify", str(volume))

    group = zarr.open_group(str(volume / "ome-zarr"), mode="r")
    image = OmeImage.from_zarr(group)  # validates the group's and every array's metadata
    multiscale = image.attributes.ome.multiscales[0]
    assert [d.path for d in multiscale.datasets] == [str(k) for k in range(SCALES)]
    assert [a.name for a in multiscale.axes] == ["z", "y", "x"]
    for k, dataset in enumerate(multiscale.datasets):
        assert list(dataset.coordinateTransformations[0].scale) == [8.0 * 2**k] * 3

    for k in range(SCALES):
        store = open_zarr3(volume, k)
        assert store.shape == (1024 >> k,) * 3 and store.dtype == ts.uint8
        # The whole region the stack's data can reach (x < 256, y < 192, z < 16 at scale 0),
        # with zeros around it, at least one inner chunk.
        edge = max(64, 256 >> k)
        raw = read(volume, "raw", k, (0, edge), (0, edge), (0, edge))  # [x, y, z]
        want = np.transpose(raw, (2, 1, 0))  # [z, y, x]
        assert want.any(), f"scale {k} holds data"
        got = store[:edge, :edge, :edge].read().result()
        assert np.array_equal(got, want), f"tensorstore zarr3 scale {k}"
        array = group[str(k)]
        assert array.shape == store.shape
        assert np.array_equal(array[:edge, :edge, :edge], want), f"zarr-python scale {k}"

    # One block, its data in the first 512³: one shard per scale, each whole.
    assert shard_files(volume) == [f"{k}/c/0/0/0" for k in range(SCALES)]
    manifest = json.loads((volume / "neuroglancer" / "blocks" / "0_0_0.json").read_text())
    listed = {o["name"]: o["bytes"] for o in manifest["objects"]}
    for name in shard_files(volume):
        assert listed[f"ome-zarr/{name}"] == (volume / "ome-zarr" / name).stat().st_size

    # OME-Zarr alone: the same shard files, and no precomputed volume.
    alone = tmp_path / "alone"
    generate_stack(make_stack, alone, width=200, height=150, margin=40, slices=10, minz=3)
    run_emwrite(emwrite, "pipeline", str(alone / "stack.json"), "--data-dir", str(alone), "--format", "ome-zarr")
    only = alone / "emdata"
    run_emwrite(emwrite, "verify", str(only))
    assert not (only / "neuroglancer" / "jpeg").exists() and not (only / "neuroglancer" / "raw").exists()
    assert shard_files(only) == shard_files(volume)
    for name in shard_files(volume):
        assert (only / "ome-zarr" / name).read_bytes() == (volume / "ome-zarr" / name).read_bytes(), name

    # verify names a damaged shard (its index checksum) and a lost one.
    damaged = only / "ome-zarr" / "2" / "c" / "0" / "0" / "0"
    damaged.write_bytes(damaged.read_bytes()[:-1] + bytes([damaged.read_bytes()[-1] ^ 1]))
    (only / "ome-zarr" / "4" / "c" / "0" / "0" / "0").unlink()
    failed = run_emwrite(emwrite, "verify", str(only), check=False)
    assert failed.returncode != 0
    said = failed.stdout + failed.stderr
    assert "ome-zarr/2/c/0/0/0: zarr shard: index checksum mismatch" in said, said
    assert "ome-zarr/4/c/0/0/0: missing" in said, said


def test_a_bad_format_is_refused_by_name(emwrite, make_stack, tmp_path):
    data = tmp_path / "data"
    stack = generate_stack(make_stack, data, width=100, height=80, margin=10, slices=2)
    write_stack(data, stack, format="n5")
    refused = run_emwrite(emwrite, "pipeline", str(data / "stack.json"), "--data-dir", str(data), check=False)
    assert refused.returncode != 0
    assert "format" in refused.stderr and "ome-zarr" in refused.stderr, refused.stderr

