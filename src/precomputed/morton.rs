//! Compressed Morton chunk ids: bits per axis, encode, decode.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/volume.md#compressed-morton-code>
//! (docs/design.md §5, "Chunk id"). A sharded volume names each chunk by the compressed Morton code of
//! its grid cell: the bits of x, y and z interleaved, least significant first, skipping an axis
//! once its own bits run out. Skipping is what makes the code "compressed": a grid of
//! [16, 11, 3] cells uses 4 + 4 + 2 = 10 bits, not 3 · 4 = 12.

/// Bits per axis of the compressed Morton code for a chunk grid of `grid` cells.
///
/// Each axis gets `ceil(log2(cells))` bits, which is 0 for an axis of one cell (or none).
///
/// ```
/// use emwrite::precomputed::morton::bits_per_axis;
/// assert_eq!(bits_per_axis([16, 11, 3]), [4, 4, 2]);
/// assert_eq!(bits_per_axis([1, 2, 17]), [0, 1, 5]);
/// ```
pub fn bits_per_axis(grid: [u64; 3]) -> [u32; 3] {
    // ceil(log2(g)) = number of bits of the largest index, g − 1 (tensorstore's
    // `bit_width(grid − 1)`).
    grid.map(|cells| u64::BITS - cells.saturating_sub(1).leading_zeros())
}

/// Compressed Morton id of grid cell `cell` with `bits` from [`bits_per_axis`].
///
/// Precondition: `cell[axis] < 2^bits[axis]`; higher bits of a cell index are ignored. Bits
/// beyond the 64th output bit (a grid of more than 2^64 cells) are dropped rather than panicking;
/// [`crate::precomputed::info`] rejects such grids.
///
/// ```
/// use emwrite::precomputed::morton::{bits_per_axis, encode};
/// assert_eq!(encode([5, 9, 2], bits_per_axis([16, 11, 3])), 611);
/// ```
pub fn encode(cell: [u64; 3], bits: [u32; 3]) -> u64 {
    let mut id = 0u64;
    let mut out_bit = 0u32;
    for bit in 0..max_bits(bits) {
        for axis in 0..3 {
            if bit < bits[axis] {
                let value = (cell[axis] >> bit) & 1;
                id |= value.checked_shl(out_bit).unwrap_or(0);
                out_bit += 1;
            }
        }
    }
    id
}

/// The grid cell of compressed Morton id `id`: the inverse of [`encode`] for the same `bits`.
///
/// Bits of `id` above the code's length are ignored.
///
/// ```
/// use emwrite::precomputed::morton::{bits_per_axis, decode};
/// assert_eq!(decode(611, bits_per_axis([16, 11, 3])), [5, 9, 2]);
/// ```
pub fn decode(id: u64, bits: [u32; 3]) -> [u64; 3] {
    let mut cell = [0u64; 3];
    let mut in_bit = 0u32;
    for bit in 0..max_bits(bits) {
        for axis in 0..3 {
            if bit < bits[axis] {
                let value = id.checked_shr(in_bit).unwrap_or(0) & 1;
                cell[axis] |= value.checked_shl(bit).unwrap_or(0);
                in_bit += 1;
            }
        }
    }
    cell
}

/// How many of the low `count` bits of a compressed Morton id come from each axis, for `bits`
/// from [`bits_per_axis`].
///
/// Ids that agree above their low `count` bits are the cells of an aligned box of
/// `2^low[axis]` cells per axis: that is how a shard (the ids sharing the bits above the
/// preshift and minishard bits) looks in the grid.
///
/// ```
/// use emwrite::precomputed::morton::low_bits_per_axis;
/// // Bits from 0 up: x0 y0 z0 x1 y1 z1 …, so 4 low bits are x0 y0 z0 x1.
/// assert_eq!(low_bits_per_axis([3, 3, 3], 4), [2, 1, 1]);
/// ```
pub fn low_bits_per_axis(bits: [u32; 3], count: u32) -> [u32; 3] {
    let mut low = [0; 3];
    let mut taken = 0;
    for level in 0..max_bits(bits) {
        for axis in 0..3 {
            if level < bits[axis] && taken < count {
                low[axis] += 1;
                taken += 1;
            }
        }
    }
    low
}

