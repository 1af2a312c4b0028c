//! The Neuroglancer precomputed format, one piece per module: the info, Morton chunk ids, the
//! sharding spec, shard files and chunk codecs.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/volume.md>
//! and `sharded.md` beside it (docs/design.md §5). Nothing here knows emwrite's layout or does
//! I/O: the parameters emwrite uses are [`crate::layout`]'s, and the block engine that writes
//! volumes is [`crate::block`].

pub mod codec;
pub mod info;
pub mod morton;
pub mod shard;
pub mod sharding;
