//! `ngshard`: build one 1024³ block from the tile packs and write its sharded pyramid.
//!
//! The block is streamed slice by slice into the pyramid, so a task holds one slice of voxels
//! plus what the pyramid keeps, never the whole 1 GiB block nor a 64 MiB slab of it
//! (docs/design.md §4). The next tiles are read while a slice is computed.
//!
//! One task builds a block ([`run`]), or two tasks share it, one half each ([`run_half`]), and a
//! third step writes the shards both halves hold chunks of ([`merge_halves`]): two component
//! instances on two cores build a block in about half the time. Both ways write the same bytes.
//!
//! Its shard files and manifest are written by `tasks/block_writes.rs`, slab by slab.
//!
//! Either way the block's last put is its manifest ([`crate::block::manifest`]), after every
//! shard is whole: it lists every shard the block wrote, so a rerun can tell a finished block
//! (whose all-zero regions have no shard) from one cut short.

use std::ops::{Range, RangeInclusive};
use std::time::Instant;

use super::Written;
pub use super::block_writes::STREAM_SHARDS_FROM;
use super::block_writes::{
    OpenShards, Output, Volumes, write_completed, write_manifest, write_shards, write_spliced,
};
use crate::block::handoff::HalfHandoff;
use crate::block::merge::{self, MergedShard};
use crate::block::pyramid::BlockPyramid;
use crate::layout::{self, BLOCK_EDGE, BlockHalf, encodings, engine_encodings, info_object};
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::{Scale, VolumeInfo};
use crate::request::{NgShardRequest, wire};
use crate::storage::{Storage, StreamingStorage};
use crate::tasks::StageTimings;
use crate::tasks::tile_reads::{self, TileReads};
use crate::zarr::metadata::{ZarrScale, first_resolution_nm};
use crate::{Error, Result};

/// Storage requests one task has in flight at most: ngshard's tile reads and the one write it
/// awaits at a time (alignedslice and ngmeta keep fewer). The native host opens at most this
/// many connections per storage host for each instance alive (`host/src/pooled_client.rs`): a
/// block split in two halves keeps at most 2 × (7 reads + 1 write) = 16 open.
pub const STORAGE_REQUESTS_IN_FLIGHT: usize = tile_reads::REQUESTS_IN_FLIGHT + 1;

const BLOCK: usize = BLOCK_EDGE as usize;

/// What one half of a block wrote, and what it hands to the merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HalfWritten {
    /// The half's own shards (scale 0's, and where scales keep z theirs too) and where its time
    /// went.
    pub written: Written,
    /// The hand-off for [`merge_halves`] ([`HalfHandoff::to_bytes`]): the caller keeps it until
    /// both halves are done. Typically a few MiB; up to about 75 MiB for a dense block with
    /// `writeRaw`.
    pub handoff: Vec<u8>,
}

/// Runs one ngshard task: the whole block.
pub async fn run(storage: &impl StreamingStorage, request: &NgShardRequest) -> Result<Written> {
    let retries_before = storage.retries();
    let volumes = read_volumes(storage, request).await?;
    let block = request.start.map(u64::from);
    let encodings = engine_encodings(request.format, request.write_raw);
    let mut pyramid = BlockPyramid::new(&volumes.scales, block, encodings, request.jpeg_quality)?;
    volumes.stream_large_shards(&mut pyramid)?;
    let mut written = Written::default();
    let mut listed = Vec::new();
    let mut out = Output {
        written: &mut written,
        listed: &mut listed,
        volumes: &volumes,
    };
    push_slabs(
        storage,
        request,
        &mut pyramid,
        0..BlockPyramid::SLAB_COUNT,
        &mut out,
    )
    .await?;
    add_pyramid_timings(out.written, &pyramid);
    write_shards(storage, request, &mut out, pyramid.finish()?).await?;
    write_manifest(storage, request, &mut written, listed).await?;
    written.retries = storage.retries().saturating_sub(retries_before);
    Ok(written)
}

