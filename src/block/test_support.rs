//! What the block engine's tests share: emwrite's scales at any chunk edge, so that small blocks
//! run the same pyramid.

use crate::layout::scale_sharding;
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::Scale;

/// emwrite's five scales for a scale-0 size of `size0` voxels and chunks of `chunk`³, keyed
/// `s0`…`s4`.
pub(super) fn scales_for(size0: [u64; 3], chunk: u64) -> Vec<Scale> {
    (0..)
        .zip(scale_sharding())
        .map(|(k, sharding)| {
            let resolution = 8.0 * f64::from(1u32 << k);
            let size = size0.map(|voxels| voxels >> k);
            Scale::new(
                format!("s{k}"),
                size,
                [resolution; 3],
                [chunk; 3],
                Encoding::Raw,
                sharding,
            )
            .expect("valid scale")
        })
        .collect()
}
