//! emwrite's volume layout: blocks, scales, sharding and object names, each rule defined once.
//!
//! docs/design.md §4 fixes these choices; the format modules ([`crate::precomputed`],
//! [`crate::tilepack`]) implement the formats for any parameters and know nothing of these, and
//! the tasks, the block engine ([`crate::block`]) and the host (which plans one task per block
//! and verifies volumes block by block) take emwrite's parameters from here.
//!
//! The volume is cut into blocks of [`BLOCK_EDGE`]³ voxels, one ngshard task each. A block is
//! [`BLOCK_CHUNKS`]³ chunks of [`CHUNK_EDGE`]³ at scale 0, and each of the [`SCALE_COUNT`]
//! scales halves it in x and y, down to a single chunk, and in z where the voxels would otherwise
//! grow flatter than cubes ([`ScaleShift`]); the sharding ([`ScaleShift::sharding`]) gives every
//! block shards of its own at every scale, so block tasks never write the same object.

use std::ops::{Range, RangeInclusive};

use crate::precomputed::codec::Encoding;
use crate::precomputed::info::{Scale, VolumeInfo};
use crate::precomputed::morton;
use crate::precomputed::sharding::ShardingSpec;
use crate::request::wire::{self, OutputFormat};
use crate::storage::location::{Location, ObjectPath};
use crate::tilepack::TilePackHeader;
use crate::zarr::metadata::{METADATA_FILE, ZarrScale};
use crate::{Error, Result};

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

/// Largest aligned frame edge a request may ask for. alignedslice holds a strip of about 1024 rows
/// of the frame and its tiles (`tasks::aligned_slice`), so the edge bounds its memory: 128 MiB of
/// strip at 2^17. The sharding ([`ScaleShift::sharding`]) has room for chunk ids of volumes this
/// wide.
pub const MAX_FRAME_EDGE: u32 = 1 << 17;

/// At most 2^3 = 8 chunks per shard edge: a scale-0 shard is 512³ voxels (128 MiB raw), a block
/// holds 8 of them, and each half of a block ([`BlockHalf`]) owns 4 whole ones.
const SHARD_EDGE_CHUNK_BITS: u32 = 3;

/// The preshift bits of every scale with shards of more than one chunk: a Morton id's x0 and y0,
/// so that a minishard is 2×2×1 chunks in one z layer ([`ScaleShift::sharding`]). Fewer would
/// make one minishard (and one minishard index for a reader to fetch) per chunk; more would take
/// in z0, and a minishard would wait for the next layer.
const MINISHARD_PRESHIFT_BITS: u32 = 2;

/// How the voxels of one scale relate to scale 0's: along axis `a`, one voxel of the scale is the
/// mean of `2^shift[a]` voxels of scale 0.
///
/// Every scale halves x and y, so scale k shifts them by k. z halves only where x and y would
/// otherwise grow past it ([`scale_shifts`]): cubic voxels halve z at every scale, serial-section
/// voxels of 8×8×40 nm keep z until the third scale. A block is still [`BLOCK_EDGE`]³ voxels of
/// scale 0, so at a scale it is [`ScaleShift::block_chunks`] chunks per axis: fewer in x and y
/// than in z where z was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScaleShift(pub [u32; 3]);

impl ScaleShift {
    /// Chunks per block edge at this scale, per axis: [`BLOCK_CHUNKS`] `>> shift`, 0 past the
    /// coarsest scale.
    ///
    /// ```
    /// use emwrite::layout::ScaleShift;
    /// assert_eq!(ScaleShift([0, 0, 0]).block_chunks(), [16, 16, 16]);
    /// assert_eq!(ScaleShift([3, 3, 1]).block_chunks(), [2, 2, 8]);
    /// assert_eq!(ScaleShift([5, 5, 5]).block_chunks(), [0, 0, 0]);
    /// ```
    pub fn block_chunks(self) -> [u32; 3] {
        self.0
            .map(|shift| BLOCK_CHUNKS.checked_shr(shift).unwrap_or(0))
    }

    /// Whether this scale halves z of `finer`, the scale before it (else it keeps z: 2×2×1
    /// means).
    pub fn halves_z_of(self, finer: Self) -> bool {
        self.0[2] > finer.0[2]
    }

