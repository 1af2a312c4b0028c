//! One shard file of the `sharding_indexed` codec: inner chunks back to back, then the shard
//! index at the end, checksummed with CRC-32C.
//!
//! Spec: <https://zarr-specs.readthedocs.io/en/latest/v3/codecs/sharding-indexed/index.html>
//! ("Binary shard format"). The index has one `(offset, nbytes)` pair of little-endian u64 per
//! inner chunk, in C order of the shard's chunk grid (z slowest, x fastest); a chunk absent from
//! the file (all fill value) has both set to 2⁶⁴ − 1. The index codecs emwrite writes are
//! `bytes` (little endian) then `crc32c`, which appends the CRC-32C (Castagnoli) of the index as
//! 4 little-endian bytes.

use crc::{CRC_32_ISCSI, Crc};

use super::zyx;
use crate::{Error, Result};

/// CRC-32C, the `crc32c` codec's checksum (RFC 3720's iSCSI polynomial, 0x1EDC6F41).
const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// `offset` and `nbytes` of an absent inner chunk.
const ABSENT: u64 = u64::MAX;

/// Bytes of the index entry of one inner chunk.
const ENTRY_BYTES: usize = 16;

/// Bytes the `crc32c` index codec appends.
const CHECKSUM_BYTES: usize = 4;

/// Builds one shard file from encoded inner chunks given in any order.
///
/// ```
/// use emwrite::zarr::shard::{ShardBuilder, decode_shard};
/// let mut shard = ShardBuilder::new([2, 1, 1])?;
/// shard.add_chunk([1, 0, 0], b"chunk")?;
/// let file = shard.finish();
/// assert_eq!(decode_shard(&file, [2, 1, 1])?, [None, Some(b"chunk".to_vec())]);
/// # Ok::<(), emwrite::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ShardBuilder {
    /// Inner chunks per shard edge, xyz.
    chunks_per_shard: [u64; 3],
    /// The chunks' bytes added since the last [`ShardBuilder::take_data`], back to back in the
    /// order added: the file up to its index, after the bytes taken.
    data: Vec<u8>,
    /// Bytes of the file taken by [`ShardBuilder::take_data`] so far.
    taken: u64,
    /// `(offset, nbytes)` per inner chunk, in C order (zyx).
    index: Vec<(u64, u64)>,
}

impl ShardBuilder {
    /// An empty shard of `chunks_per_shard` (xyz) inner chunks. Fails (an emwrite bug) if the
    /// index would not fit in memory.
    pub fn new(chunks_per_shard: [u64; 3]) -> Result<Self> {
        let count = chunks_per_shard
            .iter()
            .try_fold(1u64, |n, &edge| n.checked_mul(edge))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| n.checked_mul(ENTRY_BYTES).is_some())
            .ok_or_else(|| {
                Error::internal(format_args!(
                    "zarr shard of {chunks_per_shard:?} inner chunks: too many"
                ))
            })?;
        Ok(Self {
            chunks_per_shard,
            data: Vec::new(),
            taken: 0,
            index: vec![(ABSENT, ABSENT); count],
        })
    }

    /// Adds the inner chunk at `cell` (xyz, within the shard) with its encoded bytes. Fails (an
    /// emwrite bug) if the cell lies outside the shard or was added before.
    pub fn add_chunk(&mut self, cell: [u64; 3], bytes: &[u8]) -> Result<()> {
        if (0..3).any(|axis| cell[axis] >= self.chunks_per_shard[axis]) {
            return Err(Error::internal(format_args!(
                "zarr shard of {:?} inner chunks: no cell {cell:?}",
                self.chunks_per_shard
            )));
        }
        let entry = &mut self.index[c_order(cell, self.chunks_per_shard)];
        if *entry != (ABSENT, ABSENT) {
            return Err(Error::internal(format_args!(
                "zarr shard: inner chunk {cell:?} added twice"
            )));
        }
        *entry = (self.taken + self.data.len() as u64, bytes.len() as u64);
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    /// The file's bytes added since the last call: a shard written as its chunks come hands
    /// them out, holding only its index until [`ShardBuilder::finish`] gives the rest.
    ///
    /// ```
    /// use emwrite::zarr::shard::ShardBuilder;
    /// let mut whole = ShardBuilder::new([2, 1, 1])?;
    /// let mut streamed = whole.clone();
    /// let mut file = Vec::new();
    /// for (x, bytes) in [(0, b"one"), (1, b"two")] {
    ///     whole.add_chunk([x, 0, 0], bytes)?;
    ///     streamed.add_chunk([x, 0, 0], bytes)?;
    ///     file.extend(streamed.take_data());
    /// }
    /// file.extend(streamed.finish());
    /// assert_eq!(file, whole.finish());
    /// # Ok::<(), emwrite::Error>(())
    /// ```
    pub fn take_data(&mut self) -> Vec<u8> {
        let data = std::mem::take(&mut self.data);
        self.taken += data.len() as u64;
        data
    }

    /// Whether no chunk has been added: such a shard is not written at all, since a reader
    /// takes an absent shard as all fill value.
    pub fn is_empty(&self) -> bool {
        self.index.iter().all(|&entry| entry == (ABSENT, ABSENT))
    }

    /// The whole shard file: the chunks, then the index and its checksum; after
    /// [`ShardBuilder::take_data`], the rest of it.
    pub fn finish(self) -> Vec<u8> {
        let mut file = self.data;
        let index_start = file.len();
        file.reserve_exact(self.index.len() * ENTRY_BYTES + CHECKSUM_BYTES);
        for (offset, nbytes) in self.index {
            file.extend_from_slice(&offset.to_le_bytes());
            file.extend_from_slice(&nbytes.to_le_bytes());
        }
        let checksum = CRC32C.checksum(&file[index_start..]);
        file.extend_from_slice(&checksum.to_le_bytes());
        file
    }
}

