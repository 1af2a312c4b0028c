//! A shard file written down byte by byte, for the encoder's and the decoder's tests.

use std::collections::BTreeMap;

use crate::precomputed::sharding::ShardingSpec;

pub(super) fn spec(preshift_bits: u32, minishard_bits: u32, shard_bits: u32) -> ShardingSpec {
    ShardingSpec::new(preshift_bits, minishard_bits, shard_bits).expect("valid spec")
}

/// A two-chunk shard, written by hand: chunk 3 = [aa bb], chunk 10 = [01 02 03]. The gzip
/// member uses one stored (uncompressed) deflate block so every byte can be written down.
#[rustfmt::skip]
pub(super) const TWO_CHUNK_SHARD: [u8; 92] = [
    // shard index: minishard 0's index is bytes [5, 76) after the index
    5, 0, 0, 0, 0, 0, 0, 0,          // start = 5 (after the 5 data bytes)
    76, 0, 0, 0, 0, 0, 0, 0,         // end = 5 + 71 gzip bytes
    // chunk data
    0xaa, 0xbb,                      // chunk 3, offset 0, 2 bytes
    0x01, 0x02, 0x03,                // chunk 10, offset 2, 3 bytes
    // minishard index: gzip header (RFC 1952 §2.3)
    0x1f, 0x8b, 8, 0,                // magic, CM = deflate, FLG = 0
    0, 0, 0, 0,                      // MTIME = 0
    0, 0xff,                         // XFL, OS = unknown
    // one final stored deflate block of 48 bytes (RFC 1951 §3.2.4)
    0x01, 48, 0, 0xcf, 0xff,         // BFINAL = 1, BTYPE = 00, LEN = 48, NLEN = !48
    3, 0, 0, 0, 0, 0, 0, 0,          // id[0] = 3
    7, 0, 0, 0, 0, 0, 0, 0,          // id[1] = 3 + 7 = 10
    0, 0, 0, 0, 0, 0, 0, 0,          // offset[0] = 0 from the end of the shard index
    0, 0, 0, 0, 0, 0, 0, 0,          // offset[1] = end of chunk 3 + 0 = 2
    2, 0, 0, 0, 0, 0, 0, 0,          // size[0] = 2
    3, 0, 0, 0, 0, 0, 0, 0,          // size[1] = 3
    0x26, 0x57, 0x48, 0x47,          // CRC-32 of the 48 bytes = 0x47485726
    48, 0, 0, 0,                     // ISIZE = 48
];

/// TWO_CHUNK_SHARD's minishard index, decoded.
pub(super) const TWO_CHUNK_INDEX: std::ops::Range<usize> = 36..84;

pub(super) fn two_chunk_map() -> BTreeMap<u64, Vec<u8>> {
    BTreeMap::from([(3, vec![0xaa, 0xbb]), (10, vec![1, 2, 3])])
}
