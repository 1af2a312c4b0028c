//! emwrite's volume layout: blocks, scales, sharding and object names, each rule defined once.
//!
//! docs/design.md §4 fixes these choices; the format modules ([`crate::precomputed`],
//! [`crate::tilepack`]) implement the formats for any parameters and know nothing of these, and
//! the tasks, the block engine ([`crate::block`]) and the host (which plans one task per block
//! and verifies volumes block by block) take emwrite's parameters from here.
//!
//! The volume is cut into blocks of [`BLOCK_EDGE`]³ voxels, one ngshard task each. A block is
//! [`BLOCK_CHUNKS`]³ chunks of [`CHUNK_EDGE`]³ at scale 0, and each of the [`SCALE_COUNT`]
//! scales halves it, down to a single chunk; the sharding ([`SHARDING_BITS`]) gives every block
//! shards of its own at every scale, so block tasks never write the same object.

use std::ops::{Range, RangeInclusive};

use crate::Result;
use crate::precomputed::codec::Encoding;
use crate::precomputed::info::{Scale, VolumeInfo};
use crate::precomputed::morton;
use crate::precomputed::sharding::ShardingSpec;
use crate::request::wire::{self, OutputFormat};
use crate::storage::location::{Location, ObjectPath};
use crate::tilepack::TilePackHeader;
use crate::zarr::metadata::{METADATA_FILE, ZarrScale};

/// Edge of a block in voxels: the unit of one ngshard task, the tile edge of the tile packs it
/// reads, and the only `shard-size` the original's layout supports.
pub const BLOCK_EDGE: u32 = 1024;

/// Edge of a chunk in voxels, at every scale.
pub const CHUNK_EDGE: u32 = 64;

/// Chunks per block edge at scale 0 (16); scale k has `BLOCK_CHUNKS >> k`.
pub const BLOCK_CHUNKS: u32 = BLOCK_EDGE / CHUNK_EDGE;

/// Number of scales (5): at the coarsest a block is a single chunk, and a coarser scale would mix
/// several blocks in one chunk, so no block task could write it alone.
pub const SCALE_COUNT: usize = BLOCK_CHUNKS.ilog2() as usize + 1;

/// `(preshift_bits, shard_bits)` for scales 0–4, with no minishard bits.
///
/// Scale k has blocks of (16 >> k)³ chunks, i.e. 3·(4 − k) Morton bits: preshift 9 leaves 8
/// shards per block at scale 0 (the block's fourth bit level), and from scale 1 on the preshift
/// covers the whole block, so a block is one shard. No block shares a shard with another, so block
/// tasks never collide.
pub const SHARDING_BITS: [(u32, u32); SCALE_COUNT] = [(9, 24), (9, 21), (6, 21), (3, 21), (0, 21)];

/// Chunks per block edge at scale `k`: [`BLOCK_CHUNKS`] at scale 0, halved at each coarser
/// scale, 1 at the coarsest, and 0 past it.
///
/// ```
/// use emwrite::layout::block_chunks;
/// assert_eq!([0, 1, 4, 5].map(block_chunks), [16, 8, 1, 0]);
/// ```
pub fn block_chunks(k: usize) -> u32 {
    u32::try_from(k)
        .ok()
        .and_then(|k| BLOCK_CHUNKS.checked_shr(k))
        .unwrap_or(0)
}

/// The chunk grid cells of block `block` = `[bx, by, bz]` at scale `k` that lie inside the
/// scale's grid of `grid` cells, per axis: [`block_chunks`]`(k)` cells from `b · block_chunks(k)`,
/// clipped to the grid (empty where the block lies past it).
///
/// ```
/// use emwrite::layout::block_cells;
/// assert_eq!(block_cells([1, 0, 0], 1, [12, 8, 8]), [8..12, 0..8, 0..8]);
/// assert_eq!(block_cells([2, 0, 0], 0, [20, 16, 16])[0], 20..20);
/// ```
pub fn block_cells(block: [u64; 3], k: usize, grid: [u64; 3]) -> [Range<u64>; 3] {
    let cells = u64::from(block_chunks(k));
    std::array::from_fn(|axis| {
        let first = block[axis].saturating_mul(cells);
        first.min(grid[axis])..first.saturating_add(cells).min(grid[axis])
    })
}