/// The inner chunks of a shard file of `chunks_per_shard` (xyz) inner chunks, in C order
/// (zyx), `None` where absent: what a reader sees. Fails on a file too short for its index, a
/// wrong checksum, or an entry pointing outside the chunk data.
pub fn decode_shard(file: &[u8], chunks_per_shard: [u64; 3]) -> Result<Vec<Option<Vec<u8>>>> {
    let count = chunks_per_shard.iter().product::<u64>() as usize;
    let index_len = count * ENTRY_BYTES;
    let bad = |problem: &dyn std::fmt::Display| Error::unreadable("zarr shard", problem);
    let data_len = file
        .len()
        .checked_sub(index_len + CHECKSUM_BYTES)
        .ok_or_else(|| bad(&format_args!("{} bytes, less than its index", file.len())))?;
    let (data, rest) = file.split_at(data_len);
    let (index, checksum) = rest.split_at(index_len);
    let want = u32::from_le_bytes(checksum.try_into().map_err(|_| bad(&"no checksum"))?);
    if CRC32C.checksum(index) != want {
        return Err(bad(&"index checksum mismatch"));
    }
    index
        .chunks_exact(ENTRY_BYTES)
        .map(|entry| {
            let (offset, nbytes) = entry.split_at(8);
            // Each half is 8 bytes: chunks_exact(16) split at 8.
            let offset = u64::from_le_bytes(offset.try_into().expect("8 bytes"));
            let nbytes = u64::from_le_bytes(nbytes.try_into().expect("8 bytes"));
            if (offset, nbytes) == (ABSENT, ABSENT) {
                return Ok(None);
            }
            let range = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(nbytes).ok())
                .and_then(|(start, len)| Some(start..start.checked_add(len)?))
                .filter(|range| range.end <= data.len())
                .ok_or_else(|| bad(&format_args!("entry {offset}+{nbytes} past the data")))?;
            Ok(Some(data[range].to_vec()))
        })
        .collect()
}

/// The place of `cell` (xyz) in the C-order (zyx) list of a grid of `grid` (xyz) cells.
fn c_order(cell: [u64; 3], grid: [u64; 3]) -> usize {
    let ([z, y, x], [_, ny, nx]) = (zyx(cell), zyx(grid));
    ((z * ny + y) * nx + x) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The catalogue's check value of CRC-32/ISCSI: the CRC of "123456789".
        assert_eq!(CRC32C.checksum(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn golden_shard_of_two_by_one_by_two() {
        let mut shard = ShardBuilder::new([2, 1, 2]).expect("small");
        shard.add_chunk([0, 0, 1], b"ab").expect("in the shard");
        shard.add_chunk([1, 0, 0], b"c").expect("in the shard");
        let file = shard.finish();
        let mut want: Vec<u8> = b"abc".to_vec();
        #[rustfmt::skip]
        let entries: [(u64, u64); 4] = [
            (u64::MAX, u64::MAX), // z0 y0 x0: absent
            (2, 1),               // z0 y0 x1: "c", after "ab"
            (0, 2),               // z1 y0 x0: "ab", added first
            (u64::MAX, u64::MAX), // z1 y0 x1: absent
        ];
        for (offset, nbytes) in entries {
            want.extend_from_slice(&offset.to_le_bytes());
            want.extend_from_slice(&nbytes.to_le_bytes());
        }
        let crc = CRC32C.checksum(&want[3..]);
        want.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(file, want);
        let chunks = decode_shard(&file, [2, 1, 2]).expect("decodes");
        assert_eq!(
            chunks,
            [None, Some(b"c".to_vec()), Some(b"ab".to_vec()), None]
        );
    }

    #[test]
    fn misuse_and_damage_are_errors() {
        let mut shard = ShardBuilder::new([1, 1, 1]).expect("small");
        assert!(shard.is_empty());
        shard.add_chunk([1, 0, 0], b"x").expect_err("outside");
        shard.add_chunk([0, 0, 0], b"x").expect("inside");
        shard.add_chunk([0, 0, 0], b"y").expect_err("twice");
        assert!(!shard.is_empty());
        let mut file = shard.finish();
        decode_shard(&file[1..], [1, 1, 1]).expect_err("truncated");
        decode_shard(&file, [2, 1, 1]).expect_err("another geometry");
        file[2] ^= 1; // the index's first offset byte
        let e = decode_shard(&file, [1, 1, 1]).expect_err("bad checksum");
        assert!(e.message().contains("checksum"), "{e}");
        ShardBuilder::new([u64::MAX, 2, 1]).expect_err("too many chunks");
    }
}
