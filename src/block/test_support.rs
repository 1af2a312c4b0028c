//! What the block engine's tests share: emwrite's scales at any chunk edge, so that small blocks
//! run the same pyramid.

use crate::layout::scale_shifts;
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::Scale;

/// Voxels of serial-section EM, 8×8×40 nm: scales 1 and 2 keep z, 3 and 4 halve it.
pub(super) const FLAT_VOXELS: [f64; 3] = [8.0, 8.0, 40.0];

/// emwrite's five scales for cubic voxels ([`scales_with_voxels`] of 8 nm).
pub(super) fn scales_for(size0: [u64; 3], chunk: u64) -> Vec<Scale> {
    scales_with_voxels(size0, chunk, [8.0; 3])
}

/// emwrite's five scales for a scale-0 size of `size0` voxels of `resolution_nm`, chunks of
/// `chunk`³, keyed `s0`…`s4`: what [`crate::layout::volume_info`] gives, at any chunk edge.
pub(super) fn scales_with_voxels(
    size0: [u64; 3],
    chunk: u64,
    resolution_nm: [f64; 3],
) -> Vec<Scale> {
    scale_shifts(resolution_nm)
        .into_iter()
        .enumerate()
        .map(|(k, shift)| {
            let resolution =
                std::array::from_fn(|axis| resolution_nm[axis] * f64::from(1u32 << shift.0[axis]));
            let size = std::array::from_fn(|axis| size0[axis] >> shift.0[axis]);
            Scale::new(
                format!("s{k}"),
                size,
                resolution,
                [chunk; 3],
                Encoding::Raw,
                shift.sharding(),
            )
            .expect("valid scale")
        })
        .collect()
}