    /// Chunks per edge of this scale's shards, as a power of two: the largest cube of chunks that
    /// a block holds whole, at most [`SHARD_EDGE_CHUNK_BITS`] per axis. So a block is 8 shards at
    /// scale 0, and a whole number of shards at every scale: one where it is a cube of chunks, a
    /// stack of them along z where z was kept. No block shares a shard with another, so block
    /// tasks never collide. For cubic voxels this gives 3, 3, 2, 1, 0 (8, 8, 4, 2 and 1 chunks).
    ///
    /// ```
    /// use emwrite::layout::ScaleShift;
    /// assert_eq!(ScaleShift([0, 0, 0]).shard_edge_bits(), 3);
    /// assert_eq!(ScaleShift([3, 3, 1]).shard_edge_bits(), 1);
    /// ```
    pub fn shard_edge_bits(self) -> u32 {
        self.block_chunks()
            .iter()
            .map(|&chunks| chunks.max(1).ilog2())
            .min()
            .unwrap_or(0)
            .min(SHARD_EDGE_CHUNK_BITS)
    }

    /// emwrite's sharding of this scale: shards of [`ScaleShift::shard_edge_bits`] chunks per
    /// edge, each split into minishards of one z layer.
    ///
    /// A shard is the ids sharing the bits above the preshift and minishard bits, the low
    /// `3 · shard_edge_bits` bits of a Morton id (`morton::low_bits_per_axis`): its cube. Of those,
    /// the preshift takes [`MINISHARD_PRESHIFT_BITS`], x0 and y0, and the minishard bits the rest,
    /// z0 up: each minishard is 2×2×1 chunks, and lies in one z layer. The pyramid completes a
    /// block layer by layer, and a shard file holds its minishards by the layer they lie in
    /// ([`crate::precomputed::shard::ChunkOrder`]), so each layer's chunks go out as soon as it
    /// is done and no chunk waits for a later one (docs/design.md §5, "Sharding"). The shard bits
    /// hold the rest of the id of the largest volume ([`MAX_FRAME_EDGE`] per axis). For cubic
    /// voxels this gives preshift 2, 2, 2, 2, 0, minishard bits 7, 7, 4, 1, 0 and shard bits 24,
    /// 21, 21, 21, 21.
    ///
    /// ```
    /// use emwrite::layout::ScaleShift;
    /// let spec = ScaleShift([2, 2, 0]).sharding();
    /// let bits = (spec.preshift_bits(), spec.minishard_bits(), spec.shard_bits());
    /// assert_eq!(bits, (2, 4, 23));
    /// ```
    pub fn sharding(self) -> ShardingSpec {
        let shard_low_bits = 3 * self.shard_edge_bits();
        let id_bits: u32 = self
            .0
            .iter()
            .map(|&shift| (MAX_FRAME_EDGE / CHUNK_EDGE).ilog2().saturating_sub(shift))
            .sum();
        let preshift_bits = shard_low_bits.min(MINISHARD_PRESHIFT_BITS);
        // At most 33 bits in all: within what a spec allows.
        ShardingSpec::new(
            preshift_bits,
            shard_low_bits - preshift_bits,
            id_bits - shard_low_bits,
        )
        .expect("emwrite's bit counts are valid")
    }
}

/// emwrite's scales for voxels of `resolution_nm` = `[x, y, z]` at scale 0: scale k shifts x and y
/// by k, and shifts z one more than scale k − 1 did only if the finer of x and y, halved again,
/// would pass z (as igneous downsamples serial-section stacks 2×2×1): 8×8×40 nm gives 16×16×40,
/// 32×32×40, 64×64×80, 128×128×160; cubic voxels halve all three axes at every scale.
///
/// ```
/// use emwrite::layout::{ScaleShift, scale_shifts};
/// let z = scale_shifts([8.0, 8.0, 40.0]).map(|ScaleShift(shift)| shift[2]);
/// assert_eq!(z, [0, 0, 0, 1, 2]);
/// assert_eq!(scale_shifts([8.0; 3])[4], ScaleShift([4, 4, 4]));
/// ```
pub fn scale_shifts(resolution_nm: [f64; 3]) -> [ScaleShift; SCALE_COUNT] {
    let mut z = 0;
    std::array::from_fn(|k| {
        // k < SCALE_COUNT = 5.
        let k = k as u32;
        let xy = resolution_nm[0].min(resolution_nm[1]) * f64::from(1u32 << k);
        if k > 0 && xy > resolution_nm[2] * f64::from(1u32 << z) {
            z += 1;
        }
        ScaleShift([k, k, z])
    })
}

