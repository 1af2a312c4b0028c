#!/usr/bin/env python3
"""Pillow oracle for alignedslice: the original's bicubic affine transform of one 8-bit slice.

Usage: pillow_transform.py IN.png A B C D E F OUT_W OUT_H OUT.png

Loads IN.png (must be mode "L"), runs exactly the original service's call

    Image.transform((OUT_W, OUT_H), Image.AFFINE, (A, B, C, D, E, F),
                    resample=Image.BICUBIC, fillcolor=0)

and saves OUT.png (mode "L"). A..F are the inverse map in Pillow's order (x_in = A*x + B*y + C,
y_in = D*x + E*y + F), as emwrite's `AffineTransform::inverse` returns them; pass each in a form
that round-trips to the same f64 (Rust's `{}` or `{:?}` formatting does), so that Pillow sees
the very bits our resampler saw. See docs/design.md section 4 (alignedslice).
"""

import sys

from PIL import Image


def main(argv: list[str]) -> int:
    if len(argv) != 11:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    in_path, *coeff_args = argv[1:8]
    out_w, out_h, out_path = argv[8:11]
    inverse = tuple(float(c) for c in coeff_args)
    size = (int(out_w), int(out_h))
    with Image.open(in_path) as im:
        im.load()
    if im.mode != "L":
        # No silent conversion: the oracle must see the same 8-bit samples as the resampler.
        print(f"{in_path}: mode {im.mode}, expected L", file=sys.stderr)
        return 1
    out = im.transform(
        size, Image.Transform.AFFINE, inverse, resample=Image.Resampling.BICUBIC, fillcolor=0
    )
    out.save(out_path, format="PNG")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
