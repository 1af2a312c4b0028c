//! The shard index and the minishard indices: their bytes, both ways.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/sharded.md#shard-index-format>
//! and `#minishard-index-format` (docs/design.md §5). The shard index is 16 bytes per minishard;
//! a minishard index is gzip-compressed u64 LE words `[3][n]`: delta-coded ids, delta-coded
//! offsets and sizes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::ops::Range;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::precomputed::sharding::ShardingSpec;
use crate::{Error, ErrorKind, Result};

/// Bytes per minishard in the shard index: a `[start, end)` pair of u64.
pub(super) const SHARD_INDEX_ENTRY_BYTES: usize = 16;

/// Bytes per chunk in a decoded minishard index: an id, an offset and a size, each u64.
pub(super) const MINISHARD_INDEX_ENTRY_BYTES: usize = 24;

/// The shard index and the minishard indices that follow the chunk data, for chunks laid out
/// back to back in the order given: `(minishard, chunk id, size)`, each minishard's chunks
/// together and by ascending id (the minishards in any order, [`super::ChunkOrder`]).
/// The file is `index || chunk data || tail`.
pub(super) fn shard_index_and_tail(
    spec: &ShardingSpec,
    chunks: impl IntoIterator<Item = (u64, u64, u64)>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut minishards: BTreeMap<u64, Vec<MinishardIndexEntry>> = BTreeMap::new();
    let mut data_len = 0u64;
    for (minishard, chunk_id, size_bytes) in chunks {
        minishards
            .entry(minishard)
            .or_default()
            .push(MinishardIndexEntry {
                chunk_id,
                offset_bytes: data_len,
                size_bytes,
            });
        data_len += size_bytes;
    }
    let index_len = shard_index_len(spec).ok_or_else(|| {
        too_large(format_args!(
            "shard index of {} minishards",
            spec.minishard_count()
        ))
    })?;
    let mut index = Vec::new();
    index
        .try_reserve_exact(index_len)
        .map_err(|_| too_large(format_args!("shard index of {index_len} bytes")))?;
    index.resize(index_len, 0);
    // Each minishard index, with its byte range (counted from the end of the shard index)
    // recorded in the shard index.
    let mut tail = Vec::new();
    for (minishard, entries) in minishards {
        let compressed = gzip(&encode_minishard_index(&entries))?;
        let start = data_len + tail.len() as u64;
        tail.extend_from_slice(&compressed);
        let end = data_len + tail.len() as u64;
        // `minishard < minishard_count`, so the slot lies inside the index.
        let slot = minishard as usize * SHARD_INDEX_ENTRY_BYTES;
        index[slot..slot + 8].copy_from_slice(&start.to_le_bytes());
        index[slot + 8..slot + 16].copy_from_slice(&end.to_le_bytes());
    }
    Ok((index, tail))
}

/// One chunk's entry in a minishard index, with its offset made absolute (from the end of the
/// shard index) rather than delta-coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct MinishardIndexEntry {
    pub(super) chunk_id: u64,
    pub(super) offset_bytes: u64,
    pub(super) size_bytes: u64,
}

/// The decoded (uncompressed) minishard index of `entries`, which are in ascending id order.
pub(super) fn encode_minishard_index(entries: &[MinishardIndexEntry]) -> Vec<u8> {
    let n = entries.len();
    let mut words = vec![0u64; 3 * n];
    let (mut previous_id, mut previous_end) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        // Wrapping keeps this total; for ascending ids and non-overlapping, ascending offsets
        // (all the encoder produces) no delta wraps.
        words[i] = entry.chunk_id.wrapping_sub(previous_id);
        words[n + i] = entry.offset_bytes.wrapping_sub(previous_end);
        words[2 * n + i] = entry.size_bytes;
        previous_id = entry.chunk_id;
        previous_end = entry.offset_bytes.wrapping_add(entry.size_bytes);
    }
    words.iter().flat_map(|word| word.to_le_bytes()).collect()
}

