//! A block built in two halves: what each half hands to the merge, and the merge.
//!
//! docs/design.md §4 "ngshard" and [`BlockHalf`]: each half of a block (one task each, e.g. two
//! component instances on two cores) writes its own whole scale-0 shards and ends with a
//! [`HalfHandoff`]: the files of its partial shards (its chunks of the shards at scales 1–3,
//! which hold chunks of both halves) and its half of the voxels of the scale-4 chunk, which
//! straddles the halves. [`merge_halves`] takes both hand-offs and returns the block's shards at
//! scales 1–4, byte for byte those a single task would have written: a shard file depends only
//! on its set of chunks, and every chunk is encoded from the same voxels.
//!
//! The hand-off travels between tasks as bytes ([`HalfHandoff::to_bytes`]): the caller (the
//! host) keeps it and passes both to the merge task, so nothing is written under a temporary
//! name in the destination and nothing is left to delete when a task fails. Its format is
//! emwrite's own, versioned by its first line; only emwrite reads it. It also lists the objects
//! the half wrote, so that the merge can name every object of the block in its manifest
//! ([`crate::block_manifest`]).

use std::collections::BTreeMap;

use crate::block_manifest::ListedObject;
use crate::layout::{BLOCK_CHUNKS, BlockHalf};
use crate::precomputed::block_shards::CompletedShard;
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::Scale;
use crate::precomputed::pyramid::encode_straddling_scale;
use crate::{Error, Result};

/// First bytes of a hand-off: names the format and its version.
const MAGIC: &[u8] = b"emwrite block half v2\n";

/// What one half of a block hands to the merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HalfHandoff {
    /// Which half this is.
    pub half: BlockHalf,
    /// The block, `[bx, by, bz]`.
    pub block: [u64; 3],
    /// The encodings the half encoded its chunks in.
    pub encodings: Vec<Encoding>,
    /// The JPEG quality the half encoded its chunks with.
    pub jpeg_quality: u8,
    /// The half's partial shards, each a valid shard file holding only the half's chunks.
    pub shards: Vec<PartialShardFile>,
    /// The half's half of the coarsest scale's slab, when that scale's block is a single chunk
    /// (scale 4): the half's 32 slices of the 64³ chunk; `None` if all zero or if no scale
    /// straddles.
    pub coarsest: Option<Vec<u8>>,
    /// The objects the half wrote itself (its scale-0 shards), for the block's manifest.
    pub written: Vec<ListedObject>,
}

/// The file of a shard holding only one half's chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialShardFile {
    /// The encoding of its chunks.
    pub encoding: Encoding,
    /// The key of its scale, e.g. `"16.0x16.0x16.0"`.
    pub scale_key: String,
    /// The name of the whole shard's file, e.g. `"000000.shard"`.
    pub file_name: String,
    /// The shard file of the half's chunks.
    pub bytes: Vec<u8>,
}

