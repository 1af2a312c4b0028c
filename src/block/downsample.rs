//! The means that make each scale from the next finer one: 2×2×2, or 2×2×1 where a scale keeps
//! z ([`crate::layout::scale_shifts`]).
//!
//! docs/design.md §4 "ngshard": scale k is the 2×2×2 (or 2×2×1) mean of scale k − 1, rounded to
//! nearest. The original's later version truncated (`sum / 8`), which darkens each scale by half
//! a grey level on average, compounding down the pyramid; we round half up, `(sum + 4) / 8` and
//! `(sum + 2) / 4`.

/// Writes into `coarse` the 2×2×2 means of `fine`, whose slices are `fine_edge`² voxels (x
/// fastest, then y, then z): `coarse` gets half as many slices of half the edge. `row_sums` is
/// scratch of at least `fine_edge` entries.
///
/// ```
/// use emwrite::block::downsample::downsample_2x2x2;
/// let fine = [10, 20, 30, 40, 50, 60, 70, 80]; // one 2×2×2 cube
/// let mut coarse = [0u8; 1];
/// downsample_2x2x2(&fine, 2, &mut coarse, &mut [0; 2]);
/// assert_eq!(coarse, [45]);
/// ```
pub fn downsample_2x2x2(fine: &[u8], fine_edge: usize, coarse: &mut [u8], row_sums: &mut [u16]) {
    let coarse_edge = fine_edge / 2;
    let fine_slice = fine_edge * fine_edge;
    let slice_pairs = fine.chunks_exact(2 * fine_slice);
    for (coarse_slice, slice_pair) in coarse
        .chunks_exact_mut(coarse_edge * coarse_edge)
        .zip(slice_pairs)
    {
        let (lower, upper) = slice_pair.split_at(fine_slice);
        downsample_slice_pair(lower, upper, fine_edge, coarse_slice, row_sums);
    }
}

/// Writes into `coarse` (one slice of half the edge) the 2×2×2 means of the two slices `lower`
/// and `upper`, each `fine_edge`² voxels, x fastest: [`downsample_2x2x2`] for one pair of slices
/// that need not be next to each other in memory.
pub fn downsample_slice_pair(
    lower: &[u8],
    upper: &[u8],
    fine_edge: usize,
    coarse: &mut [u8],
    row_sums: &mut [u16],
) {
    let coarse_edge = fine_edge / 2;
    let sums = &mut row_sums[..fine_edge];
    let row_pairs = lower
        .chunks_exact(2 * fine_edge)
        .zip(upper.chunks_exact(2 * fine_edge));
    for (coarse_row, (lower_rows, upper_rows)) in
        coarse.chunks_exact_mut(coarse_edge).zip(row_pairs)
    {
        // First the four rows summed column by column (contiguous, vectorizes), then pairs of
        // columns.
        let (a, b) = lower_rows.split_at(fine_edge);
        let (c, d) = upper_rows.split_at(fine_edge);
        for ((((sum, &a), &b), &c), &d) in sums.iter_mut().zip(a).zip(b).zip(c).zip(d) {
            *sum = u16::from(a) + u16::from(b) + u16::from(c) + u16::from(d);
        }
        for (mean, pair) in coarse_row.iter_mut().zip(sums.chunks_exact(2)) {
            // At most (8 · 255 + 4) >> 3 = 255, so the cast is lossless.
            *mean = ((pair[0] + pair[1] + 4) >> 3) as u8;
        }
    }
}