/// emwrite's sharding of scales 0–4 ([`SHARDING_BITS`]): preshift 9, 9, 6, 3, 0; shard bits
/// 24, 21, 21, 21, 21; no minishard bits.
///
/// ```
/// let [s0, .., s4] = emwrite::layout::scale_sharding();
/// assert_eq!((s0.preshift_bits(), s0.shard_bits()), (9, 24));
/// assert_eq!((s4.preshift_bits(), s4.shard_bits()), (0, 21));
/// ```
pub fn scale_sharding() -> [ShardingSpec; SCALE_COUNT] {
    SHARDING_BITS.map(|(preshift_bits, shard_bits)| {
        // At most 24 + 9 bits: within what a spec allows.
        ShardingSpec::new(preshift_bits, 0, shard_bits).expect("emwrite's bit counts are valid")
    })
}

/// emwrite's info for a stack of `bbox` = `[width, height]` slices numbered `minz..=maxz`, with
/// voxels of `resolution_nm` = `[x, y, z]` nm at scale 0, and chunks in `encoding`.
///
/// Scale 0 covers x in [0, W), y in [0, H) and z in [0, maxz] (slice numbers are z
/// coordinates), each rounded up to a multiple of [`BLOCK_EDGE`] so that every ngshard block lies
/// inside it; scale k has size `size0 >> k`, resolution `resolution_nm · 2^k` on each axis
/// (every scale halves all three axes, whatever the voxels' shape), [`CHUNK_EDGE`]³
/// chunks and the sharding [`scale_sharding`] gives it. The original's extra keys are kept:
/// `realsize` = `[W, H, maxz − minz + 1]` and `realoffset` = `[0, 0, minz]`. Arithmetic
/// saturates, so nonsense (maxz < minz) gives a nonsense info, not a panic; the request parser
/// rejects it first.
///
/// ```
/// use emwrite::layout::volume_info;
/// use emwrite::precomputed::codec::Encoding;
/// use emwrite::precomputed::info::VolumeInfo;
/// let info = volume_info([1500, 700], 3, 1030, [8.0; 3], Encoding::Jpeg)?;
/// let keys: Vec<&str> = info.scales().iter().map(|s| s.key()).collect();
/// assert_eq!(keys[..2], ["8.0x8.0x8.0", "16.0x16.0x16.0"]);
/// assert_eq!(keys[4], "128.0x128.0x128.0");
/// assert_eq!(info.scales()[0].size(), [2048, 1024, 2048]);
/// assert_eq!(VolumeInfo::from_json(&info.to_json()?)?, info);
/// # Ok::<(), emwrite::Error>(())
/// ```
pub fn volume_info(
    bbox: [u32; 2],
    minz: u32,
    maxz: u32,
    resolution_nm: [f64; 3],
    encoding: Encoding,
) -> Result<VolumeInfo> {
    let size0 = scale0_size(bbox, maxz);
    let scales = (0u32..)
        .zip(scale_sharding())
        .map(|(k, sharding)| {
            let resolution = resolution_nm.map(|nm| nm * f64::from(1u32 << k));
            let size = size0.map(|voxels| voxels >> k);
            let chunk = [CHUNK_EDGE.into(); 3];
            Scale::new(
                scale_key(resolution),
                size,
                resolution,
                chunk,
                encoding,
                sharding,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let [width, height] = bbox.map(u64::from);
    let depth = u64::from(maxz)
        .saturating_sub(minz.into())
        .saturating_add(1);
    VolumeInfo::new(
        scales,
        Some([width, height, depth]),
        Some([0, 0, minz.into()]),
    )
}

/// Scale 0's size for a stack of `bbox` = `[width, height]` slices up to `maxz`: x in [0, W),
/// y in [0, H) and z in [0, maxz], each rounded up to whole blocks so that every ngshard block
/// lies inside it.
///
/// ```
/// assert_eq!(emwrite::layout::scale0_size([1500, 700], 1030), [2048, 1024, 2048]);
/// ```
pub fn scale0_size(bbox: [u32; 2], maxz: u32) -> [u64; 3] {
    let block = u64::from(BLOCK_EDGE);
    let [width, height] = bbox.map(u64::from);
    [width, height, u64::from(maxz) + 1].map(|voxels| voxels.div_ceil(block) * block)
}

/// A scale key from its resolution: each axis formatted with Rust's shortest round-trip float
/// formatting (`{:?}`), which keeps one decimal for whole numbers, as the original's
/// `"<r·2^k>.0"` did: 8 → `"8.0"`, 16 → `"16.0"`, 4.5 → `"4.5"`, 3.3·2 → `"6.6"`. For resolutions
/// people use this is also what Python's `str(float)` prints.
fn scale_key(resolution_nm: [f64; 3]) -> String {
    let [x, y, z] = resolution_nm;
    format!("{x:?}x{y:?}x{z:?}")
}

/// Inner chunks per Zarr shard edge (xyz) at `scale`: the box of chunks one of its precomputed
/// shards holds (the ids sharing the bits above the preshift and minishard bits,
/// [`morton::low_bits_per_axis`]), so that a Zarr shard holds exactly the chunks of one
/// precomputed shard. With [`SHARDING_BITS`] that is 8 chunks per edge at scales 0 and 1 (8
/// shards per block, then 1), 4, 2 and 1 (the whole block) at scales 2–4. A block therefore owns
/// whole Zarr shards wherever it owns whole precomputed shards, the halves own whole scale-0
/// shards, and the engine's shard of raw chunks becomes one Zarr shard ([`crate::block::zarr`]).
pub fn zarr_shard_chunks(scale: &Scale) -> [u64; 3] {
    let sharding = scale.sharding();
    let low_bits = sharding.preshift_bits() + sharding.minishard_bits();
    morton::low_bits_per_axis(scale.morton_bits(), low_bits).map(|bits| 1 << bits)
}

/// The folder of the OME-Zarr image below the destination, beside `neuroglancer/`: its group
/// `zarr.json` and one array per scale. Its Neuroglancer source is `zarr3://<dest>/ome-zarr/`.
pub const ZARR_FOLDER: &str = "ome-zarr";

/// The OME-Zarr image's scales, finest first, for a stack of `bbox` slices up to `maxz` at
/// `resolution_nm`: one array per scale of [`volume_info`], with the same size and voxel size
/// (so the same voxels as the precomputed volume's scale), [`CHUNK_EDGE`]³ inner chunks and
/// shards of [`zarr_shard_chunks`] chunks per edge. Arrays are named `0`, `1`, … below
/// [`ZARR_FOLDER`].
///
/// Everything the Zarr output knows of the layout comes from here: a change to the scales
/// (their sizes, voxel sizes, factors or sharding) changes [`volume_info`], and this follows it.
///
/// ```
/// let scales = emwrite::layout::zarr_scales([1500, 700], 3, 1030, [8.0; 3])?;
/// assert_eq!(scales[0].shape, [2048, 1024, 2048]);
/// assert_eq!(scales[0].shard_shape, [512; 3]);
/// assert_eq!(scales[4].shard_shape, [64; 3]);
/// assert_eq!(scales[4].resolution_nm, [128.0; 3]);
/// # Ok::<(), emwrite::Error>(())
/// ```
pub fn zarr_scales(
    bbox: [u32; 2],
    minz: u32,
    maxz: u32,
    resolution_nm: [f64; 3],
) -> Result<Vec<ZarrScale>> {
    let info = volume_info(bbox, minz, maxz, resolution_nm, Encoding::Raw)?;
    info.scales()
        .iter()
        .enumerate()
        .map(|(k, scale)| {
            let chunk_shape = scale.chunk_size();
            // Shards stay inside the array (`check`): scale sizes are whole blocks.
            let zarr = ZarrScale {
                path: k.to_string(),
                shape: scale.size(),
                shard_shape: std::array::from_fn(|axis| {
                    chunk_shape[axis] * zarr_shard_chunks(scale)[axis]
                }),
                chunk_shape,
                resolution_nm: scale.resolution_nm(),
            };
            zarr.check()?;
            Ok(zarr)
        })
        .collect()
}

/// The attribute of the OME-Zarr group, beside `ome`, that records the stack the image was made
/// from, as the precomputed info's `realsize` and `realoffset` do: `{"bbox": [W, H], "minz": …,
/// "maxz": …}` under the requests' keys. `verify` finds an OME-Zarr-only volume's blocks by it.
pub const ZARR_STACK_ATTRIBUTE: &str = "emwrite";

/// The group attributes of [`ZARR_STACK_ATTRIBUTE`] for a stack of `bbox` slices `minz..=maxz`.
pub fn zarr_stack_attributes(
    bbox: [u32; 2],
    minz: u32,
    maxz: u32,
) -> serde_json::Map<String, serde_json::Value> {
    let stack = serde_json::json!({wire::BBOX: bbox, wire::MINZ: minz, wire::MAXZ: maxz});
    serde_json::Map::from_iter([(ZARR_STACK_ATTRIBUTE.to_owned(), stack)])
}

/// The stack `(bbox, minz, maxz)` an OME-Zarr group's `zarr.json` records
/// ([`zarr_stack_attributes`]); `None` if it records none.
///
/// ```
/// use emwrite::layout::{zarr_stack_attributes, zarr_stack_of_group};
/// let attributes = serde_json::Value::Object(zarr_stack_attributes([1500, 700], 3, 1030));
/// let group = serde_json::json!({"attributes": attributes}).to_string();
/// assert_eq!(zarr_stack_of_group(group.as_bytes()), Some(([1500, 700], 3, 1030)));
/// assert_eq!(zarr_stack_of_group(b"{}"), None);
/// ```
pub fn zarr_stack_of_group(group: &[u8]) -> Option<([u32; 2], u32, u32)> {
    let group: serde_json::Value = serde_json::from_slice(group).ok()?;
    let stack = &group["attributes"][ZARR_STACK_ATTRIBUTE];
    let number = |value: &serde_json::Value| u32::try_from(value.as_u64()?).ok();
    let bbox = [
        number(&stack[wire::BBOX][0])?,
        number(&stack[wire::BBOX][1])?,
    ];
    Some((
        bbox,
        number(&stack[wire::MINZ])?,
        number(&stack[wire::MAXZ])?,
    ))
}

/// The OME-Zarr group's `zarr.json`: `ome-zarr/zarr.json`.
pub fn zarr_group_object(dest: &Location) -> ObjectPath {
    dest.object(&format!("{ZARR_FOLDER}/{METADATA_FILE}"))
}

/// The `zarr.json` of the array of `scale`: `ome-zarr/<path>/zarr.json`.
pub fn zarr_array_object(dest: &Location, scale: &ZarrScale) -> ObjectPath {
    dest.object(&format!("{ZARR_FOLDER}/{}/{METADATA_FILE}", scale.path))
}

/// The name below the destination of shard `shard` (xyz, in shards) of the array of `scale`,
/// as it is written and block manifests list it: `ome-zarr/0/c/<z>/<y>/<x>`.
pub fn zarr_shard_name(scale: &ZarrScale, shard: [u64; 3]) -> String {
    format!("{ZARR_FOLDER}/{}/{}", scale.path, scale.shard_key(shard))
}

/// One half of a block, cut along z so that two component instances (two cores) can build one
/// block: the lower half holds the block's z ∈ [0, 512), the upper half z ∈ [512, 1024).
///
/// The cut follows the sharding ([`SHARDING_BITS`]): at scale 0 each half owns 4 whole shards,
/// and at scales 1–3 each half owns whole chunk layers of the block's one shard, so a half
/// encodes every chunk of those scales on its own. Only scale 4, where the block is one chunk,
/// straddles the cut: each half holds 64 × 64 × 32 of its voxels. A merge step writes the shards
/// of scales 1–4 from both halves' chunks ([`crate::block::merge`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockHalf {
    /// z ∈ [0, 512) of the block: the first 8 slabs.
    Lower,
    /// z ∈ [512, 1024) of the block: the last 8 slabs.
    Upper,
}

impl BlockHalf {
    /// Both halves, lower first.
    pub const BOTH: [Self; 2] = [Self::Lower, Self::Upper];

    /// The other half of the block.
    pub fn other(self) -> Self {
        match self {
            Self::Lower => Self::Upper,
            Self::Upper => Self::Lower,
        }
    }

    /// This half's share of `count` layers (slabs, or a scale's chunk layers) of a block; `count`
    /// must be even: a scale whose block is one chunk deep does not split (see [`BlockHalf`]).
    ///
    /// ```
    /// use emwrite::layout::BlockHalf;
    /// assert_eq!(BlockHalf::Lower.layers(16), 0..8);
    /// assert_eq!(BlockHalf::Upper.layers(2), 1..2);
    /// ```
    pub fn layers(self, count: u64) -> Range<u64> {
        let half = count / 2;
        match self {
            Self::Lower => 0..half,
            Self::Upper => half..count,
        }
    }

    /// Whether the block's chunk layers at scale `k` divide between the halves: they do where
    /// the block is at least two chunks deep. At the coarsest scale the block is one chunk,
    /// which straddles the halves.
    ///
    /// ```
    /// use emwrite::layout::BlockHalf;
    /// assert!(BlockHalf::divide_scale(3) && !BlockHalf::divide_scale(4));
    /// ```
    pub fn divide_scale(k: usize) -> bool {
        block_chunks(k) >= 2
    }

    /// The name of the half in messages and in the hand-off: `lower` or `upper`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lower => "lower",
            Self::Upper => "upper",
        }
    }
}

