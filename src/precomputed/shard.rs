//! Shard files: the encoder that writes one, and the decoder our tests and checks read it with.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/sharded.md#shard-format>
//! (docs/design.md §5, "Shard file"). A shard file is, in order:
//!
//! 1. the shard index: for each minishard, 16 bytes, the `[start, end)` (u64 LE) of its minishard
//!    index counted from the end of the shard index; `start == end` means an empty minishard;
//! 2. the chunk data, minishard by minishard, each minishard's chunks in ascending id order;
//! 3. each non-empty minishard's index, gzip-compressed; decoded it is a u64 LE array `[3][n]`:
//!    chunk ids (delta-coded), offsets (delta-coded: the first from the end of the shard index,
//!    each next from the end of the previous chunk) and sizes.
//!
//! "gzip" is an RFC 1952 gzip stream, as sharded.md says and tensorstore and neuroglancer read;
//! a zlib stream (RFC 1950, what `flate2::write::ZlibEncoder` writes) would not decode.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::ops::Range;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::precomputed::sharding::ShardingSpec;
use crate::{Error, ErrorKind, Result};

/// Bytes per minishard in the shard index: a `[start, end)` pair of u64.
const SHARD_INDEX_ENTRY_BYTES: usize = 16;

/// Bytes per chunk in a decoded minishard index: an id, an offset and a size, each u64.
const MINISHARD_INDEX_ENTRY_BYTES: usize = 24;

/// Builds one shard file from chunks given in any order.
///
/// Chunks are appended to one buffer as they come; [`ShardEncoder::finish`] sorts them by
/// minishard and id and copies them into the whole file. A shard is written in one put, so there
/// is nothing to gain from streaming its bytes out earlier, and taking chunks in any order lets
/// the pyramid add them as they are encoded, slab by slab. One buffer rather than one allocation
/// per chunk keeps a block's thousands of chunks from fragmenting the heap, which in a wasm
/// instance never shrinks.
///
/// ```
/// use emwrite::precomputed::shard::{ShardEncoder, decode_shard};
/// use emwrite::precomputed::sharding::ShardingSpec;
/// let spec = ShardingSpec::new(0, 0, 0)?;
/// let mut encoder = ShardEncoder::new(spec, 0);
/// encoder.add_chunk(10, &[1, 2, 3])?;
/// encoder.add_chunk(3, &[0xaa, 0xbb])?;
/// let file = encoder.finish()?;
/// let chunks = decode_shard(&spec, &file)?;
/// assert_eq!(chunks[&3], [0xaa, 0xbb]);
/// assert_eq!(chunks[&10], [1, 2, 3]);
/// # Ok::<(), emwrite::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ShardEncoder {
    spec: ShardingSpec,
    shard: u64,
    /// The chunks' bytes, back to back in the order added.
    data: Vec<u8>,
    /// Where each chunk is in `data`, in the order added.
    chunks: Vec<AddedChunk>,
}

#[derive(Clone, Debug)]
struct AddedChunk {
    minishard: u64,
    chunk_id: u64,
    bytes: Range<usize>,
}

impl ShardEncoder {
    /// An empty encoder for shard number `shard` of `spec`.
    pub fn new(spec: ShardingSpec, shard: u64) -> Self {
        Self {
            spec,
            shard,
            data: Vec::new(),
            chunks: Vec::new(),
        }
    }

    /// Adds chunk `chunk_id` with its encoded bytes.
    ///
    /// Fails (an emwrite bug) if the chunk belongs to another shard.
    pub fn add_chunk(&mut self, chunk_id: u64, bytes: &[u8]) -> Result<()> {
        self.add_chunk_with(chunk_id, |data| {
            data.extend_from_slice(bytes);
            Ok(())
        })
    }

