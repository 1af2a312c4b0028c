//! The interior fast path of [`super::Source`] written in wasm simd128, for the component.
//!
//! The portable `sample_interior_block` performs the same operations, but LLVM leaves much of it
//! scalar in wasm32 (the positions, the bounds tests, the byte loads and the clipping, lane by
//! lane). Here every step is one vector operation on four lanes; each lane computes exactly
//! what the portable path computes (the same f64 positions and offsets, the same f32 cubics, the
//! same [`BOUND`] test and f64 fallback), so the bytes are Pillow's by the same proof
//! ([`crate::resample::cubic32`]). The p coefficients along x are formed in i16 lanes: from
//! 8-bit samples they are integers of magnitude at most 765, exact in i16 and in f32 alike.
//! `cargo test --target wasm32-wasip2` runs `bicubic`'s tests on this path (see its module docs).

use super::{BLOCK, RowMap, Source};
use crate::resample::cubic32::BOUND;
use core::arch::wasm32::{
    f32x4_add, f32x4_convert_i32x4, f32x4_demote_f64x2_zero, f32x4_eq, f32x4_floor, f32x4_mul,
    f32x4_pmax, f32x4_pmin, f32x4_splat, f32x4_sub, f64x2, f64x2_add, f64x2_eq, f64x2_extract_lane,
    f64x2_floor, f64x2_ge, f64x2_lt, f64x2_mul, f64x2_splat, f64x2_sub, i8x16_shuffle, i16x8_add,
    i16x8_shl, i16x8_shuffle, i16x8_sub, i32x4, i32x4_bitmask, i32x4_extend_high_i16x8,
    i32x4_extend_low_i16x8, i64x2, i64x2_all_true, i64x2_extract_lane, i64x2_shuffle,
    u16x8_extend_high_u8x16, u16x8_extend_low_u8x16, v128, v128_and,
};