/// Runs `half` of an ngshard task: writes the shards the half owns whole (scale 0's, and those of
/// scales that keep z) and returns the hand-off
/// that [`merge_halves`] needs from it. The two halves may run at once, in separate instances.
pub async fn run_half(
    storage: &impl StreamingStorage,
    request: &NgShardRequest,
    half: BlockHalf,
) -> Result<HalfWritten> {
    let retries_before = storage.retries();
    let volumes = read_volumes(storage, request).await?;
    let block = request.start.map(u64::from);
    let encodings = engine_encodings(request.format, request.write_raw);
    let mut pyramid = BlockPyramid::for_half(
        &volumes.scales,
        block,
        half,
        encodings,
        request.jpeg_quality,
    )?;
    volumes.stream_large_shards(&mut pyramid)?;
    let slabs = half.layers(BlockPyramid::SLAB_COUNT as u64);
    let slabs = slabs.start as usize..slabs.end as usize;
    let mut written = Written::default();
    let mut listed = Vec::new();
    let mut out = Output {
        written: &mut written,
        listed: &mut listed,
        volumes: &volumes,
    };
    push_slabs(storage, request, &mut pyramid, slabs, &mut out).await?;
    add_pyramid_timings(&mut written, &pyramid);
    let started = Instant::now();
    let mut handoff = pyramid.finish_half()?;
    handoff.written = listed;
    let handoff = handoff.to_bytes();
    written.stages.encode += started.elapsed();
    written.retries = storage.retries().saturating_sub(retries_before);
    Ok(HalfWritten { written, handoff })
}

/// Writes the block's shards that both halves hold chunks of (scales 1–4), from the halves'
/// hand-offs ([`HalfWritten::handoff`]), then the block's manifest, listing the halves' shards
/// too: after both [`run_half`] calls succeeded, the block's objects are those [`run`] writes,
/// byte for byte. The hand-offs must come from halves run with the same request (else a 400
/// naming `lower` or `upper`).
pub async fn merge_halves(
    storage: &impl StreamingStorage,
    request: &NgShardRequest,
    lower: &[u8],
    upper: &[u8],
) -> Result<Written> {
    let retries_before = storage.retries();
    let volumes = read_volumes(storage, request).await?;
    let mut written = Written::default();
    let started = Instant::now();
    // Read in place: the partial shards stay in the hand-offs' bytes.
    let lower = HalfHandoff::from_bytes(lower, BlockHalf::Lower.as_str())?;
    let upper = HalfHandoff::from_bytes(upper, BlockHalf::Upper.as_str())?;
    // Large shards are spliced from the hand-offs as they are written, unless their raw chunks
    // also make OME-Zarr shards, which are made of a whole raw shard.
    let splice_from = if volumes.zarr.is_empty() {
        STREAM_SHARDS_FROM
    } else {
        usize::MAX
    };
    let shards = merge::merge_halves(
        &volumes.scales,
        request.start.map(u64::from),
        engine_encodings(request.format, request.write_raw),
        request.jpeg_quality,
        [&lower, &upper],
        splice_from,
    )?;
    let mut listed = [lower.written.as_slice(), upper.written.as_slice()].concat();
    written.stages.encode += started.elapsed();
    let mut out = Output {
        written: &mut written,
        listed: &mut listed,
        volumes: &volumes,
    };
    let mut whole = Vec::new();
    let mut spliced = Vec::new();
    for shard in shards {
        match shard {
            MergedShard::Whole(shard) => whole.push(shard),
            MergedShard::Spliced(shard) => spliced.push(shard),
        }
    }
    write_shards(storage, request, &mut out, whole).await?;
    for shard in spliced {
        write_spliced(storage, request, &mut out, shard).await?;
    }
    write_manifest(storage, request, &mut written, listed).await?;
    written.retries = storage.retries().saturating_sub(retries_before);
    Ok(written)
}

