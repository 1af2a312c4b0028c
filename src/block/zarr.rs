//! A block's Zarr shards: each precomputed shard of raw chunks the pyramid completes becomes the
//! Zarr shard of the same chunks, gzip-compressed (docs/design.md §"OME-Zarr output").
//!
//! The engine builds one pyramid for both formats: [`crate::layout::zarr_shard_chunks`] makes a
//! Zarr shard hold exactly the chunks of one precomputed shard, so a block, or a block's half,
//! owns whole Zarr shards wherever it owns whole precomputed shards, and writes them whole.

use super::shards::CompletedShard;
use crate::layout;
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::Scale;
use crate::precomputed::morton;
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
    let per_shard = zarr.chunks_per_shard();
    let bits = scale.morton_bits();
    let mut builder = ShardBuilder::new(per_shard)?;
    let mut place = None;
    let mut chunks = Vec::new();
    for (id, voxels) in shard.chunks() {
        let cell = morton::decode(id, bits);
        let here: [u64; 3] = std::array::from_fn(|axis| cell[axis] / per_shard[axis]);
        if *place.get_or_insert(here) != here {
            return Err(Error::internal(format_args!(
                "chunk {id} lies in zarr shard {here:?}, not {place:?}"
            ))
            .context(context()));
        }
        let [x, y, z] = std::array::from_fn(|axis| cell[axis] % per_shard[axis]);
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
    use super::*;
    use crate::block::pyramid::BlockPyramid;
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
}
