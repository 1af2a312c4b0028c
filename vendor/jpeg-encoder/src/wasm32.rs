//! WebAssembly `simd128` versions of the encoder's per-block kernels.
//!
//! Unlike the AVX2 path, these compute exactly what the scalar code computes (the same 32-bit
//! integer arithmetic, lane by lane), so an image encodes to the same bytes with or without SIMD.
//! wasm32 has no runtime feature detection: the path is chosen at compile time by
//! `target_feature = "simd128"` (`-C target-feature=+simd128`) together with the `simd` feature.

use core::arch::wasm32::{
    i8x16_swizzle, i16x8, i16x8_add, i16x8_bitmask, i16x8_narrow_i32x4, i16x8_ne, i16x8_shl,
    i16x8_shuffle, i16x8_splat, i16x8_sub, i32x4_abs, i32x4_add, i32x4_dot_i16x8,
    i32x4_extend_high_i16x8, i32x4_extend_low_i16x8, i32x4_lt, i32x4_mul, i32x4_shr, i32x4_shuffle,
    i32x4_splat, i32x4_sub, i64x2_shuffle, u16x8_extend_low_u8x16, v128, v128_bitselect, v128_load,
    v128_load64_zero, v128_or, v128_store,
};

use crate::encoder::{AlignedBlock, Operations};
use crate::quantization::QuantizationTable;
use crate::writer::ZIGZAG;

pub(crate) struct WasmSimd128Operations;

impl Operations for WasmSimd128Operations {
    #[inline(always)]
    fn get_block(
        data: &[u8],
        start_x: usize,
        start_y: usize,
        col_stride: usize,
        row_stride: usize,
        width: usize,
    ) -> AlignedBlock {
        if col_stride == 1 && row_stride == 1 {
            get_block(data, start_x, start_y, width)
        } else {
            crate::encoder::get_block(data, start_x, start_y, col_stride, row_stride, width)
        }
    }

    #[inline(always)]
    fn fdct(data: &mut AlignedBlock) {
        fdct(data);
    }

    #[inline(always)]
    fn quantize_block(block: &AlignedBlock, q_block: &mut AlignedBlock, table: &QuantizationTable) {
        quantize_block(block, q_block, table);
    }
}

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;

const FIX_0_298631336: i32 = 2446;
const FIX_0_390180644: i32 = 3196;
const FIX_0_541196100: i32 = 4433;
const FIX_0_765366865: i32 = 6270;
const FIX_0_899976223: i32 = 7373;
const FIX_1_175875602: i32 = 9633;
const FIX_1_501321110: i32 = 12299;
const FIX_1_847759065: i32 = 15137;
const FIX_1_961570560: i32 = 16069;
const FIX_2_053119869: i32 = 16819;
const FIX_2_562915447: i32 = 20995;
const FIX_3_072711026: i32 = 25172;

#[inline(always)]
fn load(data: &[i16; 64], row: usize) -> v128 {
    let row = &data[row * 8..row * 8 + 8];
    // SAFETY: `row` holds 8 i16, the 16 bytes read; v128_load needs no alignment.
    unsafe { v128_load(row.as_ptr().cast()) }
}

#[inline(always)]
fn store(data: &mut [i16; 64], row: usize, value: v128) {
    let row = &mut data[row * 8..row * 8 + 8];
    // SAFETY: `row` holds 8 i16, the 16 bytes written; v128_store needs no alignment.
    unsafe { v128_store(row.as_mut_ptr().cast(), value) }
}

/// The scalar `get_block` for strides of 1: 8 rows of 8 samples, widened and centred on zero.
#[inline(always)]
fn get_block(data: &[u8], start_x: usize, start_y: usize, width: usize) -> AlignedBlock {
    let centre = i16x8_splat(128);
    let rows: [v128; 8] = core::array::from_fn(|row| {
        let start = (start_y + row) * width + start_x;
        let samples = &data[start..start + 8];
        // SAFETY: `samples` holds the 8 bytes read.
        let samples = unsafe { v128_load64_zero(samples.as_ptr().cast()) };
        i16x8_sub(u16x8_extend_low_u8x16(samples), centre)
    });
    // SAFETY: 8 vectors of 8 i16 lanes are 64 i16 in row order (wasm is little-endian).
    AlignedBlock::new(unsafe { core::mem::transmute::<[v128; 8], [i16; 64]>(rows) })
}