    /// Adds chunk `chunk_id`, whose bytes `encode` appends to the buffer it is given: the chunk
    /// is encoded straight into the shard's buffer, with no copy in between.
    ///
    /// Fails if the chunk belongs to another shard (an emwrite bug) or if `encode` fails, in
    /// which case nothing is added.
    pub fn add_chunk_with(
        &mut self,
        chunk_id: u64,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let (shard, minishard) = self.spec.shard_and_minishard(chunk_id);
        if shard != self.shard {
            return Err(Error::internal(format_args!(
                "chunk {chunk_id} belongs to shard {shard}, not to shard {}",
                self.shard
            )));
        }
        let start = self.data.len();
        if let Err(e) = encode(&mut self.data) {
            self.data.truncate(start);
            return Err(e);
        }
        self.chunks.push(AddedChunk {
            minishard,
            chunk_id,
            bytes: start..self.data.len(),
        });
        Ok(())
    }

    /// Number of chunks added so far.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Reserves room for `bytes` more chunk bytes at once. Raw shards know their size in advance;
    /// growing a 128 MiB buffer by doubling instead would copy it and leave holes in the
    /// component's linear memory, which never shrinks.
    pub fn reserve_data(&mut self, bytes: usize) -> Result<()> {
        self.data
            .try_reserve_exact(bytes)
            .map_err(|_| too_large(format_args!("shard {} of {bytes} data bytes", self.shard)))
    }

    /// Whether no chunk has been added.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The whole shard file.
    ///
    /// Fails if a chunk id was added twice, or if the file would not fit in memory.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.chunks
            .sort_unstable_by_key(|chunk| (chunk.minishard, chunk.chunk_id));
        if let Some(pair) = self
            .chunks
            .windows(2)
            .find(|pair| pair[0].chunk_id == pair[1].chunk_id)
        {
            return Err(Error::internal(format_args!(
                "shard {}: chunk {} added twice",
                self.shard, pair[0].chunk_id
            )));
        }

        // Offsets depend only on the sizes, so the minishard indices come first and the file is
        // allocated once, at its exact size: a realloc of a 128 MiB raw shard would copy it all.
        let mut minishards: BTreeMap<u64, Vec<MinishardIndexEntry>> = BTreeMap::new();
        let mut data_len = 0usize;
        for chunk in &self.chunks {
            let size = chunk.bytes.len();
            minishards
                .entry(chunk.minishard)
                .or_default()
                .push(MinishardIndexEntry {
                    chunk_id: chunk.chunk_id,
                    offset_bytes: data_len as u64,
                    size_bytes: size as u64,
                });
            data_len += size;
        }
        let minishard_indices = minishards
            .iter()
            .map(|(&minishard, entries)| Ok((minishard, gzip(&encode_minishard_index(entries))?)))
            .collect::<Result<Vec<_>>>()?;

        let index_len = shard_index_len(&self.spec).ok_or_else(|| {
            too_large(format_args!(
                "shard index of {} minishards",
                self.spec.minishard_count()
            ))
        })?;
        let indices_len: usize = minishard_indices.iter().map(|(_, index)| index.len()).sum();
        let mut file = Vec::new();
        file.try_reserve_exact(index_len + data_len + indices_len)
            .map_err(|_| too_large(format_args!("shard of {data_len} data bytes")))?;
        file.resize(index_len, 0);

        // The chunk data, minishard by minishard, then each minishard index, with its byte range
        // recorded in the shard index.
        for chunk in &self.chunks {
            file.extend_from_slice(&self.data[chunk.bytes.clone()]);
        }
        for (minishard, compressed) in minishard_indices {
            let start = (file.len() - index_len) as u64;
            file.extend_from_slice(&compressed);
            let end = (file.len() - index_len) as u64;
            // `minishard < minishard_count`, so the slot lies inside the index.
            let slot = minishard as usize * SHARD_INDEX_ENTRY_BYTES;
            file[slot..slot + 8].copy_from_slice(&start.to_le_bytes());
            file[slot + 8..slot + 16].copy_from_slice(&end.to_le_bytes());
        }
        Ok(file)
    }
}