/// The shifts of `scales` (finest first), checked to be emwrite's for their scale 0's voxel size
/// ([`scale_shifts`]): every scale's voxel size is scale 0's times `2^shift` on each axis, exactly
/// (powers of two multiply floats exactly). What the block engine and `verify` build on: a volume
/// laid out by other rules is refused, not misread.
pub fn shifts_of_scales(scales: &[Scale]) -> Result<Vec<ScaleShift>> {
    let resolutions: Vec<[f64; 3]> = scales.iter().map(Scale::resolution_nm).collect();
    shifts_of_resolutions(&resolutions)
}

/// [`shifts_of_scales`] of the scales' voxel sizes, finest first.
fn shifts_of_resolutions(resolutions: &[[f64; 3]]) -> Result<Vec<ScaleShift>> {
    let Some(&scale0) = resolutions.first() else {
        return Ok(Vec::new());
    };
    let shifts = scale_shifts(scale0);
    if resolutions.len() > shifts.len() {
        return Err(Error::internal(format_args!(
            "{} scales, emwrite's volumes have at most {SCALE_COUNT}",
            resolutions.len()
        )));
    }
    resolutions
        .iter()
        .zip(shifts)
        .enumerate()
        .map(|(k, (&resolution, shift))| {
            let expected = scaled_resolution(scale0, shift);
            if resolution != expected {
                return Err(Error::internal(format_args!(
                    "scale {k} has voxels of {resolution:?} nm, emwrite's pyramid from \
                     {scale0:?} nm has {expected:?} there"
                )));
            }
            Ok(shift)
        })
        .collect()
}

/// The voxel size of a scale `shift` from scale 0's `resolution_nm`.
fn scaled_resolution(resolution_nm: [f64; 3], ScaleShift(shift): ScaleShift) -> [f64; 3] {
    std::array::from_fn(|axis| resolution_nm[axis] * f64::from(1u32 << shift[axis]))
}

/// The chunk grid cells of block `block` = `[bx, by, bz]` at the scale `shift` that lie inside the
/// scale's grid of `grid` cells, per axis: [`ScaleShift::block_chunks`] cells from
/// `b · block_chunks`, clipped to the grid (empty where the block lies past it).
///
/// ```
/// use emwrite::layout::{ScaleShift, block_cells};
/// assert_eq!(block_cells([1, 0, 0], ScaleShift([1; 3]), [12, 8, 8]), [8..12, 0..8, 0..8]);
/// assert_eq!(block_cells([0, 0, 1], ScaleShift([1, 1, 0]), [8, 8, 32])[2], 16..32);
/// assert_eq!(block_cells([2, 0, 0], ScaleShift([0; 3]), [20, 16, 16])[0], 20..20);
/// ```
pub fn block_cells(block: [u64; 3], shift: ScaleShift, grid: [u64; 3]) -> [Range<u64>; 3] {
    let cells = shift.block_chunks().map(u64::from);
    std::array::from_fn(|axis| {
        let first = block[axis].saturating_mul(cells[axis]);
        first.min(grid[axis])..first.saturating_add(cells[axis]).min(grid[axis])
    })
}

