"""A corpus of bad input: every request gets a 4xx naming the field or object, the server keeps
serving, and nothing is written.

Each case is one request to a live `emwrite serve` (or one stack file for `emwrite pipeline`).
The data directory holds good inputs beside bad ones (corrupt, truncated, colour, 16-bit, empty
and bomb images; folders and files where the other is expected; links out of the directory; tile
packs with bad offsets or cut short), so that a case fails for its one defect only.
"""

import json
import os
import socket
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import run_emwrite, with_

W, H = 40, 30
ALIGNED = {"img": "ok.png", "transform": "[1 0 0 1 0 0]", "bbox": f"[{W}, {H}]",
           "dest": "lab", "dest-tmp": "lab-tmp", "slice": "1"}
META = {"dest": "lab", "minz": 0, "maxz": 3, "shard-size": 1024, "bbox": f"[{W}, {H}]", "writeRaw": "True"}
SHARD = {"dest": "lab", "source": "lab-tmp", "start": [0, 0, 0], "shard-size": 1024,
         "minz": 0, "maxz": 3, "bbox": f"[{W}, {H}]", "writeRaw": "True"}


def png_bytes(array) -> bytes:
    from io import BytesIO
    out = BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid-looking 8-bit grayscale PNG header for a huge image, with a tiny IDAT: what a
    decoder must refuse by its declared size, not by allocating it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def tile_pack(tiles: list[bytes], width: int = W, height: int = H, tile_size: int = 1024) -> bytes:
    """The original's tile pack: width, height, tile size, n+1 absolute offsets, the tiles."""
    offsets = [24 + 8 * (len(tiles) + 1)]
    for tile in tiles:
        offsets.append(offsets[-1] + len(tile))
    return struct.pack(f"<3Q{len(offsets)}Q", width, height, tile_size, *offsets) + b"".join(tiles)