/// Transposes 8 rows of 8 i16 lanes.
#[inline(always)]
fn transpose(r: [v128; 8]) -> [v128; 8] {
    let t0 = i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(r[0], r[1]);
    let t1 = i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(r[0], r[1]);
    let t2 = i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(r[2], r[3]);
    let t3 = i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(r[2], r[3]);
    let t4 = i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(r[4], r[5]);
    let t5 = i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(r[4], r[5]);
    let t6 = i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(r[6], r[7]);
    let t7 = i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(r[6], r[7]);

    let u0 = i32x4_shuffle::<0, 4, 1, 5>(t0, t2);
    let u1 = i32x4_shuffle::<2, 6, 3, 7>(t0, t2);
    let u2 = i32x4_shuffle::<0, 4, 1, 5>(t1, t3);
    let u3 = i32x4_shuffle::<2, 6, 3, 7>(t1, t3);
    let u4 = i32x4_shuffle::<0, 4, 1, 5>(t4, t6);
    let u5 = i32x4_shuffle::<2, 6, 3, 7>(t4, t6);
    let u6 = i32x4_shuffle::<0, 4, 1, 5>(t5, t7);
    let u7 = i32x4_shuffle::<2, 6, 3, 7>(t5, t7);

    [
        i64x2_shuffle::<0, 2>(u0, u4),
        i64x2_shuffle::<1, 3>(u0, u4),
        i64x2_shuffle::<0, 2>(u1, u5),
        i64x2_shuffle::<1, 3>(u1, u5),
        i64x2_shuffle::<0, 2>(u2, u6),
        i64x2_shuffle::<1, 3>(u2, u6),
        i64x2_shuffle::<0, 2>(u3, u7),
        i64x2_shuffle::<1, 3>(u3, u7),
    ]
}

/// Right shift with rounding, as the scalar `descale`, on four i32 lanes.
#[inline(always)]
fn descale(x: v128, n: u32) -> v128 {
    i32x4_shr(i32x4_add(x, i32x4_splat(1 << (n - 1))), n)
}

/// `a · ca + b · cb` lane by lane, exactly, as eight i32 lanes in two halves: the products and
/// their sum in 32 bits, as the scalar code computes them (`i32x4_dot_i16x8` multiplies i16
/// pairs and adds each pair in i32).
#[inline(always)]
fn dot(a: v128, b: v128, ca: i16, cb: i16) -> [v128; 2] {
    let constants = i16x8(ca, cb, ca, cb, ca, cb, ca, cb);
    [
        i32x4_dot_i16x8(i16x8_shuffle::<0, 8, 1, 9, 2, 10, 3, 11>(a, b), constants),
        i32x4_dot_i16x8(i16x8_shuffle::<4, 12, 5, 13, 6, 14, 7, 15>(a, b), constants),
    ]
}

/// Adds two [`dot`] results.
#[inline(always)]
fn plus([a0, a1]: [v128; 2], [b0, b1]: [v128; 2]) -> [v128; 2] {
    [i32x4_add(a0, b0), i32x4_add(a1, b1)]
}

/// [`descale`]s eight i32 lanes and narrows them to i16 (they fit: see [`dct_1d`]).
#[inline(always)]
fn descale_narrow([low, high]: [v128; 2], n: u32) -> v128 {
    i16x8_narrow_i32x4(descale(low, n), descale(high, n))
}

/// Widens eight i16 lanes to i32, in two halves.
#[inline(always)]
fn widen(x: v128) -> [v128; 2] {
    [i32x4_extend_low_i16x8(x), i32x4_extend_high_i16x8(x)]
}

/// The scalar `fdct`'s products, regrouped per input: each output is a sum of the inputs times
/// constants, `(tmp12 + tmp13) · c1 + tmp13 · c2 = tmp12 · c1 + tmp13 · (c1 + c2)` and so on.
/// Integer arithmetic without overflow is exact, so the sums, and what they descale to, are the
/// scalar code's.
const EVEN_2: (i16, i16) = (
    FIX_0_541196100 as i16,
    (FIX_0_541196100 + FIX_0_765366865) as i16,
);
const EVEN_6: (i16, i16) = (
    (FIX_0_541196100 - FIX_1_847759065) as i16,
    FIX_0_541196100 as i16,
);
/// Odd outputs 7, 5, 3 and 1 as `tmp4 · c4 + tmp5 · c5 + tmp6 · c6 + tmp7 · c7`.
const ODD_7: [i16; 4] = odd(0, FIX_0_298631336, -FIX_0_899976223, 0, -FIX_1_961570560, 0);
const ODD_5: [i16; 4] = odd(1, FIX_2_053119869, 0, -FIX_2_562915447, 0, -FIX_0_390180644);
const ODD_3: [i16; 4] = odd(2, FIX_3_072711026, 0, -FIX_2_562915447, -FIX_1_961570560, 0);
const ODD_1: [i16; 4] = odd(3, FIX_1_501321110, -FIX_0_899976223, 0, 0, -FIX_0_390180644);

