//! The Neuroglancer precomputed format, one piece per module.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/volume.md>
//! and `sharded.md` beside it; docs/design.md §4–5 fixes the parameters emwrite uses.

pub mod block_halves;
pub mod block_shards;
pub mod codec;
pub mod downsample;
pub mod info;
pub mod morton;
pub mod pyramid;
pub mod shard;
pub mod sharding;
