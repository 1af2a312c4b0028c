//! Times the streaming block pyramid on one full 1024³ block of synthetic voxels.
//!
//! `cargo bench --bench pyramid` prints megavoxels per second for [`BlockPyramid`] turning a
//! dense block into its sharded pyramid (every scale, each shard assembled with `into_bytes` as
//! ngshard does) in JPEG, plus the bytes written and a CRC-32 of them;
//! `cargo bench --bench pyramid -- raw` also times JPEG plus raw (`writeRaw`). Each
//! configuration also runs as two halves and a merge, one after the other (the time two cores
//! would take is the slower half plus the merge), and checks that their CRC matches. Tile reading and
//! storage are left out: this is the compute of one ngshard task. `benches/harness.py` (`scripts/bench`)
//! times the whole task against tensorstore.
//!
//! One block takes seconds, so each configuration runs once, without warm-up: the first slabs
//! warm the allocator and caches as in a real task, whose instance also runs one block.

use std::hint::black_box;
use std::time::{Duration, Instant};

use emwrite::block::handoff::HalfHandoff;
use emwrite::block::merge::{MergedShard, merge_halves};
use emwrite::block::pyramid::BlockPyramid;
use emwrite::block::shards::CompletedShard;
use emwrite::layout::{BLOCK_EDGE, BlockHalf, volume_info};
use emwrite::precomputed::codec::Encoding;
use emwrite::precomputed::info::VolumeInfo;
use emwrite::request::DEFAULT_RESOLUTION_NM;

/// Voxels in a block.
const BLOCK_VOXELS: u64 = (BLOCK_EDGE as u64).pow(3);

/// One synthetic slab, x fastest: smooth structure plus texture, so JPEG has work like EM data
/// gives it, and no chunk is all zero. Every slab of the block is this one, shifted in value.
fn synthetic_slab() -> Vec<u8> {
    let edge = BLOCK_EDGE as usize;
    let mut slab = Vec::with_capacity(BlockPyramid::SLAB_BYTES);
    for z in 0..BlockPyramid::SLAB_DEPTH {
        for y in 0..edge {
            for x in 0..edge {
                slab.push(((x / 3 + 2 * y / 5 + z + 13 * ((x ^ y) & 7)) % 200 + 30) as u8);
            }
        }
    }
    slab
}

/// Runs the pyramid over a block whose every slab is `slab`; returns the time, the bytes of
/// all shard files and their CRC-32.
fn run(info: &VolumeInfo, encodings: &[Encoding], slab: &[u8]) -> (Duration, u64, u32) {
    let start = Instant::now();
    let mut pyramid =
        BlockPyramid::new(info.scales(), [0, 0, 0], encodings, 75).expect("valid pyramid");
    let mut output = Output::default();
    for _ in 0..BlockPyramid::SLAB_COUNT {
        output.write(pyramid.push_slab(black_box(slab)).expect("slab"));
    }
    output.write(pyramid.finish().expect("16 slabs"));
    (start.elapsed(), output.bytes, output.crc.sum())
}

/// The shard files of every completed shard: their bytes in total and a CRC-32 over them in
/// order.
#[derive(Default)]
struct Output {
    bytes: u64,
    crc: flate2::Crc,
}

impl Output {
    fn write(&mut self, shards: Vec<CompletedShard>) {
        for shard in shards {
            let file = shard.into_bytes().expect("assembles");
            self.bytes += file.len() as u64;
            self.crc.update(black_box(&file));
        }
    }
}

/// Runs the block as two halves and a merge, one after the other; returns the time of each
/// half and of the merge (hand-offs passed as bytes, as between instances), the bytes of all
/// shard files and their CRC-32, which must be the whole block's.
fn run_halves(info: &VolumeInfo, encodings: &[Encoding], slab: &[u8]) -> ([Duration; 3], u64, u32) {
    let mut output = Output::default();
    let mut times = Vec::new();
    let handoffs = BlockHalf::BOTH.map(|half| {
        let start = Instant::now();
        let mut pyramid = BlockPyramid::for_half(info.scales(), [0, 0, 0], half, encodings, 75)
            .expect("valid pyramid");
        for _ in 0..BlockPyramid::SLAB_COUNT / 2 {
            output.write(pyramid.push_slab(black_box(slab)).expect("slab"));
        }
        let handoff = pyramid.finish_half().expect("8 slabs").to_bytes();
        times.push(start.elapsed());
        handoff
    });
    let start = Instant::now();
    let [lower, upper] = handoffs
        .each_ref()
        .map(|bytes| HalfHandoff::from_bytes(bytes, "hand-off").expect("reads back"));
    // Every merged shard held whole (none spliced), as the pyramid's own shards are.
    let merged = merge_halves(
        info.scales(),
        [0, 0, 0],
        encodings,
        75,
        [&lower, &upper],
        usize::MAX,
    );
    let merged = merged
        .expect("merges")
        .into_iter()
        .map(|shard| match shard {
            MergedShard::Whole(shard) => shard,
            MergedShard::Spliced(_) => panic!("spliced although asked for none"),
        });
    output.write(merged.collect());
    times.push(start.elapsed());
    let times = times.try_into().expect("two halves and a merge");
    (times, output.bytes, output.crc.sum())
}

/// Throughput of one block that took `time`.
fn megavoxels_per_second(time: Duration) -> f64 {
    BLOCK_VOXELS as f64 / 1e6 / time.as_secs_f64()
}

fn main() {
    let info = volume_info(
        [BLOCK_EDGE, BLOCK_EDGE],
        0,
        BLOCK_EDGE - 1,
        [DEFAULT_RESOLUTION_NM; 3],
        Encoding::Jpeg,
    )
    .expect("one block's info");
    let slab = synthetic_slab();
    println!("block {BLOCK_EDGE}³ of synthetic voxels, jpeg quality 75");
    let mut configurations = vec![("jpeg", &[Encoding::Jpeg][..])];
    if std::env::args().any(|arg| arg == "raw") {
        configurations.push(("jpeg+raw", &[Encoding::Jpeg, Encoding::Raw][..]));
    }
    for (name, encodings) in configurations {
        let (time, bytes, crc) = run(&info, encodings, &slab);
        println!(
            "{name:9} {:6.2} s {:6.1} Mvox/s   {:7.1} MiB of shards, crc32 {crc:08x}",
            time.as_secs_f64(),
            megavoxels_per_second(time),
            bytes as f64 / f64::from(1 << 20),
        );
        let ([lower, upper, merge], half_bytes, half_crc) = run_halves(&info, encodings, &slab);
        let two_cores = lower.max(upper) + merge;
        println!(
            "  halves: lower {:.2} s, upper {:.2} s, merge {:.2} s; on two cores {:.2} s \
             {:6.1} Mvox/s, crc32 {half_crc:08x}",
            lower.as_secs_f64(),
            upper.as_secs_f64(),
            merge.as_secs_f64(),
            two_cores.as_secs_f64(),
            megavoxels_per_second(two_cores),
        );
        assert_eq!(
            (half_bytes, half_crc),
            (bytes, crc),
            "halves differ from the whole block"
        );
    }
}
