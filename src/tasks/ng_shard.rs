//! `ngshard`: build one 1024³ block from the tile packs and write its sharded pyramid.
//!
//! The block is streamed in slabs of [`BlockPyramid::SLAB_DEPTH`] slices, so a task holds one
//! slab of voxels plus what the pyramid keeps, never the whole 1 GiB block (docs/design.md §4).

use super::Written;
use super::ng_meta::{encodings, info_object, volume_prefix};
use crate::precomputed::info::VolumeInfo;
use crate::precomputed::pyramid::{BlockPyramid, CompletedShard};
use crate::request::{BLOCK_SIZE, NgShardRequest};
use crate::storage::location::ObjectPath;
use crate::storage::{self, Storage};
use crate::tilepack::{TilePackHeader, decode_tile, read_u64s};
use crate::{Error, Result};
use futures::StreamExt;

/// Tile packs read at once: enough to hide storage latency, few enough to bound memory
/// (each decoded tile is at most 1 MiB).
const TILES_IN_FLIGHT: usize = 8;

const BLOCK: usize = BLOCK_SIZE as usize;

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
    let block_z0 = u64::from(request.start[2]) * u64::from(BLOCK_SIZE);
    for slab_index in 0..BLOCK / depth {
        let z0 = block_z0 + (slab_index * depth) as u64;
        // Slices in this slab that exist: the original started at max(block start, minz) and
        // read 1024 slices from there, running into the next block — we clip to both ends.
        let first = z0.max(request.minz.into());
        let last = (z0 + depth as u64 - 1).min(request.maxz.into());
        let completed = if first > last {
            pyramid.push_zero_slab()?
        } else {
            fill_slab(storage, request, &mut slab, z0, first..=last).await?;
            pyramid.push_slab(&slab)?
        };
        write_shards(storage, request, &mut written, completed).await?;
    }
    write_shards(storage, request, &mut written, pyramid.finish()?).await?;
    written.retries = storage.retries().saturating_sub(retries_before);
    Ok(written)
}

/// The volume's scales, from the `info` ngmeta wrote, checked against the request.
async fn read_scales(
    storage: &impl Storage,
    request: &NgShardRequest,
) -> Result<Vec<crate::precomputed::info::Scale>> {
    let expected = VolumeInfo::new(
        request.bbox[0].into(),
        request.bbox[1].into(),
        request.minz.into(),
        request.maxz.into(),
        crate::request::DEFAULT_RESOLUTION_NM,
        crate::precomputed::codec::Encoding::Jpeg,
    );
    let mut scales = None;
    for &encoding in encodings(request.write_raw) {
        let object = info_object(&request.dest, encoding);
        let bytes = storage
            .get(&object)
            .await
            .map_err(|e| e.context("reading the volume's info (run ngmeta first)"))?;
        let info = VolumeInfo::from_json(&bytes).map_err(|e| e.context(&object))?;
        let size = info.scales().first().map(|s| s.size());
        if size != expected.scales().first().map(|s| s.size()) {
            return Err(Error::bad_field(
                "bbox",
                format!(
                    "the volume's info {object} has size {size:?} at scale 0, but bbox {:?} and maxz {} give {:?}",
                    request.bbox,
                    request.maxz,
                    expected.scales().first().map(|s| s.size())
                ),
            ));
        }
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
    let mut tiles = futures::stream::iter(zs)
        .map(|z| async move { read_tile(storage, request, z).await.map(|t| (z, t)) })
        .buffer_unordered(TILES_IN_FLIGHT);
    while let Some(tile) = tiles.next().await {
        let (z, (pixels, [tw, th])) = tile?;
        let slice = &mut slab[(z - z0) as usize * BLOCK * BLOCK..][..BLOCK * BLOCK];
        for row in 0..th {
            slice[row * BLOCK..row * BLOCK + tw].copy_from_slice(&pixels[row * tw..(row + 1) * tw]);
        }
    }
    Ok(())
}

/// Slice `z`'s tile for this block: its pixels and `[width, height]`.
async fn read_tile(
    storage: &impl Storage,
    request: &NgShardRequest,
    z: u64,
) -> Result<(Vec<u8>, [usize; 2])> {
    let pack = request.source.object(&z.to_string());
    let [bx, by, _] = request.start.map(u64::from);
    let tiles_x = u64::from(request.bbox[0]).div_ceil(BLOCK as u64);
    let index = by * tiles_x + bx;
    // One read for the header and the offsets up to this tile's end, one for the tile.
    let prefix = storage
        .get_range(&pack, 0..TilePackHeader::offsets_range(index).end)
        .await?;
    let header = TilePackHeader::parse(&prefix, &pack)?;
    let expected = TilePackHeader {
        width: request.bbox[0].into(),
        height: request.bbox[1].into(),
        tile_size: BLOCK as u64,
    };
    if header != expected {
        return Err(Error::unreadable(
            &pack,
            format!("tile pack is {header:?}, but the request expects {expected:?}"),
        ));
    }
    let offsets = TilePackHeader::offsets_range(index);
    let [start, end] = read_u64s::<2>(&prefix[offsets.start as usize..], &pack)?;
    if start > end || end - start > 64 << 20 {
        return Err(Error::unreadable(
            &pack,
            format!("invalid offsets [{start}, {end}) for tile {index}"),
        ));
    }
    let png = storage.get_range(&pack, start..end).await?;
    if png.len() as u64 != end - start {
        return Err(Error::unreadable(&pack, format!("truncated tile {index}")));
    }
    let [tw, th] = header.tile_extent(bx, by);
    let what = TileName { pack: &pack, index };
    let pixels = decode_tile(&png, [tw, th], &what)?;
    Ok((pixels, [tw as usize, th as usize]))
}

/// Names a tile in errors: `tile 3 of 17 in bucket lab-tmp`.
struct TileName<'a> {
    pack: &'a ObjectPath,
    index: u64,
}

impl std::fmt::Display for TileName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tile {} of {}", self.index, self.pack)
    }
}

async fn write_shards(
    storage: &impl Storage,
    request: &NgShardRequest,
    written: &mut Written,
    shards: Vec<CompletedShard>,
) -> Result<()> {
    for shard in shards {
        let name = format!(
            "{}/{}/{}",
            volume_prefix(shard.encoding),
            shard.scale_key,
            shard.file_name
        );
        let object = request.dest.object(&name);
        // One shard file at a time: each is assembled, written and dropped before the next.
        let bytes = shard.into_bytes()?;
        written
            .put(storage, &object, &bytes, storage::BINARY)
            .await?;
    }
    Ok(())
}
