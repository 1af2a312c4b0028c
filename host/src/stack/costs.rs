//! What a stack will cost, before anything runs (`emwrite plan STACK`): per phase the tasks, the
//! bytes read and written, the peak memory of one task and the core-seconds, from measured
//! per-task figures ([`figures`]).

use std::path::Path;

use emwrite::layout::{SCALE_COUNT, raw_slice_object};
use emwrite::storage::location::Store;
use emwrite::storage::router::DefaultStore;

use crate::stack::tasks::{Phase, Stack};

/// The measured figures the plan multiplies out. Sources: the README's Performance table
/// (`scripts/bench`, 3 runs a side, 2 cores, 2026-12-07: alignedslice at 17:19, ngshard at 22:53)
/// and, for output sizes,
/// the example stack
/// (`cargo run --release --example make_stack`, EM-like synthetic data) converted by
/// `emwrite pipeline`. Real EM compresses differently: read the byte figures as estimates.
pub mod figures {
    /// alignedslice core-seconds per megapixel of the aligned frame (0.43 CPU-s at 4096², 1.49
    /// at 8192², 5.97 at 16384², 30.66 at 34,432 × 39,552: 0.026, 0.022, 0.022 and 0.023; the
    /// small ones also load the component, which a pipeline does once).
    pub const SLICE_CORE_S_PER_MPX: f64 = 0.023;
    /// alignedslice peak memory: it holds a band of about 1024 rows of the frame, so memory
    /// follows the frame's width (51 MiB at 4096 wide, 74 at 8192, 100 at 16384, 177 at 34,432).
    pub const SLICE_PEAK_FIXED: u64 = 40 << 20;
    /// See [`SLICE_PEAK_FIXED`]: bytes per column of the frame.
    pub const SLICE_PEAK_PER_COLUMN: u64 = 4_400;
    /// Bytes of the aligned PNG per pixel of the frame (example stack, 40 slices of
    /// 1300 × 1100: 0.69; noisy EM-like slices compress little).
    pub const ALIGNED_PNG_BYTES_PER_PX: f64 = 0.69;
    /// Bytes of the tile pack per pixel of the frame: tiles are stored uncompressed.
    pub const TILE_PACK_BYTES_PER_PX: f64 = 1.0;
    /// ngmeta: one small instance (the cold-start row: 40 MiB, 0.01 CPU-s).
    pub const META_CORE_S: f64 = 0.01;
    /// See [`META_CORE_S`].
    pub const META_PEAK: u64 = 40 << 20;
    /// ngshard core-seconds per voxel of the block that holds slices (6.24 CPU-s for a 1024³
    /// JPEG block split in two instances, 7.16 with raw in one).
    pub const BLOCK_CORE_S_PER_GVOXEL_JPEG: f64 = 6.24;
    /// See [`BLOCK_CORE_S_PER_GVOXEL_JPEG`].
    pub const BLOCK_CORE_S_PER_GVOXEL_RAW: f64 = 7.16;
    /// ngshard peak memory (196 MiB JPEG split in two instances, 94 MiB in one; 269 MiB JPEG +
    /// raw in one): the streaming pyramid bounds it whatever the slices, and the layer of raw
    /// chunks being encoded and the raw scale-1 shard set it with writeRaw.
    pub const BLOCK_PEAK_JPEG: u64 = 196 << 20;
    /// See [`BLOCK_PEAK_JPEG`].
    pub const BLOCK_PEAK_RAW: u64 = 269 << 20;
    /// ngshard core-seconds per Gvoxel and peak memory with OME-Zarr output (`format` both:
    /// 23.2–26.4 CPU-s, and 243 MiB for a dense 1024³ block in one instance; ome-zarr alone
    /// 17.1 CPU-s and 198 MiB): gzip chunks cost CPU, and `--split auto` does not split such a
    /// block, whose halves hold the raw chunks of the shards they share (739 MiB;
    /// docs/performance.md, Memory).
    pub const BLOCK_CORE_S_PER_GVOXEL_ZARR: f64 = 24.8;
    /// See [`BLOCK_CORE_S_PER_GVOXEL_ZARR`].
    pub const BLOCK_PEAK_ZARR: u64 = 243 << 20;
    /// OME-Zarr bytes per voxel at scale 0 (gzip chunks of the same dense block: 849 MiB for
    /// its 1 Gvoxel and the pyramid's 1/8 + 1/64 + …).
    pub const ZARR_BYTES_PER_VOXEL: f64 = 0.725;
    /// JPEG volume bytes per voxel at scale 0, quality 75 (example stack: 9.8 MB for 57.2 M
    /// voxels; the coarser scales add the pyramid's 1/8 + 1/64 + …).
    pub const JPEG_BYTES_PER_VOXEL: f64 = 0.172;
}

