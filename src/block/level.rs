//! A coarser scale's slab as it fills: the means of the finer scale folded in, half a slab at a
//! time where the scale halves z (2×2×2), a whole slab at a time where it keeps z (2×2×1), or slice
//! by slice from scale 0's slices.

use super::downsample::{
    downsample_2x2x1, downsample_2x2x2, downsample_slice, downsample_slice_pair,
};

/// A coarser scale's slab, filled from the next finer scale.
#[derive(Debug)]
pub(super) struct Level {
    /// Slice edge in voxels: the block's edge in x and y at this scale.
    edge: usize,
    /// Slices per slab: one chunk deep.
    depth: usize,
    /// Whether this scale halves z of the finer one (2×2×2 means) or keeps it (2×2×1).
    halves_z: bool,
    /// `edge² × depth` voxels, x fastest, then y, then z.
    voxels: Vec<u8>,
    /// Slices filled so far: 0 up to the depth, in steps of what one fold gives.
    pub(super) slices: usize,
    /// Whether any voxel folded in since the last clear may be nonzero.
    nonzero: bool,
}

impl Level {
    pub(super) fn new(edge: usize, depth: usize, halves_z: bool) -> Self {
        Self {
            edge,
            depth,
            halves_z,
            voxels: vec![0; edge * edge * depth],
            slices: 0,
            nonzero: false,
        }
    }

    /// Whether this scale halves z of the finer one: then it takes finer slices in pairs.
    pub(super) fn halves_z(&self) -> bool {
        self.halves_z
    }

    /// The slab, `None` if it is known to be all zero.
    pub(super) fn contents(&self) -> Option<&[u8]> {
        self.nonzero.then_some(self.voxels.as_slice())
    }

    /// The first half of the slab, `None` if it is known to be all zero: what a half of the
    /// block folds into a level whose chunk layer straddles the halves.
    pub(super) fn half_contents(&self) -> Option<&[u8]> {
        let half = self.edge * self.edge * self.depth / 2;
        self.contents().map(|voxels| &voxels[..half])
    }

    pub(super) fn is_full(&self) -> bool {
        self.slices == self.depth
    }

    pub(super) fn clear(&mut self) {
        self.slices = 0;
        self.nonzero = false;
    }

    /// Folds one slice of the next finer scale (a level that keeps z) or two (`lower` and
    /// `upper`, a level that halves z) into this slab's next slice.
    pub(super) fn fold_in_slices(&mut self, lower: &[u8], upper: &[u8], row_sums: &mut [u16]) {
        let slice = self.edge * self.edge;
        let coarse = &mut self.voxels[self.slices * slice..][..slice];
        if self.halves_z {
            downsample_slice_pair(lower, upper, 2 * self.edge, coarse, row_sums);
        } else {
            downsample_slice(lower, 2 * self.edge, coarse, row_sums);
        }
        self.nonzero = true;
        self.slices += 1;
    }

    /// Folds a full slab of the next finer scale (`None`: all zero) into this one: into its next
    /// half where it halves z, into all of it where it keeps z.
    pub(super) fn fold_in(&mut self, finer: Option<&[u8]>, row_sums: &mut [u16]) {
        let slice = self.edge * self.edge;
        let slices = if self.halves_z {
            self.depth / 2
        } else {
            self.depth
        };
        let part = &mut self.voxels[self.slices * slice..][..slice * slices];
        match (finer, self.halves_z) {
            (Some(finer), true) => {
                downsample_2x2x2(finer, 2 * self.edge, part, row_sums);
                self.nonzero = true;
            }
            (Some(finer), false) => {
                downsample_2x2x1(finer, 2 * self.edge, part, row_sums);
                self.nonzero = true;
            }
            (None, _) => part.fill(0),
        }
        self.slices += slices;
    }
}
