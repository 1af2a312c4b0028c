//! Writes a deterministic, EM-like example stack: raw slices, their transforms and a stack file.
//!
//! The tissue is a field of cells (a Voronoi diagram whose seeds drift slowly with z, so
//! neighbouring slices look alike, as serial sections do) with dark membranes, a few dark
//! organelles and sensor noise. Each raw slice is that tissue seen through a small rotation, scale
//! and shift; the stack file records the transform that maps the raw slice back into the common
//! frame, so aligning the slices reassembles the tissue. The same arguments always give the same
//! bytes.
//!
//! ```text
//! cargo run --release --example make_stack -- --data-dir data
//! ```

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Write a deterministic EM-like example stack")]
struct Args {
    /// Data directory; bucket B is the folder DATA_DIR/B.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Bucket that receives raw/, align/ and neuroglancer/.
    #[arg(long, default_value = "emdata")]
    dest: String,
    /// Bucket that receives the tile packs.
    #[arg(long, default_value = "emdata-tmp")]
    dest_tmp: String,
    /// Raw slice width in pixels.
    #[arg(long, default_value_t = 1200)]
    width: u32,
    /// Raw slice height in pixels.
    #[arg(long, default_value_t = 1000)]
    height: u32,
    /// Margin added around the raw size to make the aligned frame (bbox).
    #[arg(long, default_value_t = 100)]
    margin: u32,
    /// First slice index (minz).
    #[arg(long, default_value_t = 3)]
    minz: u32,
    /// Number of slices.
    #[arg(long, default_value_t = 40)]
    slices: u32,
    /// Seed of the tissue and the transforms.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the raw pyramid too (the stack file's writeRaw).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    write_raw: bool,
}

/// A stateless hash to uniform [0, 1): procedural texture must not depend on generation order,
/// and splitmix64's finaliser is stable across platforms and crate versions.
fn unit(seed: u64, a: i64, b: i64, c: i64) -> f64 {
    let mut z = seed
        ^ (a as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (c as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Spacing of the cell seeds in the common frame, in pixels.
const CELL: f64 = 90.0;

/// Grey level of the tissue at point (x, y) of the common frame in slice z.
fn tissue(seed: u64, x: f64, y: f64, z: f64) -> f64 {
    let (ci, cj) = ((x / CELL).floor() as i64, (y / CELL).floor() as i64);
    let (mut d1, mut d2, mut owner) = (f64::MAX, f64::MAX, (0, 0));
    for i in ci - 1..=ci + 1 {
        for j in cj - 1..=cj + 1 {
            // Each seed sits somewhere in its grid cell and drifts slowly with z.
            let sx = (i as f64 + 0.2 + 0.6 * unit(seed, i, j, 1)) * CELL
                + (unit(seed, i, j, 3) - 0.5) * 0.8 * z;
            let sy = (j as f64 + 0.2 + 0.6 * unit(seed, i, j, 2)) * CELL
                + (unit(seed, i, j, 4) - 0.5) * 0.8 * z;
            let d = ((x - sx).powi(2) + (y - sy).powi(2)).sqrt();
            if d < d1 {
                (d2, d1, owner) = (d1, d, (i, j));
            } else if d < d2 {
                d2 = d;
            }
        }
    }
    let interior = 140.0 + 60.0 * unit(seed, owner.0, owner.1, 5);
    // Membranes: dark where two cells meet, with a soft edge.
    let membrane = ((d2 - d1) / 2.5).min(1.0);
    let mut value = 35.0 + (interior - 35.0) * membrane;
    // One dark organelle in some cells, near their seed.
    if unit(seed, owner.0, owner.1, 6) < 0.35 && d1 < 9.0 + 4.0 * unit(seed, owner.0, owner.1, 7) {
        value *= 0.45;
    }
    value
}

/// The transform `[a, b, c, d, e, f]` (by columns) of slice z: raw pixel (x, y) lands at
/// (a·x + c·y + e, b·x + d·y + f) in the common frame.
fn transform_of(seed: u64, z: u32, margin: u32) -> [f64; 6] {
    let z = i64::from(z);
    let angle = (unit(seed, z, 0, 11) - 0.5) * 1.0_f64.to_radians();
    let scale = 1.0 + (unit(seed, z, 0, 12) - 0.5) * 0.01;
    let (s, c) = angle.sin_cos();
    let half = f64::from(margin) / 2.0;
    let e = half + (unit(seed, z, 0, 13) - 0.5) * half * 0.6;
    let f = half + (unit(seed, z, 0, 14) - 0.5) * half * 0.6;
    let round = |v: f64| (v * 1e6).round() / 1e6;
    [
        round(scale * c),
        round(scale * s),
        round(-scale * s),
        round(scale * c),
        round(e),
        round(f),
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let raw_dir = args.data_dir.join(&args.dest).join("raw");
    std::fs::create_dir_all(&raw_dir)?;
    std::fs::create_dir_all(args.data_dir.join(&args.dest_tmp))?;
    let (w, h) = (args.width, args.height);
    let mut slices = Vec::new();
    let mut pixels = vec![0u8; (w * h) as usize];
    for z in args.minz..args.minz + args.slices {
        let t = transform_of(args.seed, z, args.margin);
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
                let (tx, ty) = (t[0] * fx + t[2] * fy + t[4], t[1] * fx + t[3] * fy + t[5]);
                let noise =
                    (unit(args.seed, i64::from(x), i64::from(y), 1000 + i64::from(z)) - 0.5) * 30.0;
                let v = tissue(args.seed, tx, ty, f64::from(z)) + noise;
                pixels[(y * w + x) as usize] = v.clamp(0.0, 255.0) as u8;
            }
        }
        let name = format!("s{z:04}.png");
        image::save_buffer(
            raw_dir.join(&name),
            &pixels,
            w,
            h,
            image::ExtendedColorType::L8,
        )?;
        slices.push(serde_json::json!({"z": z, "img": name, "transform": t}));
    }
    let stack = serde_json::json!({
        "dest": args.dest,
        "dest-tmp": args.dest_tmp,
        "bbox": [w + args.margin, h + args.margin],
        "resolution": 8,
        "writeRaw": args.write_raw,
        "slices": slices,
    });
    let stack_file = args.data_dir.join("stack.json");
    std::fs::write(&stack_file, serde_json::to_string_pretty(&stack)?)?;
    println!(
        "wrote {} raw slices of {w}×{h} to {} and the stack file {}",
        args.slices,
        raw_dir.display(),
        stack_file.display()
    );
    Ok(())
}