@pytest.fixture(scope="module", autouse=True)
def inputs(server):
    data = server.data_dir
    raw = data / "lab" / "raw"
    raw.mkdir(parents=True)
    good = png_bytes(np.full((H, W), 100, np.uint8))
    (raw / "ok.png").write_bytes(good)
    (raw / "corrupt.png").write_bytes(good[:40] + b"\x00garbage" * 8)
    (raw / "truncated.png").write_bytes(good[: len(good) // 2])
    (raw / "rgb.png").write_bytes(png_bytes(np.zeros((H, W, 3), np.uint8)))
    (raw / "sixteen.png").write_bytes(png_bytes(np.zeros((H, W), np.uint16)))
    (raw / "empty.png").write_bytes(b"")
    (raw / "text.png").write_bytes(b"this is not an image\n")
    (raw / "bomb.png").write_bytes(bomb_png(100_000, 100_000))
    (raw / "folder.png").mkdir()
    (raw / "file").write_bytes(b"a file, not a folder")
    outside = data.parent / "outside.png"
    outside.write_bytes(good)
    (raw / "link-out.png").symlink_to(outside)
    (raw / "link-etc.png").symlink_to("/etc/hostname")
    (data / "blocked").write_bytes(b"a file where a bucket folder goes")

    # Tile packs for ngshard: slice 0 is good in every source; each bad source breaks slice 0.
    # Every slice of the block's range breaks the same way, so whichever read fails first, the
    # error is the one the case is about.
    tile = png_bytes(np.full((H, W), 50, np.uint8))
    for source, pack in {
        "lab-tmp": tile_pack([tile]),
        "tp-offsets": tile_pack([tile])[:24] + struct.pack("<2Q", 900, 100) + tile,
        "tp-huge": tile_pack([tile])[:24] + struct.pack("<2Q", 40, 1 << 40) + tile,
        "tp-truncated": tile_pack([tile])[:-10],
        "tp-header": tile_pack([tile], width=W + 1),
        "tp-tilesize": tile_pack([tile], tile_size=512),
        "tp-notpng": tile_pack([b"not a png at all"]),
        "tp-wrongsize": tile_pack([png_bytes(np.full((H - 1, W), 50, np.uint8))]),
        "tp-short": b"\x01\x02\x03",
        "tp-empty": b"",
    }.items():
        (data / source).mkdir(exist_ok=True)
        for z in range(META["maxz"] + 1):
            (data / source / str(z)).write_bytes(pack)
    for z in range(META["maxz"] + 1):
        (data / "tp-folder" / str(z)).mkdir(parents=True)
    # ngmeta's info for every destination that ngshard cases read.
    assert server.post("ngmeta", META)[0] == 200


def snapshot(root):
    """Every file below `root` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


NUL = "\u0000"

CASES = [
    # --- the body itself -------------------------------------------------------------------
    ("alignedslice", b"", 400, "body: malformed JSON"),
    ("alignedslice", b"{", 400, "body: malformed JSON"),
    ("alignedslice", b'{"img": "ok.png", ', 400, "body: malformed JSON"),
    ("alignedslice", b'{"img": "ok.png"} trailing', 400, "body: malformed JSON"),
    ("alignedslice", b"\xff\xfe{}", 400, "body: malformed JSON"),
    ("alignedslice", b"[" * 1000 + b"]" * 1000, 400, "body: malformed JSON"),
    ("ngmeta", b"null", 400, "body: expected a JSON object, got null"),
    ("ngmeta", b"[1, 2]", 400, "body: expected a JSON object, got an array"),
    ("ngmeta", b'"dest"', 400, "body: expected a JSON object, got a string"),
    ("ngshard", b"42", 400, "body: expected a JSON object, got a number"),
    ("ngshard", b"true", 400, "body: expected a JSON object, got a boolean"),
    ("alignedslice", json.dumps(ALIGNED)[:-5].encode(), 400, "body: malformed JSON"),
    ("ngmeta", json.dumps(META)[:25].encode(), 400, "body: malformed JSON"),
    ("ngshard", json.dumps(SHARD)[:-1].encode(), 400, "body: malformed JSON"),
    # --- missing fields ---------------------------------------------------------------------
    *[("alignedslice", with_(ALIGNED, **{f: None}), 400, f"{f.replace('_', '-')}: missing")
      for f in ["img", "transform", "bbox", "dest", "dest_tmp", "slice"]],
    *[("ngmeta", with_(META, **{f: None}), 400, f"{f}: missing") for f in ["dest", "minz", "maxz", "bbox"]],
    *[("ngshard", with_(SHARD, **{f: None}), 400, f"{f}: missing")
      for f in ["dest", "source", "start", "minz", "maxz", "bbox"]],
    ("ngmeta", with_(META, maxz=None, minz=None), 400, ": missing"),
    ("alignedslice", with_(ALIGNED, img=None) | {"img": None}, 400, "img: missing"),
    # --- wrong types ------------------------------------------------------------------------
    ("alignedslice", with_(ALIGNED, img=5), 400, "img: expected a string, got a number"),
    ("alignedslice", with_(ALIGNED, img=["ok.png"]), 400, "img: expected a string, got an array"),
    ("alignedslice", with_(ALIGNED, dest={"bucket": "lab"}), 400, "dest: expected a string, got an object"),
    ("alignedslice", with_(ALIGNED, dest_tmp=True), 400, "dest-tmp: expected a string, got a boolean"),
    ("alignedslice", with_(ALIGNED, transform={"a": 1}), 400, "transform: expected a list of 6 numbers"),
    ("alignedslice", with_(ALIGNED, transform=True), 400, "transform: expected a list of 6 numbers"),
    ("alignedslice", with_(ALIGNED, transform="[1 0 0 1 0 x]"), 400, "transform: expected a list of 6 numbers"),
    ("alignedslice", with_(ALIGNED, transform=[1, 0, 0, 1, 0, [0]]), 400, "transform: expected a list of 6 numbers"),
    ("alignedslice", with_(ALIGNED, bbox=40), 400, "bbox: expected a list of 2 numbers"),
    ("alignedslice", with_(ALIGNED, bbox="[40, 30, 1]"), 400, "bbox: expected 2 numbers, got 3"),
    ("alignedslice", with_(ALIGNED, bbox=[]), 400, "bbox: expected 2 numbers, got 0"),
    ("alignedslice", with_(ALIGNED, slice="one"), 400, "slice: expected a non-negative integer"),
    ("alignedslice", with_(ALIGNED, slice=[1]), 400, "slice: expected a non-negative integer"),
    ("alignedslice", with_(ALIGNED, slice=1.5), 400, "slice: expected a non-negative integer"),
    ("ngmeta", with_(META, writeRaw="maybe"), 400, "writeRaw: expected true or false"),
    ("ngmeta", with_(META, writeRaw=1), 400, "writeRaw: expected true or false"),
    ("ngmeta", with_(META, minz="zero"), 400, "minz: expected a non-negative integer"),
    ("ngmeta", with_(META, resolution="fine"), 400, "resolution: expected a number"),
    ("ngshard", with_(SHARD, start="[0 0]"), 400, "start: expected 3 numbers, got 2"),
    ("ngshard", with_(SHARD, start={"x": 0}), 400, "start: expected a list of 3 numbers"),
    ("ngshard", with_(SHARD, jpeg_quality="high"), 400, "jpeg-quality: expected a non-negative integer"),
    # --- numbers out of range ---------------------------------------------------------------
    ("alignedslice", with_(ALIGNED, slice=-1), 400, "slice: expected a non-negative integer"),
    ("alignedslice", with_(ALIGNED, slice=1e30), 400, "slice: "),
    ("alignedslice", with_(ALIGNED, slice="NaN"), 400, "slice: expected a non-negative integer"),
    ("alignedslice", with_(ALIGNED, slice="inf"), 400, "slice: expected a non-negative integer"),
    ("alignedslice", with_(ALIGNED, bbox="[-40, 30]"), 400, "bbox: expected non-negative integers"),
    ("alignedslice", with_(ALIGNED, bbox="[40.5, 30]"), 400, "bbox: expected non-negative integers"),
    ("alignedslice", with_(ALIGNED, bbox="[0, 30]"), 400, "bbox: width and height must be at least 1"),
    ("alignedslice", with_(ALIGNED, bbox="[40, 0]"), 400, "bbox: width and height must be at least 1"),
    ("alignedslice", with_(ALIGNED, bbox="[200000, 10]"), 413, "bbox: [200000, 10] exceeds the limit"),
    ("alignedslice", with_(ALIGNED, bbox="[100000, 100000]"), 413, "bbox: [100000, 100000] exceeds the limit"),
    ("alignedslice", with_(ALIGNED, bbox="[1e12, 10]"), 400, "bbox: "),
    ("alignedslice", with_(ALIGNED, shard_size=0), 400, "shard-size: must be between 16 and 16384"),
    ("alignedslice", with_(ALIGNED, shard_size=1 << 20), 400, "shard-size: must be between 16 and 16384"),
    ("alignedslice", with_(ALIGNED, transform="[NaN 0 0 1 0 0]"), 400, "transform: expected a list of 6 numbers"),
    ("alignedslice", with_(ALIGNED, transform="[1 0 0 1 inf 0]"), 400, "transform: expected a list of 6 numbers"),
    ("alignedslice", with_(ALIGNED, transform="[1 0 0 1 0 -Infinity]"), 400, "transform: "),
    ("alignedslice", with_(ALIGNED, transform=[1e308, 0, 0, 1e308, 0, 0]), 400, "transform: "),
    ("ngmeta", with_(META, minz=9, maxz=2), 400, "maxz: 2 is below minz 9"),
    ("ngmeta", with_(META, maxz=-3), 400, "maxz: expected a non-negative integer"),
    ("ngmeta", with_(META, maxz=1 << 40), 400, "maxz: "),
    ("ngmeta", with_(META, resolution=0), 400, "resolution: must be a positive number"),
    ("ngmeta", with_(META, resolution=-8), 400, "resolution: must be a positive number"),
    ("ngmeta", with_(META, resolution="NaN"), 400, "resolution: expected a number"),
    ("ngmeta", with_(META, bbox="[0, 0]"), 400, "bbox: width and height must be at least 1"),
    ("ngmeta", with_(META, bbox="[131073, 8]"), 413, "bbox: [131073, 8] exceeds the limit"),
    ("ngmeta", with_(META, shard_size=512), 400, "shard-size: must be 1024"),
    ("ngshard", with_(SHARD, minz=5, maxz=4), 400, "maxz: 4 is below minz 5"),
    ("ngshard", with_(SHARD, jpeg_quality=0), 400, "jpeg-quality: must be between 1 and 100"),
    ("ngshard", with_(SHARD, jpeg_quality=101), 400, "jpeg-quality: must be between 1 and 100"),
    ("ngshard", with_(SHARD, jpeg_quality=1000), 400, "jpeg-quality: must be between 1 and 100"),
    ("ngshard", with_(SHARD, shard_size="2048"), 400, "shard-size: must be 1024"),
    # --- degenerate transforms --------------------------------------------------------------
    ("alignedslice", with_(ALIGNED, transform="[0 0 0 0 0 0]"), 400, "transform: "),
    ("alignedslice", with_(ALIGNED, transform="[1 2 2 4 0 0]"), 400, "transform: "),
    ("alignedslice", with_(ALIGNED, transform="[1 1 1 1 5 5]"), 400, "transform: "),
    ("alignedslice", with_(ALIGNED, transform="[1e-300 0 0 1e-300 0 0]"), 400, "transform: "),
    ("alignedslice", with_(ALIGNED, transform="[1 0 0 1 0 0 0]"), 400, "transform: expected 6 numbers, got 7"),
    # --- the block and the volume -----------------------------------------------------------
    ("ngshard", with_(SHARD, start=[1, 0, 0]), 400, "start: block [1, 0, 0] lies outside"),
    ("ngshard", with_(SHARD, start=[0, 1, 0]), 400, "start: block [0, 1, 0] lies outside"),
    ("ngshard", with_(SHARD, start=[0, 0, 1]), 400, "start: block [0, 0, 1] lies outside"),
    ("ngshard", with_(SHARD, start=[4294967295, 0, 0]), 400, "start: block [4294967295, 0, 0] lies outside"),
    ("ngshard", with_(SHARD, start=[-1, 0, 0]), 400, "start: expected non-negative integers"),
    ("ngshard", with_(SHARD, bbox="[2000, 30]"), 400, "bbox: the volume's info"),
    ("ngshard", with_(SHARD, maxz=2000), 400, "bbox: the volume's info"),
    ("ngshard", with_(SHARD, dest="nometa"), 404, "neuroglancer/jpeg/info in bucket nometa: not found"),
    # --- names and locations ----------------------------------------------------------------
    ("alignedslice", with_(ALIGNED, img="../../x.png"), 400, "img: invalid object name"),
    ("alignedslice", with_(ALIGNED, img="/etc/passwd"), 400, "img: invalid object name"),
    ("alignedslice", with_(ALIGNED, img="a//b.png"), 400, "img: invalid object name"),
    ("alignedslice", with_(ALIGNED, img="./ok.png"), 400, "img: invalid object name"),
    ("alignedslice", with_(ALIGNED, img=""), 400, "img: invalid object name"),
    ("alignedslice", with_(ALIGNED, img=f"ok{NUL}.png"), 400, "img: invalid object name"),
    ("alignedslice", with_(ALIGNED, img="ok\\..\\x.png"), 400, "img: invalid object name"),
    ("alignedslice", with_(ALIGNED, img="x" * 1100), 400, "img: invalid object name"),
    ("alignedslice", with_(ALIGNED, img="%2E%2E%2Fx.png"), 404, "raw/%2E%2E%2Fx.png in bucket lab: not found"),
    ("alignedslice", with_(ALIGNED, img="a%2Fb.png"), 404, "raw/a%2Fb.png in bucket lab: not found"),
    ("alignedslice", with_(ALIGNED, dest="../etc"), 400, "dest: invalid bucket name"),
    ("alignedslice", with_(ALIGNED, dest="/abs"), 400, "dest: invalid bucket name"),
    ("alignedslice", with_(ALIGNED, dest=".hidden"), 400, "dest: invalid bucket name"),
    ("alignedslice", with_(ALIGNED, dest="b" * 300), 400, "dest: invalid bucket name"),
    ("alignedslice", with_(ALIGNED, dest="s3://lab"), 400, "dest: unsupported location"),
    ("alignedslice", with_(ALIGNED, dest="gs://"), 400, "dest: invalid bucket name"),
    ("alignedslice", with_(ALIGNED, dest="gs://lab/../x"), 400, "dest: invalid object name"),
    ("alignedslice", with_(ALIGNED, dest_tmp="lab tmp"), 400, "dest-tmp: invalid bucket name"),
    ("alignedslice", with_(ALIGNED, dest_tmp=f"lab{NUL}"), 400, "dest-tmp: invalid bucket name"),
    ("ngshard", with_(SHARD, source="../lab-tmp"), 400, "source: invalid bucket name"),
    ("ngmeta", with_(META, dest="lab/../.."), 400, "dest: invalid object name"),
    # --- objects that are not what they should be ---------------------------------------------
    ("alignedslice", with_(ALIGNED, img="missing.png"), 404, "raw/missing.png in bucket lab: not found"),
    ("alignedslice", with_(ALIGNED, dest="nobucket"), 404, "raw/ok.png in bucket nobucket: not found"),
    ("alignedslice", with_(ALIGNED, img="folder.png"), 400, "raw/folder.png in bucket lab: is a folder"),
    ("alignedslice", with_(ALIGNED, img="file/x.png"), 404, "raw/file/x.png in bucket lab: not found"),
    ("alignedslice", with_(ALIGNED, img="link-out.png"), 400, "raw/link-out.png in bucket lab: leads through a link"),
    ("alignedslice", with_(ALIGNED, img="link-etc.png"), 400, "raw/link-etc.png in bucket lab: leads through a link"),
    ("alignedslice", with_(ALIGNED, dest_tmp="blocked"), 400, "1 in bucket blocked: a file stands where"),
    ("alignedslice", with_(ALIGNED, dest="blocked"), 404, "raw/ok.png in bucket blocked: not found"),
    ("ngmeta", with_(META, dest="blocked"), 400, "in bucket blocked: a file stands where"),
    ("ngshard", with_(SHARD, source="tp-folder"), 400, "in bucket tp-folder: is a folder"),
    # --- images -----------------------------------------------------------------------------
    ("alignedslice", with_(ALIGNED, img="corrupt.png"), 422, "raw/corrupt.png in bucket lab: "),
    ("alignedslice", with_(ALIGNED, img="truncated.png"), 422, "raw/truncated.png in bucket lab: "),
    ("alignedslice", with_(ALIGNED, img="rgb.png"), 422, "expected an 8-bit grayscale image"),
    ("alignedslice", with_(ALIGNED, img="sixteen.png"), 422, "expected an 8-bit grayscale image"),
    ("alignedslice", with_(ALIGNED, img="empty.png"), 422, "raw/empty.png in bucket lab: "),
    ("alignedslice", with_(ALIGNED, img="text.png"), 422, "raw/text.png in bucket lab: "),
    ("alignedslice", with_(ALIGNED, img="bomb.png"), 413, "raw/bomb.png in bucket lab: larger than"),
    # --- tile packs -------------------------------------------------------------------------
    ("ngshard", with_(SHARD, source="tp-offsets"), 422, "invalid offsets [900, 100) for tile 0"),
    ("ngshard", with_(SHARD, source="tp-huge"), 422, "invalid offsets"),
    ("ngshard", with_(SHARD, source="tp-truncated"), 422, "truncated tile 0"),
    ("ngshard", with_(SHARD, source="tp-header"), 422, "in bucket tp-header: tile pack is"),
    ("ngshard", with_(SHARD, source="tp-tilesize"), 422, "in bucket tp-tilesize: tile pack is"),
    ("ngshard", with_(SHARD, source="tp-notpng"), 422, "in bucket tp-notpng"),
    ("ngshard", with_(SHARD, source="tp-wrongsize"), 422, "in bucket tp-wrongsize"),
    ("ngshard", with_(SHARD, source="tp-short"), 422, "in bucket tp-short"),
    ("ngshard", with_(SHARD, source="tp-empty"), 422, "in bucket tp-empty"),
    ("ngshard", with_(SHARD, source="nopacks"), 404, "in bucket nopacks: not found"),
]


def case_id(case):
    endpoint, body, status, message = case
    return f"{endpoint}-{status}-{message.split(':')[0][:30]}"


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 100


@pytest.mark.parametrize("endpoint,body,status,message", CASES, ids=[case_id(c) for c in CASES])
def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(server, endpoint, body, status, message):
    before = snapshot(server.data_dir)
    got_status, got_body = server.post(endpoint, body)
    assert (got_status, message in got_body) == (status, True), got_body
    assert got_body.strip() and got_body.lower() == got_body.lower().strip() + "\n" or got_body
    assert server.get("/healthz") == (200, "ok\n")
    assert snapshot(server.data_dir) == before, "a failed request wrote something"


def post_raw(server, endpoint: str, framing: bytes, chunks) -> bytes:
    """POSTs a JSON body of `chunks` with the header lines `framing`, stopping early when the
    server answers and closes first; returns the raw answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(b"POST /" + endpoint.encode() + b" HTTP/1.1\r\nHost: test\r\n"
                     b"Content-Type: application/json\r\nConnection: close\r\n" + framing + b"\r\n")
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the body ends
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    return answer


PIECE = b"x" * (64 << 10)
OVER_LIMIT = 64  # pieces: 4 MiB, past the 1 MiB limit


@pytest.mark.parametrize("endpoint", ["alignedslice", "ngmeta", "ngshard"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_bodies_over_the_limit_are_refused(server, endpoint, framing):
    """Past the limit with Content-Length, or counted as it arrives without one."""
    before = snapshot(server.data_dir)
    if framing == "chunked":
        chunks = [b"%x\r\n%s\r\n" % (len(PIECE), PIECE)] * OVER_LIMIT + [b"0\r\n\r\n"]
        answer = post_raw(server, endpoint, b"Transfer-Encoding: chunked\r\n", chunks)
    else:
        length = b"Content-Length: %d\r\n" % (len(PIECE) * OVER_LIMIT)
        answer = post_raw(server, endpoint, length, [PIECE] * OVER_LIMIT)
    assert answer.split(b"\r\n", 1)[0].startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"body: larger than" in answer
    assert server.get("/healthz") == (200, "ok\n")
    assert snapshot(server.data_dir) == before


STACK = {"dest": "lab", "dest-tmp": "lab-tmp", "bbox": [W, H],
         "slices": [{"z": 0, "img": "ok.png", "transform": [1, 0, 0, 1, 0, 0]},
                    {"z": 1, "img": "ok.png", "transform": [1, 0, 0, 1, 2, 0]}]}


def stack_with(**changes):
    out = json.loads(json.dumps(STACK))
    out.update(changes)
    return out


def slices_with(index, **changes):
    out = json.loads(json.dumps(STACK))
    out["slices"][index].update(changes)
    return out


STACK_CASES = [
    (b"{", "stack file"),
    (b"[]", "stack file"),
    (json.dumps({k: v for k, v in STACK.items() if k != "dest"}).encode(), "dest"),
    (json.dumps({k: v for k, v in STACK.items() if k != "slices"}).encode(), "slices"),
    (json.dumps(stack_with(slices=[])).encode(), "slices: empty"),
    (json.dumps(stack_with(bbox=[0, 30])).encode(), "bbox: "),
    (json.dumps(stack_with(bbox=[40])).encode(), "bbox: "),
    (json.dumps(stack_with(bbox="[40, 30]")).encode(), "bbox: "),
    (json.dumps(stack_with(colour="blue")).encode(), "colour"),
    (json.dumps(stack_with(slices=STACK["slices"] * 2)).encode(), "z=0 appears twice"),
    (json.dumps(slices_with(1, z=-1)).encode(), "slices[1].z: "),
    (json.dumps(slices_with(1, transform=[1, 0, 0, 1, 0])).encode(), "slices[1].transform: "),
    (json.dumps(slices_with(1, img=None)).encode(), "slices[1].img: "),
]


@pytest.mark.parametrize("stack,message", STACK_CASES, ids=[f"stack-{i}-{m[:20]}" for i, (_, m) in enumerate(STACK_CASES)])
def test_bad_stack_files_are_refused_before_anything_runs(emwrite, tmp_path, stack, message):
    data = tmp_path / "data"
    (data / "lab" / "raw").mkdir(parents=True)
    (data / "lab" / "raw" / "ok.png").write_bytes(png_bytes(np.full((H, W), 100, np.uint8)))
    stack_file = tmp_path / "stack.json"
    stack_file.write_bytes(stack)
    before = snapshot(data)
    result = run_emwrite(emwrite, "pipeline", str(stack_file), "--data-dir", str(data), check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert snapshot(data) == before
