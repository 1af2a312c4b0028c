//! Times alignedslice and measures its peak heap, strip by strip against the whole-image path.
//!
//! `cargo bench --bench aligned_slice [-- EDGE…]` writes a synthetic square slice of each EDGE
//! (default 8192 and 16384) as a raw PNG into a temporary data directory, then runs, with a
//! 0.5° rotation about its centre: the whole-image path that alignedslice took before strips
//! (decode whole, resample whole, encode the PNG and the tile pack whole, two puts) and the
//! task itself. For each it prints the time and the peak of heap bytes allocated during the
//! run, counted by a global allocator. `-- 34432x39552` runs a hemibrain-sized slice through
//! the task only (the whole-image path refuses it).

#![expect(
    unsafe_code,
    reason = "a counting global allocator must implement the unsafe GlobalAlloc trait"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use emwrite::request::AlignedSliceRequest;
use emwrite::resample::affine::AffineTransform;
use emwrite::resample::bicubic::resample_affine;
use emwrite::slice_image::decode_gray;
use emwrite::storage::fs::FsStorage;
use emwrite::storage::location::Location;
use emwrite::storage::{self, Storage};
use emwrite::tilepack::{encode_png, encode_tile_pack};

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Rotation about the slice centre, in degrees: a typical alignment correction.
const DEGREES: f64 = 0.5;

/// The synthetic slice of the resample bench, `w × h`.
fn synthetic_slice(w: usize, h: usize) -> Vec<u8> {
    let mut pixels = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            pixels.push(((7 * x + 3 * y + 13 * (x ^ y) + (x * y) % 251) % 256) as u8);
        }
    }
    pixels
}

/// The request's columns for a rotation by [`DEGREES`] about the centre of a `w × h` slice.
fn rotation_columns(w: usize, h: usize) -> [f64; 6] {
    let (s, c) = DEGREES.to_radians().sin_cos();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    [c, s, -s, c, cx - c * cx + s * cy, cy - s * cx - c * cy]
}

/// Runs `f`, printing its time and the peak heap above what was live before it.
fn measure<T>(label: &str, pixels: usize, f: impl FnOnce() -> T) -> T {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let start = Instant::now();
    let out = f();
    let time = start.elapsed().as_secs_f64();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!(
        "{label:<10} {time:8.2} s {:7.1} Mpx/s   peak heap {:7.1} MiB",
        pixels as f64 / 1e6 / time,
        peak as f64 / f64::from(1 << 20)
    );
    out
}

fn main() -> Result<(), emwrite::Error> {
    let edges: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let edges = if edges.is_empty() {
        vec!["8192".to_owned(), "16384".to_owned()]
    } else {
        edges
    };
    let root = std::env::temp_dir().join(format!("emwrite-bench-aligned-{}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(emwrite::Error::internal)?;
    let store = FsStorage::new(&root);
    let dest = Location::parse("dest", "lab")?;
    let raw_object = dest.object("raw/s.png");
    for edge in edges {
        let (w, h) = match edge.split_once('x') {
            Some((w, h)) => (w.parse().unwrap_or(0), h.parse().unwrap_or(0)),
            None => (edge.parse().unwrap_or(0), edge.parse().unwrap_or(0)),
        };
        let whole_path = u64::try_from(w * h)
            .is_ok_and(|n| n <= emwrite::request::MAX_FRAME_PIXELS.min(1 << 30));
        let png = encode_png(&synthetic_slice(w, h), w as u32, h as u32)?;
        pollster::block_on(store.put(&raw_object, &png, storage::PNG))?;
        println!(
            "slice {w}×{h}, rotation {DEGREES}°, raw PNG {} MiB",
            png.len() >> 20
        );
        drop(png);
        let columns = rotation_columns(w, h);
        let (out_w, out_h) = (w as u32, h as u32);
        if whole_path {
            measure("whole", w * h, || -> Result<(), emwrite::Error> {
                let encoded = pollster::block_on(store.get(&raw_object))?;
                let raw = decode_gray(&encoded, &raw_object)?;
                drop(encoded);
                let inverse = AffineTransform::new(columns).inverse()?;
                let aligned = resample_affine(&raw.pixels, w, h, &inverse, w, h);
                drop(raw);
                let png = encode_png(&aligned, out_w, out_h)?;
                pollster::block_on(store.put(&dest.object("align/whole.png"), &png, storage::PNG))?;
                drop(png);
                let pack = encode_tile_pack(&aligned, out_w, out_h, 1024)?;
                pollster::block_on(store.put(&dest.object("tmp/whole"), &pack, storage::BINARY))
            })?;
        }
        let request = AlignedSliceRequest {
            img: "s.png".to_owned(),
            transform: columns,
            bbox: [out_w, out_h],
            dest: dest.clone(),
            dest_tmp: Location::parse("dest-tmp", "lab/tmp")?,
            slice: 0,
            shard_size: 1024,
            window: None,
        };
        let written = measure("strips", w * h, || {
            pollster::block_on(emwrite::tasks::aligned_slice::run(&store, &request))
        })?;
        if whole_path {
            let same = |a: &str, b: &str| {
                std::fs::read(root.join(a)).ok() == std::fs::read(root.join(b)).ok()
            };
            let aligned_same = {
                let read = |name| std::fs::read(root.join(name)).map_err(emwrite::Error::internal);
                let a = decode_gray(&read("lab/align/whole.png")?, &raw_object)?;
                let b = decode_gray(&read("lab/align/s.png")?, &raw_object)?;
                a == b
            };
            println!(
                "           same aligned pixels: {aligned_same}, same tile pack bytes: {}, notes: {:?}",
                same("lab/tmp/whole", "lab/tmp/0"),
                written.notes
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