impl Source<'_> {
    /// The simd128 form of the portable `sample_interior_block`, for [`BLOCK`] = 8 pixels as two
    /// halves of four lanes: the same contract and bytes.
    #[inline(always)]
    pub(super) fn sample_interior_block(
        &self,
        map: &RowMap,
        xin: &[f64; BLOCK],
        out: &mut [u8],
    ) -> bool {
        // `RowMap::at` on two lanes at once: `a·xin + b_yin + c`, in that order, less ½.
        let half = f64x2_splat(0.5);
        let xin: [v128; 4] = core::array::from_fn(|i| f64x2(xin[2 * i], xin[2 * i + 1]));
        let at = |a: f64, b_yin: f64, c: f64| {
            let (a, b_yin, c) = (f64x2_splat(a), f64x2_splat(b_yin), f64x2_splat(c));
            xin.map(|xin| f64x2_sub(f64x2_add(f64x2_add(f64x2_mul(a, xin), b_yin), c), half))
        };
        let x = at(map.a0, map.b_yin, map.a2);
        let y = at(map.a3, map.e_yin, map.a5);
        // NaN compares false, so is not interior.
        let one = f64x2_splat(1.0);
        let (x_end, y_end) = (
            f64x2_splat(self.x_interior_end),
            f64x2_splat(self.y_interior_end),
        );
        let inside = |x: v128, y: v128| {
            v128_and(
                v128_and(f64x2_ge(x, one), f64x2_lt(x, x_end)),
                v128_and(f64x2_ge(y, one), f64x2_lt(y, y_end)),
            )
        };
        let interior = v128_and(
            v128_and(inside(x[0], y[0]), inside(x[1], y[1])),
            v128_and(inside(x[2], y[2]), inside(x[3], y[3])),
        );
        if !i64x2_all_true(interior) {
            return false;
        }
        // In [1, 2^30): floor is Pillow's FLOOR (truncation there), exact, and fits i32. The
        // neighbourhood's top-left pixel of each lane is at (x0 − 1, y0 − 1).
        let (x0, y0) = (x.map(|t| f64x2_floor(t)), y.map(|t| f64x2_floor(t)));
        // The offset in f64 as Pillow computes it, then rounded to f32 for the cubics: per half
        // h (lanes 4h..4h + 4) from the f64x2 pair 2h, 2h + 1.
        let offset = |t: &[v128; 4], t0: &[v128; 4], h: usize| {
            i64x2_shuffle::<0, 2>(
                f32x4_demote_f64x2_zero(f64x2_sub(t[2 * h], t0[2 * h])),
                f32x4_demote_f64x2_zero(f64x2_sub(t[2 * h + 1], t0[2 * h + 1])),
            )
        };
        let dx = [offset(&x, &x0, 0), offset(&x, &x0, 1)];
        let dy = [offset(&y, &y0, 0), offset(&y, &y0, 1)];
        let lane = |t: &[v128; 4], i: usize| {
            if i.is_multiple_of(2) {
                f64x2_extract_lane::<0>(t[i / 2])
            } else {
                f64x2_extract_lane::<1>(t[i / 2])
            }
        };
        let corner = |i: usize| {
            // x0, y0 ≥ 1 (interior), so the neighbourhood's first pixel is at (x0 − 1, y0 − 1).
            let (x0, y0) = (lane(&x0, i) as usize, lane(&y0, i) as usize);
            ((y0 - 1) * self.w + (x0 - 1)).checked_sub(self.offset)
        };
        // As in the portable path: consecutive columns of the same rows read one run per row.
        // Whole numbers below 2^30 compare exactly in f64.
        let (column, row) = (f64x2_splat(lane(&x0, 0)), f64x2_splat(lane(&y0, 0)));
        let steps = [
            f64x2(0.0, 1.0),
            f64x2(2.0, 3.0),
            f64x2(4.0, 5.0),
            f64x2(6.0, 7.0),
        ];
        let mut run = f64x2_eq(y0[0], row);
        for i in 0..4 {
            run = v128_and(run, f64x2_eq(y0[i], row));
            run = v128_and(run, f64x2_eq(x0[i], f64x2_add(column, steps[i])));
        }
        let run = i64x2_all_true(run);
        // rows[r][h]: the cubic along x of neighbourhood row r for half h's lanes.
        let mut rows = [[f32x4_splat(0.0); 2]; 4];
        if run {
            // A band that misses the top row sends the block to `sample`, which clamps.
            let Some(first) = corner(0) else {
                return false;
            };
            for (r, row) in rows.iter_mut().enumerate() {
                // BLOCK + 3 = 11 pixels are needed; 16 are read, as one v128.
                let Some(run) = self
                    .pixels
                    .get(first + r * self.w..)
                    .and_then(<[u8]>::first_chunk::<16>)
                else {
                    return false;
                };
                let bytes = u128::from_le_bytes(*run);
                let bytes = i64x2(bytes as u64 as i64, (bytes >> 64) as u64 as i64);
                let (low, high) = (
                    u16x8_extend_low_u8x16(bytes),
                    u16x8_extend_high_u8x16(bytes),
                );
                // samples[k] lane i = pixel k + i of the run.
                let samples = [
                    low,
                    i16x8_shuffle::<1, 2, 3, 4, 5, 6, 7, 8>(low, high),
                    i16x8_shuffle::<2, 3, 4, 5, 6, 7, 8, 9>(low, high),
                    i16x8_shuffle::<3, 4, 5, 6, 7, 8, 9, 10>(low, high),
                ];
                *row = cubic_of_bytes(samples, dx);
            }
        } else {
            let mut words = [0i32; 4 * BLOCK];
            for lane in 0..BLOCK {
                let Some(first) = corner(lane) else {
                    return false;
                };
                for r in 0..4 {
                    let Some(pixels) = self
                        .pixels
                        .get(first + r * self.w..)
                        .and_then(<[u8]>::first_chunk::<4>)
                    else {
                        return false;
                    };
                    words[r * BLOCK + lane] = i32::from_le_bytes(*pixels);
                }
            }
            for (r, row) in rows.iter_mut().enumerate() {
                let w = &words[r * BLOCK..];
                // Byte k of lane i's word is its sample k: gather the k-th bytes, lane by lane.
                let (low, high) = (i32x4(w[0], w[1], w[2], w[3]), i32x4(w[4], w[5], w[6], w[7]));
                let samples = [
                    i8x16_shuffle::<0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0>(low, high),
                    i8x16_shuffle::<1, 5, 9, 13, 17, 21, 25, 29, 0, 0, 0, 0, 0, 0, 0, 0>(low, high),
                    i8x16_shuffle::<2, 6, 10, 14, 18, 22, 26, 30, 0, 0, 0, 0, 0, 0, 0, 0>(
                        low, high,
                    ),
                    i8x16_shuffle::<3, 7, 11, 15, 19, 23, 27, 31, 0, 0, 0, 0, 0, 0, 0, 0>(
                        low, high,
                    ),
                ]
                .map(|b| u16x8_extend_low_u8x16(b));
                *row = cubic_of_bytes(samples, dx);
            }
        }
        // Along y, on f32 rows: `cubic32::cubic_lanes`' operations in its order.
        let bound = f32x4_splat(BOUND);
        // Pillow's byte of a value (Rust's `as u8`: truncated, saturated to [0, 255]) is the
        // floor of the value clamped to [0, 255] first: the same for every finite value, and an
        // interior pixel's value is finite. The floors are whole f32s, compared and converted
        // exactly, which costs far fewer instructions than saturating conversions to i32.
        let (zero, top) = (f32x4_splat(0.0), f32x4_splat(255.0));
        let byte = |value: v128| f32x4_floor(f32x4_pmin(f32x4_pmax(value, zero), top));
        let mut settled = 0;
        let mut bytes = [f32x4_splat(0.0); 2];
        for h in 0..2 {
            let [v1, v2, v3, v4] = rows.map(|row| row[h]);
            let p2 = f32x4_sub(v3, v1);
            let doubled = f32x4_sub(v1, v2);
            let p3 = f32x4_sub(f32x4_add(f32x4_add(doubled, doubled), v3), v4);
            let p4 = f32x4_add(f32x4_sub(f32x4_sub(v2, v1), v3), v4);
            let value = horner(v2, p2, p3, p4, dy[h]);
            let (low, high) = (byte(f32x4_sub(value, bound)), byte(f32x4_add(value, bound)));
            settled |= i32x4_bitmask(f32x4_eq(low, high)) << (4 * h);
            // A whole number in [0, 255] plus 2^23 is exact and holds it in its low mantissa
            // bits: its first byte is the byte.
            bytes[h] = f32x4_add(high, f32x4_splat(8_388_608.0));
        }
        let packed = i8x16_shuffle::<0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0>(
            bytes[0], bytes[1],
        );
        out[..BLOCK].copy_from_slice(&i64x2_extract_lane::<0>(packed).to_le_bytes());
        if settled != 0xFF {
            for (i, px) in out.iter_mut().enumerate().take(BLOCK) {
                if settled & (1 << i) == 0 {
                    *px = self.sample_inside(lane(&x, i), lane(&y, i));
                }
            }
        }
        true
    }
}

