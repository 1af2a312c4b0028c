//! A block's held Zarr shards: each precomputed shard of raw chunks the pyramid completes becomes
//! the Zarr shard of the same chunks, gzip-compressed (docs/design.md §"OME-Zarr output").
//!
//! The engine builds one pyramid for both formats: [`crate::layout::zarr_shard_chunks`] makes a
//! Zarr shard hold exactly the chunks of one precomputed shard, so a block, or a block's half,
//! owns whole Zarr shards wherever it owns whole precomputed shards. Large ones stream out as
//! their chunks are encoded instead (`BlockPyramid::stream_zarr_shards`), into the same bytes
//! [`zarr_shard`] makes of them.

use super::shards::CompletedShard;
use crate::layout;
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::Scale;
use crate::zarr::codec::encode_chunk;
use crate::zarr::metadata::ZarrScale;
use crate::zarr::shard::ShardBuilder;
use crate::{Error, Result};

/// The Zarr shard of `shard`'s chunks (raw, of `scale`) in the array of `zarr`: its name below
/// the destination ([`layout::zarr_shard_name`]) and its file. `None` if the shard has no chunk.
/// Fails (an emwrite bug) if the shard is not raw or its chunks lie in several Zarr shards.
pub fn zarr_shard(
    shard: &CompletedShard,
    scale: &Scale,
    zarr: &ZarrScale,
) -> Result<Option<(String, Vec<u8>)>> {
    let context = || format!("zarr shard of {}/{}", shard.scale_key, shard.file_name);
    if shard.encoding != Encoding::Raw {
        return Err(Error::internal("made from raw chunks only").context(context()));
    }
    let mut builder = ShardBuilder::new(zarr.chunks_per_shard())?;
    let mut place = None;
    let mut chunks = Vec::new();
    for (id, voxels) in shard.chunks() {
        let (here, [x, y, z]) = layout::zarr_chunk_place(scale, zarr, id);
        if *place.get_or_insert(here) != here {
            return Err(Error::internal(format_args!(
                "chunk {id} lies in zarr shard {here:?}, not {place:?}"
            ))
            .context(context()));
        }
        chunks.push(([z, y, x], voxels));
    }
    // In the index's (C) order, whatever order the chunks were encoded in: a block built in
    // halves, whose merge adds them in another order, writes the same file.
    chunks.sort_unstable_by_key(|&(zyx, _)| zyx);
    for ([z, y, x], voxels) in chunks {
        builder
            .add_chunk([x, y, z], &encode_chunk(voxels)?)
            .map_err(|e| e.context(context()))?;
    }
    Ok(place.map(|place| (layout::zarr_shard_name(zarr, place), builder.finish())))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::block::pyramid::BlockPyramid;
    use crate::block::test_support::{FLAT_VOXELS, scales_with_voxels};
    use crate::zarr::codec::decode_chunk;
    use crate::zarr::shard::decode_shard;

    /// Every raw shard of a block becomes the Zarr shard of the same voxels, named by the
    /// place of its chunks: a block at [1, 0, 0] of a two-block-wide volume.
    #[test]
    fn each_raw_shard_becomes_the_zarr_shard_of_its_chunks() {
        let info =
            layout::volume_info([2048, 1024], 0, 1023, [8.0; 3], Encoding::Raw).expect("info");
        let zarr = layout::zarr_scales([2048, 1024], 0, 1023, [8.0; 3]).expect("scales");
        let scales = info.scales();
        let mut pyramid =
            BlockPyramid::new(scales, [1, 0, 0], &[Encoding::Raw], 75).expect("pyramid");
        // One chunk of data, x 256..320 of the block: nonzero at every scale.
        let edge = layout::BLOCK_EDGE as usize;
        let mut slab = vec![0u8; edge * edge * 64];
        for z in 0..64 {
            for y in 0..64 {
                let row = (z * edge + y) * edge;
                slab[row + 256..row + 320].fill(200);
            }
        }
        let mut shards = pyramid.push_slab(&slab).expect("slab");
        for _ in 1..BlockPyramid::SLAB_COUNT {
            shards.extend(pyramid.push_zero_slab().expect("zero slab"));
        }
        shards.extend(pyramid.finish().expect("finish"));
        let mut names = Vec::new();
        for shard in &shards {
            let k = scales
                .iter()
                .position(|s| s.key() == shard.scale_key)
                .expect("a scale");
            let (name, file) = zarr_shard(shard, &scales[k], &zarr[k])
                .expect("converts")
                .expect("has chunks");
            let chunks = decode_shard(&file, zarr[k].chunks_per_shard()).expect("decodes");
            let present: Vec<_> = chunks.iter().flatten().collect();
            assert_eq!(present.len(), 1, "{name}");
            let voxels = decode_chunk(present[0]).expect("gzip");
            assert_eq!(voxels.len(), 64 * 64 * 64);
            if k == 0 {
                // The one chunk is x 256 / 64 = 4 of the shard's 8, y 0, z 0.
                assert!(chunks[4].is_some());
                assert_eq!(voxels[(5 * 64 + 7) * 64 + 300 - 256], 200);
            }
            names.push(name);
        }
        // Block x 1: shard x 2 at scale 0 (512³ shards), x 1 at scales 1–4 (one per block).
        assert_eq!(
            names,
            [
                "ome-zarr/0/c/0/0/2",
                "ome-zarr/1/c/0/0/1",
                "ome-zarr/2/c/0/0/1",
                "ome-zarr/3/c/0/0/1",
                "ome-zarr/4/c/0/0/1"
            ]
        );
    }

    /// The Zarr arrays of test `scales` (any chunk edge), as [`layout::zarr_scales`] makes
    /// them for emwrite's.
    fn zarr_of(scales: &[Scale]) -> Vec<ZarrScale> {
        (0..)
            .zip(scales)
            .map(|(k, scale)| {
                let per_shard = layout::zarr_shard_chunks(scale);
                ZarrScale {
                    path: format!("{k}"),
                    shape: scale.size(),
                    shard_shape: std::array::from_fn(|a| scale.chunk_size()[a] * per_shard[a]),
                    chunk_shape: scale.chunk_size(),
                    resolution_nm: scale.resolution_nm(),
                }
            })
            .collect()
    }

    /// The Zarr shards of a small block, by name: streamed chunk by chunk
    /// (`BlockPyramid::stream_zarr_shards`, every shard, no raw chunks kept) or made of the whole
    /// raw shards.
    fn zarr_files(scales: &[Scale], voxels: &[u8], streamed: bool) -> BTreeMap<String, Vec<u8>> {
        const C: usize = 8;
        let zarr = zarr_of(scales);
        let mut pyramid =
            BlockPyramid::with_chunk_edge(scales, [1, 0, 1], None, &[Encoding::Raw], 75, C)
                .expect("pyramid");
        if streamed {
            pyramid.stream_zarr_shards(&zarr, 0, true).expect("streams");
        }
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut open = std::collections::BTreeSet::new();
        let slab_len = voxels.len() / BlockPyramid::SLAB_COUNT;
        for slab in voxels.chunks_exact(slab_len) {
            for shard in pyramid.push_slab(slab).expect("slab") {
                assert!(!streamed, "a streamed block completes no raw shard");
                let k: usize = shard.scale_key[1..].parse().expect("s<k>");
                let (name, file) = zarr_shard(&shard, &scales[k], &zarr[k])
                    .expect("converts")
                    .expect("has chunks");
                assert!(files.insert(name, file).is_none());
            }
            for part in pyramid.take_zarr_parts() {
                assert!(!part.bytes.is_empty() || part.last);
                files
                    .entry(part.name.clone())
                    .or_default()
                    .extend(part.bytes);
                if part.last {
                    assert!(open.remove(&part.name), "{} ended twice", part.name);
                    open.insert(format!("done {}", part.name));
                } else {
                    open.insert(part.name);
                }
            }
        }
        assert!(pyramid.finish().expect("finish").is_empty());
        assert!(
            open.iter().all(|name| name.starts_with("done ")),
            "{open:?}"
        );
        files
    }

    /// A Zarr shard streamed as its chunks are encoded is the file made of its whole raw shard,
    /// byte for byte: the pyramid completes a shard's chunks in the index's C order.
    #[test]
    fn streamed_zarr_shards_are_the_files_made_whole() {
        const B: usize = 128;
        let mut voxels = vec![0u8; B * B * B];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for z in 5..120 {
            for y in 20..128 {
                for x in 3..100 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    voxels[(z * B + y) * B + x] = (state >> 56) as u8;
                }
            }
        }
        for resolution in [[8.0; 3], FLAT_VOXELS] {
            let scales = scales_with_voxels([256, 128, 256], 8, resolution);
            let held = zarr_files(&scales, &voxels, false);
            let streamed = zarr_files(&scales, &voxels, true);
            assert!(held.len() >= 5, "{:?}", held.keys());
            assert_eq!(
                held.keys().collect::<Vec<_>>(),
                streamed.keys().collect::<Vec<_>>()
            );
            for (name, file) in &held {
                assert!(streamed[name] == *file, "{name} differs ({resolution:?})");
            }
        }
    }
}