/// The encodings a request asks for: JPEG always, raw with `writeRaw`.
pub fn encodings(write_raw: bool) -> &'static [Encoding] {
    if write_raw {
        &[Encoding::Jpeg, Encoding::Raw]
    } else {
        &[Encoding::Jpeg]
    }
}

/// The encodings the block engine builds for a request of `format`: the precomputed ones
/// ([`encodings`]), and raw wherever the OME-Zarr image is written, since its shards are made of
/// the raw chunks ([`crate::block::zarr`]).
///
/// ```
/// use emwrite::layout::engine_encodings;
/// use emwrite::precomputed::codec::Encoding::{Jpeg, Raw};
/// use emwrite::request::OutputFormat;
/// assert_eq!(engine_encodings(OutputFormat::Precomputed, false), [Jpeg]);
/// assert_eq!(engine_encodings(OutputFormat::OmeZarr, true), [Raw]);
/// assert_eq!(engine_encodings(OutputFormat::Both, false), [Jpeg, Raw]);
/// ```
pub fn engine_encodings(format: OutputFormat, write_raw: bool) -> &'static [Encoding] {
    match format {
        OutputFormat::Precomputed => encodings(write_raw),
        OutputFormat::OmeZarr => &[Encoding::Raw],
        OutputFormat::Both => &[Encoding::Jpeg, Encoding::Raw],
    }
}