/// What one phase will cost.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseCost {
    /// The phase.
    pub phase: Phase,
    /// Its tasks.
    pub tasks: usize,
    /// Bytes read, when known.
    pub input: Input,
    /// Bytes written (estimate).
    pub output: u64,
    /// Peak memory of one task.
    pub peak: u64,
    /// Core-seconds, all tasks.
    pub core_seconds: f64,
}

/// Bytes a phase reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Known, or estimated from the figures.
    Bytes(u64),
    /// Not readable from here, with why.
    Unknown(String),
    /// Nothing worth counting.
    None,
}

/// The raw slices' total size, if this machine can read it: raw slices are sized from
/// `data_dir` when their store is local.
pub fn raw_input(stack: &Stack, store: DefaultStore, data_dir: &Path) -> Input {
    let dest = &stack.dest;
    if dest.store() == Store::Gcs || store == DefaultStore::Gcs {
        return Input::Unknown("raw slices on GCS".to_owned());
    }
    let mut total = 0;
    let mut missing = 0;
    for slice in &stack.slices {
        let object = raw_slice_object(dest, &slice.img);
        match std::fs::metadata(data_dir.join(&object.bucket).join(&object.name)) {
            Ok(meta) if meta.is_file() => total += meta.len(),
            _ => missing += 1,
        }
    }
    if missing > 0 {
        return Input::Unknown(format!("{missing} of {} not found", stack.slices.len()));
    }
    Input::Bytes(total)
}

/// A phase's wall time in seconds on `instances` machines or service instances of `cores` cores
/// each: its tasks run in waves, one task per core, each for the phase's average; a block splits
/// over two cores (two instances of the component, half its core-seconds each) when an instance
/// has two, as the block figures were measured ([`figures::BLOCK_CORE_S_PER_GVOXEL_JPEG`]).
pub fn wall_seconds(cost: &PhaseCost, instances: usize, cores: usize) -> f64 {
    if cost.tasks == 0 {
        return 0.0;
    }
    let per_task = cost.core_seconds / cost.tasks as f64;
    let (slots, duration) = match cost.phase {
        Phase::Shard if cores >= 2 => (instances * (cores / 2), per_task / 2.0),
        _ => (instances * cores, per_task),
    };
    cost.tasks.div_ceil(slots.max(1)) as f64 * duration
}

/// Every phase's cost, from the stack's shape and the [`figures`].
pub fn costs(stack: &Stack, raw: Input) -> Vec<PhaseCost> {
    use figures::*;
    let [width, height] = stack.bbox.map(u64::from);
    let frame_px = (width * height) as f64;
    let slices = stack.slices.len();

    let align = PhaseCost {
        phase: Phase::Align,
        tasks: slices,
        input: raw,
        output: ((ALIGNED_PNG_BYTES_PER_PX + TILE_PACK_BYTES_PER_PX) * frame_px * slices as f64)
            as u64,
        peak: SLICE_PEAK_FIXED + SLICE_PEAK_PER_COLUMN * width,
        core_seconds: slices as f64 * SLICE_CORE_S_PER_MPX * frame_px / 1e6,
    };
    let meta = PhaseCost {
        phase: Phase::Meta,
        tasks: 1,
        input: Input::None,
        output: 2 << 10,
        peak: META_PEAK,
        core_seconds: META_CORE_S,
    };
    // Voxels that hold data: the frame times the slices; the pyramid adds 1/8 + 1/64 + ….
    let voxels = frame_px * slices as f64;
    let pyramid: f64 = (0..SCALE_COUNT).map(|k| 0.125_f64.powi(k as i32)).sum();
    let mut volume = 0.0;
    if stack.format.precomputed() {
        volume += voxels * JPEG_BYTES_PER_VOXEL * pyramid;
        if stack.write_raw {
            volume += voxels * pyramid;
        }
    }
    if stack.format.zarr() {
        volume += voxels * ZARR_BYTES_PER_VOXEL * pyramid;
    }
    let (per_gvoxel, peak) = if stack.format.zarr() {
        (BLOCK_CORE_S_PER_GVOXEL_ZARR, BLOCK_PEAK_ZARR)
    } else if stack.write_raw {
        (BLOCK_CORE_S_PER_GVOXEL_RAW, BLOCK_PEAK_RAW)
    } else {
        (BLOCK_CORE_S_PER_GVOXEL_JPEG, BLOCK_PEAK_JPEG)
    };
    let shard = PhaseCost {
        phase: Phase::Shard,
        tasks: stack.blocks().count(),
        input: Input::Bytes((TILE_PACK_BYTES_PER_PX * voxels) as u64),
        output: volume as u64,
        peak,
        core_seconds: voxels / f64::from(1u32 << 30) * per_gvoxel,
    };
    vec![align, meta, shard]
}