/// The factors of tmp4..tmp7 in one odd output, which the scalar code computes as
/// `tmp · own + z1 · c1 + z2 · c2 + (z3 · c3 + z5) + (z4 · c4 + z5)` with one of z3 and z4 used
/// (0 for the others), where z1 = tmp4 + tmp7, z2 = tmp5 + tmp6, z3 = tmp4 + tmp6,
/// z4 = tmp5 + tmp7 and z5 = (tmp4 + tmp5 + tmp6 + tmp7) · FIX(1.175875602). `own_on` says which
/// of tmp4..tmp7 the output's own factor multiplies.
const fn odd(own_on: usize, own: i32, c1: i32, c2: i32, c3: i32, c4: i32) -> [i16; 4] {
    let mut factors = [
        c1 + c3 + FIX_1_175875602,
        c2 + c4 + FIX_1_175875602,
        c2 + c3 + FIX_1_175875602,
        c1 + c4 + FIX_1_175875602,
    ];
    factors[own_on] += own;
    [
        factors[0] as i16,
        factors[1] as i16,
        factors[2] as i16,
        factors[3] as i16,
    ]
}

/// One 1-D pass of the scalar `fdct` on eight i16 lanes at once: `v[k]` holds input `k` of eight
/// independent rows (pass 1) or columns (pass 2); the output is indexed the same way.
///
/// Every intermediate fits its lane: the inputs are at most 2^7 (pass 1) or 2^12 (pass 2, the
/// bound of libjpeg's jfdctint.c: √8 · 128 · √8 · 2^PASS1_BITS) in magnitude, so tmp0..tmp7 stay
/// within 2^13 and tmp10..tmp13 within 2^14 in i16, and each regrouped sum of products within
/// 2^29 in i32. Only pass 2's DC and AC-4 sums, up to 2^15, are formed in i32.
#[inline(always)]
fn dct_1d(v: [v128; 8], first_pass: bool) -> [v128; 8] {
    let tmp0 = i16x8_add(v[0], v[7]);
    let tmp7 = i16x8_sub(v[0], v[7]);
    let tmp1 = i16x8_add(v[1], v[6]);
    let tmp6 = i16x8_sub(v[1], v[6]);
    let tmp2 = i16x8_add(v[2], v[5]);
    let tmp5 = i16x8_sub(v[2], v[5]);
    let tmp3 = i16x8_add(v[3], v[4]);
    let tmp4 = i16x8_sub(v[3], v[4]);

    let tmp10 = i16x8_add(tmp0, tmp3);
    let tmp13 = i16x8_sub(tmp0, tmp3);
    let tmp11 = i16x8_add(tmp1, tmp2);
    let tmp12 = i16x8_sub(tmp1, tmp2);

    let (out0, out4, shift) = if first_pass {
        // At most 8 · 128 · 4 = 2^12: i16 holds them.
        (
            i16x8_shl(i16x8_add(tmp10, tmp11), PASS1_BITS),
            i16x8_shl(i16x8_sub(tmp10, tmp11), PASS1_BITS),
            CONST_BITS - PASS1_BITS,
        )
    } else {
        let [t10, t11] = [widen(tmp10), widen(tmp11)];
        let sum = [i32x4_add(t10[0], t11[0]), i32x4_add(t10[1], t11[1])];
        let difference = [i32x4_sub(t10[0], t11[0]), i32x4_sub(t10[1], t11[1])];
        (
            descale_narrow(sum, PASS1_BITS),
            descale_narrow(difference, PASS1_BITS),
            CONST_BITS + PASS1_BITS,
        )
    };

    let out2 = descale_narrow(dot(tmp12, tmp13, EVEN_2.0, EVEN_2.1), shift);
    let out6 = descale_narrow(dot(tmp12, tmp13, EVEN_6.0, EVEN_6.1), shift);

    let odd_output = |c: [i16; 4]| {
        descale_narrow(
            plus(dot(tmp4, tmp5, c[0], c[1]), dot(tmp6, tmp7, c[2], c[3])),
            shift,
        )
    };
    let out7 = odd_output(ODD_7);
    let out5 = odd_output(ODD_5);
    let out3 = odd_output(ODD_3);
    let out1 = odd_output(ODD_1);

    [out0, out1, out2, out3, out4, out5, out6, out7]
}

