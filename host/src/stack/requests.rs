//! The GCS requests a stack's tasks send, per phase and price class, and what they cost
//! (`emwrite plan`).
//!
//! Counted from the code's own constants, one per HTTP request the GCS store sends
//! (docs/design.md §6), retries aside: a resumable upload is its session plus one request per
//! [`UPLOAD_PART_BYTES`] part and the last part; an object whose prefix comes last (tile packs,
//! streamed shards) adds the prefix's upload and a compose, and two deletes; a raw slice is read
//! [`FETCH_BYTES`] at a time; a tile costs [`READS_PER_TILE`] range reads. The driver's checks of
//! what is already finished (§4 "Finished tasks") are counted too. Object sizes come from
//! [`figures`], so the write counts of large objects are estimates.

use std::collections::BTreeMap;

use emwrite::layout::{
    self, BLOCK_EDGE, BlockHalf, CHUNK_EDGE, SCALE_COUNT, ScaleShift, encodings,
};
use emwrite::precomputed::codec::Encoding;
use emwrite::slice_image::FETCH_BYTES;
use emwrite::storage::gcs::UPLOAD_PART_BYTES;
use emwrite::tasks::ng_shard::STREAM_SHARDS_FROM;
use emwrite::tasks::tile_reads::READS_PER_TILE;

use crate::stack::costs::{Input, figures};
use crate::stack::tasks::{Phase, Stack};

/// Requests by GCS's price classes (cloud.google.com/storage/pricing, "Operations"): class A
/// are object writes (uploads, each request of a resumable upload, composes) and listings,
/// class B object and metadata reads; deletes are free.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// Class A requests.
    pub class_a: u64,
    /// Class B requests.
    pub class_b: u64,
    /// Free requests (deletes).
    pub free: u64,
}

impl std::ops::Add for Requests {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            class_a: self.class_a + other.class_a,
            class_b: self.class_b + other.class_b,
            free: self.free + other.free,
        }
    }
}

impl std::ops::Mul<u64> for Requests {
    type Output = Self;
    fn mul(self, n: u64) -> Self {
        Self {
            class_a: self.class_a * n,
            class_b: self.class_b * n,
            free: self.free * n,
        }
    }
}

/// Prices in US dollars: per 1,000 requests of each class, and per core-second of compute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Per 1,000 class A requests.
    pub class_a_per_1000: f64,
    /// Per 1,000 class B requests.
    pub class_b_per_1000: f64,
    /// Per core-second, when known.
    pub core_second: Option<f64>,
}

impl Prices {
    /// GCS Standard storage in a region, as Google's pricing example gives it
    /// (https://cloud.google.com/storage/pricing-examples, "Simple example", checked 2026-12):
    /// $0.005 per 1,000 class A and $0.0004 per 1,000 class B operations. Compute has no
    /// default: it depends on where the tasks run.
    pub const GCS_STANDARD: Self = Self {
        class_a_per_1000: 0.005,
        class_b_per_1000: 0.0004,
        core_second: None,
    };

    /// The requests' cost.
    pub fn requests(&self, requests: Requests) -> f64 {
        (requests.class_a as f64 * self.class_a_per_1000
            + requests.class_b as f64 * self.class_b_per_1000)
            / 1000.0
    }
}

/// Requests of a resumable upload of `bytes` (`storage/gcs/upload.rs`): the session, a part per
/// full [`UPLOAD_PART_BYTES`], and the last part, which finishes the object (empty when the
/// object is a whole number of parts).
pub fn resumable_upload(bytes: u64) -> u64 {
    1 + bytes / UPLOAD_PART_BYTES as u64 + 1
}

/// Requests of an object whose prefix comes last, `body` bytes after it: the body's resumable
/// upload to a temporary object, the prefix's upload, the compose, and the two temporaries'
/// deletes.
pub fn prefixed_upload(body: u64) -> Requests {
    Requests {
        class_a: resumable_upload(body) + 2,
        class_b: 0,
        free: 2,
    }
}

/// Range reads of a raw PNG slice of `bytes` decoded progressively (`slice_image.rs`):
/// [`FETCH_BYTES`] at a time, until a read comes back short.
pub fn raw_reads(bytes: u64) -> u64 {
    bytes / FETCH_BYTES + 1
}