#[cfg(test)]
mod tests {

    use super::*;
    use emwrite::request::OutputFormat;

    fn stack(slices: u32, bbox: [u32; 2], write_raw: bool) -> Stack {
        Stack::for_tests(0..slices, bbox, write_raw)
    }

    #[test]
    fn a_full_block_costs_the_measured_block() {
        let costs = costs(&stack(1024, [1024, 1024], false), Input::None);
        let shard = &costs[2];
        assert_eq!(shard.tasks, 1);
        assert!((shard.core_seconds - figures::BLOCK_CORE_S_PER_GVOXEL_JPEG).abs() < 1e-9);
        assert_eq!(shard.peak, figures::BLOCK_PEAK_JPEG);
        assert_eq!(shard.input, Input::Bytes(1 << 30));
        let with_raw = costs_of(true);
        assert!(with_raw[2].output > shard.output + (1 << 30));
        assert_eq!(with_raw[2].peak, figures::BLOCK_PEAK_RAW);
        // OME-Zarr (gzip chunks, blocks not split): its own measured figures, and its bytes
        // beside the JPEG volume's.
        let mut both = stack(1024, [1024, 1024], false);
        both.format = OutputFormat::Both;
        let zarr = &super::costs(&both, Input::None)[2];
        assert_eq!(zarr.peak, figures::BLOCK_PEAK_ZARR);
        assert!((zarr.core_seconds - figures::BLOCK_CORE_S_PER_GVOXEL_ZARR).abs() < 1e-9);
        assert!(zarr.output > shard.output + (1 << 29));
    }

    fn costs_of(write_raw: bool) -> Vec<PhaseCost> {
        costs(&stack(1024, [1024, 1024], write_raw), Input::None)
    }

    #[test]
    fn slices_cost_the_measured_slice() {
        let costs = costs(&stack(10, [4096, 4096], false), Input::Bytes(5));
        let align = &costs[0];
        assert_eq!((align.tasks, align.input.clone()), (10, Input::Bytes(5)));
        // 0.43 CPU-s measured for one 4096² slice (its process loading the component too), in
        // 51 MiB; the peak's fit over the four widths measured gives it 57.
        assert!((align.core_seconds / 10.0 - 0.43).abs() < 0.06, "{align:?}");
        assert_eq!(align.peak >> 20, 57);
        assert_eq!(costs[1].tasks, 1);
    }

    #[test]
    fn wall_time_runs_tasks_in_waves_and_splits_blocks_over_two_cores() {
        let [align, _, shard] = <[PhaseCost; 3]>::try_from(costs_of(false)).expect("3 phases");
        // 1024 slices on 10 × 4 cores: 26 waves of one slice.
        let slice = align.core_seconds / 1024.0;
        assert!((wall_seconds(&align, 10, 4) - 26.0 * slice).abs() < 1e-9);
        // One block: split over two cores, half its core-seconds; whole on one core.
        let block = shard.core_seconds;
        assert!((wall_seconds(&shard, 1, 2) - block / 2.0).abs() < 1e-9);
        assert!((wall_seconds(&shard, 3, 1) - block).abs() < 1e-9);
    }

    #[test]
    fn raw_sizes_come_from_the_local_store_or_are_unknown() {
        let dir = std::env::temp_dir().join(format!("emwrite-plan-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lab/raw")).expect("dirs");
        std::fs::write(dir.join("lab/raw/s0.png"), [0; 100]).expect("write");
        std::fs::write(dir.join("lab/raw/s1.png"), [0; 23]).expect("write");
        let two = stack(2, [10, 10], false);
        assert_eq!(
            raw_input(&two, DefaultStore::Local, &dir),
            Input::Bytes(123)
        );
        let three = stack(3, [10, 10], false);
        assert_eq!(
            raw_input(&three, DefaultStore::Local, &dir),
            Input::Unknown("1 of 3 not found".into())
        );
        assert!(matches!(
            raw_input(&two, DefaultStore::Gcs, &dir),
            Input::Unknown(_)
        ));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
