"""The peer of the ngshard benchmark: the original service's block job, done with tensorstore.

Reads the block's 1024 tile packs (tile 0 of each), assembles the 1 GiB block in numpy, builds the
2×2×2-mean pyramid and writes all five scales of a sharded precomputed volume with the same info
as emwrite's, through tensorstore (which encodes with libjpeg-turbo on all cores).

    python tensorstore_block.py TILE_PACK_DIR OUT_DIR (--jpeg-only | --write-raw)
"""

import io
import json
import struct
import sys
from pathlib import Path

import numpy as np
import tensorstore as ts
from PIL import Image

BLOCK = 1024


def info(encoding):
    scales = []
    for k in range(5):
        r = 8 * 2**k
        scales.append({
            "key": f"{r}.0x{r}.0x{r}.0", "size": [BLOCK >> k] * 3, "resolution": [r, r, r],
            "chunk_sizes": [[64, 64, 64]], "encoding": encoding, "voxel_offset": [0, 0, 0],
            "sharding": {"@type": "neuroglancer_uint64_sharded_v1", "hash": "identity",
                         "preshift_bits": [9, 9, 6, 3, 0][k], "minishard_bits": 0,
                         "shard_bits": [24, 21, 21, 21, 21][k], "minishard_index_encoding": "gzip",
                         "data_encoding": "raw"},
        })
    return {"@type": "neuroglancer_multiscale_volume", "type": "image", "data_type": "uint8",
            "num_channels": 1, "scales": scales}


def read_block(packs: Path):
    block = np.zeros((BLOCK, BLOCK, BLOCK), np.uint8)  # x, y, z as tensorstore indexes it
    for z in range(BLOCK):
        data = (packs / str(z)).read_bytes()
        start, end = struct.unpack_from("<2Q", data, 24)
        tile = np.asarray(Image.open(io.BytesIO(data[start:end])))
        block[: tile.shape[1], : tile.shape[0], z] = tile.T
    return block


def mean_2x2x2(v):
    s = np.zeros(tuple(n // 2 for n in v.shape), np.uint16)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                s += v[dx::2, dy::2, dz::2]
    return ((s + 4) // 8).astype(np.uint8)


def main():
    packs, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    encodings = ["jpeg", "raw"] if mode == "--write-raw" else ["jpeg"]
    level = read_block(packs)
    for k in range(5):
        for encoding in encodings:
            path = out / encoding
            path.mkdir(parents=True, exist_ok=True)
            (path / "info").write_text(json.dumps(info(encoding)))
            store = ts.open({"driver": "neuroglancer_precomputed", "kvstore": {"driver": "file", "path": str(path)},
                             "scale_index": k}).result()
            store[..., 0].write(level).result()
        if k < 4:
            level = mean_2x2x2(level)


if __name__ == "__main__":
    main()