/// emwrite's info for a stack of `bbox` = `[width, height]` slices numbered `minz..=maxz`, with
/// voxels of `resolution_nm` = `[x, y, z]` nm at scale 0, and chunks in `encoding`.
///
/// Scale 0 covers x in [0, W), y in [0, H) and z in [0, maxz] (slice numbers are z
/// coordinates), each rounded up to a multiple of [`BLOCK_EDGE`] so that every ngshard block lies
/// inside it; scale k has, per axis, size `size0 >> shift` and resolution `resolution_nm ·
/// 2^shift` with the shifts of [`scale_shifts`] (x and y halve at every scale, z where the voxels
/// would otherwise grow flatter than cubes), [`CHUNK_EDGE`]³
/// chunks and the sharding [`ScaleShift::sharding`] gives it. The original's extra keys are kept:
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
    let scales = scale_shifts(resolution_nm)
        .into_iter()
        .map(|shift| {
            let resolution = scaled_resolution(resolution_nm, shift);
            let size = std::array::from_fn(|axis| size0[axis] >> shift.0[axis]);
            let chunk = [CHUNK_EDGE.into(); 3];
            Scale::new(
                scale_key(resolution),
                size,
                resolution,
                chunk,
                encoding,
                shift.sharding(),
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

/// `info` as emwrite wrote it before its shards had minishards: every scale's shards the same,
/// each one minishard (`minishard_bits` 0, the preshift over the shard's low bits). A volume
/// begun under such an info keeps it to its end ([`crate::tasks::ng_meta`]), since the shards
/// already written are read through it; ngshard follows whichever sharding the info has.
///
/// ```
/// use emwrite::layout::{volume_info, with_one_minishard_per_shard};
/// use emwrite::precomputed::codec::Encoding;
/// let info = volume_info([1500, 700], 3, 1030, [8.0; 3], Encoding::Jpeg)?;
/// let before = with_one_minishard_per_shard(&info)?;
/// let spec = before.scales()[0].sharding();
/// assert_eq!((spec.preshift_bits(), spec.minishard_bits(), spec.shard_bits()), (9, 0, 24));
/// # Ok::<(), emwrite::Error>(())
/// ```
pub fn with_one_minishard_per_shard(info: &VolumeInfo) -> Result<VolumeInfo> {
    let scales = info
        .scales()
        .iter()
        .map(|scale| {
            let spec = scale.sharding();
            let low_bits = spec.preshift_bits() + spec.minishard_bits();
            let spec = ShardingSpec::new(low_bits, 0, spec.shard_bits())?;
            let key = scale.key().to_owned();
            let (size, nm, chunk) = (scale.size(), scale.resolution_nm(), scale.chunk_size());
            Scale::new(key, size, nm, chunk, scale.encoding(), spec)
        })
        .collect::<Result<Vec<_>>>()?;
    VolumeInfo::new(scales, info.realsize(), info.realoffset())
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
/// precomputed shard. With [`ScaleShift::sharding`] for cubic voxels that is 8 chunks per edge at
/// scales 0 and 1 (8 shards per block, then 1), 4, 2 and 1 (the whole block) at scales 2–4. A
/// block therefore owns
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

/// Where chunk `id` of `scale` lies in the OME-Zarr array `zarr`: its shard (xyz, in shards)
/// and its inner chunk's place in that shard (xyz). The one reading of a chunk id as a Zarr
/// place, for shards made whole and shards streamed alike.
pub fn zarr_chunk_place(scale: &Scale, zarr: &ZarrScale, id: u64) -> ([u64; 3], [u64; 3]) {
    let cell = morton::decode(id, scale.morton_bits());
    let per_shard = zarr.chunks_per_shard();
    (
        std::array::from_fn(|axis| cell[axis] / per_shard[axis]),
        std::array::from_fn(|axis| cell[axis] % per_shard[axis]),
    )
}

/// One half of a block, cut along z so that two component instances (two cores) can build one
/// block: the lower half holds the block's z ∈ [0, 512), the upper half z ∈ [512, 1024).
///
/// The cut follows the sharding ([`ScaleShift::sharding`]): at scale 0 each half owns 4 whole
/// shards, and at coarser scales each half owns whole chunk layers of the block, so a half encodes
/// every chunk of those scales on its own; a shard that crosses the cut holds chunks of both
/// halves. For cubic voxels only scale 4, where the block is one chunk, straddles the cut: each
/// half holds 64 × 64 × 32 of its voxels. A merge step writes the shards both halves hold chunks
/// of, and the straddling scale's ([`crate::block::merge`]).
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

    /// Whether the block's chunk layers at the scale `shift` divide between the halves: they do
    /// where the block is at least two chunks deep. At the coarsest scale of cubic voxels the
    /// block is one chunk, which straddles the halves.
    ///
    /// ```
    /// use emwrite::layout::{BlockHalf, ScaleShift};
    /// assert!(BlockHalf::divide_scale(ScaleShift([3; 3])));
    /// assert!(!BlockHalf::divide_scale(ScaleShift([4; 3])));
    /// assert!(BlockHalf::divide_scale(ScaleShift([4, 4, 2])));
    /// ```
    pub fn divide_scale(shift: ScaleShift) -> bool {
        shift.block_chunks()[2] >= 2
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
        let cubic = scale_shifts([8.0; 3]);
        assert_eq!(
            block_cells([1, 0, 0], cubic[0], [21, 16, 16]),
            [16..21, 0..16, 0..16]
        );
        assert_eq!(
            block_cells([1, 0, 0], cubic[1], [11, 8, 8]),
            [8..11, 0..8, 0..8]
        );
        assert_eq!(
            block_cells([1, 0, 0], cubic[4], [2, 1, 1]),
            [1..2, 0..1, 0..1]
        );
        assert_eq!(block_cells([u64::MAX, 0, 0], cubic[0], [2, 1, 1])[0], 2..2);
        for (k, shift) in (0..).zip(cubic) {
            assert_eq!(shift.block_chunks(), [BLOCK_CHUNKS >> k; 3]);
        }
        // Serial-section voxels keep z: the block is deeper than wide in chunks.
        let flat = scale_shifts([8.0, 8.0, 40.0]);
        assert_eq!(flat[4].block_chunks(), [1, 1, 4]);
        assert_eq!(
            block_cells([0, 0, 1], flat[4], [1, 1, 8]),
            [0..1, 0..1, 4..8]
        );
    }

    #[test]
    fn z_halves_once_x_and_y_would_pass_it() {
        let z_shifts = |resolution| scale_shifts(resolution).map(|ScaleShift(shift)| shift[2]);
        // The issue's example, 8×8×40 → 16×16×40 → 32×32×40 → 64×64×80 → 128×128×160.
        assert_eq!(z_shifts([8.0, 8.0, 40.0]), [0, 0, 0, 1, 2]);
        assert_eq!(z_shifts([4.0, 4.0, 40.0]), [0, 0, 0, 0, 1]);
        // Equal is not past: 16×16×16 keeps z at scale 1, then halves it.
        assert_eq!(z_shifts([8.0, 8.0, 16.0]), [0, 0, 1, 2, 3]);
        assert_eq!(z_shifts([8.0; 3]), [0, 1, 2, 3, 4]);
        // z finer than x and y halves at every scale, as cubes do; the finer of x and y decides.
        assert_eq!(z_shifts([40.0, 40.0, 8.0]), [0, 1, 2, 3, 4]);
        assert_eq!(z_shifts([8.0, 100.0, 40.0]), [0, 0, 0, 1, 2]);
        for shift in scale_shifts([8.0, 8.0, 40.0]) {
            assert_eq!(shift.0[..2], [shift.0[0]; 2]);
        }
    }

    #[test]
    fn shifts_are_read_back_from_emwrite_scales_only() {
        let resolutions = |info: &VolumeInfo| -> Vec<[f64; 3]> {
            info.scales().iter().map(Scale::resolution_nm).collect()
        };
        let info = volume_info([1500, 700], 3, 1030, [8.0, 8.0, 40.0], Encoding::Jpeg);
        let info = info.expect("info");
        let shifts = shifts_of_scales(info.scales()).expect("emwrite's");
        assert_eq!(shifts, scale_shifts([8.0, 8.0, 40.0]));
        // A pyramid that halved z at every scale is another layout.
        let mut halving = resolutions(&info);
        halving[1][2] *= 2.0;
        let error = shifts_of_resolutions(&halving).expect_err("not emwrite's");
        assert!(error.to_string().contains("scale 1"), "{error}");
        assert!(shifts_of_resolutions(&[[8.0; 3]; 6]).is_err());
    }

    #[test]
    fn anisotropic_scales_keep_blocks_whole() {
        let info = volume_info([1500, 700], 3, 1030, [8.0, 8.0, 40.0], Encoding::Raw);
        let info = info.expect("info");
        /// key, size, (preshift, minishard, shard) bits
        type Row<'a> = (&'a str, [u64; 3], (u32, u32, u32));
        let table: Vec<Row> = info
            .scales()
            .iter()
            .map(|s| {
                let sharding = s.sharding();
                let bits = (
                    sharding.preshift_bits(),
                    sharding.minishard_bits(),
                    sharding.shard_bits(),
                );
                (s.key(), s.size(), bits)
            })
            .collect();
        #[rustfmt::skip]
        let want: [Row; 5] = [
            ("8.0x8.0x40.0",        [2048, 1024, 2048], (2, 7, 24)),
            ("16.0x16.0x40.0",      [1024, 512, 2048],  (2, 7, 22)),
            ("32.0x32.0x40.0",      [512, 256, 2048],   (2, 4, 23)),
            ("64.0x64.0x80.0",      [256, 128, 1024],   (2, 1, 23)),
            ("128.0x128.0x160.0",   [128, 64, 512],     (0, 0, 23)),
        ];
        assert_eq!(table, want);
        for scale in info.scales() {
            assert_eq!(scale.chunk_size(), [64; 3]);
            scale.check_shard_capacity().expect("fits");
        }
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
        /// key, size, resolution, (preshift, minishard, shard) bits
        type Row<'a> = (&'a str, [u64; 3], [f64; 3], (u32, u32, u32));
        let table: Vec<Row> = info
            .scales()
            .iter()
            .map(|s| {
                let sharding = s.sharding();
                let bits = (
                    sharding.preshift_bits(),
                    sharding.minishard_bits(),
                    sharding.shard_bits(),
                );
                (s.key(), s.size(), s.resolution_nm(), bits)
            })
            .collect();
        #[rustfmt::skip]
        let want: [Row; 5] = [
            // key                  size                 resolution            bits
            ("8.0x8.0x8.0",         [2048, 1024, 2048], [8.0, 8.0, 8.0],       (2, 7, 24)),
            ("16.0x16.0x16.0",      [1024, 512, 1024],  [16.0, 16.0, 16.0],    (2, 7, 21)),
            ("32.0x32.0x32.0",      [512, 256, 512],    [32.0, 32.0, 32.0],    (2, 4, 21)),
            ("64.0x64.0x64.0",      [256, 128, 256],    [64.0, 64.0, 64.0],    (2, 1, 21)),
            ("128.0x128.0x128.0",   [128, 64, 128],     [128.0, 128.0, 128.0], (0, 0, 21)),
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
        assert_eq!(
            keys,
            [
                "8.0x8.0x40.0",
                "16.0x16.0x40.0",
                "32.0x32.0x40.0",
                "64.0x64.0x80.0",
                "128.0x128.0x160.0"
            ]
        );
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
        // 2^17 voxels per axis, the largest frame edge a request may ask for, just fits, for
        // cubic and for flat voxels.
        let edge = MAX_FRAME_EDGE;
        for resolution in [[8.0; 3], [8.0, 8.0, 40.0], [40.0, 40.0, 8.0]] {
            let info = volume_info([edge, edge], 0, edge - 1, resolution, Encoding::Jpeg);
            for scale in info.expect("info").scales() {
                scale.check_shard_capacity().expect("fits");
            }
        }
        // One more bit per axis would not: precomputed::info's ids_wider_than_the_sharding.
    }

    /// Shards touched by the block at `block` (units of 1024 voxels) at the scale `shift`, for a
    /// volume of `size0` voxels at scale 0, with emwrite's specs and 64³ chunks.
    fn shards_of_block(size0: [u64; 3], block: [u64; 3], shift: ScaleShift) -> BTreeSet<u64> {
        let spec = shift.sharding();
        let grid: [u64; 3] = std::array::from_fn(|axis| (size0[axis] >> shift.0[axis]) / 64);
        let bits = morton::bits_per_axis(grid);
        let cells = block_cells(block, shift, grid);
        let mut shards = BTreeSet::new();
        for z in cells[2].clone() {
            for y in cells[1].clone() {
                for x in cells[0].clone() {
                    let id = morton::encode([x, y, z], bits);
                    shards.insert(spec.shard_and_minishard(id).0);
                }
            }
        }
        shards
    }

    #[test]
    fn a_block_owns_whole_shards_at_every_scale() {
        // Cubic voxels: 8 shards, then 1. Flat voxels (8×8×40) keep z, so a block is a stack of
        // shards along z: 8, 2, 4, 4, 4.
        let cases = [
            ([8.0; 3], [8, 1, 1, 1, 1]),
            ([8.0, 8.0, 40.0], [8, 2, 4, 4, 4]),
        ];
        let size0 = [3072, 2048, 2048];
        for (resolution, counts) in cases {
            let mut seen: [BTreeSet<u64>; 5] = Default::default();
            for bz in 0..2 {
                for by in 0..2 {
                    for bx in 0..3 {
                        let shifts = scale_shifts(resolution).into_iter().zip(counts);
                        for (seen, (shift, want)) in seen.iter_mut().zip(shifts) {
                            let shards = shards_of_block(size0, [bx, by, bz], shift);
                            assert_eq!(shards.len(), want, "block {bx},{by},{bz} {shift:?}");
                            // No shard is shared with another block.
                            assert!(seen.is_disjoint(&shards), "{shift:?} shares {shards:?}");
                            seen.extend(shards);
                        }
                    }
                }
            }
        }
    }
}
