//! The merge of a block built in two halves: the shards both halves hold chunks of, from their
//! hand-offs.
//!
//! docs/design.md §4 "ngshard", "Two halves on two cores". [`merge_halves`] takes both halves'
//! [`HalfHandoff`]s and returns the block's shards that both halves hold chunks of (scales 1–4 for
//! cubic voxels), byte for byte those a single
//! task would have written: a shard file depends only on its set of chunks, and every chunk is
//! encoded from the same voxels. Large ones come as [`SplicedShard`]s, written in parts straight
//! from the hand-offs' bytes, so that the merge holds each chunk once.

use std::collections::BTreeMap;

use super::handoff::HalfHandoff;
use super::scale::encode_straddling_scale;
use super::shards::{CompletedShard, SplicedShard};
use crate::layout::{self, BlockHalf};
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::Scale;
use crate::{Error, Result};

/// One shard of the merge: held whole, or spliced from the hand-offs as it is written.
#[derive(Debug)]
pub enum MergedShard<'h> {
    /// A shard assembled in memory, as a single task completes it.
    Whole(CompletedShard),
    /// A shard whose parts together hold `splice_from` bytes or more ([`merge_halves`]).
    Spliced(SplicedShard<'h>),
}

/// The block's shards at the scales both halves hold chunks of (1–4 for cubic voxels), from
/// the two halves' hand-offs: the shards a single task building the whole block would write
/// after its last slab, in the same order (by scale, then shard, then encoding as `encodings`
/// lists them), with the same bytes. A shard whose partial files together hold `splice_from`
/// bytes or more comes spliced, to be written in parts; the rest whole.
///
/// `scales`, `block`, `encodings` and `jpeg_quality` are those of the block's request; the
/// hand-offs must come from halves run with them (else a 400 naming `lower` or `upper`).
pub fn merge_halves<'h>(
    scales: &[Scale],
    block: [u64; 3],
    encodings: &[Encoding],
    jpeg_quality: u8,
    [lower, upper]: [&'h HalfHandoff<'h>; 2],
    splice_from: usize,
) -> Result<Vec<MergedShard<'h>>> {
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

    let shifts = layout::shifts_of_scales(scales)?;
    // Both halves' parts of each shard, ordered as a single task completes them.
    let mut parts: BTreeMap<(usize, &str, usize), Vec<&'h [u8]>> = BTreeMap::new();
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
                .filter(|&k| k > 0 && BlockHalf::divide_scale(shifts[k]))
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
            let (scale, encoding) = (&scales[k], encodings[e]);
            if parts.iter().map(|part| part.len()).sum::<usize>() >= splice_from {
                SplicedShard::from_parts(scale, encoding, file_name, parts)
                    .map(MergedShard::Spliced)
            } else {
                CompletedShard::from_parts(scale, encoding, file_name, parts)
                    .map(MergedShard::Whole)
            }
        })
        .collect::<Result<Vec<_>>>()?;

    let Some((k, &coarsest_shift)) = shifts.iter().enumerate().next_back() else {
        return Ok(merged);
    };
    let straddles = !BlockHalf::divide_scale(coarsest_shift);
    let coarsest = [lower, upper].map(|handoff| handoff.coarsest.as_deref());
    if straddles {
        // Every scale's chunks are 64³ (the pyramid checks it), so scale 0's edge is the edge.
        let chunk_edge = scales[0].chunk_size()[0] as usize;
        let straddling = encode_straddling_scale(
            &scales[k],
            coarsest_shift,
            block,
            coarsest,
            encodings,
            jpeg_quality,
            chunk_edge,
        )?;
        merged.extend(straddling.into_iter().map(MergedShard::Whole));
    } else if let Some(i) = coarsest.iter().position(Option::is_some) {
        return Err(Error::bad_field(
            BlockHalf::BOTH[i].as_str(),
            "coarsest voxels, but no scale straddles the halves",
        ));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::block::pyramid::BlockPyramid;
    use crate::block::test_support::{FLAT_VOXELS, scales_with_voxels};
    use crate::layout::BLOCK_CHUNKS;
    use crate::precomputed::info::VolumeInfo;
    use crate::precomputed::shard::{ChunkOrder, ShardEncoder, decode_shard};

    /// Chunk edge of the small test blocks: 128³ voxels, 16 slabs of 8 slices.
    const C: usize = 8;
    const B: usize = BLOCK_CHUNKS as usize * C;
    const SLAB: usize = B * B * C;

    /// Shard files by (encoding, scale key, file name).
    type Files = BTreeMap<(Encoding, String, String), Vec<u8>>;

    /// emwrite's five scales for a scale-0 size of `size0` voxels and chunks of `C`³.
    fn scales_for(size0: [u64; 3]) -> Vec<Scale> {
        crate::block::test_support::scales_for(size0, C as u64)
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

    /// Adds the file of a merged shard: a spliced one written in parts of a few KiB.
    fn insert_merged(files: &mut Files, shard: MergedShard<'_>) {
        let mut shard = match shard {
            MergedShard::Whole(shard) => return insert(files, shard),
            MergedShard::Spliced(shard) => shard,
        };
        let (mut data, mut index) = (Vec::new(), None);
        let mut key = None;
        while let Some(part) = shard.next_part(3000).expect("next part") {
            assert!(index.is_none(), "a part after the last");
            key = Some((part.encoding, part.scale_key, part.file_name));
            data.extend(part.pieces.concat());
            index = part.index;
        }
        let file = [index.expect("a last part"), data].concat();
        assert!(
            files.insert(key.expect("a part"), file).is_none(),
            "written twice"
        );
    }

    /// What the two halves and the merge write, the hand-offs passed as bytes; the merge splices
    /// the shards whose parts hold `splice_from` bytes or more.
    fn halves_splicing(
        scales: &[Scale],
        block: [u64; 3],
        encodings: &[Encoding],
        voxels: &[u8],
        splice_from: usize,
    ) -> Files {
        // Where every scale halves z, the halves own whole shards of scale 0 only; where scales
        // keep z, also whole shards of those.
        let cubic = scales[1].resolution_nm()[2] == 2.0 * scales[0].resolution_nm()[2];
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
                    if cubic {
                        assert_eq!(shard.scale_key, "s0", "only scale 0 is written by halves");
                    }
                    insert(&mut files, shard);
                }
            }
            pyramid.finish_half().expect("finish half").to_bytes()
        });
        let [lower, upper] = [0, 1].map(|i| {
            HalfHandoff::from_bytes(&handoffs[i], BlockHalf::BOTH[i].as_str()).expect("reads")
        });
        let merged = merge_halves(scales, block, encodings, 75, [&lower, &upper], splice_from);
        for shard in merged.expect("merge") {
            insert_merged(&mut files, shard);
        }
        files
    }

    /// What the two halves and the merge write, the merge holding every shard whole.
    fn halves(scales: &[Scale], block: [u64; 3], encodings: &[Encoding], voxels: &[u8]) -> Files {
        halves_splicing(scales, block, encodings, voxels, usize::MAX)
    }

    fn assert_halves_equal_whole(size0: [u64; 3], block: [u64; 3], voxels: &[u8]) {
        assert_halves_write_as_whole(&scales_for(size0), block, voxels);
    }

    fn assert_halves_write_as_whole(scales: &[Scale], block: [u64; 3], voxels: &[u8]) {
        let size0 = scales[0].size();
        for encodings in [&[Encoding::Jpeg][..], &[Encoding::Jpeg, Encoding::Raw]] {
            let want = whole(scales, block, encodings, voxels);
            // The merge holding every shard whole, and splicing every shard it can.
            for splice_from in [usize::MAX, 0] {
                let got = halves_splicing(scales, block, encodings, voxels, splice_from);
                assert_eq!(
                    got.keys().collect::<Vec<_>>(),
                    want.keys().collect::<Vec<_>>(),
                    "files of {size0:?} block {block:?} in {encodings:?}"
                );
                for (name, bytes) in &want {
                    assert!(got[name] == *bytes, "{name:?} differs ({splice_from})");
                }
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
    fn volumes_of_one_minishard_per_shard_are_finished_in_their_layout() {
        // Volumes whose info came from an emwrite without minishards (`minishard_bits` 0, the
        // preshift over the whole shard): their blocks are still built, split or whole, into
        // shards of that info, their data in id order as before.
        let info = VolumeInfo::new(scales_for([256, 128, 256]), None, None).expect("scales");
        let info = layout::with_one_minishard_per_shard(&info).expect("earlier sharding");
        let one_minishard = info.scales();
        let voxels = block_voxels([3..120, 20..128, 10..110]);
        assert_halves_write_as_whole(one_minishard, [1, 0, 1], &voxels);
        let files = whole(one_minishard, [1, 0, 1], &[Encoding::Jpeg], &voxels);
        assert!(!files.is_empty());
        for ((_, key, _), bytes) in &files {
            let scale = one_minishard
                .iter()
                .find(|s| s.key() == key)
                .expect("a scale");
            let chunks = decode_shard(scale.sharding(), bytes).expect("decodes");
            let (&first, _) = chunks.first_key_value().expect("a chunk");
            let (shard, _) = scale.sharding().shard_and_minishard(first);
            let mut by_id = ShardEncoder::new(*scale.sharding(), ChunkOrder::BY_ID, shard);
            for (id, chunk) in &chunks {
                by_id.add_chunk(*id, chunk).expect("same shard");
            }
            assert!(
                by_id.finish().expect("encodes") == *bytes,
                "{key} not in id order"
            );
        }
    }

    #[test]
    fn flat_voxels_split_into_halves_that_own_every_shard() {
        // 8×8×40 nm: every coarser scale is at least two chunk layers deep, so no scale
        // straddles the halves, each half writes whole shards of every scale and the merge has
        // nothing to merge; the files are still the whole block's.
        let flat = |size0| scales_with_voxels(size0, C as u64, FLAT_VOXELS);
        let voxels = block_voxels([3..120, 20..128, 10..110]);
        assert_halves_write_as_whole(&flat([256, 128, 256]), [1, 0, 1], &voxels);
        let voxels = block_voxels([0..128, 0..128, 0..128]);
        assert_halves_write_as_whole(&flat([200, 100, 230]), [1, 0, 1], &voxels);
        let handoff = BlockPyramid::with_chunk_edge(
            &flat([256; 3]),
            [0, 0, 0],
            Some(BlockHalf::Lower),
            &[Encoding::Raw],
            75,
            C,
        );
        let mut handoff = handoff.expect("valid pyramid");
        for slab in voxels.chunks_exact(SLAB).take(BLOCK_CHUNKS as usize / 2) {
            handoff.push_slab(slab).expect("slab");
        }
        let handoff = handoff.finish_half().expect("finish half");
        assert!(handoff.shards.is_empty() && handoff.coarsest.is_none());
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
            merge_halves(&scales, [0, 0, 0], encodings, 75, pair, usize::MAX).expect_err("mixed up")
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
    }
}
