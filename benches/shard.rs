//! Times the shard encoder and decoder on full scale-0 shards of one block.
//!
//! `cargo bench --bench shard` prints MiB per second for [`ShardEncoder`] building a shard of
//! 8³ = 512 chunks (one of the 8 scale-0 shards of a 1024³ block) from chunks given in reverse
//! id order, and for [`decode_shard`] reading it back: once with raw-sized chunks (64³ bytes, a
//! 128 MiB shard, the `writeRaw` worst case) and once with JPEG-sized ones.

use std::hint::black_box;
use std::time::{Duration, Instant};

use emwrite::layout::{CHUNK_EDGE, ScaleShift};
use emwrite::precomputed::shard::{ChunkOrder, ShardEncoder, decode_shard};
use emwrite::precomputed::sharding::ShardingSpec;

/// Chunks in a scale-0 shard: the 2^9 ids below emwrite's preshift.
const CHUNKS: u64 = 512;
/// Timed runs per configuration (after one warm-up).
const RUNS: usize = 5;
/// A typical JPEG chunk of EM data at quality 75, in bytes: about a tenth of the raw chunk.
const JPEG_CHUNK_BYTES: usize = 24 << 10;

/// Chunk `id`'s bytes: distinct per chunk, so a misplaced chunk would show in the round trip.
fn chunk(id: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (id as usize * 31 + i * 7) as u8).collect()
}

/// Encodes `chunks` (by id) into one shard file; returns it and the time taken.
fn encode(spec: ShardingSpec, chunks: &[Vec<u8>]) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut encoder = ShardEncoder::new(spec, ChunkOrder::BY_ID, 0);
    // Reverse order: the encoder sorts, as it must for the pyramid's layer-by-layer order.
    for (id, bytes) in chunks.iter().enumerate().rev() {
        encoder
            .add_chunk(id as u64, black_box(bytes))
            .expect("same shard");
    }
    let file = encoder.finish().expect("encodes");
    (start.elapsed(), file)
}

/// Median of `RUNS` timings of `f`, after one warm-up.
fn median(mut f: impl FnMut() -> Duration) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..RUNS).map(|_| f()).collect();
    times.sort();
    times[RUNS / 2]
}

fn mib_per_second(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / f64::from(1 << 20) / time.as_secs_f64()
}

fn main() {
    let spec = ScaleShift([0; 3]).sharding();
    let raw_chunk = (CHUNK_EDGE as usize).pow(3);
    for (name, chunk_len) in [("raw", raw_chunk), ("jpeg", JPEG_CHUNK_BYTES)] {
        let chunks: Vec<Vec<u8>> = (0..CHUNKS).map(|id| chunk(id, chunk_len)).collect();
        let (_, file) = encode(spec, &chunks);
        let decoded = decode_shard(&spec, &file).expect("decodes");
        assert!(decoded.values().eq(chunks.iter()), "round trip");
        let encode_time = median(|| encode(spec, &chunks).0);
        let decode_time = median(|| {
            let start = Instant::now();
            black_box(decode_shard(&spec, black_box(&file)).expect("decodes"));
            start.elapsed()
        });
        println!(
            "{name:4} shard of {CHUNKS} chunks, {:6.1} MiB   encode {:7.1} ms {:7.0} MiB/s   \
             decode {:7.1} ms {:7.0} MiB/s",
            file.len() as f64 / f64::from(1 << 20),
            encode_time.as_secs_f64() * 1e3,
            mib_per_second(file.len(), encode_time),
            decode_time.as_secs_f64() * 1e3,
            mib_per_second(file.len(), decode_time),
        );
    }
}