impl HalfHandoff {
    /// The hand-off as bytes, to carry it from the half's task to the merge's.
    ///
    /// After the line `emwrite block half v1`, in order: the half (one byte, 0 lower, 1 upper);
    /// the block (3 × u64); the encodings (a count, then each name); the JPEG quality (one
    /// byte); the partial shards (a count, then each shard's encoding, scale key, file name and
    /// bytes); the coarsest voxels (one byte, 1 if present, then the bytes); the objects the
    /// half wrote (a count, then each name and its size as a u64). Counts are u64 and
    /// every name or byte string is a u64 length and the bytes; integers are little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let payload: usize = self.shards.iter().map(|s| s.bytes.len()).sum::<usize>()
            + self.coarsest.as_ref().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(payload + 1024);
        out.extend_from_slice(MAGIC);
        out.push(match self.half {
            BlockHalf::Lower => 0,
            BlockHalf::Upper => 1,
        });
        for b in self.block {
            put_u64(&mut out, b);
        }
        put_u64(&mut out, self.encodings.len() as u64);
        for encoding in &self.encodings {
            put_bytes(&mut out, encoding.as_str().as_bytes());
        }
        out.push(self.jpeg_quality);
        put_u64(&mut out, self.shards.len() as u64);
        for shard in &self.shards {
            put_bytes(&mut out, shard.encoding.as_str().as_bytes());
            put_bytes(&mut out, shard.scale_key.as_bytes());
            put_bytes(&mut out, shard.file_name.as_bytes());
            put_bytes(&mut out, &shard.bytes);
        }
        match &self.coarsest {
            Some(voxels) => {
                out.push(1);
                put_bytes(&mut out, voxels);
            }
            None => out.push(0),
        }
        put_u64(&mut out, self.written.len() as u64);
        for object in &self.written {
            put_bytes(&mut out, object.name.as_bytes());
            put_u64(&mut out, object.bytes);
        }
        out
    }

    /// Reads a hand-off made by [`HalfHandoff::to_bytes`]; `field` names it in errors (a bad
    /// hand-off is the caller's fault: 400).
    pub fn from_bytes(bytes: &[u8], field: &str) -> Result<Self> {
        let mut reader = Reader { bytes, field };
        if reader.take(MAGIC.len())? != MAGIC {
            return Err(Error::bad_field(
                field,
                "not an emwrite block-half hand-off",
            ));
        }
        let half = match reader.u8()? {
            0 => BlockHalf::Lower,
            1 => BlockHalf::Upper,
            other => return Err(Error::bad_field(field, format_args!("half {other}"))),
        };
        let block = [reader.u64()?, reader.u64()?, reader.u64()?];
        let encodings = (0..reader.count()?)
            .map(|_| reader.encoding())
            .collect::<Result<Vec<_>>>()?;
        let jpeg_quality = reader.u8()?;
        let shards = (0..reader.count()?)
            .map(|_| {
                Ok(PartialShardFile {
                    encoding: reader.encoding()?,
                    scale_key: reader.string()?,
                    file_name: reader.string()?,
                    bytes: reader.bytes()?.to_vec(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let coarsest = match reader.u8()? {
            0 => None,
            1 => Some(reader.bytes()?.to_vec()),
            other => {
                return Err(Error::bad_field(
                    field,
                    format_args!("coarsest flag {other}"),
                ));
            }
        };
        let written = (0..reader.count()?)
            .map(|_| {
                Ok(ListedObject {
                    name: reader.string()?,
                    bytes: reader.u64()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if !reader.bytes.is_empty() {
            return Err(Error::bad_field(
                field,
                format_args!("{} bytes after the end", reader.bytes.len()),
            ));
        }
        Ok(Self {
            half,
            block,
            encodings,
            jpeg_quality,
            shards,
            coarsest,
            written,
        })
    }
}

/// The block's shards at the scales both halves hold chunks of (1–4 for emwrite's volumes), from
/// the two halves' hand-offs: the shards a single task building the whole block would write
/// after its last slab, in the same order (by scale, then shard, then encoding as `encodings`
/// lists them), with the same bytes.
///
/// `scales`, `block`, `encodings` and `jpeg_quality` are those of the block's request; the
/// hand-offs must come from halves run with them (else a 400 naming `lower` or `upper`).
pub fn merge_halves(
    scales: &[Scale],
    block: [u64; 3],
    encodings: &[Encoding],
    jpeg_quality: u8,
    [lower, upper]: [&HalfHandoff; 2],
) -> Result<Vec<CompletedShard>> {
    for (handoff, half) in [(lower, BlockHalf::Lower), (upper, BlockHalf::Upper)] {
        let field = half.as_str();
        if handoff.half != half {
            return Err(Error::bad_field(
                field,
                format_args!("the hand-off is the {} half's", handoff.half.as_str()),
            ));
        }
        if handoff.block != block {
            return Err(Error::bad_field(
                field,
                format_args!(
                    "the hand-off is block {:?}'s, not {block:?}'s",
                    handoff.block
                ),
            ));
        }
        if handoff.encodings != encodings || handoff.jpeg_quality != jpeg_quality {
            return Err(Error::bad_field(
                field,
                format_args!(
                    "the half was encoded as {:?} at JPEG quality {}, the merge asks for {:?} at {}",
                    handoff.encodings, handoff.jpeg_quality, encodings, jpeg_quality
                ),
            ));
        }
    }

    // Both halves' parts of each shard, ordered as a single task completes them.
    let mut parts: BTreeMap<(usize, &str, usize), Vec<&[u8]>> = BTreeMap::new();
    for (handoff, half) in [(lower, BlockHalf::Lower), (upper, BlockHalf::Upper)] {
        for shard in &handoff.shards {
            let unknown = || {
                Error::bad_field(
                    half.as_str(),
                    format_args!(
                        "{} shard {}/{} is not a partial shard of this volume",
                        shard.encoding, shard.scale_key, shard.file_name
                    ),
                )
            };
            let k = scales
                .iter()
                .position(|scale| scale.key() == shard.scale_key)
                .filter(|&k| k > 0 && (BLOCK_CHUNKS >> k) >= 2)
                .ok_or_else(unknown)?;
            let e = encodings
                .iter()
                .position(|&encoding| encoding == shard.encoding)
                .ok_or_else(unknown)?;
            parts
                .entry((k, shard.file_name.as_str(), e))
                .or_default()
                .push(&shard.bytes);
        }
    }
    let mut merged = parts
        .into_iter()
        .map(|((k, file_name, e), parts)| {
            CompletedShard::from_parts(&scales[k], encodings[e], file_name, parts)
        })
        .collect::<Result<Vec<_>>>()?;

    let k = scales.len() - 1;
    let straddles = (BLOCK_CHUNKS >> k) < 2;
    let coarsest = [lower, upper].map(|handoff| handoff.coarsest.as_deref());
    if straddles {
        // Every scale's chunks are 64³ (the pyramid checks it), so scale 0's edge is the edge.
        let chunk_edge = scales[0].chunk_size()[0] as usize;
        merged.extend(encode_straddling_scale(
            &scales[k],
            k,
            block,
            coarsest,
            encodings,
            jpeg_quality,
            chunk_edge,
        )?);
    } else if let Some(i) = coarsest.iter().position(Option::is_some) {
        return Err(Error::bad_field(
            BlockHalf::BOTH[i].as_str(),
            "coarsest voxels, but no scale straddles the halves",
        ));
    }
    Ok(merged)
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a hand-off front to back; errors name `field`.
struct Reader<'a> {
    bytes: &'a [u8],
    field: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Error::bad_field(self.field, "the hand-off is cut short"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        // `take(8)` returned exactly 8 bytes.
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// A count of items each at least one byte long, so a corrupt count fails here rather than
    /// reserving memory for it.
    fn count(&mut self) -> Result<u64> {
        let count = self.u64()?;
        if count > self.bytes.len() as u64 {
            return Err(Error::bad_field(self.field, "the hand-off is cut short"));
        }
        Ok(count)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.u64()?;
        let len = usize::try_from(len)
            .map_err(|_| Error::bad_field(self.field, "the hand-off is cut short"))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Error::bad_field(self.field, "a name in the hand-off is not UTF-8"))
    }

    fn encoding(&mut self) -> Result<Encoding> {
        match self.bytes()? {
            b"jpeg" => Ok(Encoding::Jpeg),
            b"raw" => Ok(Encoding::Raw),
            _ => Err(Error::bad_field(
                self.field,
                "an encoding in the hand-off is not jpeg or raw",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::precomputed::pyramid::BlockPyramid;

    /// Chunk edge of the small test blocks: 128³ voxels, 16 slabs of 8 slices.
    const C: usize = 8;
    const B: usize = BLOCK_CHUNKS as usize * C;
    const SLAB: usize = B * B * C;

    /// Shard files by (encoding, scale key, file name).
    type Files = BTreeMap<(Encoding, String, String), Vec<u8>>;

    /// emwrite's five scales for a scale-0 size of `size0` voxels and chunks of `C`³.
    fn scales_for(size0: [u64; 3]) -> Vec<Scale> {
        (0..)
            .zip(crate::layout::scale_sharding())
            .map(|(k, sharding)| {
                Scale::new(
                    format!("s{k}"),
                    size0.map(|voxels| voxels >> k),
                    [8.0 * f64::from(1u32 << k); 3],
                    [C as u64; 3],
                    Encoding::Raw,
                    sharding,
                )
                .expect("valid scale")
            })
            .collect()
    }

    /// A B³ block of smooth data (what JPEG is for) inside `dense`, zero elsewhere.
    fn block_voxels(dense: [std::ops::Range<usize>; 3]) -> Vec<u8> {
        let mut voxels = vec![0u8; B * B * B];
        for z in dense[2].clone() {
            for y in dense[1].clone() {
                for x in dense[0].clone() {
                    let v = 128.0
                        + 60.0 * (x as f64 / 5.0).sin()
                        + 40.0 * (y as f64 / 7.0).cos()
                        + 20.0 * (z as f64 / 3.0).sin();
                    voxels[(z * B + y) * B + x] = v as u8;
                }
            }
        }
        voxels
    }

    fn insert(files: &mut Files, shard: CompletedShard) {
        let key = (
            shard.encoding,
            shard.scale_key.clone(),
            shard.file_name.clone(),
        );
        let bytes = shard.into_bytes().expect("assembles");
        assert!(files.insert(key, bytes).is_none(), "written twice");
    }

    /// What one task writes for the whole block.
    fn whole(scales: &[Scale], block: [u64; 3], encodings: &[Encoding], voxels: &[u8]) -> Files {
        let mut pyramid = BlockPyramid::with_chunk_edge(scales, block, None, encodings, 75, C)
            .expect("valid pyramid");
        let mut files = Files::new();
        for slab in voxels.chunks_exact(SLAB) {
            for shard in pyramid.push_slab(slab).expect("slab") {
                insert(&mut files, shard);
            }
        }
        for shard in pyramid.finish().expect("finish") {
            insert(&mut files, shard);
        }
        files
    }

    /// What the two halves and the merge write, the hand-offs passed as bytes.
    fn halves(scales: &[Scale], block: [u64; 3], encodings: &[Encoding], voxels: &[u8]) -> Files {
        let mut files = Files::new();
        let handoffs = BlockHalf::BOTH.map(|half| {
            let mut pyramid =
                BlockPyramid::with_chunk_edge(scales, block, Some(half), encodings, 75, C)
                    .expect("valid pyramid");
            let slabs = half.layers(u64::from(BLOCK_CHUNKS));
            for slab in voxels
                .chunks_exact(SLAB)
                .skip(slabs.start as usize)
                .take(slabs.count())
            {
                for shard in pyramid.push_slab(slab).expect("slab") {
                    assert!(!shard.partial, "a partial shard escaped the half");
                    assert_eq!(shard.scale_key, "s0", "only scale 0 is written by halves");
                    insert(&mut files, shard);
                }
            }
            let bytes = pyramid.finish_half().expect("finish half").to_bytes();
            HalfHandoff::from_bytes(&bytes, half.as_str()).expect("reads back")
        });
        let [lower, upper] = &handoffs;
        for shard in merge_halves(scales, block, encodings, 75, [lower, upper]).expect("merge") {
            insert(&mut files, shard);
        }
        files
    }

    fn assert_halves_equal_whole(size0: [u64; 3], block: [u64; 3], voxels: &[u8]) {
        let scales = scales_for(size0);
        for encodings in [&[Encoding::Jpeg][..], &[Encoding::Jpeg, Encoding::Raw]] {
            let want = whole(&scales, block, encodings, voxels);
            let got = halves(&scales, block, encodings, voxels);
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "files of {size0:?} block {block:?} in {encodings:?}"
            );
            for (name, bytes) in &want {
                assert!(got[name] == *bytes, "{name:?} differs");
            }
        }
    }

    #[test]
    fn halves_and_merge_write_the_whole_blocks_bytes() {
        // Data in both halves, scale 4 from both.
        let voxels = block_voxels([3..120, 20..128, 10..110]);
        assert_halves_equal_whole([256, 128, 256], [1, 0, 1], &voxels);
        // Data in the upper half only: the lower half hands off nothing.
        let voxels = block_voxels([0..128, 0..128, 70..128]);
        assert_halves_equal_whole([256, 128, 256], [0, 0, 0], &voxels);
        // Data in the lower half only.
        let voxels = block_voxels([0..50, 0..128, 0..40]);
        assert_halves_equal_whole([256, 128, 256], [0, 0, 0], &voxels);
        // A volume whose sizes clip every scale, and a block it cuts short in z.
        let voxels = block_voxels([0..128, 0..128, 0..128]);
        for block in [[0, 0, 0], [1, 0, 1]] {
            assert_halves_equal_whole([200, 100, 230], block, &voxels);
        }
        // An empty block: nothing at all.
        let voxels = vec![0; B * B * B];
        let scales = scales_for([256; 3]);
        assert!(halves(&scales, [1, 1, 1], &[Encoding::Jpeg], &voxels).is_empty());
    }

    #[test]
    fn merge_rejects_mixed_up_handoffs() {
        let scales = scales_for([256; 3]);
        let voxels = block_voxels([0..128, 0..128, 0..128]);
        let handoff = |half: BlockHalf, block: [u64; 3]| {
            let mut pyramid =
                BlockPyramid::with_chunk_edge(&scales, block, Some(half), &[Encoding::Raw], 75, C)
                    .expect("valid pyramid");
            for slab in voxels.chunks_exact(SLAB).take(8) {
                pyramid.push_slab(slab).expect("slab");
            }
            pyramid.finish_half().expect("finish half")
        };
        let lower = handoff(BlockHalf::Lower, [0, 0, 0]);
        let upper = handoff(BlockHalf::Upper, [0, 0, 0]);
        let merge = |pair: [&HalfHandoff; 2], encodings: &[Encoding]| {
            merge_halves(&scales, [0, 0, 0], encodings, 75, pair).expect_err("mixed up")
        };
        let cases = [
            (
                merge([&upper, &upper], &[Encoding::Raw]),
                "lower: the hand-off is the upper",
            ),
            (
                merge([&lower, &lower], &[Encoding::Raw]),
                "upper: the hand-off is the lower",
            ),
            (
                merge(
                    [&lower, &handoff(BlockHalf::Upper, [1, 0, 0])],
                    &[Encoding::Raw],
                ),
                "upper: the hand-off is block [1, 0, 0]'s",
            ),
            (
                merge([&lower, &upper], &[Encoding::Jpeg]),
                "lower: the half was encoded as",
            ),
        ];
        for (e, message) in cases {
            assert!(e.message().starts_with(message), "want {message:?} in {e}");
        }

        let mut lower = lower;
        lower.written.push(ListedObject {
            name: "neuroglancer/raw/s0/000000.shard".to_owned(),
            bytes: 5,
        });
        let bytes = lower.to_bytes();
        assert_eq!(
            HalfHandoff::from_bytes(&bytes, "lower").expect("reads"),
            lower
        );
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            let e = HalfHandoff::from_bytes(&bytes[..cut], "lower").expect_err("cut");
            assert!(e.message().starts_with("lower: "), "{e}");
        }
        let e = HalfHandoff::from_bytes(&[bytes.as_slice(), b"x"].concat(), "lower")
            .expect_err("trailing byte");
        assert_eq!(e.message(), "lower: 1 bytes after the end");
    }
}
