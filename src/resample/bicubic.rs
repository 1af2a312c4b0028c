//! Bicubic affine resampling of an 8-bit slice, bit for bit as Pillow's `Image.transform`.
//!
//! See docs/design.md §4 (alignedslice). The original service called `Image.transform((w, h),
//! Image.AFFINE, inverse, resample=Image.BICUBIC, fillcolor=0)` on mode "L" images; this module
//! reproduces that call (Pillow's `libImaging/Geometry.c`: `affine_transform` +
//! `bicubic_filter8`) exactly, and `tests/oracles/pillow_transform.py` checks it against Pillow.
//!
//! We hand-write the resampler because no crate gives both of what we need: bit-exactness with
//! Pillow (whose kernel, edge rule and rounding differ from other libraries') and speed in
//! wasm32, where one instance is one core. Where Pillow departs from the textbook:
//!
//! - The cubic convolution kernel has a = −1, not the a = −0.5 of Keys (1981) that most libraries
//!   use: its weights at distance ½ are −⅛, ⅝, ⅝, −⅛ rather than −1/16, 9/16, 9/16, −1/16. It is
//!   evaluated in Pillow's Horner form, not as four weights, because the float results differ.
//! - It interpolates along x first (four rows), then along y over the four row results, in f64.
//! - Neighbours outside the image are clamped to the edge, but an output pixel whose centre maps
//!   outside `[0, w) × [0, h)` of the source is 0 (the fill colour), not extrapolated.
//! - The result is clipped to [0, 255] and truncated, not rounded: 187.9 becomes 187.
//!
//! [`resample_affine_reference`] is the plain transliteration, kept as the slow twin that tests
//! compare [`resample_affine`] against. The fast version computes every sample position and
//! offset with Pillow's f64 operations in Pillow's order, hoisting products out of loops where
//! Pillow recomputes the same value, and skips clamping where the neighbourhood is inside the
//! image. There, output pixels are computed side by side in f32: four in a portable loop that
//! LLVM vectorises (one f32x4 in SSE2), or eight as two f32x4 in the explicit simd128 path the
//! component runs (`bicubic/simd128.rs`). A pixel whose f32 value lies too near a byte boundary
//! to be sure of Pillow's byte is computed again in f64: `resample/cubic32.rs` proves the bound,
//! so the bytes are Pillow's. `cargo bench --bench resample` measures the gain (built for
//! wasm32-wasip2 and run in wasmtime for the component's figure).

use super::cubic32::LANES;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
use super::cubic32::{cubic_lanes, settle};
use std::ops::Range;

// The interior fast path in explicit simd128 for the component; elsewhere, the portable one below.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;

/// Output pixels per call of `sample_interior_block`: the portable path's [`LANES`] (4 measured
/// faster than 8 there), or two f32x4 vectors in simd128 (8 measured faster than 4).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
const BLOCK: usize = LANES;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
const BLOCK: usize = 2 * LANES;

/// Resamples `src` (8-bit grey, `src_w × src_h`, row-major) through Pillow's inverse affine map
/// into a new `out_w × out_h` image, exactly as Pillow's bicubic `Image.transform` with
/// `fillcolor=0` does.
///
/// `inverse` is `(A, B, C, D, E, F)` as returned by
/// [`AffineTransform::inverse`](super::affine::AffineTransform::inverse): output pixel (x, y)
/// samples the source at `u = A·(x+½) + B·(y+½) + C`, `v = D·(x+½) + E·(y+½) + F`, in pixel
/// units with pixel centres at half-integers.
///
/// This never panics. Degenerate input gives a defined result instead: an empty source
/// (`src_w` or `src_h` 0) or a `src` shorter than `src_w · src_h` gives an all-zero image (every
/// pixel falls outside), non-finite `u` or `v` give 0 for that pixel, and an output too large to
/// allocate gives an empty `Vec` (callers bound the output size when validating the request).
///
/// ```
/// use emwrite::resample::{affine::AffineTransform, bicubic::resample_affine};
///
/// // Shift a 3×1 image one pixel right: the first output pixel pulls from outside, so it is 0.
/// let inverse = AffineTransform::new([1.0, 0.0, 0.0, 1.0, 1.0, 0.0]).inverse()?;
/// assert_eq!(resample_affine(&[10, 20, 30], 3, 1, &inverse, 3, 1), [0, 10, 20]);
/// # Ok::<(), emwrite::Error>(())
/// ```
pub fn resample_affine(
    src: &[u8],
    src_w: usize,
    src_h: usize,
    inverse: &[f64; 6],
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    let Some(mut out) = zeroed_output(out_w, out_h) else {
        return Vec::new();
    };
    let Some(src) = source_pixels(src, src_w, src_h) else {
        return out;
    };
    if out_w == 0 {
        return out;
    }
    resample_rows(
        &Source::new(src, 0, src_w, src_h),
        inverse,
        out_w,
        0,
        &mut out,
    );
    out
}

/// A band of consecutive whole rows of a source image: what [`resample_affine_rows`] samples
/// from when the image is not held whole.
#[derive(Clone, Copy, Debug)]
pub struct SourceRows<'a> {
    /// Rows `first_row ..` of the image, `width` bytes each; a partial last row is ignored.
    pub pixels: &'a [u8],
    /// The image row that `pixels` starts with.
    pub first_row: usize,
    /// The whole image's width.
    pub width: usize,
    /// The whole image's height: Pillow's bounds test and edge clamping use it, not the band's.
    pub height: usize,
}

impl SourceRows<'_> {
    /// The image rows the band holds.
    pub fn rows(&self) -> Range<usize> {
        let held = self.pixels.len().checked_div(self.width).unwrap_or(0);
        self.first_row..self.first_row.saturating_add(held)
    }
}