/// Writes into `coarse` the 2×2×1 means of `fine`, whose slices are `fine_edge`² voxels (x
/// fastest, then y, then z): `coarse` gets as many slices, of half the edge. `row_sums` is
/// scratch of at least `fine_edge` entries.
///
/// ```
/// use emwrite::block::downsample::downsample_2x2x1;
/// let fine = [10, 20, 30, 42, 50, 60, 70, 80]; // two slices of one 2×2 square each
/// let mut coarse = [0u8; 2];
/// downsample_2x2x1(&fine, 2, &mut coarse, &mut [0; 2]);
/// assert_eq!(coarse, [26, 65]); // 102 / 4 = 25.5 rounds up, 260 / 4 = 65
/// ```
pub fn downsample_2x2x1(fine: &[u8], fine_edge: usize, coarse: &mut [u8], row_sums: &mut [u16]) {
    let coarse_edge = fine_edge / 2;
    for (coarse_slice, slice) in coarse
        .chunks_exact_mut(coarse_edge * coarse_edge)
        .zip(fine.chunks_exact(fine_edge * fine_edge))
    {
        downsample_slice(slice, fine_edge, coarse_slice, row_sums);
    }
}

/// Writes into `coarse` (one slice of half the edge) the 2×2 means of the slice `fine`,
/// `fine_edge`² voxels, x fastest: [`downsample_2x2x1`] for one slice.
pub fn downsample_slice(fine: &[u8], fine_edge: usize, coarse: &mut [u8], row_sums: &mut [u16]) {
    let coarse_edge = fine_edge / 2;
    let sums = &mut row_sums[..fine_edge];
    for (coarse_row, rows) in coarse
        .chunks_exact_mut(coarse_edge)
        .zip(fine.chunks_exact(2 * fine_edge))
    {
        // As in downsample_slice_pair: the two rows summed column by column, then pairs.
        let (a, b) = rows.split_at(fine_edge);
        for ((sum, &a), &b) in sums.iter_mut().zip(a).zip(b) {
            *sum = u16::from(a) + u16::from(b);
        }
        for (mean, pair) in coarse_row.iter_mut().zip(sums.chunks_exact(2)) {
            // At most (4 · 255 + 2) >> 2 = 255, so the cast is lossless.
            *mean = ((pair[0] + pair[1] + 2) >> 2) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsample_rounds_half_up() {
        // One 2×2×2 cube per case: sums 0, 3 (→ 0), 4 (→ 1, the half rounds up), 2040 (→ 255).
        let cases: [([u8; 8], u8); 5] = [
            ([0; 8], 0),
            ([1, 1, 1, 0, 0, 0, 0, 0], 0),
            ([1, 1, 1, 1, 0, 0, 0, 0], 1),
            ([10, 20, 30, 40, 50, 60, 70, 80], 45),
            ([255; 8], 255),
        ];
        for (fine, mean) in cases {
            let mut coarse = [0u8; 1];
            downsample_2x2x2(&fine, 2, &mut coarse, &mut [0; 2]);
            assert_eq!(coarse[0], mean, "{fine:?}");
        }
    }

    #[test]
    fn the_2x2x1_mean_rounds_half_up_slice_by_slice() {
        // One 2×2 square per case: sums 0, 1 (→ 0), 2 (→ 1, the half rounds up), 1020 (→ 255).
        let cases: [([u8; 4], u8); 4] = [
            ([0; 4], 0),
            ([1, 0, 0, 0], 0),
            ([1, 1, 0, 0], 1),
            ([255; 4], 255),
        ];
        for (fine, mean) in cases {
            let mut coarse = [0u8; 1];
            downsample_2x2x1(&fine, 2, &mut coarse, &mut [0; 2]);
            assert_eq!(coarse[0], mean, "{fine:?}");
        }
        // A 4×4 slice: each quarter its own mean.
        let fine: Vec<u8> = (0..16).map(|v| v * 10).collect();
        let mut coarse = [0u8; 4];
        downsample_slice(&fine, 4, &mut coarse, &mut [0; 4]);
        // (0 + 10 + 40 + 50 + 2) / 4 = 25, then (20 + 30 + 60 + 70 + 2) / 4 = 45, and so on.
        assert_eq!(coarse, [25, 45, 105, 125]);
    }
}