/// The folder of the volume in `encoding`, below the destination: `neuroglancer/jpeg` or
/// `neuroglancer/raw`. Its Neuroglancer source is `precomputed://<dest>/<this>`.
pub fn volume_prefix(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Jpeg => "neuroglancer/jpeg",
        Encoding::Raw => "neuroglancer/raw",
    }
}

/// The `info` of the volume in `encoding`.
pub fn info_object(dest: &Location, encoding: Encoding) -> ObjectPath {
    dest.object(&format!("{}/info", volume_prefix(encoding)))
}

/// Shard file `file_name` of the scale keyed `scale_key` in the volume of `encoding`, e.g.
/// `neuroglancer/jpeg/8.0x8.0x8.0/000000.shard`.
pub fn shard_object(
    dest: &Location,
    encoding: Encoding,
    scale_key: &str,
    file_name: &str,
) -> ObjectPath {
    dest.object(&shard_name(encoding, scale_key, file_name))
}

/// The name of a shard file below the destination, as [`shard_object`] places it and block
/// manifests list it: `neuroglancer/jpeg/8.0x8.0x8.0/000000.shard`.
pub fn shard_name(encoding: Encoding, scale_key: &str, file_name: &str) -> String {
    format!("{}/{scale_key}/{file_name}", volume_prefix(encoding))
}

