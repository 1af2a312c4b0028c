//! Shard files: the encoder that writes one whole, the stream that writes one front to back, and
//! the decoder that reads one.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/sharded.md#shard-format>
//! (docs/design.md §5, "Shard file"). A shard file is, in order:
//!
//! 1. the shard index: for each minishard, 16 bytes, the `[start, end)` (u64 LE) of its minishard
//!    index counted from the end of the shard index; `start == end` means an empty minishard;
//! 2. the chunk data, minishard by minishard (in any order of minishards: emwrite's is
//!    [`ChunkOrder`]), each minishard's chunks in ascending id order;
//! 3. each non-empty minishard's index, gzip-compressed; decoded it is a u64 LE array `[3][n]`:
//!    chunk ids (delta-coded), offsets (delta-coded: the first from the end of the shard index,
//!    each next from the end of the previous chunk) and sizes.
//!
//! "gzip" is an RFC 1952 gzip stream, as sharded.md says and tensorstore and neuroglancer read;
//! a zlib stream (RFC 1950, what `flate2::write::ZlibEncoder` writes) would not decode.
//!
//! One file per piece, as tensorstore keeps `neuroglancer_uint64_sharded`: `index.rs` (the shard
//! index and the minishard indices, both ways), `order.rs` ([`ChunkOrder`]), `encode.rs`
//! ([`ShardEncoder`]), `stream.rs` ([`ShardStream`]) and `decode.rs` ([`decode_shard`]), each
//! with its own tests.

mod decode;
mod encode;
mod index;
mod order;
mod stream;
#[cfg(test)]
mod test_vectors;

pub use decode::{decode_shard, shard_chunk_ranges};
pub use encode::ShardEncoder;
pub use order::ChunkOrder;
pub use stream::{ShardStream, ShardStreamEnd};