/// Why [`resample_affine_rows`] sampled nothing: the caller broke its contract.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StripMismatch {
    /// The output buffer does not hold the strip's rows.
    #[error("the strip buffer holds {got} bytes, not {expected}")]
    OutputLength {
        /// `out_rows.len() · out_w`.
        expected: usize,
        /// `out.len()`.
        got: usize,
    },
    /// The band misses source rows the strip samples ([`source_rows_needed`]).
    #[error("the strip needs source rows {needed:?}, the band holds {held:?}")]
    MissingRows {
        /// What the strip needs.
        needed: Range<usize>,
        /// What the band holds, within the image.
        held: Range<usize>,
    },
}

/// The source rows that output rows `out_rows` (of an `out_w`-wide output) may read through
/// `inverse` from a `src_w × src_h` image: what a band passed to [`resample_affine_rows`] must
/// hold. Empty when no pixel of the strip falls inside the source.
///
/// The map is affine, so the sample row `v` is extreme at the strip's four corner pixels; the
/// 4×4 kernel reaches one row above and two below `⌊v − ½⌋`, clamped to the image. One more row
/// each way, plus a bound on the rounding of `v` (three roundings of terms no larger than the
/// corners' `|D·x|`, `|E·y|`, `|F|`), covers pixels between the corners whose computed `v`
/// rounds past the corners' own.
///
/// ```
/// use emwrite::resample::bicubic::source_rows_needed;
/// // Identity on a 100-row image: output rows 10..20 read rows 7..23 (kernel, then the slack).
/// let identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
/// assert_eq!(source_rows_needed(&identity, 50, 100, 50, 10..20), 7..23);
/// // A strip mapping wholly below the source reads nothing.
/// assert!(source_rows_needed(&identity, 50, 5, 50, 10..20).is_empty());
/// ```
pub fn source_rows_needed(
    inverse: &[f64; 6],
    src_w: usize,
    src_h: usize,
    out_w: usize,
    out_rows: Range<usize>,
) -> Range<usize> {
    if src_w == 0 || src_h == 0 || out_w == 0 || out_rows.is_empty() {
        return 0..0;
    }
    let [_, _, _, d, e, f] = *inverse;
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in [0.5, out_w as f64 - 0.5] {
        for y in [out_rows.start as f64 + 0.5, out_rows.end as f64 - 0.5] {
            // Pillow's operation order, as in `resample_rows`.
            let v = d * x + e * y + f;
            low = low.min(v);
            high = high.max(v);
        }
    }
    let rounding =
        4.0 * f64::EPSILON * (d.abs() * out_w as f64 + e.abs() * out_rows.end as f64 + f.abs());
    let slack = 1.0 + rounding;
    if !(low.is_finite() && high.is_finite() && slack.is_finite()) {
        return 0..src_h;
    }
    let h = src_h as f64;
    // Only pixels with v in [0, h) are sampled.
    let (low, high) = ((low - slack).max(0.0), (high + slack).min(h));
    if low >= h || high < 0.0 {
        return 0..0;
    }
    // Both in [−1.5, h]: the casts are exact floors once shifted by 2.
    let first = ((low - 0.5).floor() as isize - 1).max(0) as usize;
    let last = ((high - 0.5).floor() as isize + 2).min(src_h as isize - 1) as usize;
    first..last + 1
}

/// Samples output rows `out_rows` of an `out_w`-wide output into `out` (`out_rows.len() ·
/// out_w` bytes, overwritten), reading only the band `source` of the image: the same bytes as
/// those rows of [`resample_affine`] on the whole image, provided the band holds
/// [`source_rows_needed`] for the strip. Fails, writing nothing, when it does not, or when `out`
/// has the wrong length.
///
/// ```
/// use emwrite::resample::bicubic::{resample_affine, resample_affine_rows, source_rows_needed, SourceRows};
///
/// let src: Vec<u8> = (0..=255).collect(); // 16 × 16
/// let rotate = [0.9, -0.2, 3.0, 0.2, 0.9, -1.0];
/// let whole = resample_affine(&src, 16, 16, &rotate, 20, 20);
/// let needed = source_rows_needed(&rotate, 16, 16, 20, 5..10);
/// let band = SourceRows {
///     pixels: &src[needed.start * 16..needed.end * 16],
///     first_row: needed.start,
///     width: 16,
///     height: 16,
/// };
/// let mut strip = vec![0; 5 * 20];
/// resample_affine_rows(band, &rotate, 20, 5..10, &mut strip).unwrap();
/// assert_eq!(strip, whole[5 * 20..10 * 20]);
/// ```
pub fn resample_affine_rows(
    source: SourceRows<'_>,
    inverse: &[f64; 6],
    out_w: usize,
    out_rows: Range<usize>,
    out: &mut [u8],
) -> Result<(), StripMismatch> {
    let expected = out_rows.len().saturating_mul(out_w);
    if out.len() != expected {
        return Err(StripMismatch::OutputLength {
            expected,
            got: out.len(),
        });
    }
    let (w, h) = (source.width, source.height);
    let held = source.rows();
    let held = held.start.min(h)..held.end.min(h);
    let needed = source_rows_needed(inverse, w, h, out_w, out_rows.clone());
    let covered = held.start <= needed.start && needed.end <= held.end;
    if !needed.is_empty() && !covered {
        return Err(StripMismatch::MissingRows { needed, held });
    }
    out.fill(0);
    if needed.is_empty() {
        return Ok(());
    }
    let pixels = &source.pixels[..held.len() * w];
    resample_rows(
        &Source::new(pixels, held.start, w, h),
        inverse,
        out_w,
        out_rows.start,
        out,
    );
    Ok(())
}