/// The folder of the block manifests below the destination: beside the `jpeg/` and `raw/`
/// volumes, so Neuroglancer, which reads only below a volume's folder, never sees them.
pub const BLOCK_MANIFEST_FOLDER: &str = "neuroglancer/blocks";

/// The manifest of block `[bx, by, bz]`, written by its ngshard task after its last shard
/// ([`crate::block::manifest`]): `neuroglancer/blocks/<bx>_<by>_<bz>.json`.
///
/// ```
/// use emwrite::layout::block_manifest_object;
/// use emwrite::storage::location::Location;
/// let dest = Location::parse("dest", "gs://lab/vol").unwrap();
/// assert_eq!(block_manifest_object(&dest, [2, 0, 1]).name, "vol/neuroglancer/blocks/2_0_1.json");
/// ```
pub fn block_manifest_object(dest: &Location, [bx, by, bz]: [u32; 3]) -> ObjectPath {
    dest.object(&format!("{BLOCK_MANIFEST_FOLDER}/{bx}_{by}_{bz}.json"))
}

/// The aligned PNG of raw slice `img`: `<dest>/align/<img>`, as the original named it.
pub fn aligned_slice_object(dest: &Location, img: &str) -> ObjectPath {
    dest.object(&format!("align/{img}"))
}

/// The raw slice `img` a stack names: `<dest>/raw/<img>`, as the original named it. `img` must
/// already be checked.
pub fn raw_slice_object(dest: &Location, img: &str) -> ObjectPath {
    dest.object(&format!("raw/{img}"))
}

/// The tile pack of slice `z`: `<source>/<z>`, as the original named it.
pub fn tile_pack_object(source: &Location, z: u64) -> ObjectPath {
    source.object(&z.to_string())
}

/// The geometry every tile pack of a `bbox` = `[width, height]` stack must have to be read by
/// blocks: tiles of one block edge, so the tile of block `(bx, by)` is tile `(bx, by)`.
pub fn tile_pack_header(bbox: [u32; 2]) -> TilePackHeader {
    TilePackHeader {
        width: bbox[0].into(),
        height: bbox[1].into(),
        tile_size: BLOCK_EDGE.into(),
    }
}

/// Blocks per axis of a stack of `bbox` = `[width, height]` slices numbered up to `maxz`: the
/// volume starts at z = 0 (slice numbers are z coordinates), so blocks below `minz` exist and are
/// empty.
///
/// ```
/// use emwrite::layout::block_grid;
/// assert_eq!(block_grid([1300, 1100], 40), [2, 2, 1]);
/// assert_eq!(block_grid([1024, 1024], 1024), [1, 1, 2]);
/// ```
pub fn block_grid(bbox: [u32; 2], maxz: u32) -> [u32; 3] {
    // At most 2^32 / 1024 blocks per axis: each fits a u32.
    blocks_of_size(scale0_size(bbox, maxz)).map(|blocks| blocks as u32)
}