/// Decodes a whole shard file into its chunks, by id.
///
/// Every byte range is checked: a truncated or inconsistent file is an
/// [`ErrorKind::UnreadableInput`] error naming the part at fault (`"minishard index of minishard
/// 0: ..."`), never a panic. Callers add which file it was with [`Error::context`].
pub fn decode_shard(spec: &ShardingSpec, bytes: &[u8]) -> Result<BTreeMap<u64, Vec<u8>>> {
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
            if chunks.insert(id, data[range].to_vec()).is_some() {
                return Err(Error::unreadable(chunk_what(), "appears twice"));
            }
        }
    }
    Ok(chunks)
}

/// One chunk's entry in a minishard index, with its offset made absolute (from the end of the
/// shard index) rather than delta-coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MinishardIndexEntry {
    chunk_id: u64,
    offset_bytes: u64,
    size_bytes: u64,
}

/// The decoded (uncompressed) minishard index of `entries`, which are in ascending id order.
fn encode_minishard_index(entries: &[MinishardIndexEntry]) -> Vec<u8> {
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
fn decode_minishard_index(compressed: &[u8], max_entries: u64) -> Result<Vec<MinishardIndexEntry>> {
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
fn shard_index_len(spec: &ShardingSpec) -> Option<usize> {
    usize::try_from(spec.minishard_count())
        .ok()?
        .checked_mul(SHARD_INDEX_ENTRY_BYTES)
}

/// `[start, end)` as indices into a slice of `len` bytes, if it lies inside.
fn byte_range(start: u64, end: u64, len: usize) -> Option<Range<usize>> {
    let (start, end) = (usize::try_from(start).ok()?, usize::try_from(end).ok()?);
    (start <= end && end <= len).then_some(start..end)
}

/// `bytes` (8 of them) as a little-endian u64.
fn read_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    // flate2 writes mtime 0 and OS 255 in the header, so the same index gives the same bytes and
    // a task run twice writes identical shards.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|e| Error::internal(format_args!("gzip of a minishard index: {e}")))
}

fn too_large(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("{what}: does not fit in memory"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(preshift_bits: u32, minishard_bits: u32, shard_bits: u32) -> ShardingSpec {
        ShardingSpec::new(preshift_bits, minishard_bits, shard_bits).expect("valid spec")
    }

    /// A two-chunk shard, written by hand: chunk 3 = [aa bb], chunk 10 = [01 02 03]. The gzip
    /// member uses one stored (uncompressed) deflate block so every byte can be written down.
    #[rustfmt::skip]
    const TWO_CHUNK_SHARD: [u8; 92] = [
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
    const TWO_CHUNK_INDEX: std::ops::Range<usize> = 36..84;

    fn two_chunk_map() -> BTreeMap<u64, Vec<u8>> {
        BTreeMap::from([(3, vec![0xaa, 0xbb]), (10, vec![1, 2, 3])])
    }

    #[test]
    fn decodes_hand_written_two_chunk_shard() {
        let chunks = decode_shard(&spec(0, 0, 0), &TWO_CHUNK_SHARD).expect("decodes");
        assert_eq!(chunks, two_chunk_map());
    }

    #[test]
    fn encoder_writes_the_same_layout_with_a_gzip_index() {
        let mut encoder = ShardEncoder::new(spec(0, 0, 0), 0);
        // Out of order on purpose: the encoder sorts by id.
        encoder.add_chunk(10, &[1, 2, 3]).expect("same shard");
        encoder.add_chunk(3, &[0xaa, 0xbb]).expect("same shard");
        let file = encoder.finish().expect("encodes");

        let gzip_len = file.len() - 21;
        assert_eq!(file[..8], 5u64.to_le_bytes(), "index start");
        assert_eq!(
            file[8..16],
            (5 + gzip_len as u64).to_le_bytes(),
            "index end"
        );
        assert_eq!(file[16..21], TWO_CHUNK_SHARD[16..21], "chunk data");
        // RFC 1952 gzip magic, not a zlib header (0x78 ..).
        assert_eq!(file[21..23], [0x1f, 0x8b]);
        let mut decoded = Vec::new();
        GzDecoder::new(&file[21..])
            .read_to_end(&mut decoded)
            .expect("gzip");
        assert_eq!(decoded, TWO_CHUNK_SHARD[TWO_CHUNK_INDEX]);
    }

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
    fn shard_round_trip_with_minishards() {
        // 2 preshift bits, 2 minishard bits, 3 shard bits: ids 0..128 fall in 4 minishards of
        // 8 shards.
        let spec = spec(2, 2, 3);
        let mut want: BTreeMap<u64, BTreeMap<u64, Vec<u8>>> = BTreeMap::new();
        for id in (0..128u64).rev().filter(|id| id % 3 != 0) {
            let bytes = (0..id % 7).map(|i| (id * 31 + i) as u8).collect();
            want.entry(spec.shard_and_minishard(id).0)
                .or_default()
                .insert(id, bytes);
        }
        for (shard, chunks) in want {
            let mut encoder = ShardEncoder::new(spec, shard);
            for (id, bytes) in chunks.iter().rev() {
                encoder.add_chunk(*id, bytes).expect("same shard");
            }
            let file = encoder.finish().expect("encodes");
            assert_eq!(
                decode_shard(&spec, &file).expect("decodes"),
                chunks,
                "shard {shard}"
            );
        }
    }

    #[test]
    fn empty_minishards_have_equal_start_and_end() {
        let spec = spec(0, 2, 0);
        let mut encoder = ShardEncoder::new(spec, 0);
        encoder.add_chunk(2, &[9]).expect("same shard"); // minishard 2 only
        let file = encoder.finish().expect("encodes");
        for minishard in [0, 1, 3] {
            let slot = &file[minishard * 16..minishard * 16 + 16];
            assert_eq!(slot[..8], slot[8..], "minishard {minishard}");
        }
        assert_eq!(
            read_u64(&file[32..40]),
            1,
            "minishard 2's index follows its 1 data byte"
        );
        assert_eq!(
            decode_shard(&spec, &file).expect("decodes"),
            BTreeMap::from([(2, vec![9])])
        );
    }

    #[test]
    fn empty_shard_is_just_the_index() {
        let file = ShardEncoder::new(spec(0, 1, 0), 0)
            .finish()
            .expect("encodes");
        assert_eq!(file, [0; 32]);
        assert!(
            decode_shard(&spec(0, 1, 0), &file)
                .expect("decodes")
                .is_empty()
        );
    }

    #[test]
    fn encoder_rejects_foreign_and_duplicate_chunks() {
        let mut encoder = ShardEncoder::new(spec(0, 0, 4), 1);
        let e = encoder.add_chunk(2, &[]).expect_err("chunk 2 is shard 2");
        assert!(e.message().contains("belongs to shard 2"), "{e}");
        encoder.add_chunk(1, &[1]).expect("same shard");
        encoder.add_chunk(1, &[2]).expect("same shard");
        let e = encoder.finish().expect_err("duplicate");
        assert!(e.message().contains("chunk 1 added twice"), "{e}");
    }

    #[test]
    fn failed_encode_adds_nothing() {
        let mut encoder = ShardEncoder::new(spec(0, 0, 0), 0);
        encoder.add_chunk(1, &[1, 1]).expect("same shard");
        let e = encoder
            .add_chunk_with(2, |data| {
                data.extend_from_slice(&[9, 9, 9]);
                Err(Error::internal("encoder gave up"))
            })
            .expect_err("encode fails");
        assert_eq!(e.message(), "encoder gave up");
        encoder
            .add_chunk_with(3, |data| {
                data.push(3);
                Ok(())
            })
            .expect("same shard");
        assert_eq!(encoder.chunk_count(), 2);
        let file = encoder.finish().expect("encodes");
        let chunks = decode_shard(&spec(0, 0, 0), &file).expect("decodes");
        assert_eq!(chunks, BTreeMap::from([(1, vec![1, 1]), (3, vec![3])]));
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
        let mut encoder = ShardEncoder::new(spec(0, 0, 0), 0);
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