/// The loop of [`resample_affine`] over whole output rows: `out` holds rows `first_row..` of an
/// `out_w`-wide output (which must not be 0), zeroed, and receives every sampled pixel.
fn resample_rows(
    source: &Source<'_>,
    inverse: &[f64; 6],
    out_w: usize,
    first_row: usize,
    out: &mut [u8],
) {
    let [a0, a1, a2, a3, a4, a5] = *inverse;
    for (y, row) in (first_row..).zip(out.chunks_exact_mut(out_w)) {
        let yin = y as f64 + 0.5;
        // Pillow forms `a0 * xin + a1 * yin + a2` per pixel, i.e. `(a0·xin + a1·yin) + a2`.
        // Hoisting the product `a1·yin` keeps every bit; stepping u by `a0` per pixel would not
        // (each addition rounds), so u and v are recomputed from the formula per pixel.
        let map = RowMap {
            a0,
            b_yin: a1 * yin,
            a2,
            a3,
            e_yin: a4 * yin,
            a5,
        };
        // x + 0.5 is exact in f64 for any x below 2^52, so stepping xin by whole numbers is exact.
        let mut xin = [0.0; BLOCK];
        for (i, xin) in xin.iter_mut().enumerate() {
            *xin = i as f64 + 0.5;
        }
        let mut blocks = row.chunks_exact_mut(BLOCK);
        for block in &mut blocks {
            if !source.sample_interior_block(&map, &xin, block) {
                for (px, xin) in block.iter_mut().zip(xin) {
                    let (u, v) = map.at(xin);
                    if source.contains(u, v) {
                        *px = source.sample(u - 0.5, v - 0.5);
                    }
                }
            }
            for xin in &mut xin {
                *xin += BLOCK as f64;
            }
        }
        for (px, xin) in blocks.into_remainder().iter_mut().zip(xin) {
            let (u, v) = map.at(xin);
            if source.contains(u, v) {
                *px = source.sample(u - 0.5, v - 0.5);
            }
        }
    }
}

/// Pillow's map from an output pixel centre to the source, along one output row: `at(xin)` is
/// `(a0·xin + a1·yin + a2, a3·xin + a4·yin + a5)` with the products of `yin` formed once.
struct RowMap {
    a0: f64,
    b_yin: f64,
    a2: f64,
    a3: f64,
    e_yin: f64,
    a5: f64,
}

impl RowMap {
    /// (u, v) for the pixel whose centre is at `xin` on this row, in Pillow's operation order.
    #[inline(always)]
    fn at(&self, xin: f64) -> (f64, f64) {
        (
            self.a0 * xin + self.b_yin + self.a2,
            self.a3 * xin + self.e_yin + self.a5,
        )
    }
}

/// The slow twin of [`resample_affine`]: the same result, written as a plain transliteration of
/// Pillow's `affine_transform` and `bicubic_filter8`, one pixel at a time with clamped
/// neighbours and no fast path. Tests compare the two; use [`resample_affine`].
///
/// Pillow copies the previous row's result for a neighbour row past the image instead of
/// clamping its index; since the sample row `⌊v − ½⌋` always lies in `[−1, h − 1]`, that is the
/// same as clamping.
///
/// ```
/// use emwrite::resample::bicubic::{resample_affine, resample_affine_reference};
///
/// let src: Vec<u8> = (0..=255).collect();
/// let rotate = [0.9, -0.2, 3.0, 0.2, 0.9, -1.0];
/// assert_eq!(
///     resample_affine_reference(&src, 16, 16, &rotate, 20, 20),
///     resample_affine(&src, 16, 16, &rotate, 20, 20),
/// );
/// ```
pub fn resample_affine_reference(
    src: &[u8],
    src_w: usize,
    src_h: usize,
    inverse: &[f64; 6],
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    let Some(mut out) = zeroed_output(out_w, out_h) else {
        return Vec::new();
    };
    let Some(src) = source_pixels(src, src_w, src_h) else {
        return out;
    };
    let [a0, a1, a2, a3, a4, a5] = *inverse;
    for y in 0..out_h {
        for x in 0..out_w {
            let xin = x as f64 + 0.5;
            let yin = y as f64 + 0.5;
            let u = a0 * xin + a1 * yin + a2;
            let v = a3 * xin + a4 * yin + a5;
            out[y * out_w + x] = sample_reference(src, src_w, src_h, u, v);
        }
    }
    out
}

/// Pillow's `bicubic_filter8` at (u, v), fill 0 outside.
fn sample_reference(src: &[u8], w: usize, h: usize, u: f64, v: f64) -> u8 {
    // Pillow tests `xin < 0.0 || xin >= xsize || ...`; the negated form also sends NaN outside.
    if !(u >= 0.0 && u < w as f64 && v >= 0.0 && v < h as f64) {
        return 0;
    }
    let u = u - 0.5;
    let v = v - 0.5;
    let x0 = u.floor();
    let y0 = v.floor();
    let dx = u - x0;
    let dy = v - y0;
    // In range: u − ½ ∈ [−½, w − ½), so x0 ∈ [−1, w − 1]; likewise y0.
    let (x0, y0) = (x0 as isize, y0 as isize);
    let pixel = |x: isize, y: isize| {
        let x = x.clamp(0, w as isize - 1) as usize;
        let y = y.clamp(0, h as isize - 1) as usize;
        // In bounds: clamped to the image, and `source_pixels` checked src.len() >= w·h.
        f64::from(src[y * w + x])
    };
    let mut rows = [0.0; 4];
    for (r, row) in (y0 - 1..).zip(&mut rows) {
        *row = cubic(
            [
                pixel(x0 - 1, r),
                pixel(x0, r),
                pixel(x0 + 1, r),
                pixel(x0 + 2, r),
            ],
            dx,
        );
    }
    clip_and_truncate(cubic(rows, dy))
}

