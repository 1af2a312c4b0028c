//! The shard decoder: a whole shard file back into its chunks, every byte range checked.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/sharded.md#shard-format>
//! (docs/design.md §5, "Shard file").

use std::collections::BTreeMap;
use std::ops::Range;

use super::index::{
    SHARD_INDEX_ENTRY_BYTES, byte_range, decode_minishard_index, read_u64, shard_index_len,
};
use crate::precomputed::sharding::ShardingSpec;
use crate::{Error, Result};

/// Decodes a whole shard file into its chunks, by id.
///
/// Every byte range is checked: a truncated or inconsistent file is an
/// [`ErrorKind::UnreadableInput`] error naming the part at fault (`"minishard index of minishard
/// 0: ..."`), never a panic. Callers add which file it was with [`Error::context`].
pub fn decode_shard(spec: &ShardingSpec, bytes: &[u8]) -> Result<BTreeMap<u64, Vec<u8>>> {
    Ok(shard_chunk_ranges(spec, bytes)?
        .into_iter()
        .map(|(id, range)| (id, bytes[range].to_vec()))
        .collect())
}

/// Where each chunk of a whole shard file lies in it, by id, checked as [`decode_shard`] checks
/// them: for a reader that takes the chunks from the file's own bytes rather than copies.
pub fn shard_chunk_ranges(
    spec: &ShardingSpec,
    bytes: &[u8],
) -> Result<BTreeMap<u64, Range<usize>>> {
    let index_len = shard_index_len(spec)
        .filter(|&len| len <= bytes.len())
        .ok_or_else(|| {
            Error::unreadable(
                "shard index",
                format_args!(
                    "file is {} bytes, shorter than the index of {} minishards",
                    bytes.len(),
                    spec.minishard_count()
                ),
            )
        })?;
    let (index, data) = bytes.split_at(index_len);

    let mut chunks = BTreeMap::new();
    for (minishard, slot) in (0u64..).zip(index.chunks_exact(SHARD_INDEX_ENTRY_BYTES)) {
        let what = || format!("minishard index of minishard {minishard}");
        let (start, end) = (read_u64(&slot[..8]), read_u64(&slot[8..]));
        if start == end {
            continue;
        }
        let range = byte_range(start, end, data.len()).ok_or_else(|| {
            Error::unreadable(
                what(),
                format_args!(
                    "byte range [{start}, {end}) is outside the {} bytes after the shard index",
                    data.len()
                ),
            )
        })?;
        // Every chunk is at least one byte of the data (no encoding makes an empty chunk), so
        // an index listing more chunks than the data has bytes is corrupt: this bounds what a
        // decoded index may inflate to by the file's own size, and a hostile or corrupt shard
        // (a gzip bomb) cannot make a reader allocate without limit.
        let max_entries = data.len().max(1) as u64;
        let entries =
            decode_minishard_index(&data[range], max_entries).map_err(|e| e.context(what()))?;
        for entry in entries {
            let id = entry.chunk_id;
            let chunk_what = || format!("chunk {id} in minishard {minishard}");
            let (_, its_minishard) = spec.shard_and_minishard(id);
            if its_minishard != minishard {
                return Err(Error::unreadable(
                    chunk_what(),
                    format_args!("belongs to minishard {its_minishard}"),
                ));
            }
            let end = entry.offset_bytes.checked_add(entry.size_bytes);
            let range = end
                .and_then(|end| byte_range(entry.offset_bytes, end, data.len()))
                .ok_or_else(|| {
                    Error::unreadable(
                        chunk_what(),
                        format_args!(
                            "{} bytes at offset {} run past the {} bytes after the shard index",
                            entry.size_bytes,
                            entry.offset_bytes,
                            data.len()
                        ),
                    )
                })?;
            let in_file = index_len + range.start..index_len + range.end;
            if chunks.insert(id, in_file).is_some() {
                return Err(Error::unreadable(chunk_what(), "appears twice"));
            }
        }
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::precomputed::shard::index::gzip;
    use crate::precomputed::shard::test_vectors::{TWO_CHUNK_SHARD, spec, two_chunk_map};
    use crate::precomputed::shard::{ChunkOrder, ShardEncoder};

    #[test]
    fn decodes_hand_written_two_chunk_shard() {
        let chunks = decode_shard(&spec(0, 0, 0), &TWO_CHUNK_SHARD).expect("decodes");
        assert_eq!(chunks, two_chunk_map());
    }

    #[test]
    fn an_index_that_inflates_past_its_minishard_is_refused() {
        // 64 MiB of zeros gzip to about 64 KiB: far more entries than the file has bytes.
        let bomb = gzip(&vec![0; 64 << 20]).expect("gzip");
        let mut file = 0u64.to_le_bytes().to_vec();
        file.extend_from_slice(&(bomb.len() as u64).to_le_bytes());
        file.extend_from_slice(&bomb);
        let e = decode_shard(&spec(0, 0, 0), &file).expect_err("bomb");
        assert!(e.message().contains("decoded index: more than"), "{e}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let spec = spec(0, 0, 0);
        for len in 0..TWO_CHUNK_SHARD.len() {
            let e = decode_shard(&spec, &TWO_CHUNK_SHARD[..len]).expect_err("truncated");
            assert_eq!(e.kind(), ErrorKind::UnreadableInput, "{len}: {e}");
        }
        let e = decode_shard(&spec, &TWO_CHUNK_SHARD[..10]).expect_err("truncated");
        assert!(
            e.message().starts_with("shard index: file is 10 bytes"),
            "{e}"
        );
        let e = decode_shard(&spec, &TWO_CHUNK_SHARD[..80]).expect_err("truncated");
        assert!(
            e.message()
                .starts_with("minishard index of minishard 0: byte range [5, 76)"),
            "{e}"
        );
    }

    #[test]
    fn inconsistent_shards_are_errors_that_name_the_part() {
        let spec = spec(0, 0, 0);
        let cases: [(usize, &[u8], &str); 4] = [
            // index start after its end
            (
                0,
                &[80],
                "minishard index of minishard 0: byte range [80, 76)",
            ),
            // the index points into the chunk data: not a gzip stream
            (0, &[0], "minishard index of minishard 0: gzip stream"),
            // an edited index byte (size[1] = 4): the gzip CRC catches it
            (76, &[4], "minishard index of minishard 0: gzip stream"),
            // shard index end past the file
            (
                8,
                &[200],
                "minishard index of minishard 0: byte range [5, 200)",
            ),
        ];
        for (at, patch, message) in cases {
            let mut file = TWO_CHUNK_SHARD.to_vec();
            file[at..at + patch.len()].copy_from_slice(patch);
            let e = decode_shard(&spec, &file).expect_err(message);
            assert!(
                e.message().starts_with(message),
                "want {message:?}, got {e}"
            );
        }
    }

    #[test]
    fn inconsistent_minishard_indices_are_errors() {
        let spec = spec(0, 0, 0);
        let shard_with_index = |words: &[u64], data_len: usize| {
            let index: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let compressed = gzip(&index).expect("gzip");
            let mut file = Vec::new();
            file.extend_from_slice(&(data_len as u64).to_le_bytes());
            file.extend_from_slice(&((data_len + compressed.len()) as u64).to_le_bytes());
            file.resize(16 + data_len, 0);
            file.extend_from_slice(&compressed);
            decode_shard(&spec, &file).expect_err("inconsistent")
        };
        let cases: [(&[u64], &str); 5] = [
            // ids | offsets | sizes
            (
                &[1, 0, 0, 0, 2, 2],
                "minishard index of minishard 0: entry 1: chunk id 1 repeats",
            ),
            (
                &[1, u64::MAX, 0, 0, 1, 1],
                "minishard index of minishard 0: entry 1: chunk id overflows",
            ),
            (
                &[1, 2, 0, u64::MAX, 1, 1],
                "minishard index of minishard 0: entry 1: offset overflows",
            ),
            (
                &[1, 2, 0, 0, 2, 1000],
                "chunk 3 in minishard 0: 1000 bytes at offset 2 run past",
            ),
            (
                &[1, 2, 0, 0],
                "minishard index of minishard 0: decoded index: 32 bytes",
            ),
        ];
        for (words, message) in cases {
            let e = shard_with_index(words, 3);
            assert!(
                e.message().starts_with(message),
                "want {message:?}, got {e}"
            );
        }
    }

    #[test]
    fn chunk_in_the_wrong_minishard_is_an_error() {
        // Chunk 1 belongs to minishard 1, but minishard 0's index lists it.
        let mut encoder = ShardEncoder::new(spec(0, 0, 0), ChunkOrder::BY_ID, 0);
        encoder.add_chunk(1, &[5]).expect("same shard");
        let file = encoder.finish().expect("encodes");
        let two_minishards = spec(0, 1, 0);
        // Keep the original slot as minishard 0's and add an empty slot for minishard 1.
        let mut moved = file[..16].to_vec();
        moved.extend_from_slice(&[0; 16]);
        moved.extend_from_slice(&file[16..]);
        let e = decode_shard(&two_minishards, &moved).expect_err("wrong minishard");
        assert!(
            e.message()
                .contains("chunk 1 in minishard 0: belongs to minishard 1"),
            "{e}"
        );
    }
}