/// The volumes of `request`: the scales from the `info` ngmeta wrote, and the OME-Zarr arrays
/// from the group's metadata, each checked against the request.
async fn read_volumes(storage: &impl Storage, request: &NgShardRequest) -> Result<Volumes> {
    let precomputed = if request.format.precomputed() {
        encodings(request.write_raw)
    } else {
        &[]
    };
    let scales = read_scales(storage, request, precomputed).await?;
    let zarr = if request.format.zarr() {
        read_zarr_scales(storage, request).await?
    } else {
        Vec::new()
    };
    let scales = match scales {
        Some(scales) => scales,
        // Only the OME-Zarr image: the engine's scales are the ones its arrays were made from.
        None => {
            let resolution = zarr.first().map_or([1.0; 3], |scale| scale.resolution_nm);
            let (bbox, minz, maxz) = (request.bbox, request.minz, request.maxz);
            layout::volume_info(bbox, minz, maxz, resolution, Encoding::Raw)?
                .scales()
                .to_vec()
        }
    };
    Ok(Volumes {
        scales,
        precomputed,
        zarr,
    })
}

/// The OME-Zarr arrays ngmeta described, checked against the request: scale 0's `zarr.json`
/// must be the one the request's stack makes (else a bad `bbox`).
async fn read_zarr_scales(
    storage: &impl Storage,
    request: &NgShardRequest,
) -> Result<Vec<ZarrScale>> {
    let object = layout::zarr_group_object(&request.dest);
    let group = storage.get(&object).await.map_err(|e| {
        e.context("reading the OME-Zarr metadata (run ngmeta with this format first)")
    })?;
    let resolution = first_resolution_nm(&group).map_err(|e| e.context(&object))?;
    let scales = layout::zarr_scales(request.bbox, request.minz, request.maxz, resolution)?;
    let Some(first) = scales.first() else {
        return Err(Error::internal("no OME-Zarr scale"));
    };
    let object = layout::zarr_array_object(&request.dest, first);
    let found = storage.get(&object).await?;
    if found != first.array_metadata()? {
        return Err(Error::bad_field(
            wire::BBOX,
            format!(
                "the OME-Zarr array {object} is not the one bbox {:?} and maxz {} make",
                request.bbox, request.maxz
            ),
        ));
    }
    Ok(scales)
}

/// The volume's scales, from the `info`s ngmeta wrote for `encodings`, checked against the
/// request; `None` if no encoding is given.
async fn read_scales(
    storage: &impl Storage,
    request: &NgShardRequest,
    encodings: &[Encoding],
) -> Result<Option<Vec<Scale>>> {
    let mut scales = None;
    for &encoding in encodings {
        let object = info_object(&request.dest, encoding);
        let bytes = storage
            .get(&object)
            .await
            .map_err(|e| e.context("reading the volume's info (run ngmeta first)"))?;
        let info = VolumeInfo::from_json(&bytes).map_err(|e| e.context(&object))?;
        check_info_matches_request(&info, &object, request)?;
        scales.get_or_insert_with(|| info.scales().to_vec());
    }
    Ok(scales)
}

/// Checks that `info`, read from `what`, describes the volume of `request`'s stack as ngmeta
/// makes it ([`layout::volume_info`]): the same size at scale 0. A mismatch is a bad `bbox`
/// field: the request disagrees with the ngmeta run.
fn check_info_matches_request(
    info: &VolumeInfo,
    what: impl std::fmt::Display,
    request: &NgShardRequest,
) -> Result<()> {
    let (bbox, maxz) = (request.bbox, request.maxz);
    let size = info.scales().first().map(|s| s.size());
    let expected = Some(layout::scale0_size(bbox, maxz));
    if size != expected {
        return Err(Error::bad_field(
            wire::BBOX,
            format!(
                "the volume's info {what} has size {size:?} at scale 0, but bbox {bbox:?} and \
                 maxz {maxz} give {expected:?}"
            ),
        ));
    }
    Ok(())
}