/// Blocks per axis of a volume whose scale 0 is `size0` voxels (as its info says): the grid of
/// [`block_grid`], for a volume known by its info alone.
///
/// ```
/// use emwrite::layout::blocks_of_size;
/// assert_eq!(blocks_of_size([2048, 1024, 3072]), [2, 1, 3]);
/// ```
pub fn blocks_of_size(size0: [u64; 3]) -> [u64; 3] {
    size0.map(|voxels| voxels.div_ceil(BLOCK_EDGE.into()))
}

/// The blocks that hold slices `minz..=maxz` of a `bbox` stack, as `[bx, by, bz]`, z outermost
/// and x innermost: one ngshard task each. Blocks entirely below `minz` are left out, as they
/// hold no slice.
///
/// ```
/// use emwrite::layout::stack_blocks;
/// let blocks: Vec<_> = stack_blocks([2000, 1000], 1500, 2100).collect();
/// assert_eq!(blocks, [[0, 0, 1], [1, 0, 1], [0, 0, 2], [1, 0, 2]]);
/// ```
pub fn stack_blocks(bbox: [u32; 2], minz: u32, maxz: u32) -> impl Iterator<Item = [u32; 3]> {
    let [nx, ny, nz] = block_grid(bbox, maxz);
    (minz / BLOCK_EDGE..nz)
        .flat_map(move |bz| (0..ny).flat_map(move |by| (0..nx).map(move |bx| [bx, by, bz])))
}

/// The first voxel of block `block` = `[bx, by, bz]`, xyz.
pub fn block_origin(block: [u32; 3]) -> [u64; 3] {
    block.map(|b| u64::from(b) * u64::from(BLOCK_EDGE))
}

