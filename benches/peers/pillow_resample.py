#!/usr/bin/env python3
"""Times Pillow's bicubic affine transform on the slice that benches/resample.rs times.

Run with the project's venv python: pillow_resample.py [RUNS]. Builds the same 4096x4096
synthetic slice and the same inverse coefficients (the closed form of AffineTransform::inverse,
whose f64 operations Python repeats exactly), times the original service's call

    Image.transform((4096, 4096), Image.AFFINE, inverse, resample=Image.BICUBIC, fillcolor=0)

and prints megapixels per second and the output's CRC-32, which must equal the Rust bench's.
"""

import math
import sys
import time
import zlib

import numpy as np
from PIL import Image

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


def main() -> None:
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
    main()