/// The scalar `fdct` (libjpeg's `jpeg_fdct_islow`), eight rows or columns at a time.
pub(crate) fn fdct(block: &mut AlignedBlock) {
    let rows: [v128; 8] = core::array::from_fn(|row| load(&block.data, row));
    // Lanes are rows: pass 1 transforms every row at once; its output k holds coefficient k of
    // each row.
    let pass1 = dct_1d(transpose(rows), true);
    // Lanes are columns again: pass 2 transforms every column at once.
    let pass2 = dct_1d(transpose(pass1), false);
    for (row, value) in pass2.into_iter().enumerate() {
        store(&mut block.data, row, value);
    }
}

/// The scalar quantiser: per coefficient, the magnitude plus its correction times its
/// reciprocal, shifted, with the sign put back; then reordered into zig-zag order.
pub(crate) fn quantize_block(
    block: &AlignedBlock,
    q_block: &mut AlignedBlock,
    table: &QuantizationTable,
) {
    let reciprocals = table.reciprocals();
    let corrections = table.corrections();
    let mut natural = [i16x8_splat(0); 8];
    for (row, natural) in natural.iter_mut().enumerate() {
        let values = load(&block.data, row);
        let mut halves = [
            i32x4_extend_low_i16x8(values),
            i32x4_extend_high_i16x8(values),
        ];
        for (half, value) in halves.iter_mut().enumerate() {
            let at = row * 8 + half * 4;
            // SAFETY: `at + 4 <= 64`: four i32 of each table are read.
            let (reciprocal, correction) = unsafe {
                (
                    v128_load(reciprocals[at..at + 4].as_ptr().cast()),
                    v128_load(corrections[at..at + 4].as_ptr().cast()),
                )
            };
            let magnitude = i32x4_mul(i32x4_add(i32x4_abs(*value), correction), reciprocal);
            let magnitude = i32x4_shr(magnitude, QuantizationTable::SHIFT);
            let negative = i32x4_lt(*value, i32x4_splat(0));
            *value = v128_bitselect(i32x4_sub(i32x4_splat(0), magnitude), magnitude, negative);
        }
        *natural = i16x8_narrow_i32x4(halves[0], halves[1]);
    }
    for (row, sources) in ZIGZAG_SWIZZLES.iter().enumerate() {
        let mut zigzag = i16x8_splat(0);
        for (source, indices) in sources.iter().enumerate() {
            // Constant once the loops unroll: each output row draws on 3 to 6 natural rows.
            if ZIGZAG_SOURCES[row][source] {
                let gathered = i8x16_swizzle(natural[source], u8x16_from(indices));
                zigzag = v128_or(zigzag, gathered);
            }
        }
        store(&mut q_block.data, row, zigzag);
    }
}

#[inline(always)]
fn u8x16_from(bytes: &[u8; 16]) -> v128 {
    // SAFETY: 16 bytes are read; v128_load needs no alignment.
    unsafe { v128_load(bytes.as_ptr().cast()) }
}

/// The byte shuffles that put coefficients in zig-zag order: row `r` of the output (zig-zag
/// positions 8r..8r+8) is the OR over natural rows `s` of `swizzle(natural[s], ZIGZAG_SWIZZLES[r][s])`,
/// where an index of 0xff gives zero for the lanes another row supplies.
static ZIGZAG_SWIZZLES: [[[u8; 16]; 8]; 8] = zigzag_swizzles();

/// Whether natural row `s` supplies any lane of zig-zag row `r`.
const ZIGZAG_SOURCES: [[bool; 8]; 8] = {
    let tables = zigzag_swizzles();
    let mut used = [[false; 8]; 8];
    let mut at = 0;
    while at < 64 {
        let (row, source) = (at / 8, at % 8);
        let mut lane = 0;
        while lane < 16 {
            used[row][source] |= tables[row][source][lane] != 0xff;
            lane += 1;
        }
        at += 1;
    }
    used
};

