//! emwrite's volume layout: blocks, scales and object names, each rule defined once.
//!
//! docs/design.md §4 fixes these choices; the format modules ([`crate::precomputed`],
//! [`crate::tilepack`]) implement the formats for any parameters, and the tasks (and the host's
//! pipeline, which plans one task per block) take emwrite's parameters from here.
//!
//! The volume is cut into blocks of [`BLOCK_EDGE`]³ voxels, one ngshard task each. A block is
//! [`BLOCK_CHUNKS`]³ chunks of [`CHUNK_EDGE`]³ at scale 0, and each of the [`SCALE_COUNT`]
//! scales halves it, down to a single chunk; the sharding ([`SHARDING_BITS`]) gives every block
//! shards of its own at every scale, so block tasks never write the same object.

use std::ops::{Range, RangeInclusive};

use crate::precomputed::codec::Encoding;
use crate::storage::location::{Location, ObjectPath};
use crate::tilepack::TilePackHeader;

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

/// One half of a block, cut along z so that two component instances (two cores) can build one
/// block: the lower half holds the block's z ∈ [0, 512), the upper half z ∈ [512, 1024).
///
/// The cut follows the sharding ([`SHARDING_BITS`]): at scale 0 each half owns 4 whole shards,
/// and at scales 1–3 each half owns whole chunk layers of the block's one shard, so a half
/// encodes every chunk of those scales on its own. Only scale 4, where the block is one chunk,
/// straddles the cut: each half holds 64 × 64 × 32 of its voxels. A merge step writes the shards
/// of scales 1–4 from both halves' chunks ([`crate::precomputed::block_halves`]).
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
/// ([`crate::block_manifest`]): `neuroglancer/blocks/<bx>_<by>_<bz>.json`.
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
    [
        bbox[0].div_ceil(BLOCK_EDGE),
        bbox[1].div_ceil(BLOCK_EDGE),
        maxz / BLOCK_EDGE + 1,
    ]
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
    use super::*;

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
}
