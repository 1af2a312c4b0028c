//! A coarser scale's slab as it fills: the 2×2×2 means of the finer scale folded in, half a slab
//! at a time (or slice by slice from scale 0's slices).

use super::downsample::{downsample_2x2x2, downsample_slice_pair};

/// A coarser scale's slab, filled half a slab at a time.
#[derive(Debug)]
pub(super) struct Level {
    /// Slice edge in voxels: the block's edge at this scale.
    edge: usize,
    /// Slices per slab: one chunk deep.
    depth: usize,
    /// `edge² × depth` voxels, x fastest, then y, then z.
    voxels: Vec<u8>,
    /// Slices filled so far: 0, half the depth, or all of it.
    pub(super) slices: usize,
    /// Whether any voxel folded in since the last clear may be nonzero.
    nonzero: bool,
}

impl Level {
    pub(super) fn new(edge: usize, depth: usize) -> Self {
        Self {
            edge,
            depth,
            voxels: vec![0; edge * edge * depth],
            slices: 0,
            nonzero: false,
        }
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

    /// Folds two slices of the next finer scale into this slab's next slice.
    pub(super) fn fold_in_pair(&mut self, lower: &[u8], upper: &[u8], row_sums: &mut [u16]) {
        let slice = self.edge * self.edge;
        let coarse = &mut self.voxels[self.slices * slice..][..slice];
        downsample_slice_pair(lower, upper, 2 * self.edge, coarse, row_sums);
        self.nonzero = true;
        self.slices += 1;
    }

    /// Folds a full slab of the next finer scale (`None`: all zero) into the next half of this
    /// one.
    pub(super) fn fold_in(&mut self, finer: Option<&[u8]>, row_sums: &mut [u16]) {
        let slice = self.edge * self.edge;
        let half = &mut self.voxels[self.slices * slice..][..slice * self.depth / 2];
        match finer {
            Some(finer) => {
                downsample_2x2x2(finer, 2 * self.edge, half, row_sums);
                self.nonzero = true;
            }
            None => half.fill(0),
        }
        self.slices += self.depth / 2;
    }
}
