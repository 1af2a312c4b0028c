#!/usr/bin/env python3
"""Writes the seed corpora in corpus-seed/<target>/: a few small valid inputs per target, from
which the fuzzer mutates its way into the readers. The seeds are committed; rerun this after a
format change. Standard library only, except the JPEG seed, which needs Pillow (the oracle
tests' venv has it) and is left as it is when Pillow is missing."""

import gzip
import io
import pathlib
import shutil
import struct
import zlib

HERE = pathlib.Path(__file__).resolve().parent
SEEDS = HERE / "corpus-seed"


def png_gray(width, height, pixels):
    """An 8-bit grayscale PNG, rows unfiltered."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes(pixels[y * width:(y + 1) * width]) for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def tiff_gray(width, height, pixels):
    """A baseline little-endian TIFF: one uncompressed strip of 8-bit grayscale."""
    entries = [  # tag, type (3 short, 4 long), value
        (256, 3, width), (257, 3, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
        (273, 4, 8), (277, 3, 1), (278, 3, height), (279, 4, len(pixels)),
    ]
    ifd_at = 8 + len(pixels)
    out = b"II*\0" + struct.pack("<I", ifd_at) + bytes(pixels)
    out += struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    return out + b"\0\0\0\0"


def tile_pack(width, height, tile, pixels):
    """emwrite's tile pack (src/tilepack/): u64 LE header, n + 1 offsets, PNG tiles."""
    tiles = []
    for ty in range(0, height, tile):
        for tx in range(0, width, tile):
            tw, th = min(tile, width - tx), min(tile, height - ty)
            sub = [pixels[(ty + r) * width + tx + c] for r in range(th) for c in range(tw)]
            tiles.append(png_gray(tw, th, sub))
    offset = 24 + 8 * (len(tiles) + 1)
    offsets = [offset]
    for t in tiles:
        offset += len(t)
        offsets.append(offset)
    return struct.pack("<3Q", width, height, tile) + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(tiles)


def shard(chunks):
    """One shard of a spec without minishard bits (src/precomputed/shard/encode.rs): chunks by id."""
    data, ids, offsets, sizes = b"", [], [], []
    previous_id = previous_end = 0
    for chunk_id, chunk in sorted(chunks.items()):
        ids.append(chunk_id - previous_id)
        offsets.append(len(data) - previous_end)
        sizes.append(len(chunk))
        previous_id, previous_end = chunk_id, len(data) + len(chunk)
        data += chunk
    index = gzip.compress(struct.pack(f"<{3 * len(ids)}Q", *ids, *offsets, *sizes), mtime=0)
    return struct.pack("<2Q", len(data), len(data) + len(index)) + data + index


def arbitrary_chunks(chunks):
    """Bytes that the shard target's round trip reads (with `arbitrary`) as a few chunks: where
    the fuzzer starts from matters little, as long as it is a non-empty list."""
    out = b""
    for chunk_id, chunk in chunks:
        out += b"\1" + struct.pack("<Q", chunk_id) + struct.pack("<I", len(chunk)) + chunk
    return out + b"\0"


def write(target, name, data):
    (SEEDS / target).mkdir(parents=True, exist_ok=True)
    (SEEDS / target / name).write_bytes(data)


def main():
    for example in sorted((HERE.parent / "examples").glob("*.json")):
        shutil.copy(example, SEEDS / "request_json" / example.name)
    write("request_json", "loose-forms.json",
          b'{"dest": "gs://lab/run1", "source": "tmp", "start": "[0 0 0]", "minz": "0", '
          b'"maxz": "2", "bbox": [10, 10], "writeRaw": "false", "jpeg-quality": 90, "resolution": "4.5"}')

    gradient = [(x * 3 + y * 7) % 256 for y in range(7) for x in range(9)]
    write("tile_pack", "9x7-tiles-of-4.pack", tile_pack(9, 7, 4, gradient))
    write("tile_pack", "3x2-tiles-of-2.pack", tile_pack(3, 2, 2, [10, 20, 30, 40, 50, 60]))

    # Mode byte: low 2 bits 0 = decode, 1 = decoded minishard index, 2 = round trip; the spec
    # index (scale 4 here, no preshift) above them.
    two_chunks = {3: b"\xaa\xbb", 10: b"\1\2\3"}
    write("shard", "decode-two-chunks", bytes([4 << 2 | 0]) + shard(two_chunks))
    write("shard", "index-two-chunks",
          bytes([4 << 2 | 1]) + struct.pack("<6Q", 3, 7, 0, 0, 2, 3))
    write("shard", "round-trip", bytes([6 << 2 | 2]) + arbitrary_chunks([(10, b"\1\2\3"), (3, b"\xaa")]))

    write("image_decode", "4x3.png", png_gray(4, 3, gradient[:12]))
    write("image_decode", "4x3.tif", tiff_gray(4, 3, gradient[:12]))
    try:
        from PIL import Image
    except ImportError:
        return
    jpeg = io.BytesIO()
    Image.frombytes("L", (9, 7), bytes(gradient)).save(jpeg, "JPEG", quality=75)
    write("image_decode", "9x7.jpg", jpeg.getvalue())


if __name__ == "__main__":
    main()