fn max_bits(bits: [u32; 3]) -> u32 {
    bits[0].max(bits[1]).max(bits[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn morton_spec_example_is_611() {
        // volume.md: grid [16, 11, 3] → bits [4, 4, 2]; cell (5, 9, 2) = (0101, 1001, 10).
        // Interleaved x0 y0 z0 x1 y1 z1 x2 y2 x3 y3 from bit 0 up:
        //   1  1  0  0  0  1  1  0  0  1   → 0b10_0110_0011 = 611
        let bits = bits_per_axis([16, 11, 3]);
        assert_eq!(bits, [4, 4, 2]);
        assert_eq!(encode([5, 9, 2], bits), 611);
        assert_eq!(encode([5, 9, 2], bits), 0b10_0110_0011);
        assert_eq!(decode(611, bits), [5, 9, 2]);
    }

    #[test]
    fn bits_per_axis_is_ceil_log2() {
        // tensorstore GetCompressedZIndexBitsTest: shape {79, 80, 144} in chunks {20, 20, 12}
        // is a grid of {4, 4, 12} cells.
        assert_eq!(bits_per_axis([4, 4, 12]), [2, 2, 4]);
        assert_eq!(bits_per_axis([0, 1, 2]), [0, 0, 1]);
        assert_eq!(bits_per_axis([3, 4, 5]), [2, 2, 3]);
        assert_eq!(
            bits_per_axis([1 << 32, (1 << 32) + 1, u64::MAX]),
            [32, 33, 64]
        );
    }

    #[test]
    fn tensorstore_cases_with_bits_4_2_1() {
        // tensorstore EncodeCompressedZIndexTest.Basic; output bit order x0 y0 z0 x1 y1 x2 x3.
        let bits = [4, 2, 1];
        let cases: [([u64; 3], u64); 6] = [
            ([0, 0, 0], 0),                   // nothing set
            ([1, 0, 0], 1),                   // x0 → bit 0
            ([0, 1, 0], 2),                   // y0 → bit 1
            ([0b10, 0b0, 0b1], 0b1100),       // z0 → bit 2, x1 → bit 3
            ([0b10, 0b11, 0b0], 0b11010),     // y0 → bit 1, x1 → bit 3, y1 → bit 4
            ([0b1001, 0b10, 0b1], 0b1010101), // x0, z0, y1, x3 → bits 0, 2, 4, 6
        ];
        for (cell, id) in cases {
            assert_eq!(encode(cell, bits), id, "encode {cell:?}");
            assert_eq!(decode(id, bits), cell, "decode {id:#b}");
        }
    }

    #[test]
    fn one_cell_axes_take_no_bits() {
        // grid [1, 8, 1]: only y contributes, so the id is the y index itself.
        let bits = bits_per_axis([1, 8, 1]);
        assert_eq!(bits, [0, 3, 0]);
        for y in 0..8 {
            assert_eq!(encode([0, y, 0], bits), y);
        }
    }

    #[test]
    fn encode_decode_round_trip_over_whole_grids() {
        for grid in [[16, 11, 3], [1, 1, 1], [5, 1, 9], [32, 32, 32], [2, 64, 3]] {
            let bits = bits_per_axis(grid);
            let mut seen = std::collections::BTreeSet::new();
            for z in 0..grid[2] {
                for y in 0..grid[1] {
                    for x in 0..grid[0] {
                        let id = encode([x, y, z], bits);
                        assert!(id < 1 << (bits[0] + bits[1] + bits[2]), "{id} in {grid:?}");
                        assert_eq!(decode(id, bits), [x, y, z], "grid {grid:?}");
                        assert!(seen.insert(id), "duplicate id {id} in {grid:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn low_bits_follow_the_morton_interleave() {
        assert_eq!(low_bits_per_axis([4, 4, 4], 9), [3, 3, 3]);
        assert_eq!(low_bits_per_axis([4, 4, 4], 10), [4, 3, 3]);
        assert_eq!(low_bits_per_axis([2, 0, 3], 4), [2, 0, 2]); // x0 z0 x1 z1
        assert_eq!(low_bits_per_axis([1, 1, 1], 9), [1, 1, 1]);
    }

    #[test]
    fn more_than_64_bits_drops_high_bits_without_panicking() {
        let bits = [30, 30, 30];
        let top = (1u64 << 30) - 1;
        assert_eq!(encode([top, top, top], bits), u64::MAX);
        assert_eq!(
            decode(u64::MAX, bits),
            [(1 << 22) - 1, (1 << 21) - 1, (1 << 21) - 1]
        );
    }
}
