//! emwrite's block engine: one 1024³ block of a volume, from its slices to its shards at every
//! scale, streamed (docs/design.md §4 "ngshard").
//!
//! The engine is emwrite's own, not a format's: it takes the layout's rules ([`crate::layout`])
//! and writes through a format ([`crate::precomputed`]) at one narrow seam, `scale.rs` and
//! [`shards`]: a chunk is a grid cell of a scale with an id, and its encoded bytes go to the
//! shard that holds it. Another output format would plug in there and share the rest.
//!
//! - [`pyramid`]: [`pyramid::BlockPyramid`], slices in, shards out; it drives
//! - `slice_feed.rs`: scale 0's chunks encoded as their slices arrive (the row-wise JPEG),
//! - `level.rs`: coarser scales' slabs folded from finer ones with [`downsample`]'s means,
//! - `scale.rs`: one scale's chunk layers, cut out of a slab and encoded,
//! - [`shards`]: a scale's shards, held or streamed in parts until complete;
//! - [`handoff`] and [`merge`]: a block built as two halves on two cores;
//! - [`manifest`]: what a block wrote, its last object, so a rerun knows it is finished.

pub mod downsample;
pub mod handoff;
mod level;
pub mod manifest;
pub mod merge;
pub mod pyramid;
mod scale;
pub mod shards;
mod slice_feed;
#[cfg(test)]
mod test_support;
pub mod zarr;