/// The slices among `depth` slices from `z0` that exist, i.e. lie in `[minz, maxz]`; empty if
/// none does.
///
/// The original read `[max(block start, minz), +1023]`, which runs into the next block when minz
/// is not a multiple of 1024; we clip to both ends (docs/design.md §4 "ngshard").
///
/// ```
/// use emwrite::layout::existing_slices;
/// assert_eq!(existing_slices(1024, 64, 1030, 5000), 1030..=1087);
/// assert_eq!(existing_slices(1024, 64, 0, 1050), 1024..=1050);
/// assert!(existing_slices(0, 64, 100, 200).is_empty());
/// ```
pub fn existing_slices(z0: u64, depth: u64, minz: u32, maxz: u32) -> RangeInclusive<u64> {
    z0.max(minz.into())..=(z0 + depth - 1).min(maxz.into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;
    use crate::precomputed::morton;

    #[test]
    fn a_block_is_16_chunks_in_5_scales() {
        assert_eq!(BLOCK_CHUNKS, 16);
        assert_eq!(SCALE_COUNT, 5);
        assert_eq!(
            BLOCK_CHUNKS >> (SCALE_COUNT - 1),
            1,
            "one chunk at the coarsest"
        );
    }

    #[test]
    fn object_names_follow_the_original() {
        let dest = Location::parse("dest", "lab").expect("valid");
        assert_eq!(
            info_object(&dest, Encoding::Raw).name,
            "neuroglancer/raw/info"
        );
        assert_eq!(
            shard_object(&dest, Encoding::Jpeg, "8.0x8.0x8.0", "000000.shard").name,
            "neuroglancer/jpeg/8.0x8.0x8.0/000000.shard"
        );
        assert_eq!(tile_pack_object(&dest, 17).name, "17");
    }

    #[test]
    fn tile_of_a_block_is_by_times_tiles_per_row_plus_bx() {
        // docs/design.md §4: tile index = by·ceil(W/1024) + bx.
        let header = tile_pack_header([2500, 1100]);
        assert_eq!(header.tiles_xy(), [3, 2]);
        assert_eq!(header.tile_index([1, 1]), 3 + 1);
    }

    #[test]
    fn stack_blocks_start_at_the_block_of_minz() {
        let blocks: Vec<_> = stack_blocks([1024, 1025], 1023, 1024).collect();
        assert_eq!(blocks, [[0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]]);
        let grid = block_grid([1024, 1025], 1024);
        assert!(
            blocks
                .iter()
                .all(|b| (0..3).all(|axis| b[axis] < grid[axis]))
        );
    }

    #[test]
    fn existing_slices_stop_at_the_block_end_and_at_maxz() {
        // minz not a multiple of 1024: the original's range ran into the next block.
        assert_eq!(existing_slices(1024 + 960, 64, 1030, 9000), 1984..=2047);
        assert_eq!(existing_slices(0, 64, 3, 10), 3..=10);
        assert!(existing_slices(64, 64, 3, 10).is_empty());
    }

    #[test]
    fn block_cells_halve_with_each_scale_and_stop_at_the_grid() {
        // A 1300-voxel-wide volume: 21 chunks at scale 0, 11 at scale 1, 1 at scale 4.
        assert_eq!(
            block_cells([1, 0, 0], 0, [21, 16, 16]),
            [16..21, 0..16, 0..16]
        );
        assert_eq!(block_cells([1, 0, 0], 1, [11, 8, 8]), [8..11, 0..8, 0..8]);
        assert_eq!(block_cells([1, 0, 0], 4, [2, 1, 1]), [1..2, 0..1, 0..1]);
        assert_eq!(block_cells([u64::MAX, 0, 0], 0, [2, 1, 1])[0], 2..2);
        assert!((0..SCALE_COUNT).all(|k| block_chunks(k) == BLOCK_CHUNKS >> k));
        assert_eq!(block_chunks(usize::MAX), 0);
    }

    #[test]
    fn info_json_of_scale_0() {
        let info = volume_info([1500, 700], 3, 1030, [8.0; 3], Encoding::Jpeg).expect("info");
        let json: serde_json::Value =
            serde_json::from_slice(&info.to_json().expect("serializes")).expect("valid json");
        assert_eq!(json["realsize"], json!([1500, 700, 1028])); // maxz − minz + 1 slices
        assert_eq!(json["realoffset"], json!([0, 0, 3]));
        // 1500, 700 and maxz + 1 = 1031 rounded up to 1024s; the rest of each scale is in
        // five_scale_table_for_a_small_volume, and the JSON's shape is the format's
        // (precomputed::info).
        assert_eq!(json["scales"][0]["size"], json!([2048, 1024, 2048]));
        assert_eq!(json["scales"][0]["chunk_sizes"], json!([[64, 64, 64]]));
    }

    #[test]
    fn five_scale_table_for_a_small_volume() {
        let info = volume_info([1500, 700], 3, 1030, [8.0; 3], Encoding::Raw).expect("info");
        /// key, size, resolution, preshift bits, shard bits
        type Row<'a> = (&'a str, [u64; 3], [f64; 3], u32, u32);
        let table: Vec<Row> = info
            .scales()
            .iter()
            .map(|s| {
                let sharding = s.sharding();
                (
                    s.key(),
                    s.size(),
                    s.resolution_nm(),
                    sharding.preshift_bits(),
                    sharding.shard_bits(),
                )
            })
            .collect();
        #[rustfmt::skip]
        let want: [Row; 5] = [
            // key                  size                 resolution            preshift shard
            ("8.0x8.0x8.0",         [2048, 1024, 2048], [8.0, 8.0, 8.0],       9, 24),
            ("16.0x16.0x16.0",      [1024, 512, 1024],  [16.0, 16.0, 16.0],    9, 21),
            ("32.0x32.0x32.0",      [512, 256, 512],    [32.0, 32.0, 32.0],    6, 21),
            ("64.0x64.0x64.0",      [256, 128, 256],    [64.0, 64.0, 64.0],    3, 21),
            ("128.0x128.0x128.0",   [128, 64, 128],     [128.0, 128.0, 128.0], 0, 21),
        ];
        assert_eq!(table, want);
        for scale in info.scales() {
            assert_eq!(scale.encoding(), Encoding::Raw);
            assert_eq!(scale.chunk_size(), [64; 3]);
            assert_eq!(scale.voxel_offset(), [0; 3]);
            scale.check_shard_capacity().expect("small volume fits");
        }
        assert_eq!(info.scales()[4].grid(), [2, 1, 2]);
    }

    #[test]
    fn a_zarr_shard_is_the_box_of_one_precomputed_shard() {
        let info = volume_info([3072, 1024], 0, 2047, [8.0; 3], Encoding::Raw).expect("info");
        let per_edge: Vec<[u64; 3]> = info.scales().iter().map(zarr_shard_chunks).collect();
        assert_eq!(per_edge, [[8; 3], [8; 3], [4; 3], [2; 3], [1; 3]]);
        let zarr = zarr_scales([3072, 1024], 0, 2047, [8.0; 3]).expect("scales");
        for (scale, array) in info.scales().iter().zip(&zarr) {
            assert_eq!(array.shape, scale.size());
            assert_eq!(array.resolution_nm, scale.resolution_nm());
        }
        assert_eq!(zarr[0].shard_shape, [512; 3]);
        assert_eq!(zarr[4].shard_shape, [64; 3]);
        // Voxels per axis: each array's scale transform is its scale's resolution.
        let resolution = [4.0, 4.0, 40.0];
        let info = volume_info([3072, 1024], 0, 2047, resolution, Encoding::Raw).expect("info");
        let zarr = zarr_scales([3072, 1024], 0, 2047, resolution).expect("scales");
        for (scale, array) in info.scales().iter().zip(&zarr) {
            assert_eq!(array.resolution_nm, scale.resolution_nm());
        }
        assert_eq!(zarr[0].resolution_nm, resolution);
    }

    #[test]
    fn exact_multiples_are_not_rounded_further() {
        // maxz = 1023: slices 0..=1023 are exactly one block deep.
        let info = volume_info([2048, 1024], 0, 1023, [8.0; 3], Encoding::Jpeg).expect("info");
        assert_eq!(info.scales()[0].size(), [2048, 1024, 1024]);
    }

    #[test]
    fn anisotropic_voxels_keep_their_shape_at_every_scale() {
        let info = volume_info([1500, 700], 3, 1030, [8.0, 8.0, 40.0], Encoding::Jpeg);
        let info = info.expect("info");
        let keys: Vec<&str> = info.scales().iter().map(|s| s.key()).collect();
        assert_eq!(keys[..2], ["8.0x8.0x40.0", "16.0x16.0x80.0"]);
        assert_eq!(info.scales()[4].resolution_nm(), [128.0, 128.0, 640.0]);
    }

    #[test]
    fn keys_for_non_integer_resolutions() {
        let keys = |r: f64| -> Vec<String> {
            volume_info([1, 1], 0, 0, [r; 3], Encoding::Jpeg)
                .expect("info")
                .scales()
                .iter()
                .map(|s| s.key().to_owned())
                .collect()
        };
        assert_eq!(
            keys(4.5),
            [
                "4.5x4.5x4.5",
                "9.0x9.0x9.0",
                "18.0x18.0x18.0",
                "36.0x36.0x36.0",
                "72.0x72.0x72.0"
            ]
        );
        assert_eq!(keys(3.3)[..2], ["3.3x3.3x3.3", "6.6x6.6x6.6"]);
        assert_eq!(keys(8.0)[1], "16.0x16.0x16.0");
    }

    #[test]
    fn the_largest_frame_fits_the_sharding() {
        // 2^17 voxels per axis, the largest frame edge a request may ask for, just fits.
        let edge = crate::request::MAX_FRAME_EDGE;
        let info = volume_info([edge, edge], 0, edge - 1, [8.0; 3], Encoding::Jpeg).expect("info");
        for scale in info.scales() {
            scale.check_shard_capacity().expect("fits");
        }
        // One more bit per axis would not: precomputed::info's ids_wider_than_the_sharding.
    }

    /// Shards touched by the block at `block` (units of 1024 voxels) at `scale`, for a volume of
    /// `size0` voxels at scale 0, with emwrite's specs and 64³ chunks.
    fn shards_of_block(size0: [u64; 3], block: [u64; 3], scale: usize) -> BTreeSet<u64> {
        let spec = scale_sharding()[scale];
        let size = size0.map(|s| s >> scale);
        let grid = size.map(|s| s.div_ceil(64));
        let bits = morton::bits_per_axis(grid);
        let cells_per_block = 16 >> scale;
        let mut shards = BTreeSet::new();
        for z in 0..cells_per_block {
            for y in 0..cells_per_block {
                for x in 0..cells_per_block {
                    let [bx, by, bz] = block.map(|b| b * cells_per_block);
                    let id = morton::encode([bx + x, by + y, bz + z], bits);
                    shards.insert(spec.shard_and_minishard(id).0);
                }
            }
        }
        shards
    }

    #[test]
    fn emwrite_block_is_8_shards_at_scale_0_and_1_at_scales_1_to_4() {
        let size0 = [3072, 2048, 2048];
        let mut seen: [BTreeSet<u64>; 5] = Default::default();
        for bz in 0..2 {
            for by in 0..2 {
                for bx in 0..3 {
                    for (scale, seen) in seen.iter_mut().enumerate() {
                        let shards = shards_of_block(size0, [bx, by, bz], scale);
                        let want = if scale == 0 { 8 } else { 1 };
                        assert_eq!(shards.len(), want, "block {bx},{by},{bz} scale {scale}");
                        // No shard is shared with another block.
                        assert!(seen.is_disjoint(&shards), "scale {scale} shares {shards:?}");
                        seen.extend(shards);
                    }
                }
            }
        }
    }
}
