"""The peer of the ngshard benchmarks: the original service's block job, done its way.

Takes the very request file `emwrite run ngshard` takes and does what the original did with it:

1. a thread pool of range reads of the tile packs, two per slice (the pack's header and offsets up
   to the block's tile, then the tile), from a local data directory or from GCS's JSON API (each
   worker thread keeps one keep-alive connection, as a pooled HTTP client does);
2. Pillow decodes each tile PNG into a numpy block of 1024³ voxels, held whole;
3. the pyramid: scale k is the 2×2×2 mean of scale k − 1, rounded (`(sum + 4) // 8`), as emwrite;
4. tensorstore writes the block's region of all five scales of the sharded precomputed volume
   (JPEG, and raw with `writeRaw`) whose info ngmeta wrote at `<dest>/neuroglancer/{jpeg,raw}/info`,
   so both sides write under the same info.

    python original_ngshard.py REQUEST.json --data-dir DIR          # buckets are folders of DIR
    python original_ngshard.py REQUEST.json --gcs http://HOST:PORT  # buckets are GCS buckets

With --gcs, tensorstore writes through TENSORSTORE_GCS_HTTP_URL (set it to the same endpoint, and
GOOGLE_AUTH_TOKEN_FOR_TESTING to anything for an emulator). It replaces the former tensorstore_block.py,
which did the same from local disk only, one slice after another, without the request file.
"""

import argparse
import concurrent.futures
import http.client
import io
import json
import re
import struct
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import tensorstore as ts
from PIL import Image

BLOCK = 1024


def numbers(value) -> list[int]:
    """A list field as the original accepted it: a JSON array or a string like "[1024, 1024]"."""
    if isinstance(value, list):
        return [int(float(v)) for v in value]
    return [int(float(v)) for v in re.split(r"[\s,]+", str(value).strip("[] ")) if v]


class LocalStore:
    """Buckets are folders of a data directory; a range read is a pread."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir

    def read(self, bucket: str, name: str, start: int, end: int) -> bytes:
        with open(self.data_dir / bucket / name, "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def kvstore(self, bucket: str, path: str) -> dict:
        return {"driver": "file", "path": str(self.data_dir / bucket / path)}


class GcsStore:
    """GCS's JSON API (`alt=media` with a Range header), one keep-alive connection per thread."""

    def __init__(self, url: str):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.local = threading.local()

    def read(self, bucket: str, name: str, start: int, end: int) -> bytes:
        path = f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}?alt=media"
        headers = {"Range": f"bytes={start}-{end - 1}"}
        for attempt in range(3):
            if getattr(self.local, "conn", None) is None:
                self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.local.conn.request("GET", path, headers=headers)
                response = self.local.conn.getresponse()
                data = response.read()
            except (http.client.HTTPException, OSError):
                self.local.conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                continue
            if response.status not in (200, 206):
                raise RuntimeError(f"GET {bucket}/{name}: {response.status} {data[:200]!r}")
            return data[start:end] if response.status == 200 else data  # 200: the range was ignored

    def kvstore(self, bucket: str, path: str) -> dict:
        return {"driver": "gcs", "bucket": bucket, "path": path}


def read_tile(store, source: str, z: int, index: int) -> np.ndarray:
    """Tile `index` of the tile pack `<source>/<z>`: header and offsets, then the tile."""
    head = store.read(source, str(z), 0, 24 + 8 * (index + 2))
    width, height, tile = struct.unpack_from("<3Q", head, 0)
    if tile != BLOCK:
        raise RuntimeError(f"{source}/{z}: tile size {tile}, expected {BLOCK}")
    start, end = struct.unpack_from("<2Q", head, 24 + 8 * index)
    with Image.open(io.BytesIO(store.read(source, str(z), start, end))) as image:
        return np.asarray(image)


def read_block(store, request: dict, threads: int) -> np.ndarray:
    """The block as z, y, x: every slice of the block's range in [minz, maxz], read in a pool."""
    width, _ = numbers(request["bbox"])
    bx, by, bz = numbers(request["start"])
    index = by * -(-width // BLOCK) + bx
    first = max(bz * BLOCK, int(request["minz"]))
    last = min(bz * BLOCK + BLOCK - 1, int(request["maxz"]))
    block = np.zeros((BLOCK, BLOCK, BLOCK), np.uint8)

    def one(z):
        tile = read_tile(store, request["source"], z, index)
        block[z - bz * BLOCK, : tile.shape[0], : tile.shape[1]] = tile

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(first, last + 1)))
    return block


def mean_2x2x2(v: np.ndarray) -> np.ndarray:
    s = np.zeros(tuple(n // 2 for n in v.shape), np.uint16)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                s += v[dz::2, dy::2, dx::2]
    return ((s + 4) // 8).astype(np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("request", type=Path)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data-dir", type=Path)
    where.add_argument("--gcs", metavar="URL")
    parser.add_argument("--threads", type=int, default=8, help="range reads in flight (default 8, as emwrite)")
    args = parser.parse_args()

    request = json.loads(args.request.read_text())
    store = LocalStore(args.data_dir) if args.data_dir else GcsStore(args.gcs)
    write_raw = str(request.get("writeRaw", False)).lower() == "true"
    encodings = ["jpeg", "raw"] if write_raw else ["jpeg"]
    dest, (bx, by, bz) = request["dest"], numbers(request["start"])

    level = read_block(store, request, args.threads)
    stores = {}
    for encoding in encodings:
        kvstore = store.kvstore(dest, f"neuroglancer/{encoding}/")
        stores[encoding] = [ts.open({"driver": "neuroglancer_precomputed", "kvstore": kvstore, "scale_index": k},
                                    open=True, write=True).result() for k in range(5)]
    for k in range(5):
        n = BLOCK >> k
        for encoding in encodings:
            region = stores[encoding][k][bx * n:(bx + 1) * n, by * n:(by + 1) * n, bz * n:(bz + 1) * n, 0]
            region.write(level.T).result()  # tensorstore indexes x, y, z; the block is z, y, x
        if k < 4:
            level = mean_2x2x2(level)


if __name__ == "__main__":
    main()