/// The requests of each phase of `stack`, with `raw` the raw slices' size when known, and
/// blocks split in two halves (`split`) or whole.
pub fn requests(stack: &Stack, raw: &Input, split: bool) -> BTreeMap<Phase, Requests> {
    let encodings = encodings(stack.write_raw);
    let infos = encodings.len() as u64;
    let frame_px = f64::from(stack.bbox[0]) * f64::from(stack.bbox[1]);
    let slices = stack.slices.len() as u64;
    // Unknown raw slices are taken as large as their aligned PNG: alike in size and kind.
    let raw_bytes = match raw {
        Input::Bytes(total) if slices > 0 => total / slices,
        _ => (frame_px * figures::ALIGNED_PNG_BYTES_PER_PX) as u64,
    };
    let png_bytes = (frame_px * figures::ALIGNED_PNG_BYTES_PER_PX) as u64;
    let pack_body = (frame_px * figures::TILE_PACK_BYTES_PER_PX) as u64;
    let slice = Requests {
        // The driver's check (the PNG's and the pack's metadata), then the raw slice.
        class_b: 2 + raw_reads(raw_bytes),
        class_a: resumable_upload(png_bytes),
        free: 0,
    } + prefixed_upload(pack_body);
    let meta = Requests {
        class_a: infos,
        // The driver's check of each info, and ngmeta's own read of what is there
        // (`ng_meta::keeping_earlier_sharding`).
        class_b: 2 * infos,
        free: 0,
    };
    let mut shard = Requests::default();
    let tiles = tiles_per_block_layer(stack);
    let volume = Volume::of(stack);
    for block in stack.blocks() {
        let layer_tiles = tiles.get(&block[2]).copied().unwrap_or(0);
        shard = shard
            + Requests {
                // The driver's manifest check; each run (two halves and the merge, or one)
                // reads the infos.
                class_b: 1 + infos * if split { 3 } else { 1 } + layer_tiles * READS_PER_TILE,
                // The manifest.
                class_a: 1,
                free: 0,
            };
        for &encoding in encodings {
            shard = shard + block_shard_writes(&volume, block, encoding, split);
        }
    }
    BTreeMap::from([
        (Phase::Align, slice * slices),
        (Phase::Meta, meta),
        (Phase::Shard, shard),
    ])
}

/// Slices with a tile pack per layer of blocks `bz`: each is one tile read of every block of
/// the layer.
fn tiles_per_block_layer(stack: &Stack) -> BTreeMap<u32, u64> {
    let mut layers = BTreeMap::new();
    for slice in &stack.slices {
        *layers.entry(slice.z / BLOCK_EDGE).or_insert(0) += 1;
    }
    layers
}

/// What the shard count of a block depends on, found once for the whole stack.
struct Volume {
    bbox: [u32; 2],
    minz: u32,
    maxz: u32,
    shifts: [ScaleShift; SCALE_COUNT],
}

impl Volume {
    fn of(stack: &Stack) -> Self {
        Self {
            bbox: stack.bbox,
            minz: stack.minz(),
            maxz: stack.maxz(),
            shifts: layout::scale_shifts(stack.resolution),
        }
    }
}

