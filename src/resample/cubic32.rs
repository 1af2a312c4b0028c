//! Pillow's bicubic kernel in f32, with a proven bound on its distance from Pillow's f64 result.
//!
//! [`super::bicubic`] must give Pillow's bytes exactly, and Pillow computes in f64. Two f64 lanes
//! fill a simd128 vector, four f32 lanes do, so the interior fast path computes each output pixel
//! in f32 and keeps the result only when the f64 result is certain to truncate to the same byte:
//! when `value ± BOUND` (the f32 value widened by the bound below) truncates to a single byte.
//! Otherwise (1.5% of the pixels of `benches/resample.rs`'s slice) the pixel is computed again
//! in f64, so the output is Pillow's whatever the f32 arithmetic does. `bicubic`'s tests hunt for
//! a disagreement with the slow twin on random and on adversarial near-integer cases.
//!
//! ## The bound
//!
//! Let u = 2⁻²⁴ (the unit roundoff of f32) and let d₆₄ ∈ [0, 1) be an offset (dx or dy) as
//! Pillow computes it; the f32 path uses d₃₂ = fl₃₂(d₆₄), |d₃₂ − d₆₄| ≤ u·d₆₄ ≤ u, d₃₂ ≤ 1.
//! [`super::bicubic`]'s `cubic` is `p1 + d·(p2 + d·(p3 + d·p4))` with p1 = v2, p2 = v3 − v1,
//! p3 = 2(v1 − v2) + v3 − v4, p4 = −v1 + v2 − v3 + v4. Horner's rule for a cubic with computed
//! coefficients has error at most γ₆·Σ|pᵢ|·dⁱ⁻¹ ≤ γ₆·Σ|pᵢ| (γ₆ = 6u/(1 − 6u), Higham §5.1; no
//! fused multiply-add, which Rust never introduces), and moving d by δ moves the exact cubic by at
//! most |p′|·δ ≤ (|p2| + 2|p3| + 3|p4|)·u.
//!
//! **Along x** the samples are integers in [0, 255], so the p's are exact integers with
//! |p1| ≤ 255, |p2| ≤ 255, |p3| ≤ 765, |p4| ≤ 510: Σ|pᵢ| ≤ 1785 and |p′| ≤ 3315. A row's f32 value
//! is within E_row = (6·1785 + 3315)·u·(1 + 7u) < 14030·u of the exact cubic at d₆₄.
//!
//! **Along y** the inputs are the four rows. The exact cubic is Σ wₖ(d)·vₖ with the a = −1
//! kernel's weights: the two outer ones are −d(1 − d)² and −d²(1 − d), summing to −d(1 − d) ≥ −¼,
//! and all four sum to 1, so Σ|wₖ| ≤ 1.5 and a row lies in [−255/4, 255·5/4]; with E_row,
//! |row| ≤ 320. Then |p1| ≤ 320, |p2| ≤ 640, |p3| ≤ 1920, |p4| ≤ 1280, and:
//! - the rows' own errors: at most Σ|wₖ|·E_row = 1.5·E_row < 21045·u;
//! - rounding while forming the p's (they are no longer integers): p2 one subtraction of at most
//!   640; p3 three steps of at most 640, 1600 and 1920 (the doubling is exact); p4 three steps of
//!   at most 640, 960 and 1280; each scaled by dⁱ⁻¹ ≤ 1 in the cubic: 7680·u;
//! - Horner's rounding: γ₆·(320 + 640 + 1920 + 1280) < 24970·u;
//! - d₃₂ for d₆₄: (640 + 2·1920 + 3·1280)·u = 8320·u.
//!
//! The f32 value is within 62015·u < 3.70·10⁻³ of the exact cubic of the exact rows; Pillow's f64
//! value is within 2⁻²⁹ times less (the same sums with 2⁻⁵³). Forming `value − BOUND` and
//! `value + BOUND` rounds each by at most half an ulp of a number below 512, 2⁻¹⁶. So the exact
//! f64 result lies in [value − 3.72·10⁻³, value + 3.72·10⁻³]; [`BOUND`] is 2⁻⁷ ≈ 7.8·10⁻³, twice
//! that, as a margin for a slip in this derivation rather than for the arithmetic. Truncation
//! with clipping (`as u8`) is monotone, so when both ends of the interval give the same byte,
//! the f64 value gives it too.

/// Output pixels computed side by side in the f32 fast path: one f32x4 vector in wasm simd128
/// and SSE2.
pub(super) const LANES: usize = 4;

/// How far the f32 result may lie from Pillow's f64 result (the module docs derive 3.72·10⁻³).
pub(super) const BOUND: f32 = 1.0 / 128.0;