/// Pushes the block's slabs `slabs` (of 0..16) into `pyramid` and writes the shards they
/// complete.
///
/// The block goes into the pyramid slice by slice ([`BlockPyramid::push_slice`]): each tile is
/// decoded into one slice buffer and encoded into its chunks at once, so no 64 MiB slab is
/// held. Reads overlap compute: the tiles come from [`TileReads`], which locates tiles up to a
/// slab ahead and holds up to [`tile_reads::TILES_HELD`] fetched, across slab boundaries, and
/// is pumped after each slice, so the next tiles arrive while a slice is encoded. And a slab's
/// slices are pushed while the shards the slab before it completed are written: over a network
/// both mostly wait, for tiles and for acknowledgements.
async fn push_slabs<S: StreamingStorage>(
    storage: &S,
    request: &NgShardRequest,
    pyramid: &mut BlockPyramid,
    slabs: Range<usize>,
    out: &mut Output<'_>,
) -> Result<()> {
    // Every shard streamed from these slabs completes within them.
    let mut open = OpenShards::<S>::default();
    let mut slice = vec![0u8; BLOCK * BLOCK];
    let [bx, by, _] = request.start.map(u64::from);
    let mut tiles = TileReads::new(
        storage,
        &request.source,
        layout::tile_pack_header(request.bbox),
        [bx, by],
        slabs
            .clone()
            .flat_map(|index| slab_slices(request, index))
            .filter(|&z| !request.is_missing(z)),
    );
    // What the slab before completed, still to be written.
    let mut unwritten = (Vec::new(), Vec::new(), Vec::new());
    for index in slabs {
        let zs = slab_slices(request, index);
        if !zs.is_empty() {
            let mut stages = StageTimings::default();
            let z0 = slab_z0(request, index);
            let tiled = |z| zs.contains(&z) && !request.is_missing(z);
            let push = push_slab(&mut tiles, pyramid, &mut slice, tiled, z0, &mut stages);
            let write = write_completed(storage, request, out, &mut open, unwritten);
            futures::try_join!(push, write)?;
            out.written.stages.fetch += stages.fetch;
            out.written.stages.decode += stages.decode;
        } else {
            write_completed(storage, request, out, &mut open, unwritten).await?;
        }
        // With no slice pushed, this pushes an all-zero slab.
        let completed = pyramid.end_slab(&mut || tiles.pump())?;
        unwritten = (completed, pyramid.take_parts(), pyramid.take_zarr_parts());
    }
    write_completed(storage, request, out, &mut open, unwritten).await?;
    open.check_all_finished()
}

/// Pushes the slab of first slice `z0` into `pyramid`, slice by slice through `slice`: the
/// tiles of the slices `tiled` says have a tile pack, zeros for the others (outside
/// `[minz, maxz]`, or missing). Adds the time it waited for tiles and decoded them to `stages`.
async fn push_slab<S: Storage>(
    tiles: &mut TileReads<'_, S>,
    pyramid: &mut BlockPyramid,
    slice: &mut [u8],
    tiled: impl Fn(u64) -> bool,
    z0: u64,
    stages: &mut StageTimings,
) -> Result<()> {
    for z in z0..z0 + BlockPyramid::SLAB_DEPTH as u64 {
        // Edge tiles and missing slices leave the rest of the slice 0.
        slice.fill(0);
        if tiled(z) {
            let started = Instant::now();
            let next = tiles.next().await;
            stages.fetch += started.elapsed();
            let (got, fetched) = next.ok_or_else(|| {
                Error::internal(format_args!("ngshard: tile of slice {z} missing"))
            })?;
            if got != z {
                return Err(Error::internal(format_args!(
                    "ngshard: tile of slice {got} came for slice {z}"
                )));
            }
            let started = Instant::now();
            fetched?.decode_into(slice, BLOCK)?;
            stages.decode += started.elapsed();
        }
        pyramid.push_slice(slice)?;
        tiles.pump();
    }
    Ok(())
}

/// The first slice of block slab `index`.
fn slab_z0(request: &NgShardRequest, index: usize) -> u64 {
    let [_, _, block_z0] = layout::block_origin(request.start);
    block_z0 + (index * BlockPyramid::SLAB_DEPTH) as u64
}