/// The entries of a gzip-compressed minishard index of at most `max_entries` chunks.
pub(super) fn decode_minishard_index(
    compressed: &[u8],
    max_entries: u64,
) -> Result<Vec<MinishardIndexEntry>> {
    let max_bytes = max_entries * MINISHARD_INDEX_ENTRY_BYTES as u64;
    let mut decoded = Vec::new();
    // One byte past the limit tells an index that is too long from one exactly at it.
    GzDecoder::new(compressed)
        .take(max_bytes + 1)
        .read_to_end(&mut decoded)
        .map_err(|e| Error::unreadable("gzip stream", e))?;
    if decoded.len() as u64 > max_bytes {
        return Err(Error::unreadable(
            "decoded index",
            format_args!("more than {max_entries} entries, the most the shard has room for"),
        ));
    }
    if decoded.len() % MINISHARD_INDEX_ENTRY_BYTES != 0 {
        return Err(Error::unreadable(
            "decoded index",
            format_args!(
                "{} bytes is not a whole number of 24-byte entries",
                decoded.len()
            ),
        ));
    }
    let words: Vec<u64> = decoded.chunks_exact(8).map(read_u64).collect();
    let n = words.len() / 3;
    let (ids, rest) = words.split_at(n);
    let (offsets, sizes) = rest.split_at(n);

    let mut entries = Vec::with_capacity(n);
    let (mut previous_id, mut previous_end) = (None, 0u64);
    for i in 0..n {
        let chunk_id = match previous_id {
            None => ids[i],
            // Ids ascend strictly: a zero delta would repeat an id.
            Some(previous) if ids[i] > 0 => checked_sum(previous, ids[i], i, "chunk id")?,
            Some(previous) => {
                return Err(Error::unreadable(
                    format_args!("entry {i}"),
                    format_args!("chunk id {previous} repeats"),
                ));
            }
        };
        let offset_bytes = checked_sum(previous_end, offsets[i], i, "offset")?;
        let size_bytes = sizes[i];
        previous_id = Some(chunk_id);
        previous_end = checked_sum(offset_bytes, size_bytes, i, "chunk end")?;
        entries.push(MinishardIndexEntry {
            chunk_id,
            offset_bytes,
            size_bytes,
        });
    }
    Ok(entries)
}

fn checked_sum(base: u64, delta: u64, entry: usize, what: &str) -> Result<u64> {
    base.checked_add(delta).ok_or_else(|| {
        Error::unreadable(
            format_args!("entry {entry}"),
            format_args!("{what} overflows 64 bits"),
        )
    })
}

/// Length in bytes of the shard index, or `None` if it does not fit in memory.
pub(super) fn shard_index_len(spec: &ShardingSpec) -> Option<usize> {
    usize::try_from(spec.minishard_count())
        .ok()?
        .checked_mul(SHARD_INDEX_ENTRY_BYTES)
}

/// `[start, end)` as indices into a slice of `len` bytes, if it lies inside.
pub(super) fn byte_range(start: u64, end: u64, len: usize) -> Option<Range<usize>> {
    let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
    (start <= end && end <= len).then_some(start..end)
}

/// `bytes` (8 of them) as a little-endian u64.
pub(super) fn read_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

pub(super) fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    // flate2 writes mtime 0 and OS 255 in the header, so the same index gives the same bytes and
    // a task run twice writes identical shards.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|e| Error::internal(format_args!("gzip of a minishard index: {e}")))
}

pub(super) fn too_large(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("{what}: does not fit in memory"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minishard_index_round_trip() {
        let entries = [
            MinishardIndexEntry {
                chunk_id: 7,
                offset_bytes: 100,
                size_bytes: 5,
            },
            MinishardIndexEntry {
                chunk_id: 8,
                offset_bytes: 105,
                size_bytes: 0,
            },
            MinishardIndexEntry {
                chunk_id: 1 << 40,
                offset_bytes: 500,
                size_bytes: 12,
            },
        ];
        let encoded = encode_minishard_index(&entries);
        let words: Vec<u64> = encoded.chunks_exact(8).map(read_u64).collect();
        assert_eq!(words[0..3], [7, 1, (1 << 40) - 8], "ids, delta-coded");
        assert_eq!(
            words[3..6],
            [100, 0, 395],
            "offsets: from the index end, then after each chunk"
        );
        assert_eq!(words[6..9], [5, 0, 12], "sizes");
        let decoded = decode_minishard_index(&gzip(&encoded).expect("gzip"), 3).expect("decodes");
        assert_eq!(decoded, entries);
        let e = decode_minishard_index(&gzip(&encoded).expect("gzip"), 2).expect_err("too many");
        assert!(
            e.message()
                .starts_with("decoded index: more than 2 entries"),
            "{e}"
        );
    }
}
