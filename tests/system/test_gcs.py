"""Google Cloud Storage through the component's wasi:http imports, against fake-gcs-server.

The same checks as on local disk: the aligned slice equals Pillow's, the tile pack reassembles to
it, the volume reads back through tensorstore's own gcs driver at every scale; and faults on the
way (429, 503, resets, lost responses) change nothing in the output.
"""

import io
import json

import numpy as np
import pytest
import tensorstore as ts
from PIL import Image

from conftest import Server, free_port, generate_stack, run_emwrite
from expect import CASES, JPEG_RMS_BOUND, em_like, mean_2x2x2, pillow_aligned, reassemble, read_tile_pack, rms
from gcs import RETRY_BASE_MS, FaultyProxy

@pytest.fixture(scope="module")
def gcs_server(emwrite, emulator, tmp_path_factory):
    for bucket in ("lab", "lab-tmp"):
        emulator.create_bucket(bucket)
    data_dir = tmp_path_factory.mktemp("gcs-serve") / "data"
    data_dir.mkdir()
    s = Server(emwrite, data_dir, "--store", "gcs",
               env={"STORAGE_EMULATOR_HOST": emulator.url, "EMWRITE_RETRY_BASE_MS": RETRY_BASE_MS})
    yield s
    s.stop()


def test_aligned_slice_and_tile_pack_round_trip_through_gcs(gcs_server, emulator):
    (w, h), transform, bbox = CASES["rotation"]
    source = em_like(w, h, seed=3)
    buffer = io.BytesIO()
    Image.fromarray(source).save(buffer, format="PNG")
    emulator.upload("lab", "raw/sub dir/rot+1.png", buffer.getvalue(), "image/png")
    # A bare bucket goes to GCS because the server runs with --store gcs; gs:// always does.
    status, body = gcs_server.post("alignedslice", {
        "img": "sub dir/rot+1.png", "transform": json.dumps(transform), "bbox": json.dumps(bbox),
        "dest": "lab", "dest-tmp": "gs://lab-tmp/packs/run1", "slice": 12, "shard-size": 128,
    })
    assert (status, body) == (200, "success")
    aligned = emulator.download("lab", "align/sub dir/rot+1.png")
    assert emulator.metadata("lab", "align/sub dir/rot+1.png")["contentType"] == "image/png"
    ours = np.asarray(Image.open(io.BytesIO(aligned)))
    assert np.array_equal(ours, pillow_aligned(Image.fromarray(source), transform, bbox))
    pack = emulator.download("lab-tmp", "packs/run1/12")
    width, height, tile, tiles = read_tile_pack(pack)
    assert (width, height, tile) == (bbox[0], bbox[1], 128)
    assert np.array_equal(reassemble(width, height, tile, tiles), ours)


def test_missing_bucket_and_object_are_404_naming_them(gcs_server):
    request = {"img": "nothere.png", "transform": "[1 0 0 1 0 0]", "bbox": "[10, 10]",
               "dest": "lab", "dest-tmp": "lab-tmp", "slice": 0}
    status, body = gcs_server.post("alignedslice", request)
    assert status == 404 and "raw/nothere.png" in body and "lab" in body, body
    status, body = gcs_server.post("alignedslice", {**request, "dest": "gs://no-such-bucket"})
    assert status == 404 and "no-such-bucket" in body, body
    status, body = gcs_server.post("ngshard", {"dest": "gs://no-such-bucket", "source": "lab-tmp",
                                              "start": [0, 0, 0], "minz": 0, "maxz": 0, "bbox": "[10, 10]"})
    assert status == 404 and "no-such-bucket" in body, body


def upload_stack(emulator, stack_dir, stack, bucket, tmp_bucket):
    emulator.create_bucket(bucket)
    emulator.create_bucket(tmp_bucket)
    for entry in stack["slices"]:
        raw = (stack_dir / stack["dest"] / "raw" / entry["img"]).read_bytes()
        emulator.upload(bucket, f"raw/{entry['img']}", raw, "image/png")
    gcs_stack = {**stack, "dest": f"gs://{bucket}", "dest-tmp": f"gs://{tmp_bucket}"}
    path = stack_dir / f"stack-{bucket}.json"
    path.write_text(json.dumps(gcs_stack))
    return path


def read_gcs(bucket, encoding, scale, x, y, z):
    spec = {"driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "gcs", "bucket": bucket, "path": f"neuroglancer/{encoding}/"},
            "scale_index": scale}
    store = ts.open(spec, read=True).result()
    return store[x[0]:x[1], y[0]:y[1], z[0]:z[1], 0].read().result()


