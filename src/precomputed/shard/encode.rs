//! The shard encoder: one whole shard file from chunks given in any order.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/sharded.md#shard-format>
//! (docs/design.md §5, "Shard file").

use std::ops::Range;

use super::ChunkOrder;
use super::index::{shard_index_and_tail, too_large};
use crate::precomputed::sharding::ShardingSpec;
use crate::{Error, Result};

/// Builds one shard file from chunks given in any order.
///
/// Chunks are appended to one buffer as they come; [`ShardEncoder::finish`] sorts them into
/// their [`ChunkOrder`] and copies them into the whole file, written in one put; taking chunks in
/// any order lets the pyramid add them as they are encoded, slab by slab. (A block's large
/// shards go out in parts instead: [`ShardStream`].) One buffer rather than one allocation
/// per chunk keeps a block's thousands of chunks from fragmenting the heap, which in a wasm
/// instance never shrinks.
///
/// ```
/// use emwrite::precomputed::shard::{ChunkOrder, ShardEncoder, decode_shard};
/// use emwrite::precomputed::sharding::ShardingSpec;
/// let spec = ShardingSpec::new(0, 0, 0)?;
/// let mut encoder = ShardEncoder::new(spec, ChunkOrder::BY_ID, 0);
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
    order: ChunkOrder,
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
    /// An empty encoder for shard number `shard` of `spec`, its data in `order`.
    pub fn new(spec: ShardingSpec, order: ChunkOrder, shard: u64) -> Self {
        Self {
            spec,
            order,
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

    /// The chunks added so far, `(chunk id, bytes)`, in the order added.
    pub fn chunks(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.chunks
            .iter()
            .map(|chunk| (chunk.chunk_id, &self.data[chunk.bytes.clone()]))
    }

    /// Whether no chunk has been added.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The whole shard file.
    ///
    /// Fails if a chunk id was added twice, or if the file would not fit in memory.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        let order = self.order;
        self.chunks
            .sort_unstable_by_key(|chunk| order.key(chunk.chunk_id));
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

        // Offsets depend only on the sizes, so the index and the minishard indices come first
        // and the file is allocated once, at its exact size: a realloc of a 128 MiB raw shard
        // would copy it all.
        let layout = self
            .chunks
            .iter()
            .map(|chunk| (chunk.minishard, chunk.chunk_id, chunk.bytes.len() as u64));
        let (index, tail) = shard_index_and_tail(&self.spec, layout)?;
        let data_len: usize = self.chunks.iter().map(|chunk| chunk.bytes.len()).sum();
        let mut file = Vec::new();
        file.try_reserve_exact(index.len() + data_len + tail.len())
            .map_err(|_| too_large(format_args!("shard of {data_len} data bytes")))?;
        file.extend_from_slice(&index);
        for chunk in &self.chunks {
            file.extend_from_slice(&self.data[chunk.bytes.clone()]);
        }
        file.extend_from_slice(&tail);
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;
    use crate::precomputed::shard::decode_shard;
    use crate::precomputed::shard::index::read_u64;
    use crate::precomputed::shard::test_vectors::{TWO_CHUNK_INDEX, TWO_CHUNK_SHARD, spec};

    #[test]
    fn encoder_writes_the_same_layout_with_a_gzip_index() {
        let mut encoder = ShardEncoder::new(spec(0, 0, 0), ChunkOrder::BY_ID, 0);
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
            let mut encoder = ShardEncoder::new(spec, ChunkOrder::BY_ID, shard);
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
        let mut encoder = ShardEncoder::new(spec, ChunkOrder::BY_ID, 0);
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
        let file = ShardEncoder::new(spec(0, 1, 0), ChunkOrder::BY_ID, 0)
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
        let mut encoder = ShardEncoder::new(spec(0, 0, 4), ChunkOrder::BY_ID, 1);
        let e = encoder.add_chunk(2, &[]).expect_err("chunk 2 is shard 2");
        assert!(e.message().contains("belongs to shard 2"), "{e}");
        encoder.add_chunk(1, &[1]).expect("same shard");
        encoder.add_chunk(1, &[2]).expect("same shard");
        let e = encoder.finish().expect_err("duplicate");
        assert!(e.message().contains("chunk 1 added twice"), "{e}");
    }

    #[test]
    fn failed_encode_adds_nothing() {
        let mut encoder = ShardEncoder::new(spec(0, 0, 0), ChunkOrder::BY_ID, 0);
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
}