/// The cubic along one axis for [`LANES`] pixels side by side in f32: `v[k][i]` is sample k of
/// lane i and `d[i]` its offset. The same operations in the same order as `bicubic`'s f64
/// `cubic`, one loop per step so that LLVM vectorises each step.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
pub(super) fn cubic_lanes(v: &[[f32; LANES]; 4], d: &[f32; LANES]) -> [f32; LANES] {
    let [v1, v2, v3, v4] = v;
    let mut p = [[0.0; LANES]; 4];
    for i in 0..LANES {
        p[0][i] = v2[i];
        p[1][i] = -v1[i] + v3[i];
        p[2][i] = 2.0 * (v1[i] - v2[i]) + v3[i] - v4[i];
        p[3][i] = -v1[i] + v2[i] - v3[i] + v4[i];
    }
    let mut out = [0.0; LANES];
    for i in 0..LANES {
        out[i] = p[0][i] + d[i] * (p[1][i] + d[i] * (p[2][i] + d[i] * p[3][i]));
    }
    out
}

/// Pillow's byte for each lane's f32 `values` (clipped to [0, 255], truncated) into `out`, and a
/// mask of the lanes that are settled: those where Pillow's f64 value, within [`BOUND`], gives
/// the same byte. The bytes of unsettled lanes are to be computed again in f64.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
pub(super) fn settle(values: &[f32; LANES], out: &mut [u8]) -> [bool; LANES] {
    let mut settled = [false; LANES];
    for i in 0..LANES {
        // Rust's `as u8` saturates and truncates: Pillow's clip-then-truncate, monotone.
        let low = (values[i] - BOUND) as u8;
        let high = (values[i] + BOUND) as u8;
        settled[i] = low == high;
        out[i] = high;
    }
    settled
}

#[cfg(test)]
mod tests {

    #[test]
    fn kernel_weights_bound_the_rows() {
        // The bound's premises: Σ|wₖ| ≤ 1.5 and the outer weights sum to at least −¼, checked
        // on the kernel itself (each weight is the cubic through a unit sample at one position).
        for step in 0..=1000 {
            let d = f64::from(step) / 1000.0;
            let weights: Vec<f64> = (0..4)
                .map(|k| {
                    let mut v = [0.0; 4];
                    v[k] = 1.0;
                    let [v1, v2, v3, v4] = v;
                    let p3 = 2.0 * (v1 - v2) + v3 - v4;
                    let p4 = -v1 + v2 - v3 + v4;
                    v2 + d * ((v3 - v1) + d * (p3 + d * p4))
                })
                .collect();
            let absolute: f64 = weights.iter().map(|w| w.abs()).sum();
            let negative: f64 = weights.iter().filter(|w| **w < 0.0).sum();
            assert!(absolute <= 1.5 + 1e-12, "{d}: {absolute}");
            assert!(negative >= -0.25 - 1e-12, "{d}: {negative}");
        }
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    #[test]
    fn f32_values_stay_within_the_derived_bound_of_pillows() {
        use super::{LANES, cubic_lanes};
        // `bicubic`'s f64 `cubic`, as Pillow evaluates it.
        let cubic_f64 = |[v1, v2, v3, v4]: [f64; 4], d: f64| {
            v2 + d * ((-v1 + v3) + d * ((2.0 * (v1 - v2) + v3 - v4) + d * (-v1 + v2 - v3 + v4)))
        };
        // SplitMix64, so a failure reproduces.
        let mut state = 0x5EED_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut worst = 0.0f64;
        for _ in 0..200_000 {
            // Samples at the extremes half of the time: they make the largest coefficients.
            let mut pixels = [[0u8; 4]; 4];
            for pixel in pixels.iter_mut().flatten() {
                let bits = next();
                *pixel = match bits % 4 {
                    0 => 0,
                    1 => 255,
                    _ => (bits >> 8) as u8,
                };
            }
            let mut offset = || {
                let bits = next();
                let d = (bits >> 11) as f64 / (1u64 << 53) as f64;
                match bits % 8 {
                    0 => 1.0 - d * 1e-6,
                    1 => 0.5 + (d - 0.5) * 1e-6,
                    _ => d,
                }
            };
            let (dx, dy) = (offset(), offset());
            let rows64 = pixels.map(|row| cubic_f64(row.map(f64::from), dx));
            let exact = cubic_f64(rows64, dy);
            // All lanes the same pixel: the kernel's lanes are independent.
            let mut rows32 = [[0.0f32; LANES]; 4];
            for (r, row) in pixels.iter().enumerate() {
                let samples = [0, 1, 2, 3].map(|k| [f32::from(row[k]); LANES]);
                rows32[r] = cubic_lanes(&samples, &[dx as f32; LANES]);
            }
            let value = cubic_lanes(&rows32, &[dy as f32; LANES])[0];
            worst = worst.max((f64::from(value) - exact).abs());
        }
        // The module docs derive 3.70·10⁻³ for the kernel; BOUND is twice that.
        assert!(worst < 3.70e-3, "{worst}");
        assert!(worst > 1e-6, "the test reaches f32 rounding: {worst}");
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    #[test]
    fn values_near_a_byte_boundary_are_not_settled() {
        use super::{LANES, settle};
        let mut out = [0; LANES];
        let values = [187.999, 188.001, 0.5, -3.0];
        let settled = settle(&values, &mut out);
        assert_eq!(settled, [false, false, true, true]);
        assert_eq!(out[2..], [0, 0]);
        let settled = settle(&[254.999, 255.0, 300.0, 12.5], &mut out);
        assert_eq!(settled, [false, false, true, true]);
        assert_eq!(out[2..], [255, 12]);
    }
}
