//! The shard stream: one shard file written front to back while its chunks arrive in any order.
//!
//! Spec: <https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/sharded.md#shard-format>
//! (docs/design.md §4 "ngshard", §5 "Shard file").

use std::collections::BTreeMap;

use super::ChunkOrder;
use super::index::{shard_index_and_tail, shard_index_len, too_large};
use crate::precomputed::sharding::ShardingSpec;
use crate::{Error, Result};

/// Builds one shard file front to back while its chunks arrive in any order: a chunk's bytes go
/// out as soon as every chunk before it in the file is known, so only the chunks that arrived
/// ahead of their turn are held.
///
/// Used for a block's large shards (scales 0 and 1; raw, such a shard is 128 MiB): the pyramid
/// encodes a block layer by layer in z, and the file holds its minishards in the order of the
/// last layer each reaches ([`ChunkOrder`]), so each minishard can go out as soon as that layer
/// is done. (With a shard of one minishard, the file is in id order, whose top bit is the z of
/// the shard's upper half: half a shard can go out before the other half is computed.)
///
/// The shard index comes first in the file yet depends on every chunk (all-zero chunks are left
/// out), so it is returned last, for a writer that puts a prefix last
/// ([`crate::storage::PrefixedObjectWriter`]). The bytes are exactly those of
/// [`ShardEncoder::finish`] for the same chunks in the same order.
///
/// ```
/// use emwrite::precomputed::shard::{ChunkOrder, ShardEncoder, ShardStream};
/// use emwrite::precomputed::sharding::ShardingSpec;
/// let spec = ShardingSpec::new(0, 0, 0)?;
/// let mut stream = ShardStream::new(spec, ChunkOrder::BY_ID, 0, [3, 7, 10])?;
/// stream.add_chunk_with(7, |out| Ok(out.extend_from_slice(&[7, 7])))?;
/// assert!(stream.take_ready().is_empty()); // chunk 3 comes first in the file
/// stream.add_chunk_with(3, |out| Ok(out.extend_from_slice(&[3])))?;
/// stream.skip_chunk(10)?; // all zero: left out
/// let data = stream.take_ready().concat();
/// let end = stream.finish()?;
/// let mut expected = ShardEncoder::new(spec, ChunkOrder::BY_ID, 0);
/// expected.add_chunk(7, &[7, 7])?;
/// expected.add_chunk(3, &[3])?;
/// assert_eq!([end.index, data, end.tail].concat(), expected.finish()?);
/// # Ok::<(), emwrite::Error>(())
/// ```
#[derive(Debug)]
pub struct ShardStream {
    spec: ShardingSpec,
    order: ChunkOrder,
    shard: u64,
    /// Every chunk of the shard that will be given, by its [`ChunkOrder::key`]: in file order.
    file_order: Vec<(u64, u64)>,
    /// How many of `file_order` have gone out (or were left out as all zero).
    next: usize,
    /// Chunks given ahead of their turn: their bytes, or `None` if left out.
    waiting: BTreeMap<u64, Option<Vec<u8>>>,
    /// The chunks that went out, as `(minishard, id, size)`, in file order.
    written: Vec<(u64, u64, u64)>,
}

/// The parts of a streamed shard file that come last: the shard index, which goes first in the
/// file, and the minishard indices, which follow the data.
#[derive(Debug)]
pub struct ShardStreamEnd {
    /// The file's first bytes ([`ShardStream::index_len`] of them).
    pub index: Vec<u8>,
    /// The file's last bytes.
    pub tail: Vec<u8>,
}