/// The slices of block slab `index` that exist (`[minz, maxz]`), whose tiles it is made of.
fn slab_slices(request: &NgShardRequest, index: usize) -> RangeInclusive<u64> {
    let depth = BlockPyramid::SLAB_DEPTH as u64;
    layout::existing_slices(slab_z0(request, index), depth, request.minz, request.maxz)
}

/// Adds the pyramid's downsample and encode times to the report.
fn add_pyramid_timings(written: &mut Written, pyramid: &BlockPyramid) {
    let timings = pyramid.timings();
    written.stages.downsample += timings.downsample;
    written.stages.encode += timings.encode;
}

#[cfg(test)]
mod tests {
    use pollster::block_on;

    use super::*;
    use crate::request::NgMetaRequest;
    use crate::storage;
    use crate::storage::location::Location;
    use crate::storage::memory::MemoryStorage;
    use crate::tasks::{finished, ng_meta};
    use crate::tilepack::encode_tile_pack;

    const BBOX: [u32; 2] = [1100, 1024];
    const MINZ: u32 = 506;
    const MAXZ: u32 = 517;

    /// Tile packs of slices MINZ..=MAXZ in bucket `tiles`: a textured box in x ∈ [100, 300),
    /// y ∈ [200, 400) that crosses the block's halves (z = 512), zero elsewhere.
    fn storage_with_stack() -> MemoryStorage {
        let storage = MemoryStorage::default();
        let [w, h] = BBOX.map(|edge| edge as usize);
        for z in MINZ..=MAXZ {
            let mut pixels = vec![0u8; w * h];
            for y in 200..400 {
                for x in 100..300 {
                    pixels[y * w + x] = (x * 7 + y * 3 + z as usize * 5) as u8 | 1;
                }
            }
            let pack = encode_tile_pack(&pixels, BBOX[0], BBOX[1], BLOCK_EDGE).expect("pack");
            let object = layout::tile_pack_object(&location("tiles"), z.into());
            block_on(storage.put(&object, &pack, storage::BINARY)).expect("put");
        }
        storage
    }

    fn location(bucket: &str) -> Location {
        Location::parse("dest", bucket).expect("valid location")
    }

    fn request(dest: &str, write_raw: bool) -> NgShardRequest {
        NgShardRequest {
            dest: location(dest),
            source: location("tiles"),
            start: [0, 0, 0],
            minz: MINZ,
            maxz: MAXZ,
            bbox: BBOX,
            write_raw,
            jpeg_quality: 75,
            missing: Vec::new(),
            format: Default::default(),
        }
    }

    /// Writes the volume's info to `request.dest`, as ngmeta would.
    fn write_info(storage: &MemoryStorage, request: &NgShardRequest) {
        let meta = NgMetaRequest {
            dest: request.dest.clone(),
            minz: request.minz,
            maxz: request.maxz,
            bbox: request.bbox,
            write_raw: request.write_raw,
            resolution_nm: [8.0; 3],
            format: request.format,
        };
        block_on(ng_meta::run(storage, &meta)).expect("ngmeta");
    }