/// Pillow's `BICUBIC` macro: the a = −1 cubic through `v[0..4]` at `d ∈ [0, 1)` past `v[1]`,
/// in exactly its Horner form and operation order.
///
/// On 8-bit samples the C macro computes `p1..p4` in int arithmetic; here they are f64, which is
/// the same: every intermediate is an integer of magnitude below 2^11, exact in both.
#[inline(always)]
fn cubic(v: [f64; 4], d: f64) -> f64 {
    let [v1, v2, v3, v4] = v;
    let p1 = v2;
    let p2 = -v1 + v3;
    let p3 = 2.0 * (v1 - v2) + v3 - v4;
    let p4 = -v1 + v2 - v3 + v4;
    p1 + d * (p2 + d * (p3 + d * p4))
}

/// Pillow's output rule for 8-bit bicubic: clip to [0, 255], then truncate toward zero (no
/// rounding; NaN, which Pillow leaves undefined, becomes 0).
#[inline(always)]
fn clip_and_truncate(value: f64) -> u8 {
    // Rust's float-to-int `as` truncates toward zero and saturates (NaN → 0): exactly Pillow's
    // `v <= 0 → 0; v >= 255 → 255; else (UINT8)v`, without branches.
    value as u8
}

/// A zeroed `out_w × out_h` buffer, or `None` when its size overflows or cannot be allocated.
fn zeroed_output(out_w: usize, out_h: usize) -> Option<Vec<u8>> {
    let len = out_w.checked_mul(out_h)?;
    let mut out = Vec::new();
    out.try_reserve_exact(len).ok()?;
    out.resize(len, 0);
    Some(out)
}

/// The `w × h` pixels of `src`, or `None` when the image is empty or `src` too short for it.
fn source_pixels(src: &[u8], w: usize, h: usize) -> Option<&[u8]> {
    if w == 0 || h == 0 {
        return None;
    }
    src.get(..w.checked_mul(h)?)
}

/// A non-empty source image whose `w · h` pixels are all present, for the fast path.
struct Source<'a> {
    /// Whole rows `first_row ..` of the image: all of it, or a band.
    pixels: &'a [u8],
    w: usize,
    /// `first_row · w`: the image offset of `pixels[0]`.
    offset: usize,
    /// The first and last image row that `pixels` holds, for clamping.
    first_held: isize,
    last_held: isize,
    /// `w − 2` and `h − 2`: a sample position (u − ½, v − ½) in `[1, w − 2) × [1, h − 2)` has its
    /// whole 4×4 neighbourhood inside the image. Empty when w or h < 4, and also (so that
    /// positions fit in i32) for images wider or taller than 2^30.
    x_interior_end: f64,
    y_interior_end: f64,
    /// `w` and `h` as Pillow compares them with the sample position.
    w_f64: f64,
    h_f64: f64,
    /// The largest column and row index of the image (`w − 1`, `h − 1`), for clamping.
    x_max: isize,
    y_max: isize,
}

impl<'a> Source<'a> {
    /// `pixels` holds whole rows `first_row ..` of a `w × h` image, at least one (the whole
    /// image as [`source_pixels`] returns it, or a band within it).
    fn new(pixels: &'a [u8], first_row: usize, w: usize, h: usize) -> Self {
        let interior_end = |n: usize| if n <= 1 << 30 { n as f64 - 2.0 } else { 0.0 };
        // All fit in isize: w · rows ≤ pixels.len() ≤ isize::MAX, and the band lies in the image.
        let held = pixels.len() / w.max(1);
        Self {
            pixels,
            w,
            offset: first_row * w,
            first_held: first_row as isize,
            last_held: (first_row + held) as isize - 1,
            x_interior_end: interior_end(w),
            y_interior_end: interior_end(h),
            w_f64: w as f64,
            h_f64: h as f64,
            x_max: w as isize - 1,
            y_max: h as isize - 1,
        }
    }

    /// Whether the output pixel that maps to (u, v) is sampled (Pillow's bounds test) rather
    /// than left at the fill value 0. NaN is outside.
    #[inline(always)]
    fn contains(&self, u: f64, v: f64) -> bool {
        u >= 0.0 && u < self.w_f64 && v >= 0.0 && v < self.h_f64
    }