/// The writes of block `block`'s shards in `encoding`, as though its frame is all data: a shard
/// of chunks that all lie outside the frame or the slices is not written. Shards that may hold
/// [`STREAM_SHARDS_FROM`] voxels or more are streamed (a prefixed upload), unless a split
/// block's halves share them (scales 1–4 for cubic voxels), and the others are uploaded whole.
fn block_shard_writes(
    volume: &Volume,
    block: [u32; 3],
    encoding: Encoding,
    split: bool,
) -> Requests {
    let [w, h] = volume.bbox.map(u64::from);
    let (minz, maxz) = (u64::from(volume.minz), u64::from(volume.maxz));
    let grid_voxels = layout::scale0_size(volume.bbox, volume.maxz);
    let chunk = u64::from(CHUNK_EDGE);
    let bytes_per_voxel = match encoding {
        Encoding::Jpeg => figures::JPEG_BYTES_PER_VOXEL,
        Encoding::Raw => 1.0,
    };
    let mut writes = Requests::default();
    for shift in volume.shifts {
        let [sx, sy, sz] = shift.0;
        let grid = std::array::from_fn(|axis| (grid_voxels[axis] >> shift.0[axis]).div_ceil(chunk));
        let cells = layout::block_cells(block.map(u64::from), shift, grid);
        // Cells holding data: the frame from 0, the slices from minz to maxz.
        let data = [
            0..(w.div_ceil(1 << sx)).div_ceil(chunk),
            0..(h.div_ceil(1 << sy)).div_ceil(chunk),
            (minz >> sz) / chunk..((maxz >> sz) / chunk + 1),
        ];
        // A shard is a cube of chunks aligned to its edge.
        let edge = 1u64 << shift.shard_edge_bits();
        // Where a split block's halves meet: shards across it, and a scale whose block is one
        // chunk deep, go to the merge, held whole.
        let straddles = !BlockHalf::divide_scale(shift);
        let cut = {
            let depth = u64::from(shift.block_chunks()[2]);
            u64::from(block[2]) * depth + depth / 2
        };
        // (cells, cells holding data, whether the piece crosses the cut) per shard along an axis.
        let pieces = |axis: usize| -> Vec<(u64, u64, bool)> {
            let range = &cells[axis];
            let mut out = Vec::new();
            let mut start = range.start;
            while start < range.end {
                let end = ((start / edge + 1) * edge).min(range.end);
                let held = end
                    .min(data[axis].end)
                    .saturating_sub(start.max(data[axis].start));
                out.push((end - start, held, straddles || start < cut && cut < end));
                start = end;
            }
            out
        };
        let [xs, ys, zs] = [pieces(0), pieces(1), pieces(2)];
        for &(gx, dx, _) in &xs {
            for &(gy, dy, _) in &ys {
                for &(gz, dz, crosses) in &zs {
                    let held_voxels = dx * dy * dz * chunk.pow(3);
                    if held_voxels == 0 {
                        continue;
                    }
                    let grid_voxels = gx * gy * gz * chunk.pow(3);
                    let shared = split && crosses;
                    let streamed = !shared && grid_voxels >= STREAM_SHARDS_FROM as u64;
                    let body = (held_voxels as f64 * bytes_per_voxel) as u64;
                    // The merge splices a shared shard this large from the halves' parts.
                    let spliced = shared && body >= STREAM_SHARDS_FROM as u64;
                    writes = writes
                        + if streamed || spliced {
                            prefixed_upload(body)
                        } else {
                            Requests {
                                class_a: 1,
                                ..Requests::default()
                            }
                        };
                }
            }
        }
    }
    writes
}

#[cfg(test)]
mod tests {

    use super::*;

    fn stack(zs: std::ops::RangeInclusive<u32>, bbox: [u32; 2], write_raw: bool) -> Stack {
        Stack::for_tests(zs, bbox, write_raw)
    }

    #[test]
    fn uploads_count_a_session_and_every_part() {
        let part = UPLOAD_PART_BYTES as u64;
        // Everything in the last part, which finishes the upload.
        assert_eq!(resumable_upload(0), 2);
        assert_eq!(resumable_upload(part - 1), 2);
        // A whole part goes as it fills; the last part is then empty.
        assert_eq!(resumable_upload(part), 3);
        assert_eq!(resumable_upload(3 * part + 1), 5);
        assert_eq!(
            prefixed_upload(part),
            Requests {
                class_a: 5,
                class_b: 0,
                free: 2
            }
        );
        assert_eq!(raw_reads(FETCH_BYTES - 1), 1);
        assert_eq!(raw_reads(FETCH_BYTES), 2);
    }

    #[test]
    fn a_full_block_writes_eight_scale_0_shards_and_one_per_coarser_scale() {
        let one = stack(0..=1023, [1024, 1024], false);
        let block = [0, 0, 0];
        let whole = block_shard_writes(&Volume::of(&one), block, Encoding::Jpeg, false);
        let split = block_shard_writes(&Volume::of(&one), block, Encoding::Jpeg, true);
        // 512³ voxels a shard at scales 0 and 1: streamed; scales 2–4 whole.
        let shard_bytes = ((512u64.pow(3)) as f64 * figures::JPEG_BYTES_PER_VOXEL) as u64;
        let streamed = prefixed_upload(shard_bytes);
        let put = Requests {
            class_a: 1,
            ..Requests::default()
        };
        assert_eq!(whole, streamed * 9 + put * 3);
        // Split, the halves share scale 1's shard: the merge uploads it whole.
        assert_eq!(split, streamed * 8 + put * 4);
        let raw = block_shard_writes(&Volume::of(&one), block, Encoding::Raw, false);
        let raw_shard = 512u64.pow(3);
        assert_eq!(raw, prefixed_upload(raw_shard) * 9 + put * 3);
        // Split with raw, the merge splices the 128 MiB shard in parts.
        let raw_split = block_shard_writes(&Volume::of(&one), block, Encoding::Raw, true);
        let spliced = prefixed_upload(raw_shard);
        assert_eq!(
            raw_split,
            prefixed_upload(raw_shard) * 8 + spliced + put * 3
        );
    }

