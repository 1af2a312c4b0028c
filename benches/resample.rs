//! Times the bicubic affine resampler on a 4096×4096 synthetic slice with a small rotation.
//!
//! `cargo bench --bench resample` prints megapixels per second for [`resample_affine`] (and,
//! once, its slow twin), plus a CRC-32 of the output. `benches/peers/pillow_resample.py` builds
//! the same slice and transform and times Pillow's `Image.transform` on it; the ratio of the two
//! goes to the README table, and equal CRCs show the two produced the same image.
//!
//! The component runs the explicit simd128 path instead of the portable one: for its figure,
//! `cargo build --release --bench resample --target wasm32-wasip2` and run the bench's `.wasm`
//! (under `target/wasm32-wasip2/release/deps/`) with `.venv/bin/wasmtime run -S http`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use emwrite::resample::affine::AffineTransform;
use emwrite::resample::bicubic::{resample_affine, resample_affine_reference};

/// Edge of the square slice and of the output, in pixels.
const SIZE: usize = 4096;
/// Rotation about the slice centre, in degrees: a typical alignment correction.
const DEGREES: f64 = 0.5;
/// Timed runs of the fast resampler (after one warm-up).
const RUNS: usize = 7;

/// The signature shared by [`resample_affine`] and its slow twin.
type Resampler = fn(&[u8], usize, usize, &[f64; 6], usize, usize) -> Vec<u8>;

/// The synthetic slice: pixel (x, y) = (7x + 3y + 13·(x xor y) + (x·y mod 251)) mod 256,
/// which the Python peer computes identically with numpy.
fn synthetic_slice() -> Vec<u8> {
    let mut pixels = Vec::with_capacity(SIZE * SIZE);
    for y in 0..SIZE {
        for x in 0..SIZE {
            pixels.push(((7 * x + 3 * y + 13 * (x ^ y) + (x * y) % 251) % 256) as u8);
        }
    }
    pixels
}

/// The request's columns for a rotation by [`DEGREES`] about the slice centre.
fn rotation_columns() -> [f64; 6] {
    let (s, c) = DEGREES.to_radians().sin_cos();
    let centre = SIZE as f64 / 2.0;
    [
        c,
        s,
        -s,
        c,
        centre - c * centre + s * centre,
        centre - s * centre - c * centre,
    ]
}

/// Throughput of one resampling of the slice that took `time`.
fn megapixels_per_second(time: Duration) -> f64 {
    (SIZE * SIZE) as f64 / 1e6 / time.as_secs_f64()
}

fn main() -> Result<(), emwrite::Error> {
    let src = synthetic_slice();
    let inverse = AffineTransform::new(rotation_columns()).inverse()?;
    println!("slice {SIZE}×{SIZE}, rotation {DEGREES}°, inverse {inverse:?}");

    let run = |f: Resampler| {
        let start = Instant::now();
        let out = f(black_box(&src), SIZE, SIZE, black_box(&inverse), SIZE, SIZE);
        (start.elapsed(), out)
    };

    let (_, out) = run(resample_affine);
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    let mut times: Vec<Duration> = (0..RUNS).map(|_| run(resample_affine).0).collect();
    times.sort();
    let (best, median) = (times[0], times[RUNS / 2]);
    println!(
        "resample_affine            best {:7.1} ms {:7.1} Mpx/s   median {:7.1} ms {:7.1} Mpx/s   \
         crc32 {:08x}",
        best.as_secs_f64() * 1e3,
        megapixels_per_second(best),
        median.as_secs_f64() * 1e3,
        megapixels_per_second(median),
        crc.sum(),
    );

    let (time, reference) = run(resample_affine_reference);
    println!(
        "resample_affine_reference  once {:7.1} ms {:7.1} Mpx/s   same output: {}",
        time.as_secs_f64() * 1e3,
        megapixels_per_second(time),
        reference == out,
    );
    Ok(())
}