    /// Samples the [`LANES`] output pixels centred at `xin` on `map`'s row into `out` when all
    /// their 4×4 neighbourhoods lie inside the image (the common case) and returns whether it
    /// did; false leaves `out` untouched for [`Self::sample`]. The positions and offsets are
    /// Pillow's f64 ones; the cubics run in f32 and a pixel whose f32 value is too near a byte
    /// boundary to be sure of Pillow's byte is sampled again in f64 ([`super::cubic32`] proves
    /// the bound).
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    #[inline(always)]
    fn sample_interior_block(&self, map: &RowMap, xin: &[f64; LANES], out: &mut [u8]) -> bool {
        let mut x = [0.0; LANES];
        let mut y = [0.0; LANES];
        // Non-short-circuit `&`: one branch per block. NaN compares false, so is not interior.
        let mut interior = true;
        for i in 0..LANES {
            let (u, v) = map.at(xin[i]);
            x[i] = u - 0.5;
            y[i] = v - 0.5;
            interior &= (x[i] >= 1.0) & (x[i] < self.x_interior_end);
            interior &= (y[i] >= 1.0) & (y[i] < self.y_interior_end);
        }
        if !interior {
            return false;
        }
        let mut x0 = [0; LANES];
        let mut y0 = [0; LANES];
        let mut dx = [0.0; LANES];
        let mut dy = [0.0; LANES];
        for i in 0..LANES {
            // In [1, 2^30), so truncation is floor (Pillow's FLOOR) and i32 holds it.
            x0[i] = x[i] as i32;
            y0[i] = y[i] as i32;
            dx[i] = (x[i] - f64::from(x0[i])) as f32;
            dy[i] = (y[i] - f64::from(y0[i])) as f32;
        }
        // The common case for alignment transforms (scale near 1, small rotation): the lanes
        // sample consecutive columns of the same rows, so each neighbourhood row is one
        // contiguous run of LANES + 3 pixels, and lane i's four samples start i pixels into it.
        let mut run = true;
        for i in 1..LANES {
            run &= (y0[i] == y0[0]) & (x0[i] == x0[0] + i as i32);
        }
        // rows[r][i]: the cubic along x of row r of lane i's neighbourhood; samples[k][i]: sample
        // k of that row for lane i. The `else { return false }` arms only guard the indexing:
        // an interior neighbourhood always lies inside `pixels`.
        let mut rows = [[0.0; LANES]; 4];
        if run {
            // A band that misses the top row sends the block to `sample`, which clamps.
            let Some(first) =
                ((y0[0] as usize - 1) * self.w + (x0[0] as usize - 1)).checked_sub(self.offset)
            else {
                return false;
            };
            for (r, row) in rows.iter_mut().enumerate() {
                let Some(run_pixels) = self
                    .pixels
                    .get(first + r * self.w..)
                    .and_then(<[u8]>::first_chunk::<{ LANES + 3 }>)
                else {
                    return false;
                };
                let mut widened = [0.0; LANES + 3];
                for (wide, pixel) in widened.iter_mut().zip(run_pixels) {
                    *wide = f32::from(*pixel);
                }
                let mut samples = [[0.0; LANES]; 4];
                for (k, sample) in samples.iter_mut().enumerate() {
                    sample.copy_from_slice(&widened[k..k + LANES]);
                }
                *row = cubic_lanes(&samples, &dx);
            }
        } else {
            let mut first = [0; LANES];
            for i in 0..LANES {
                let Some(start) =
                    ((y0[i] as usize - 1) * self.w + (x0[i] as usize - 1)).checked_sub(self.offset)
                else {
                    return false;
                };
                first[i] = start;
            }
            for (r, row) in rows.iter_mut().enumerate() {
                let mut samples = [[0.0; LANES]; 4];
                for i in 0..LANES {
                    let Some(pixels) = self
                        .pixels
                        .get(first[i] + r * self.w..)
                        .and_then(<[u8]>::first_chunk::<4>)
                    else {
                        return false;
                    };
                    for (sample, pixel) in samples.iter_mut().zip(pixels) {
                        sample[i] = f32::from(*pixel);
                    }
                }
                *row = cubic_lanes(&samples, &dx);
            }
        }
        let values = cubic_lanes(&rows, &dy);
        let settled = settle(&values, out);
        if settled.contains(&false) {
            for (i, px) in out.iter_mut().enumerate().take(LANES) {
                if !settled[i] {
                    *px = self.sample_inside(x[i], y[i]);
                }
            }
        }
        true
    }

    /// [`Self::sample`] at (x, y) = (u − ½, v − ½) of a pixel of an interior block (its whole 4×4
    /// neighbourhood inside the image): the same f64 operations in the same order, with no
    /// clamping, or `sample` itself where the band misses one of the rows. The fast paths
    /// compute the pixels their f32 values leave unsettled with it.
    #[inline]
    fn sample_inside(&self, x: f64, y: f64) -> u8 {
        // In [1, 2^30): truncation is floor, as in `sample`.
        let (x0, y0) = (x as usize, y as usize);
        let (dx, dy) = (x - x0 as f64, y - y0 as f64);
        let rows = ((y0 - 1) * self.w + (x0 - 1))
            .checked_sub(self.offset)
            .and_then(|first| {
                let row = |r: usize| self.pixels.get(first + r * self.w..)?.first_chunk::<4>();
                Some([row(0)?, row(1)?, row(2)?, row(3)?])
            });
        let Some(rows) = rows else {
            return self.sample(x, y);
        };
        clip_and_truncate(cubic(rows.map(|row| cubic(row.map(f64::from), dx)), dy))
    }