/// Per output row and natural row, the swizzle that moves that natural row's coefficients to
/// their zig-zag lanes (0xff where the natural row supplies none).
const fn zigzag_swizzles() -> [[[u8; 16]; 8]; 8] {
    let mut tables = [[[0xff; 16]; 8]; 8];
    let mut position = 0;
    while position < 64 {
        let natural = ZIGZAG[position] as usize;
        let (row, lane) = (position / 8, position % 8);
        let (source, source_lane) = (natural / 8, natural % 8);
        tables[row][source][2 * lane] = (2 * source_lane) as u8;
        tables[row][source][2 * lane + 1] = (2 * source_lane + 1) as u8;
        position += 1;
    }
    tables
}

/// Bit `i` is set when `data[i]` is not zero.
pub(crate) fn nonzero_mask(data: &[i16; 64]) -> u64 {
    let zero = i16x8_splat(0);
    (0..8).fold(0, |mask, row| {
        let bits = i16x8_bitmask(i16x8_ne(load(data, row), zero));
        mask | (u64::from(bits) << (row * 8))
    })
}

#[cfg(test)]
mod tests {
    //! Each kernel against the scalar code it stands in for, and whole images through both
    //! paths: the simd128 build must write the scalar build's bytes. Run in wasm32 (scripts/test:
    //! `cargo test -p jpeg-encoder --features simd --target wasm32-wasip2`).

    use alloc::vec::Vec;

    use crate::encoder::{AlignedBlock, DefaultOperations, Operations};
    use crate::image_buffer::{GrayImage, RgbImage};
    use crate::quantization::{QuantizationTable, QuantizationTableType};
    use crate::{ColorType, Encoder, SamplingFactor};

    use super::WasmSimd128Operations;

    /// xorshift64: reproducible inputs without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Sample blocks (centred on zero) that reach the DCT's extremes: constant at either end,
    /// checkerboards and stripes of the extremes, ramps, and noise.
    fn sample_blocks() -> Vec<AlignedBlock> {
        let mut blocks = Vec::new();
        for constant in [-128, 127, 0, -1] {
            blocks.push(AlignedBlock::new([constant; 64]));
        }
        // The largest coefficients: AC 4 of rows (or columns) of ±128 in its pattern of signs
        // makes pass 2 sum eight values of 2^12 (the i16 lanes' tightest spot).
        let ac4 = |i: usize| matches!(i % 4, 0 | 3);
        let patterns: [&dyn Fn(usize, usize) -> bool; 7] = [
            &|x, y| (x + y) % 2 == 0,
            &|x, _| x % 2 == 0,
            &|_, y| y < 4,
            &|x, y| (x ^ y) & 4 == 0,
            &move |x, _| ac4(x),
            &move |_, y| ac4(y),
            &move |x, y| ac4(x) == ac4(y),
        ];
        for pattern in patterns {
            for (high, low) in [(127, -128), (-128, 127)] {
                blocks.push(AlignedBlock::new(core::array::from_fn(|i| {
                    if pattern(i % 8, i / 8) { high } else { low }
                })));
            }
        }
        blocks.push(AlignedBlock::new(core::array::from_fn(|i| {
            (i * 4) as i16 - 128
        })));
        let mut state = 0x2545_F491_4F6C_DD1D;
        for _ in 0..4000 {
            blocks.push(AlignedBlock::new(core::array::from_fn(|_| {
                (next(&mut state) % 256) as i16 - 128
            })));
        }
        blocks
    }

    fn quantization_tables() -> Vec<QuantizationTable> {
        let custom =
            QuantizationTableType::Custom(alloc::boxed::Box::new(core::array::from_fn(|i| {
                [1, 2048, 3, 255][i % 4]
            })));
        let mut tables = Vec::new();
        for quality in [1, 10, 50, 75, 90, 100] {
            for luma in [true, false] {
                tables.push(QuantizationTable::new_with_quality(
                    &QuantizationTableType::Default,
                    quality,
                    luma,
                ));
            }
        }
        tables.push(QuantizationTable::new_with_quality(&custom, 75, true));
        tables
    }