    #[test]
    fn a_block_of_flat_voxels_writes_stacks_of_shards_that_no_half_shares() {
        let mut flat = stack(0..=1023, [1024, 1024], false);
        flat.resolution = [8.0, 8.0, 40.0];
        let volume = Volume::of(&flat);
        let whole = block_shard_writes(&volume, [0, 0, 0], Encoding::Jpeg, false);
        let split = block_shard_writes(&volume, [0, 0, 0], Encoding::Jpeg, true);
        // Scale 0: 8 shards of 512³; scale 1 keeps z: 2 of 512³, streamed. Scales 2–4: 4 shards
        // each, of 256³, 128³ and 64³, put whole.
        let shard_bytes = ((512u64.pow(3)) as f64 * figures::JPEG_BYTES_PER_VOXEL) as u64;
        let put = Requests {
            class_a: 1,
            ..Requests::default()
        };
        assert_eq!(whole, prefixed_upload(shard_bytes) * 10 + put * 12);
        // No shard crosses the halves' cut: split writes the same.
        assert_eq!(split, whole);
    }

    #[test]
    fn shards_outside_the_data_are_not_counted() {
        // 600 × 300 from z 0 to 100: one scale-0 shard in x and y, one in z.
        let small = stack(0..=100, [600, 300], false);
        let writes = block_shard_writes(&Volume::of(&small), [0, 0, 0], Encoding::Jpeg, false);
        // Scale 0: x cells 0..10 of 16 → two shards in x (8 + 2 cells of data), one in y, one
        // in z; each may hold 8³ chunks of the grid (512³ voxels ≥ 32 Mi): both streamed, with
        // 8 × 5 × 2 and 2 × 5 × 2 chunks of data. Scale 1: one shard of 8³ chunks, streamed,
        // with 5 × 3 × 1 of data. Scales 2–4: one shard each, whole.
        let jpeg = |chunks: f64| {
            prefixed_upload((chunks * 64f64.powi(3) * figures::JPEG_BYTES_PER_VOXEL) as u64)
        };
        let put = Requests {
            class_a: 1,
            ..Requests::default()
        };
        assert_eq!(writes, jpeg(80.0) + jpeg(20.0) + jpeg(15.0) + put * 3);
    }

    #[test]
    fn a_stack_counts_its_slices_tiles_and_infos() {
        let two_blocks = stack(0..=1030, [1024, 2048], true);
        let split = requests(&two_blocks, &Input::Bytes(1031 * 100), true);
        let align = split[&Phase::Align];
        // 100-byte raw slices: one read each, after the driver's two checks.
        assert_eq!(align.class_b, 1031 * 3);
        assert_eq!(align.free, 1031 * 2);
        let meta = split[&Phase::Meta];
        // Two infos, each checked by the driver, read by ngmeta and written.
        assert_eq!((meta.class_a, meta.class_b), (2, 4));
        // Four blocks (2 in y, 2 in z); each reads its layer's tiles, two infos three times, and
        // its manifest.
        let shard = split[&Phase::Shard];
        let tiles = 2 * 1024 + 2 * 7;
        assert_eq!(shard.class_b, tiles * READS_PER_TILE + 4 * (2 * 3 + 1));
        let whole = requests(&two_blocks, &Input::None, false)[&Phase::Shard];
        assert_eq!(whole.class_b, tiles * READS_PER_TILE + 4 * (2 + 1));
    }

    #[test]
    fn standard_prices_give_dollars_per_thousand() {
        let cost = Prices::GCS_STANDARD.requests(Requests {
            class_a: 10_000,
            class_b: 50_000,
            free: 7,
        });
        // Google's own example: $0.05 + $0.02.
        assert!((cost - 0.07).abs() < 1e-12, "{cost}");
    }
}
