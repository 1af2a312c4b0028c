"""Bad input through the HTTP API: a 4xx naming the field or object, nothing half-written, and the
server keeps serving."""

import numpy as np
import pytest
from PIL import Image

from conftest import with_

GOOD_ALIGNED = {"img": "ok.png", "transform": "[1 0 0 1 0 0]", "bbox": "[40, 30]",
                "dest": "errs", "dest-tmp": "errs-tmp", "slice": "1"}
GOOD_META = {"dest": "errs", "minz": 0, "maxz": 3, "shard-size": 1024, "bbox": "[40, 30]", "writeRaw": "True"}
GOOD_SHARD = {"dest": "errs", "source": "errs-tmp", "start": [0, 0, 0], "shard-size": 1024,
              "minz": 0, "maxz": 3, "bbox": "[40, 30]", "writeRaw": "True"}


@pytest.fixture(scope="module", autouse=True)
def raw_images(server):
    raw = server.data_dir / "errs" / "raw"
    raw.mkdir(parents=True)
    Image.fromarray(np.full((30, 40), 100, np.uint8)).save(raw / "ok.png")
    (raw / "corrupt.png").write_bytes(Image.new("L", (40, 30)).tobytes()[:50] + b"\x89PNG garbage")
    good = (raw / "ok.png").read_bytes()
    (raw / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(raw / "rgb.png")
    Image.fromarray(np.zeros((30, 40), np.uint16)).save(raw / "sixteen.png")


BAD_REQUESTS = [
    ("alignedslice", b'{"img": "ok.png", ', 400, "body: malformed JSON"),
    ("alignedslice", b"[1, 2]", 400, "body: expected a JSON object"),
    ("alignedslice", with_(GOOD_ALIGNED, img=None), 400, "img: missing"),
    ("alignedslice", with_(GOOD_ALIGNED, bbox="[40]"), 400, "bbox: expected 2 numbers, got 1"),
    ("alignedslice", with_(GOOD_ALIGNED, bbox="[forty, 30]"), 400, "bbox: expected a list of 2 numbers"),
    ("alignedslice", with_(GOOD_ALIGNED, slice="one"), 400, "slice: expected a non-negative integer"),
    ("alignedslice", with_(GOOD_ALIGNED, transform="[1 2 2 4 0 0]"), 400, "transform: "),
    ("alignedslice", with_(GOOD_ALIGNED, transform="[1 0 0 1 0]"), 400, "transform: expected 6 numbers, got 5"),
    ("alignedslice", with_(GOOD_ALIGNED, dest="../etc"), 400, "dest: invalid bucket name"),
    ("alignedslice", with_(GOOD_ALIGNED, img="../../x.png"), 400, "img: invalid object name"),
    ("alignedslice", with_(GOOD_ALIGNED, img="missing.png"), 404, "raw/missing.png in bucket errs: not found"),
    ("alignedslice", with_(GOOD_ALIGNED, img="corrupt.png"), 422, "raw/corrupt.png in bucket errs: "),
    ("alignedslice", with_(GOOD_ALIGNED, img="truncated.png"), 422, "raw/truncated.png in bucket errs: "),
    ("alignedslice", with_(GOOD_ALIGNED, img="rgb.png"), 422, "expected an 8-bit grayscale image"),
    ("alignedslice", with_(GOOD_ALIGNED, img="sixteen.png"), 422, "expected an 8-bit grayscale image"),
    ("ngmeta", with_(GOOD_META, shard_size=512), 400, "shard-size: must be 1024"),
    ("ngmeta", with_(GOOD_META, writeRaw="maybe"), 400, "writeRaw: expected true or false"),
    ("ngmeta", with_(GOOD_META, maxz=None), 400, "maxz: missing"),
    ("ngshard", with_(GOOD_SHARD, shard_size="2048"), 400, "shard-size: must be 1024"),
    ("ngshard", with_(GOOD_SHARD, start=[0, 5, 0]), 400, "start: block [0, 5, 0] lies outside"),
    ("ngshard", with_(GOOD_SHARD, dest="nometa"), 404, "neuroglancer/jpeg/info in bucket nometa: not found"),
]


@pytest.mark.parametrize("endpoint,body,status,message", BAD_REQUESTS,
                         ids=[f"{e}-{m.split(':')[0]}-{i}" for i, (e, _, _, m) in enumerate(BAD_REQUESTS)])
def test_bad_input_is_a_4xx_naming_the_field_or_object(server, endpoint, body, status, message):
    got_status, got_body = server.post(endpoint, body)
    assert got_status == status, got_body
    assert message in got_body
    # The server keeps serving after every error.
    assert server.get("/healthz") == (200, "ok\n")


def test_errors_come_as_json_when_asked(server):
    status, body = server.post("ngmeta", with_(GOOD_META, maxz=None), accept="application/json")
    assert status == 400
    assert body.startswith("{") and '"error":"bad-request"' in body.replace(" ", "") and "maxz: missing" in body


def test_failed_tasks_leave_nothing_half_written(server):
    for img in ("corrupt.png", "truncated.png", "rgb.png", "missing.png"):
        server.post("alignedslice", with_(GOOD_ALIGNED, img=img))
    assert not (server.data_dir / "errs" / "align").exists()
    assert not (server.data_dir / "errs-tmp").exists()
    # The tile pack cannot be written (its bucket is a file, not a folder), which only shows
    # after the slice was read and resampled: alignedslice checks both destinations before it
    # writes the aligned PNG, so it writes neither.
    (server.data_dir / "errs-blocked").write_bytes(b"a file where the bucket folder goes")
    status, body = server.post("alignedslice", with_(GOOD_ALIGNED, dest_tmp="errs-blocked"))
    assert status >= 400 and "1 in bucket errs-blocked" in body, body
    assert not (server.data_dir / "errs" / "align" / "ok.png").exists()
    # A missing tile pack fails ngshard before it writes anything.
    assert server.post("ngmeta", GOOD_META)[0] == 200
    status, body = server.post("ngshard", GOOD_SHARD)
    assert status == 404 and "0 in bucket errs-tmp: not found" in body, body
    assert not list((server.data_dir / "errs" / "neuroglancer").rglob("*.shard"))


def test_unknown_routes_and_methods(server):
    assert server.post("nosuch", {})[0] == 404
    assert server.get("/ngmeta")[0] == 405


def test_good_requests_succeed_after_errors(server):
    assert server.post("alignedslice", GOOD_ALIGNED) == (200, "success")
    for z in range(0, 4):
        assert server.post("alignedslice", with_(GOOD_ALIGNED, slice=z)) == (200, "success")
    assert server.post("ngmeta", GOOD_META) == (200, "success")
    assert server.post("ngshard", GOOD_SHARD) == (200, "success")
    assert sorted(p.name for p in (server.data_dir / "errs" / "neuroglancer" / "raw").iterdir()) == [
        "128.0x128.0x128.0", "16.0x16.0x16.0", "32.0x32.0x32.0", "64.0x64.0x64.0", "8.0x8.0x8.0", "info"]