    #[test]
    fn fdct_matches_the_scalar_fdct() {
        for block in sample_blocks() {
            let (mut expected, mut actual) = (block, block);
            DefaultOperations::fdct(&mut expected);
            WasmSimd128Operations::fdct(&mut actual);
            assert_eq!(actual.data, expected.data, "fdct of {:?}", block.data);
        }
    }

    #[test]
    fn quantisation_matches_the_scalar_quantiser() {
        let tables = quantization_tables();
        for mut block in sample_blocks() {
            DefaultOperations::fdct(&mut block);
            for table in &tables {
                let (mut expected, mut actual) = (AlignedBlock::default(), AlignedBlock::default());
                DefaultOperations::quantize_block(&block, &mut expected, table);
                WasmSimd128Operations::quantize_block(&block, &mut actual, table);
                assert_eq!(actual.data, expected.data, "quantising {:?}", block.data);
            }
        }
    }

    #[test]
    fn blocks_are_read_as_the_scalar_code_reads_them() {
        let mut state = 7;
        let width = 40;
        let samples: Vec<u8> = (0..width * 24).map(|_| next(&mut state) as u8).collect();
        for (x, y) in [(0, 0), (8, 0), (16, 8), (3, 5), (25, 9)] {
            for (col_stride, row_stride) in [(1, 1), (2, 1), (2, 2)] {
                let args = (&samples[..], x, y, col_stride, row_stride, width);
                let expected =
                    DefaultOperations::get_block(args.0, args.1, args.2, args.3, args.4, args.5);
                let actual = WasmSimd128Operations::get_block(
                    args.0, args.1, args.2, args.3, args.4, args.5,
                );
                assert_eq!(actual.data, expected.data, "block at ({x}, {y})");
            }
        }
    }

    #[test]
    fn the_nonzero_mask_matches_the_scalar_mask() {
        let mut state = 11;
        for density in [0, 1, 8, 32, 64] {
            for _ in 0..200 {
                let data: [i16; 64] = core::array::from_fn(|_| {
                    let draw = next(&mut state);
                    if draw % 64 < density {
                        (draw >> 32) as i16 | 1
                    } else {
                        0
                    }
                });
                assert_eq!(
                    super::nonzero_mask(&data),
                    crate::writer::nonzero_mask_scalar(&data)
                );
            }
        }
    }

    /// A smooth image with noise, as photographs and EM sections are.
    fn image(width: usize, height: usize, channels: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..width * height * channels)
            .map(|i| {
                let (x, y) = ((i / channels) % width, (i / channels) / width);
                let smooth = (x * 3 + y * 5 + (i % channels) * 40) % 256;
                (smooth as u64 + next(&mut state) % 48) as u8
            })
            .collect()
    }

    fn encode<OP: Operations>(
        configure: impl Fn(&mut Encoder<&mut Vec<u8>>),
        data: &[u8],
        width: u16,
        height: u16,
        color: ColorType,
    ) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = Encoder::new(&mut bytes, 75);
        configure(&mut encoder);
        let (w, h) = (width, height);
        match color {
            ColorType::Luma => encoder.encode_image_internal::<_, OP>(GrayImage(data, w, h)),
            ColorType::Rgb => encoder.encode_image_internal::<_, OP>(RgbImage(data, w, h)),
            _ => unreachable!("the test encodes luma and RGB"),
        }
        .unwrap();
        bytes
    }

    #[test]
    fn images_encode_to_the_scalar_paths_bytes() {
        let settings: [fn(&mut Encoder<&mut Vec<u8>>); 5] = [
            |_| {},
            |e| e.set_quality(95),
            |e| e.set_progressive(true),
            |e| e.set_optimized_huffman_tables(true),
            |e| e.set_sampling_factor(SamplingFactor::F_2_2),
        ];
        for (width, height) in [(64, 4096), (64, 64), (37, 23), (8, 8), (1, 1), (100, 9)] {
            for (color, channels) in [(ColorType::Luma, 1), (ColorType::Rgb, 3)] {
                let data = image(width, height, channels, (width * height) as u64);
                for configure in settings {
                    let (w, h) = (width as u16, height as u16);
                    let expected = encode::<DefaultOperations>(configure, &data, w, h, color);
                    let actual = encode::<WasmSimd128Operations>(configure, &data, w, h, color);
                    assert!(
                        actual == expected,
                        "{width}×{height} {color:?} encodes differently"
                    );
                }
            }
        }
    }
}