/// The cubic along x of one neighbourhood row for both halves: `samples[k]` holds sample k of
/// lane i in i16 lane i. `cubic32::cubic_lanes` forms p1..p4 in f32 from the same integers;
/// every step is exact in both, so the p's are the same values.
#[inline(always)]
fn cubic_of_bytes(samples: [v128; 4], d: [v128; 2]) -> [v128; 2] {
    let [v1, v2, v3, v4] = samples;
    let p2 = i16x8_sub(v3, v1);
    let p3 = i16x8_sub(i16x8_add(i16x8_shl(i16x8_sub(v1, v2), 1), v3), v4);
    let p4 = i16x8_add(i16x8_sub(i16x8_sub(v2, v1), v3), v4);
    let low = |p: v128| f32x4_convert_i32x4(i32x4_extend_low_i16x8(p));
    let high = |p: v128| f32x4_convert_i32x4(i32x4_extend_high_i16x8(p));
    [
        horner(low(v2), low(p2), low(p3), low(p4), d[0]),
        horner(high(v2), high(p2), high(p3), high(p4), d[1]),
    ]
}

/// `p1 + d·(p2 + d·(p3 + d·p4))` in f32 lanes, in that order.
#[inline(always)]
fn horner(p1: v128, p2: v128, p3: v128, p4: v128, d: v128) -> v128 {
    f32x4_add(
        p1,
        f32x4_mul(
            d,
            f32x4_add(p2, f32x4_mul(d, f32x4_add(p3, f32x4_mul(d, p4)))),
        ),
    )
}
