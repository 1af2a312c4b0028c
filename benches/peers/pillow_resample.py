#!/usr/bin/env python3
"""The Pillow peers of alignedslice: the resampler alone, and the original's whole task.

    pillow_resample.py [RUNS]
    pillow_resample.py alignedslice REQUEST.json --data-dir DIR [--out-dest B] [--out-tmp B]

The first form times Pillow's bicubic affine transform on the slice that benches/resample.rs
times (see `transform_bench`). The second does what the original service did for one
`alignedslice` request, the very file `emwrite run alignedslice` takes (see `aligned_slice`):
load the PNG, `Image.transform(bbox, AFFINE, inverse, BICUBIC, fillcolor=0)`, save the aligned
PNG, cut it into shard-size² tiles, save each as a PNG and write the tile pack. benches/harness.py
times that process against emwrite's.

Resampler alone: builds the same 4096x4096
synthetic slice and the same inverse coefficients (the closed form of AffineTransform::inverse,
whose f64 operations Python repeats exactly), times the original service's call

    Image.transform((4096, 4096), Image.AFFINE, inverse, resample=Image.BICUBIC, fillcolor=0)

and prints megapixels per second and the output's CRC-32, which must equal the Rust bench's.
"""

import argparse
import io
import json
import math
import re
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# Pillow refuses images over 179 Mpx by default (DecompressionBombError), as the original service
# would; the peer lifts that guard so that the 16384² scaling row has a time to compare with.
Image.MAX_IMAGE_PIXELS = None

SIZE = 4096
DEGREES = 0.5


def synthetic_slice() -> Image.Image:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.int64)
    pixels = (7 * x + 3 * y + 13 * (x ^ y) + (x * y) % 251) % 256
    return Image.fromarray(pixels.astype(np.uint8), "L")


def rotation_inverse() -> tuple[float, ...]:
    # Same operations, in the same order, as rotation_columns() and inverse_coefficients() in Rust.
    # Python's math.sin/cos and Rust's sin_cos both call the platform libm here; if they ever
    # differ in the last bit the CRCs will say so.
    r = math.radians(DEGREES)
    s, c = math.sin(r), math.cos(r)
    centre = SIZE / 2.0
    a, b, cc, d = c, s, -s, c
    e = centre - c * centre + s * centre
    f = centre - s * centre - c * centre
    det = a * d - b * cc
    return (d / det, -cc / det, (cc * f - d * e) / det, -b / det, a / det, (b * e - a * f) / det)


def numbers(value) -> list[float]:
    """A list field as the original accepted it: a JSON array or a string like "[1 0 0 1 0 0]"."""
    if isinstance(value, list):
        return [float(v) for v in value]
    return [float(v) for v in re.split(r"[\s,]+", str(value).strip("[] ")) if v]


def inverse_coefficients(t: list[float]) -> tuple[float, ...]:
    """The inverse map in Pillow's order, each operation rounded once (docs/design.md §4)."""
    a, b, c, d, e, f = t
    det = (a * d) - (b * c)
    return (d / det, (-c) / det, ((c * f) - (d * e)) / det, (-b) / det, a / det, ((b * e) - (a * f)) / det)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def aligned_slice(argv: list[str]) -> None:
    """One alignedslice task the original's way: Pillow for the transform and every PNG."""
    parser = argparse.ArgumentParser(prog="pillow_resample.py alignedslice")
    parser.add_argument("request", type=Path)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out-dest", help="bucket for align/<img> (default: the request's dest)")
    parser.add_argument("--out-tmp", help="bucket for the tile pack (default: the request's dest-tmp)")
    args = parser.parse_args(argv)
    request = json.loads(args.request.read_text())
    width, height = (int(v) for v in numbers(request["bbox"]))
    tile = int(request.get("shard-size", 1024))
    with Image.open(args.data_dir / request["dest"] / "raw" / request["img"]) as source:
        source.load()
    aligned = source.transform((width, height), Image.Transform.AFFINE,
                               inverse_coefficients(numbers(request["transform"])),
                               resample=Image.Resampling.BICUBIC, fillcolor=0)
    out = args.data_dir / (args.out_dest or request["dest"]) / "align" / request["img"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png_bytes(aligned))
    tiles = [png_bytes(aligned.crop((x, y, min(x + tile, width), min(y + tile, height))))
             for y in range(0, height, tile) for x in range(0, width, tile)]
    offsets = [24 + 8 * (len(tiles) + 1)]
    for t in tiles:
        offsets.append(offsets[-1] + len(t))
    pack = args.data_dir / (args.out_tmp or request["dest-tmp"]) / str(int(float(request["slice"])))
    pack.parent.mkdir(parents=True, exist_ok=True)
    pack.write_bytes(struct.pack(f"<3Q{len(offsets)}Q", width, height, tile, *offsets) + b"".join(tiles))


def transform_bench() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    im = synthetic_slice()
    inverse = rotation_inverse()
    print(f"slice {SIZE}x{SIZE}, rotation {DEGREES} deg, inverse {list(inverse)}")

    def transform() -> Image.Image:
        return im.transform(
            (SIZE, SIZE),
            Image.Transform.AFFINE,
            inverse,
            resample=Image.Resampling.BICUBIC,
            fillcolor=0,
        )

    out = transform()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        transform()
        times.append(time.perf_counter() - start)
    times.sort()
    best, median = times[0], times[len(times) // 2]
    mpx = SIZE * SIZE / 1e6
    print(
        f"pillow {Image.__version__:8s} best {best * 1e3:7.1f} ms {mpx / best:7.1f} Mpx/s"
        f"   median {median * 1e3:7.1f} ms {mpx / median:7.1f} Mpx/s"
        f"   crc32 {zlib.crc32(out.tobytes()):08x}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["alignedslice"]:
        aligned_slice(sys.argv[2:])
    else:
        transform_bench()