impl ShardStream {
    /// A stream for shard `shard` of `spec`, its data in `order`, that will be given exactly the
    /// chunks `chunk_ids`, each once, with [`ShardStream::add_chunk_with`] or
    /// [`ShardStream::skip_chunk`].
    ///
    /// Fails (an emwrite bug) if one of them belongs to another shard or repeats.
    pub fn new(
        spec: ShardingSpec,
        order: ChunkOrder,
        shard: u64,
        chunk_ids: impl IntoIterator<Item = u64>,
    ) -> Result<Self> {
        let mut file_order = Vec::new();
        for id in chunk_ids {
            let (its_shard, _) = spec.shard_and_minishard(id);
            if its_shard != shard {
                return Err(Error::internal(format_args!(
                    "chunk {id} belongs to shard {its_shard}, not to shard {shard}"
                )));
            }
            file_order.push(order.key(id));
        }
        file_order.sort_unstable();
        if let Some(pair) = file_order.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Error::internal(format_args!(
                "shard {shard}: chunk {} given twice",
                pair[0].1
            )));
        }
        Ok(Self {
            spec,
            order,
            shard,
            file_order,
            next: 0,
            waiting: BTreeMap::new(),
            written: Vec::new(),
        })
    }

    /// Bytes of the shard index, the file's first bytes.
    pub fn index_len(&self) -> Result<u64> {
        shard_index_len(&self.spec)
            .map(|len| len as u64)
            .ok_or_else(|| too_large("shard index"))
    }

    /// Gives chunk `chunk_id`, whose bytes `encode` appends to the buffer it is given.
    pub fn add_chunk_with(
        &mut self,
        chunk_id: u64,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.check_expected(chunk_id)?;
        let mut bytes = Vec::new();
        encode(&mut bytes)?;
        // Encoders grow the buffer by doubling; a chunk may wait for a while.
        bytes.shrink_to_fit();
        self.waiting.insert(chunk_id, Some(bytes));
        Ok(())
    }

    /// Gives chunk `chunk_id` as left out of the file (all zero).
    pub fn skip_chunk(&mut self, chunk_id: u64) -> Result<()> {
        self.check_expected(chunk_id)?;
        self.waiting.insert(chunk_id, None);
        Ok(())
    }

    /// Whether `chunk_id` has been given already (added or skipped).
    pub fn has_chunk(&self, chunk_id: u64) -> bool {
        let taken = matches!(
            self.file_order.binary_search(&self.order.key(chunk_id)),
            Ok(position) if position < self.next
        );
        taken || self.waiting.contains_key(&chunk_id)
    }

    /// The chunks that can go out now, in file order after those taken before: the file's
    /// data continues with them, back to back. Each chunk stays its own buffer, so that a
    /// writer can drop each once written: one buffer for half a raw shard would be 64 MiB more.
    pub fn take_ready(&mut self) -> Vec<Vec<u8>> {
        let mut ready = Vec::new();
        while let Some(&(_, id)) = self.file_order.get(self.next) {
            let Some(chunk) = self.waiting.remove(&id) else {
                break;
            };
            self.next += 1;
            if let Some(bytes) = chunk {
                let (_, minishard) = self.spec.shard_and_minishard(id);
                self.written.push((minishard, id, bytes.len() as u64));
                ready.push(bytes);
            }
        }
        ready
    }

    /// Whether every chunk has been given and taken: the stream can finish.
    pub fn is_complete(&self) -> bool {
        self.next == self.file_order.len()
    }

    /// Whether no chunk has gone out so far: a stream that finishes so has no file.
    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    /// The shard index and the minishard indices, once every chunk went out.
    pub fn finish(self) -> Result<ShardStreamEnd> {
        if !self.is_complete() {
            return Err(Error::internal(format_args!(
                "shard {}: finished with {} of {} chunks taken",
                self.shard,
                self.next,
                self.file_order.len()
            )));
        }
        let (index, tail) = shard_index_and_tail(&self.spec, self.written)?;
        Ok(ShardStreamEnd { index, tail })
    }

    /// Fails unless `chunk_id` is one of the stream's chunks not yet given.
    fn check_expected(&self, chunk_id: u64) -> Result<()> {
        let expected = self
            .file_order
            .binary_search(&self.order.key(chunk_id))
            .is_ok();
        if !expected || self.has_chunk(chunk_id) {
            return Err(Error::internal(format_args!(
                "shard {}: chunk {chunk_id} is not expected or was given before",
                self.shard
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precomputed::morton;
    use crate::precomputed::shard::{ShardEncoder, decode_shard};

    fn spec(preshift_bits: u32, minishard_bits: u32, shard_bits: u32) -> ShardingSpec {
        ShardingSpec::new(preshift_bits, minishard_bits, shard_bits).expect("valid spec")
    }

    /// Chunk `id`'s bytes: a few, depending on the id.
    fn chunk(id: u64) -> Vec<u8> {
        (0..1 + id % 5).map(|i| (id * 7 + i) as u8).collect()
    }

    /// Gives chunk `id` to `stream`, and to `expected`, the encoder its file must equal.
    fn give(stream: &mut ShardStream, expected: &mut ShardEncoder, id: u64) {
        stream
            .add_chunk_with(id, |out| {
                out.extend_from_slice(&chunk(id));
                Ok(())
            })
            .expect("expected");
        expected.add_chunk(id, &chunk(id)).expect("same shard");
    }

    #[test]
    fn a_stream_writes_the_encoders_file_whatever_the_order() {
        // 2 minishard bits: file order is by minishard, then id, not by id alone.
        let spec = spec(1, 2, 1);
        let ids: Vec<u64> = (0..64)
            .filter(|&id| spec.shard_and_minishard(id).0 == 1)
            .collect();
        let mut stream = ShardStream::new(spec, ChunkOrder::BY_ID, 1, ids.iter().copied())
            .expect("shard 1's ids");
        let mut expected = ShardEncoder::new(spec, ChunkOrder::BY_ID, 1);
        let (mut data, mut parts) = (Vec::new(), 0);
        // Give the chunks from the last to the first, leaving out every third as all zero.
        for (i, &id) in ids.iter().rev().enumerate() {
            if i % 3 == 0 {
                stream.skip_chunk(id).expect("expected");
            } else {
                give(&mut stream, &mut expected, id);
            }
            assert!(stream.has_chunk(id));
            let ready = stream.take_ready();
            parts += usize::from(!ready.is_empty());
            data.extend(ready.concat());
        }
        assert!(stream.is_complete() && !stream.is_empty());
        assert_eq!(parts, 1, "nothing goes out before the file's first chunk");
        let index_len = stream.index_len().expect("fits");
        let end = stream.finish().expect("complete");
        assert_eq!(end.index.len() as u64, index_len);
        let file = [end.index, data, end.tail].concat();
        assert_eq!(file, expected.finish().expect("encodes"));
    }

    #[test]
    fn minishards_of_one_layer_go_out_as_each_layer_is_done() {
        // An 8³ shard (grid 8³), minishards of 2×2×1 chunks: 2 preshift bits, 7 minishard bits.
        let (spec, bits) = (spec(2, 7, 0), [3; 3]);
        let order = ChunkOrder::by_layer(&spec, bits);
        let cell_id = |x, y, z| morton::encode([x, y, z], bits);
        let mut stream = ShardStream::new(spec, order, 0, 0..512).expect("shard 0's ids");
        let mut expected = ShardEncoder::new(spec, order, 0);
        let mut data = Vec::new();
        for z in 0..8 {
            for y in 0..8 {
                for x in 0..8 {
                    give(&mut stream, &mut expected, cell_id(x, y, z));
                }
            }
            // The whole layer goes out once its last chunk is given: nothing waits for the next.
            let ready = stream.take_ready();
            assert_eq!(ready.len(), 64, "layer {z}");
            data.extend(ready.concat());
        }
        let end = stream.finish().expect("complete");
        let file = [end.index, data, end.tail].concat();
        assert_eq!(file, expected.finish().expect("encodes"));
        let chunks = decode_shard(&spec, &file).expect("decodes");
        assert_eq!(chunks.len(), 512);
        assert!(chunks.iter().all(|(&id, bytes)| *bytes == chunk(id)));
    }

    #[test]
    fn chunks_out_of_the_plan_are_refused() {
        let spec = spec(0, 0, 4);
        let e =
            ShardStream::new(spec, ChunkOrder::BY_ID, 1, [1, 2]).expect_err("chunk 2 is shard 2's");
        assert!(e.message().contains("belongs to shard 2"), "{e}");
        let e = ShardStream::new(spec, ChunkOrder::BY_ID, 1, [1, 1]).expect_err("twice");
        assert!(e.message().contains("chunk 1 given twice"), "{e}");

        let spec = ShardingSpec::new(0, 0, 0).expect("valid spec");
        let mut stream = ShardStream::new(spec, ChunkOrder::BY_ID, 0, [3, 5]).expect("valid");
        let e = stream.skip_chunk(4).expect_err("not planned");
        assert!(e.message().contains("chunk 4 is not expected"), "{e}");
        stream.skip_chunk(5).expect("planned");
        let e = stream
            .add_chunk_with(5, |out| {
                out.push(5);
                Ok(())
            })
            .expect_err("given before");
        assert!(e.message().contains("was given before"), "{e}");
        assert!(stream.take_ready().is_empty(), "chunk 3 is still to come");
        let e = stream.finish().expect_err("chunk 3 missing");
        assert!(
            e.message().contains("finished with 0 of 2 chunks taken"),
            "{e}"
        );
    }

    #[test]
    fn a_stream_of_skipped_chunks_is_empty() {
        let spec = ShardingSpec::new(0, 0, 0).expect("valid spec");
        let mut stream = ShardStream::new(spec, ChunkOrder::BY_ID, 0, [1, 2]).expect("valid");
        stream.skip_chunk(2).expect("planned");
        stream.skip_chunk(1).expect("planned");
        assert!(stream.take_ready().is_empty());
        assert!(stream.is_complete() && stream.is_empty());
    }
}
