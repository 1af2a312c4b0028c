//! `ngshard`: build one 1024³ block from the tile packs and write its sharded pyramid.
//!
//! The block is streamed in slabs of [`BlockPyramid::SLAB_DEPTH`] slices, so a task holds one
//! slab of voxels plus what the pyramid keeps, never the whole 1 GiB block (docs/design.md §4).

use super::Written;
use crate::layout::{self, BLOCK_EDGE, encodings, info_object};
use crate::precomputed::block_shards::CompletedShard;
use crate::precomputed::info::{Scale, VolumeInfo};
use crate::precomputed::pyramid::BlockPyramid;
use crate::request::NgShardRequest;
use crate::storage::{self, Storage};
use crate::tilepack::read_tile;
use crate::{Error, Result};
use futures::StreamExt;

/// Tile packs read at once: enough to hide storage latency, few enough to bound memory
/// (each decoded tile is at most 1 MiB).
const TILES_IN_FLIGHT: usize = 8;

const BLOCK: usize = BLOCK_EDGE as usize;

/// Runs one ngshard task.
pub async fn run(storage: &impl Storage, request: &NgShardRequest) -> Result<Written> {
    let retries_before = storage.retries();
    let scales = read_scales(storage, request).await?;
    let [bx, by, bz] = request.start.map(u64::from);
    let encodings = encodings(request.write_raw);
    let mut pyramid = BlockPyramid::new(&scales, [bx, by, bz], encodings, request.jpeg_quality)?;

    let depth = BlockPyramid::SLAB_DEPTH;
    let mut slab = vec![0u8; BLOCK * BLOCK * depth];
    let mut written = Written::default();
    let [_, _, block_z0] = layout::block_origin(request.start);
    for slab_index in 0..BLOCK / depth {
        let z0 = block_z0 + (slab_index * depth) as u64;
        let zs = layout::existing_slices(z0, depth as u64, request.minz, request.maxz);
        let completed = if zs.is_empty() {
            pyramid.push_zero_slab()?
        } else {
            fill_slab(storage, request, &mut slab, z0, zs).await?;
            pyramid.push_slab(&slab)?
        };
        write_shards(storage, request, &mut written, completed).await?;
    }
    write_shards(storage, request, &mut written, pyramid.finish()?).await?;
    written.retries = storage.retries().saturating_sub(retries_before);
    Ok(written)
}

/// The volume's scales, from the `info` ngmeta wrote, checked against the request.
async fn read_scales(storage: &impl Storage, request: &NgShardRequest) -> Result<Vec<Scale>> {
    let mut scales = None;
    for &encoding in encodings(request.write_raw) {
        let object = info_object(&request.dest, encoding);
        let bytes = storage
            .get(&object)
            .await
            .map_err(|e| e.context("reading the volume's info (run ngmeta first)"))?;
        let info = VolumeInfo::from_json(&bytes).map_err(|e| e.context(&object))?;
        info.check_matches_stack(&object, request.bbox, request.maxz)?;
        scales.get_or_insert_with(|| info.scales().to_vec());
    }
    scales.ok_or_else(|| Error::internal("no encoding requested"))
}

/// Reads slices `zs` of the block's column from their tile packs into `slab` (whose first slice
/// is `z0`), zeroing the slab first so that missing slices and edge tiles stay 0.
async fn fill_slab(
    storage: &impl Storage,
    request: &NgShardRequest,
    slab: &mut [u8],
    z0: u64,
    zs: std::ops::RangeInclusive<u64>,
) -> Result<()> {
    slab.fill(0);
    let expected = layout::tile_pack_header(request.bbox);
    let [bx, by, _] = request.start.map(u64::from);
    let mut tiles = futures::stream::iter(zs)
        .map(|z| async move {
            let pack = layout::tile_pack_object(&request.source, z);
            read_tile(storage, &pack, &expected, [bx, by])
                .await
                .map(|t| (z, t))
        })
        .buffer_unordered(TILES_IN_FLIGHT);
    while let Some(tile) = tiles.next().await {
        let (z, tile) = tile?;
        let tw = tile.width;
        let slice = &mut slab[(z - z0) as usize * BLOCK * BLOCK..][..BLOCK * BLOCK];
        for row in 0..tile.height {
            slice[row * BLOCK..row * BLOCK + tw]
                .copy_from_slice(&tile.pixels[row * tw..(row + 1) * tw]);
        }
    }
    Ok(())
}

async fn write_shards(
    storage: &impl Storage,
    request: &NgShardRequest,
    written: &mut Written,
    shards: Vec<CompletedShard>,
) -> Result<()> {
    for shard in shards {
        let object = layout::shard_object(
            &request.dest,
            shard.encoding,
            &shard.scale_key,
            &shard.file_name,
        );
        // One shard file at a time: each is assembled, written and dropped before the next.
        let bytes = shard.into_bytes()?;
        written
            .put(storage, &object, &bytes, storage::BINARY)
            .await?;
    }
    Ok(())
}