def check_gcs_volume(emulator, bucket, stack, region):
    x, y, z = region
    expected = np.zeros((x[1] - x[0], y[1] - y[0], z[1] - z[0]), np.uint8)
    for entry in stack["slices"]:
        aligned = np.asarray(Image.open(io.BytesIO(emulator.download(bucket, f"align/{entry['img']}"))))
        frame = np.zeros((y[1], x[1]), np.uint8)
        h, w = min(aligned.shape[0], y[1]), min(aligned.shape[1], x[1])
        frame[:h, :w] = aligned[:h, :w]
        expected[:, :, entry["z"] - z[0]] = frame[y[0]:y[1], x[0]:x[1]].T
    raw = read_gcs(bucket, "raw", 0, x, y, z)
    assert np.array_equal(raw, expected)
    assert rms(read_gcs(bucket, "jpeg", 0, x, y, z), expected) < JPEG_RMS_BOUND
    below = raw
    for scale in range(1, 5):
        scaled = tuple((lo >> scale, hi >> scale) for lo, hi in region)
        raw = read_gcs(bucket, "raw", scale, *scaled)
        assert np.array_equal(raw, mean_2x2x2(below)), f"raw scale {scale}"
        assert rms(read_gcs(bucket, "jpeg", scale, *scaled), raw) < JPEG_RMS_BOUND
        below = raw
    assert not read_gcs(bucket, "raw", 0, (0, 1024), (0, 1024), (z[1], 1024)).any()


def test_pipeline_on_gcs_reads_back_through_tensorstore(emwrite, make_stack, emulator, tmp_path):
    stack = generate_stack(make_stack, tmp_path, width=1100, height=200, margin=100, slices=6, minz=2)
    stack_file = upload_stack(emulator, tmp_path, stack, "vol", "vol-tmp")
    env = {"STORAGE_EMULATOR_HOST": emulator.url, "EMWRITE_RETRY_BASE_MS": RETRY_BASE_MS}
    result = run_emwrite(emwrite, "pipeline", str(stack_file), "--data-dir", str(tmp_path / "unused"), env=env)
    assert "precomputed://gs://vol/neuroglancer/jpeg" in result.stdout
    check_gcs_volume(emulator, "vol", stack, ((0, 1216), (0, 304), (0, 16)))


def test_faults_change_nothing(emwrite, make_stack, emulator, tmp_path):
    """Through a proxy that fails about a third of requests, every task still succeeds and writes
    exactly what a clean run writes."""
    stack = generate_stack(make_stack, tmp_path, width=1100, height=150, margin=60, slices=5, minz=1)
    clean_file = upload_stack(emulator, tmp_path, stack, "clean", "clean-tmp")
    faulty_file = upload_stack(emulator, tmp_path, stack, "faulty", "faulty-tmp")
    env = {"STORAGE_EMULATOR_HOST": emulator.url, "EMWRITE_RETRY_BASE_MS": RETRY_BASE_MS}
    run_emwrite(emwrite, "pipeline", str(clean_file), "--data-dir", str(tmp_path / "unused"), env=env)

    proxy = FaultyProxy(free_port(), emulator.port)
    try:
        faulty_env = {**env, "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{proxy.port}"}
        run_emwrite(emwrite, "pipeline", str(faulty_file), "--data-dir", str(tmp_path / "unused"), env=faulty_env)
        # One task through the HTTP API too, to see the retries it reports.
        server = Server(emwrite, tmp_path / "unused", "--store", "gcs", env=faulty_env)
        try:
            status, body = server.post("ngmeta", {"dest": "faulty", "minz": 1, "maxz": 5, "bbox": stack["bbox"],
                                                  "writeRaw": True}, accept="application/json")
        finally:
            server.stop()
    finally:
        proxy.stop()
    assert proxy.faults_injected > 10
    assert status == 200, body
    assert json.loads(body)["status"] == "success"

    clean, faulty = emulator.list("clean"), emulator.list("faulty")
    assert clean == faulty and any(name.endswith(".shard") for name in clean)
    for name in clean:
        assert emulator.download("clean", name) == emulator.download("faulty", name), name
    for name in emulator.list("clean-tmp"):
        assert emulator.download("clean-tmp", name) == emulator.download("faulty-tmp", name), name