    /// The halves and the merge write every object `run` writes, byte for byte, on a real 1024³
    /// block whose data crosses the halves; raw scale-0 and scale-1 shards go out in parts. JPEG
    /// and raw at once: a debug build takes seconds per 64 MiB slab, and JPEG alone is the same
    /// path with one encoding fewer (`block::merge`'s tests run both on small blocks).
    #[test]
    fn halves_and_merge_write_what_one_task_writes() {
        let storage = storage_with_stack();
        let whole = request("whole", true);
        let split = request("split", true);
        write_info(&storage, &whole);
        write_info(&storage, &split);

        let written = block_on(run(&storage, &whole)).expect("whole block");
        assert!(written.stages.decode > std::time::Duration::ZERO);
        assert!(written.stages.encode > std::time::Duration::ZERO);

        let [lower, upper] =
            BlockHalf::BOTH.map(|half| block_on(run_half(&storage, &split, half)).expect("half"));
        let merged = block_on(merge_halves(
            &storage,
            &split,
            &lower.handoff,
            &upper.handoff,
        ))
        .expect("merge");

        let want = storage.bucket("whole");
        let got = storage.bucket("split");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "object names"
        );
        for (name, bytes) in &want {
            assert!(got[name] == *bytes, "{name} differs");
        }
        // The same objects, in another order: a streamed raw shard is recorded when its last
        // part is written, after the held shards its slab completed.
        let mut split_objects: Vec<String> = [lower.written, upper.written, merged]
            .into_iter()
            .flat_map(|w| w.objects)
            .map(|object| object.replacen("split/", "whole/", 1))
            .collect();
        split_objects.sort();
        let mut whole_objects = written.objects.clone();
        whole_objects.sort();
        assert_eq!(split_objects, whole_objects);
        // Scale 0: one shard per half (the box is in the block's lower x and y quarter);
        // scales 1–4: one each; per encoding; then the manifest, last.
        assert_eq!(written.objects.len(), 2 * 6 + 1, "{:?}", written.objects);
        assert_eq!(
            written.objects.last().map(String::as_str),
            Some("whole/neuroglancer/blocks/0_0_0.json")
        );
        let manifest = crate::block::manifest::BlockManifest::from_json(
            &want["neuroglancer/blocks/0_0_0.json"],
        )
        .expect("a manifest");
        let listed: Vec<_> = manifest.objects.iter().map(|o| o.name.as_str()).collect();
        let shards: Vec<_> = want.keys().filter(|n| n.ends_with(".shard")).collect();
        assert_eq!(listed.len(), 12);
        assert!(
            listed.iter().zip(&shards).all(|(l, s)| l == s),
            "{listed:?}"
        );
        for object in &manifest.objects {
            assert_eq!(
                object.bytes,
                want[&object.name].len() as u64,
                "{}",
                object.name
            );
        }
        assert!(block_on(finished::block_finished(&storage, &whole)).expect("checks"));
        assert!(block_on(finished::block_finished(&storage, &split)).expect("checks"));
    }

    /// With `format` both, a block writes the OME-Zarr shard of every raw shard, holding the
    /// same voxels, and the halves and the merge write them byte for byte as one task does;
    /// with ome-zarr alone, only the Zarr shards and the manifest, and no precomputed info is
    /// needed.
    #[test]
    fn zarr_shards_hold_the_raw_chunks_whole_or_in_halves() {
        use crate::precomputed::shard::decode_shard;
        use crate::request::OutputFormat;
        use crate::zarr::{codec, shard};
        let storage = storage_with_stack();
        let both = |dest| NgShardRequest {
            format: OutputFormat::Both,
            ..request(dest, true)
        };
        let (whole, split) = (both("zwhole"), both("zsplit"));
        write_info(&storage, &whole);
        write_info(&storage, &split);
        block_on(run(&storage, &whole)).expect("whole block");
        let [lower, upper] =
            BlockHalf::BOTH.map(|half| block_on(run_half(&storage, &split, half)).expect("half"));
        block_on(merge_halves(
            &storage,
            &split,
            &lower.handoff,
            &upper.handoff,
        ))
        .expect("merge");
        let (want, got) = (storage.bucket("zwhole"), storage.bucket("zsplit"));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        let differ: Vec<&String> = want
            .keys()
            .filter(|name| got[*name] != want[*name])
            .collect();
        assert!(differ.is_empty(), "{differ:?}");

        let info = layout::volume_info(BBOX, MINZ, MAXZ, [8.0; 3], Encoding::Raw).expect("info");
        let zarr = layout::zarr_scales(BBOX, MINZ, MAXZ, [8.0; 3]).expect("scales");
        let mut zarr_shards = 0;
        for (scale, array) in info.scales().iter().zip(&zarr) {
            let prefix = format!("neuroglancer/raw/{}/", scale.key());
            for (name, file) in want.iter().filter(|(name, _)| name.starts_with(&prefix)) {
                let chunks = decode_shard(scale.sharding(), file).expect("raw shard");
                let mut zarr_file = None;
                for (id, voxels) in chunks {
                    let cell = crate::precomputed::morton::decode(id, scale.morton_bits());
                    let per = array.chunks_per_shard();
                    let place = std::array::from_fn(|axis| cell[axis] / per[axis]);
                    let zname = layout::zarr_shard_name(array, place);
                    let file = zarr_file.get_or_insert_with(|| {
                        let bytes = want
                            .get(&zname)
                            .unwrap_or_else(|| panic!("{zname} of {name}"));
                        shard::decode_shard(bytes, per).expect("zarr shard")
                    });
                    let [x, y, z] = std::array::from_fn(|axis| cell[axis] % per[axis]);
                    let at = ((z * per[1] + y) * per[0] + x) as usize;
                    let inner = file[at].as_ref().expect("the chunk is there");
                    assert!(
                        codec::decode_chunk(inner).expect("gzip") == voxels,
                        "{zname}"
                    );
                }
                zarr_shards += 1;
            }
        }
        let listed = want
            .keys()
            .filter(|n| n.starts_with("ome-zarr/") && n.contains("/c/"));
        assert_eq!(listed.count(), zarr_shards);
        assert_eq!(zarr_shards, 6, "two at scale 0, one at each other scale");

        let only = NgShardRequest {
            format: OutputFormat::OmeZarr,
            ..request("zonly", false)
        };
        write_info(&storage, &only);
        let written = block_on(run(&storage, &only)).expect("zarr only");
        let got = storage.bucket("zonly");
        assert!(
            got.keys()
                .all(|n| !n.starts_with("neuroglancer/") || n.contains("blocks/"))
        );
        for (name, bytes) in want.iter().filter(|(n, _)| n.contains("/c/")) {
            assert!(got.get(name) == Some(bytes), "{name}");
        }
        assert_eq!(written.objects.len(), zarr_shards + 1);
        assert!(block_on(finished::block_finished(&storage, &only)).expect("checks"));
        let precomputed = NgShardRequest {
            format: OutputFormat::Precomputed,
            ..only.clone()
        };
        assert!(!block_on(finished::block_finished(&storage, &precomputed)).expect("checks"));
    }

    /// A block with no data writes no shard, only its manifest, and is then finished; one whose
    /// listed shard is gone, or that the request no longer describes, is not.
    #[test]
    fn an_empty_block_is_finished_by_its_manifest_alone() {
        let storage = storage_with_stack();
        let empty = NgShardRequest {
            start: [1, 0, 0],
            ..request("whole", false)
        };
        write_info(&storage, &empty);
        assert!(!block_on(finished::block_finished(&storage, &empty)).expect("checks"));
        let written = block_on(run(&storage, &empty)).expect("empty block");
        assert_eq!(written.objects, ["whole/neuroglancer/blocks/1_0_0.json"]);
        assert!(block_on(finished::block_finished(&storage, &empty)).expect("checks"));
        let other = NgShardRequest {
            jpeg_quality: 80,
            ..empty.clone()
        };
        assert!(!block_on(finished::block_finished(&storage, &other)).expect("checks"));

        let full = request("whole", false);
        block_on(run(&storage, &full)).expect("block");
        assert!(block_on(finished::block_finished(&storage, &full)).expect("checks"));
        let shard = full
            .dest
            .object("neuroglancer/jpeg/16.0x16.0x16.0/000000.shard");
        assert!(storage.remove(&shard).is_some());
        assert!(!block_on(finished::block_finished(&storage, &full)).expect("checks"));
    }

    /// Slices listed missing are not read and are black: the block is byte for byte the block
    /// whose packs hold black tiles there (its manifest aside, which records them); without the
    /// list, the absent pack is a 404.
    #[test]
    fn missing_slices_are_black_and_not_read() {
        let storage = storage_with_stack();
        let gaps = [510, 511];
        let black = encode_tile_pack(&vec![0; 1100 * 1024], BBOX[0], BBOX[1], BLOCK_EDGE);
        let black = black.expect("pack");
        let black_stack = location("black-tiles");
        for z in MINZ..=MAXZ {
            let from = layout::tile_pack_object(&location("tiles"), z.into());
            let to = layout::tile_pack_object(&black_stack, z.into());
            let pack = if gaps.contains(&z) {
                storage.remove(&from).expect("a pack");
                black.clone()
            } else {
                block_on(storage.get(&from)).expect("a pack")
            };
            block_on(storage.put(&to, &pack, storage::BINARY)).expect("put");
        }
        let filled = NgShardRequest {
            source: black_stack,
            ..request("filled", false)
        };
        let gapped = NgShardRequest {
            missing: gaps.to_vec(),
            ..request("gapped", false)
        };
        write_info(&storage, &filled);
        write_info(&storage, &gapped);
        let e = block_on(run(&storage, &request("gapped", false))).expect_err("a pack is gone");
        assert_eq!(e.kind(), crate::ErrorKind::NotFound, "{e}");
        block_on(run(&storage, &filled)).expect("black packs");
        block_on(run(&storage, &gapped)).expect("missing listed");
        let (want, got) = (storage.bucket("filled"), storage.bucket("gapped"));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (name, bytes) in want.iter().filter(|(name, _)| name.ends_with(".shard")) {
            assert!(got[name] == *bytes, "{name} differs");
        }
        let manifest = crate::block::manifest::BlockManifest::from_json(
            &got["neuroglancer/blocks/0_0_0.json"],
        );
        assert_eq!(manifest.expect("a manifest").missing, gaps);
        assert!(block_on(finished::block_finished(&storage, &gapped)).expect("checks"));
        // A rerun that no longer lists the gap must build the block again.
        let unlisted = request("gapped", false);
        assert!(!block_on(finished::block_finished(&storage, &unlisted)).expect("checks"));
    }

    #[test]
    fn merge_names_a_bad_handoff() {
        // No slice in the lower half: a hand-off without computing a slab.
        let storage = MemoryStorage::default();
        let split = NgShardRequest {
            minz: 600,
            maxz: 600,
            ..request("split", false)
        };
        write_info(&storage, &split);
        let lower = block_on(run_half(&storage, &split, BlockHalf::Lower)).expect("half");
        let e = block_on(merge_halves(
            &storage,
            &split,
            &lower.handoff,
            &lower.handoff,
        ))
        .expect_err("lower twice");
        assert_eq!(e.kind(), crate::ErrorKind::BadRequest);
        assert_eq!(e.message(), "upper: the hand-off is the lower half's");
        let e =
            block_on(merge_halves(&storage, &split, &lower.handoff, b"junk")).expect_err("junk");
        assert!(e.message().starts_with("upper: "), "{e}");
    }

    #[test]
    fn an_info_of_another_stack_is_a_bad_bbox() {
        let info = layout::volume_info(
            [1500, 700],
            3,
            1030,
            [8.0; 3],
            crate::precomputed::codec::Encoding::Raw,
        )
        .expect("info");
        let request = |bbox, maxz| NgShardRequest {
            bbox,
            maxz,
            ..request("lab", false)
        };
        // Same blocks, other numbers: minz and exact sizes do not matter, whole blocks do.
        check_info_matches_request(&info, "info", &request([2048, 1024], 2047))
            .expect("same scale-0 size");
        let e = check_info_matches_request(&info, "lab/info", &request([1500, 700], 2048))
            .expect_err("one block deeper");
        assert_eq!(e.kind(), crate::ErrorKind::BadRequest);
        assert_eq!(
            e.to_string(),
            "bbox: the volume's info lab/info has size Some([2048, 1024, 2048]) at scale 0, but \
             bbox [1500, 700] and maxz 2048 give Some([2048, 1024, 3072])"
        );
    }
}