    /// The bicubic sample at (x, y) = (u − ½, v − ½) of a point that [`Self::contains`], with
    /// neighbour indices clamped to the image: [`sample_reference`] with the bounds test and the
    /// −½ already done.
    fn sample(&self, x: f64, y: f64) -> u8 {
        // x ∈ [−½, w − ½): truncation is floor except on [−½, 0). Pillow's FLOOR does the same
        // (`(int)v` for v ≥ 0), and it avoids a libm call on x86-64 without SSE4.1.
        let x0 = if x < 0.0 { -1 } else { x as isize };
        let y0 = if y < 0.0 { -1 } else { y as isize };
        let dx = x - x0 as f64;
        let dy = y - y0 as f64;
        let mut xs = [0; 4];
        for (x, i) in xs.iter_mut().zip(x0 - 1..) {
            *x = i.clamp(0, self.x_max) as usize;
        }
        let mut rows = [0.0; 4];
        for (row, y) in rows.iter_mut().zip(y0 - 1..) {
            // Clamped to the image as Pillow does, then to the band, which holds every row the
            // strip needs (`resample_affine_rows` checks): the second clamp changes nothing then,
            // and keeps a band that breaks the contract from indexing out of bounds.
            let held = y
                .clamp(0, self.y_max)
                .clamp(self.first_held, self.last_held);
            let start = (held - self.first_held) as usize * self.w;
            // In bounds: the row is clamped to the band and the columns to the image's width.
            let line = &self.pixels[start..start + self.w];
            *row = cubic(xs.map(|x| f64::from(line[x])), dx);
        }
        clip_and_truncate(cubic(rows, dy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::affine::AffineTransform;

    /// SplitMix64: a tiny deterministic generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [lo, hi).
        fn range(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next_u64() as u8).collect()
        }
    }

    /// Forward columns rotating by `degrees` about the centre of a `w × h` slice, scaled and
    /// sheared, then shifted by (tx, ty).
    fn forward(
        degrees: f64,
        scale: f64,
        shear: f64,
        w: usize,
        h: usize,
        t: (f64, f64),
    ) -> [f64; 6] {
        let (s, c) = degrees.to_radians().sin_cos();
        let (a, b, cc, d) = (
            scale * c,
            scale * s,
            scale * (shear * c - s),
            scale * (shear * s + c),
        );
        let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
        [
            a,
            b,
            cc,
            d,
            cx - a * cx - cc * cy + t.0,
            cy - b * cx - d * cy + t.1,
        ]
    }

    /// Runs the fast resampler and its slow twin, asserts they agree pixel for pixel, and
    /// returns the result.
    fn both(src: &[u8], w: usize, h: usize, inv: &[f64; 6], ow: usize, oh: usize) -> Vec<u8> {
        let fast = resample_affine(src, w, h, inv, ow, oh);
        let slow = resample_affine_reference(src, w, h, inv, ow, oh);
        assert_eq!(fast.len(), slow.len());
        if let Some(i) = (0..fast.len()).find(|&i| fast[i] != slow[i]) {
            panic!(
                "fast {} != reference {} at ({}, {}) for {w}×{h} → {ow}×{oh}, inverse {inv:?}",
                fast[i],
                slow[i],
                i % ow,
                i / ow
            );
        }
        fast
    }

    #[test]
    fn identity_reproduces_the_source() {
        let src = Rng(1).bytes(37 * 23);
        let inv = AffineTransform::identity().inverse().unwrap();
        assert_eq!(both(&src, 37, 23, &inv, 37, 23), src);
    }

    #[test]
    fn integer_shift_moves_pixels_and_fills_zero() {
        // Forward shift by (+2, −1): output (x, y) pulls source (x − 2, y + 1).
        let src = Rng(2).bytes(9 * 7);
        let inv = AffineTransform::new([1.0, 0.0, 0.0, 1.0, 2.0, -1.0])
            .inverse()
            .unwrap();
        let out = both(&src, 9, 7, &inv, 9, 7);
        for y in 0..7 {
            for x in 0..9 {
                let expected = if x >= 2 && y + 1 < 7 {
                    src[(y + 1) * 9 + x - 2]
                } else {
                    0
                };
                assert_eq!(out[y * 9 + x], expected, "({x}, {y})");
            }
        }
    }

    #[test]
    fn kernel_is_a_minus_one_and_result_is_truncated() {
        // One row [0, 100, 200, 0] sampled halfway between 100 and 200 (u − ½ = 1.5):
        // a = −1 gives −⅛·0 + ⅝·100 + ⅝·200 − ⅛·0 = 187.5 → 187. Keys' a = −0.5 would give
        // 168.75 → 168, and rounding would give 188.
        let inv = [1.0, 0.0, 1.5, 0.0, 1.0, 0.0];
        assert_eq!(both(&[0, 100, 200, 0], 4, 1, &inv, 1, 1), [187]);
    }

    #[test]
    fn result_is_clipped_to_0_and_255() {
        // The overshoot of the a = −1 kernel: [255, 0, 0, 0] at 1.5 gives −31.875 → 0, and
        // [0, 255, 255, 0] at 1.5 gives 318.75 → 255.
        let inv = [1.0, 0.0, 1.5, 0.0, 1.0, 0.0];
        assert_eq!(both(&[255, 0, 0, 0], 4, 1, &inv, 1, 1), [0]);
        assert_eq!(both(&[0, 255, 255, 0], 4, 1, &inv, 1, 1), [255]);
    }

    #[test]
    fn cubic_on_f64_samples_equals_pillows_int_coefficients() {
        // Pillow's BICUBIC macro on UINT8 samples computes p1..p4 as C ints; `cubic` computes
        // them in f64. Both are exact, so the results must be the same bits.
        let mut rng = Rng(3);
        for _ in 0..200_000 {
            let v = [0; 4].map(|_: u8| i32::from(rng.next_u64() as u8));
            let d = rng.range(0.0, 1.0);
            let [v1, v2, v3, v4] = v;
            let p1 = f64::from(v2);
            let p2 = f64::from(-v1 + v3);
            let p3 = f64::from(2 * (v1 - v2) + v3 - v4);
            let p4 = f64::from(-v1 + v2 - v3 + v4);
            let pillow = p1 + d * (p2 + d * (p3 + d * p4));
            let ours = cubic(v.map(f64::from), d);
            assert_eq!(ours.to_bits(), pillow.to_bits(), "{v:?} {d}");
        }
    }

    #[test]
    fn fast_equals_reference_on_random_transforms() {
        let mut rng = Rng(4);
        for case in 0..400 {
            let (w, h) = match case % 8 {
                0 => (1, 1),
                1 => (1 + rng.below(3), 1 + rng.below(3)),
                2 => (1, 1 + rng.below(40)),
                3 => (1 + rng.below(40), 1),
                _ => (1 + rng.below(90), 1 + rng.below(90)),
            };
            let src = rng.bytes(w * h);
            let degrees = match case % 3 {
                0 => rng.range(-3.0, 3.0),
                1 => rng.range(-180.0, 180.0),
                _ => [0.0, 90.0, -90.0, 180.0][rng.below(4)],
            };
            let scale = if case % 5 == 0 {
                1.0
            } else {
                rng.range(0.2, 4.0)
            };
            let shear = if case % 4 == 0 {
                rng.range(-0.5, 0.5)
            } else {
                0.0
            };
            // Translations up to twice the size, so many outputs fall past the edge.
            let t = (
                rng.range(-2.0, 2.0) * w as f64,
                rng.range(-2.0, 2.0) * h as f64,
            );
            let cols = forward(degrees, scale, shear, w, h, t);
            let inv = AffineTransform::new(cols).inverse().unwrap();
            // Outputs smaller than, equal to and up to 3× larger than the source.
            let ow = 1 + rng.below(3 * w + 8);
            let oh = 1 + rng.below(3 * h + 8);
            both(&src, w, h, &inv, ow, oh);
        }
    }

    #[test]
    fn fast_equals_reference_on_alignment_like_transforms() {
        // Scale 1 and rotations under a few degrees, as real alignments are: the fast path's
        // consecutive-column case, plus its block remainders (widths not a multiple of LANES).
        let mut rng = Rng(6);
        for case in 0..24 {
            let (w, h) = (150 + rng.below(60), 100 + rng.below(60));
            let src = rng.bytes(w * h);
            let degrees = rng.range(-4.0, 4.0);
            let t = (rng.range(-20.0, 20.0), rng.range(-20.0, 20.0));
            let cols = forward(degrees, 1.0, 0.0, w, h, t);
            let inv = AffineTransform::new(cols).inverse().unwrap();
            both(&src, w, h, &inv, w + case % LANES, h);
        }
    }

    #[test]
    fn fast_equals_reference_at_half_pixel_and_edge_positions() {
        // Positions that land exactly on pixel centres, edges and the [0, w) bounds, where
        // floor, the −½ offset and the bounds test are most likely to disagree.
        let mut rng = Rng(5);
        let (w, h) = (13, 11);
        let src = rng.bytes(w * h);
        for c in [
            -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 9.5, 10.0, 11.5, 12.0,
        ] {
            for f in [-0.5, 0.0, 0.5, 1.0, 8.5, 9.0, 10.5] {
                for scale in [0.5, 1.0, 2.0] {
                    both(&src, w, h, &[scale, 0.0, c, 0.0, scale, f], w + 3, h + 3);
                    both(&src, w, h, &[0.0, scale, c, scale, 0.0, f], w + 3, h + 3);
                }
            }
        }
    }

    #[test]
    fn fast_equals_reference_where_pillows_value_is_nearest_a_byte_boundary() {
        // The fast path computes in f32 and trusts its byte only outside a bound of a byte
        // boundary (cubic32). Hunt for its worst case: move one sample offset by bisection to
        // the two adjacent f64 positions where Pillow's byte changes, where Pillow's value lies
        // within an ulp of an integer, and check the fast path there. BLOCK pixels wide, so the
        // first pixel goes through the interior block; BLOCK + 4 columns keep them all interior.
        const W: usize = BLOCK + 4;
        let mut rng = Rng(10);
        let byte_at =
            |src: &[u8], inv: &[f64; 6]| resample_affine_reference(src, W, 10, inv, BLOCK, 1)[0];
        let mut boundaries = 0;
        for case in 0..3000 {
            let src: Vec<u8> = (0..W * 10)
                .map(|_| match rng.below(4) {
                    0 => 0,
                    1 => 255,
                    _ => rng.next_u64() as u8,
                })
                .collect();
            // Output pixel 0 samples x = c, y = f + ½ − ½ (a0 = e = 1, no rotation); move x or y.
            let inv = [1.0, 0.0, rng.range(1.0, 2.0), 0.0, 1.0, rng.range(1.0, 2.0)];
            let k = if case % 2 == 0 { 2 } else { 5 };
            let (mut low, mut high) = (inv[k].floor(), inv[k].floor() + 0.999_999);
            let at = |t: f64| {
                let mut inv = inv;
                inv[k] = t;
                inv
            };
            let (byte_low, byte_high) = (byte_at(&src, &at(low)), byte_at(&src, &at(high)));
            if byte_low == byte_high {
                continue;
            }
            while low.next_up() < high {
                let mid = low + (high - low) / 2.0;
                let mid = if mid <= low {
                    low.next_up()
                } else {
                    mid.min(high.next_down())
                };
                if byte_at(&src, &at(mid)) == byte_low {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            boundaries += 1;
            for t in [low, high] {
                both(&src, W, 10, &at(t), BLOCK, 1);
            }
        }
        assert!(boundaries > 1000, "{boundaries} byte boundaries found");
    }

    /// Resamples `inv` strip by strip, each strip of `strip` rows from a band of exactly the
    /// source rows it needs, and asserts the result equals the whole-image resampling.
    fn strips_equal_whole(
        src: &[u8],
        (w, h): (usize, usize),
        inv: &[f64; 6],
        (ow, oh): (usize, usize),
        strip: usize,
    ) {
        let whole = resample_affine(src, w, h, inv, ow, oh);
        let mut out = Vec::new();
        for y0 in (0..oh).step_by(strip) {
            let rows = y0..(y0 + strip).min(oh);
            let needed = source_rows_needed(inv, w, h, ow, rows.clone());
            let band = SourceRows {
                pixels: &src[needed.start * w..needed.end * w],
                first_row: needed.start,
                width: w,
                height: h,
            };
            let mut part = vec![1; rows.len() * ow];
            resample_affine_rows(band, inv, ow, rows, &mut part).unwrap();
            out.extend_from_slice(&part);
        }
        if let Some(i) = (0..whole.len()).find(|&i| whole[i] != out[i]) {
            panic!(
                "strips of {strip} {} != whole {} at ({}, {}) for {w}×{h} → {ow}×{oh}, inverse {inv:?}",
                out[i],
                whole[i],
                i % ow,
                i / ow
            );
        }
    }

    #[test]
    fn strips_from_bands_equal_the_whole_image() {
        let mut rng = Rng(7);
        for case in 0..600 {
            let (w, h) = match case % 6 {
                0 => (1 + rng.below(3), 1 + rng.below(3)),
                1 => (1 + rng.below(40), 1 + rng.below(200)),
                _ => (1 + rng.below(90), 1 + rng.below(90)),
            };
            let src = rng.bytes(w * h);
            let degrees = match case % 4 {
                0 => rng.range(-3.0, 3.0),
                1 => rng.range(-180.0, 180.0),
                2 => [0.0, 90.0, -90.0, 180.0][rng.below(4)],
                _ => rng.range(-20.0, 20.0),
            };
            let scale = if case % 5 == 0 {
                1.0
            } else {
                rng.range(0.2, 4.0)
            };
            let shear = if case % 3 == 0 {
                rng.range(-0.8, 0.8)
            } else {
                0.0
            };
            let t = (
                rng.range(-1.5, 1.5) * w as f64,
                rng.range(-1.5, 1.5) * h as f64,
            );
            let mut cols = forward(degrees, scale, shear, w, h, t);
            if case % 7 == 0 {
                // A flip: mirror x or y.
                let k = 2 * rng.below(2);
                cols[k] = -cols[k];
                cols[k + 1] = -cols[k + 1];
                cols[4 + k / 2] += if k == 0 { w as f64 } else { h as f64 };
            }
            let inv = AffineTransform::new(cols).inverse().unwrap();
            let (ow, oh) = (1 + rng.below(2 * w + 8), 1 + rng.below(2 * h + 8));
            let strip = 1 + rng.below(oh.min(40));
            strips_equal_whole(&src, (w, h), &inv, (ow, oh), strip);
        }
    }

    #[test]
    fn strips_equal_the_whole_image_for_extreme_coefficients() {
        let mut rng = Rng(8);
        let (w, h) = (23, 31);
        let src = rng.bytes(w * h);
        let identity = AffineTransform::identity().inverse().unwrap();
        for bad in [1e308, -1e308, 1e15, -1e15, 1e-300, f64::MIN_POSITIVE] {
            for i in 0..6 {
                let mut inv = identity;
                inv[i] = bad;
                for strip in [1, 3, 7, 40] {
                    strips_equal_whole(&src, (w, h), &inv, (w + 2, h + 2), strip);
                }
            }
        }
        // A large offset cancelled by a large coefficient: v is computed with rounding error.
        let inv = [1.0, 0.0, 0.0, 1e9, 1.0, -1e9 * 10.5];
        strips_equal_whole(&src, (w, h), &inv, (w, h), 5);
    }

    #[test]
    fn a_band_missing_needed_rows_or_a_short_buffer_is_refused() {
        let src = Rng(9).bytes(20 * 20);
        let identity = AffineTransform::identity().inverse().unwrap();
        let band = |first: usize, last: usize| SourceRows {
            pixels: &src[first * 20..last * 20],
            first_row: first,
            width: 20,
            height: 20,
        };
        let mut out = vec![7; 5 * 20];
        let e = resample_affine_rows(band(9, 20), &identity, 20, 5..10, &mut out).unwrap_err();
        assert_eq!(
            e,
            StripMismatch::MissingRows {
                needed: 2..13,
                held: 9..20
            }
        );
        assert_eq!(out, [7; 100], "nothing written");
        let e = resample_affine_rows(band(0, 20), &identity, 20, 5..10, &mut out[1..]).unwrap_err();
        assert_eq!(e.to_string(), "the strip buffer holds 99 bytes, not 100");
        // A strip that maps wholly outside the source needs no rows at all.
        let below = [1.0, 0.0, 0.0, 0.0, 1.0, 100.0];
        resample_affine_rows(band(0, 0), &below, 20, 5..10, &mut out).unwrap();
        assert_eq!(out, [0; 100]);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let src = [7u8; 12];
        let inv = AffineTransform::identity().inverse().unwrap();
        // Empty source: every pixel falls outside.
        assert_eq!(both(&[], 0, 0, &inv, 2, 2), [0; 4]);
        assert_eq!(both(&src, 0, 5, &inv, 2, 2), [0; 4]);
        // Source shorter than w·h.
        assert_eq!(both(&src, 4, 4, &inv, 2, 2), [0; 4]);
        // Empty output.
        assert!(both(&src, 4, 3, &inv, 0, 5).is_empty());
        assert!(both(&src, 4, 3, &inv, 5, 0).is_empty());
        // Output too large to allocate, or whose size overflows.
        assert!(resample_affine(&src, 4, 3, &inv, usize::MAX, 2).is_empty());
        assert!(resample_affine(&src, 4, 3, &inv, usize::MAX / 2, 1).is_empty());
        assert!(resample_affine_reference(&src, 4, 3, &inv, usize::MAX, 2).is_empty());
        // Non-finite and huge coefficients (AffineTransform rejects them, but be robust).
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e308,
            -1e308,
            f64::MIN_POSITIVE,
        ] {
            for i in 0..6 {
                let mut inv = inv;
                inv[i] = bad;
                both(&src, 4, 3, &inv, 5, 4);
            }
        }
        // Sizes whose f64 conversion is inexact.
        let big = usize::MAX / 3;
        assert_eq!(both(&src, big, 1, &inv, 1, 1), [0]);
    }
}
