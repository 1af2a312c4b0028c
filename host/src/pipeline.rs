//! `emwrite pipeline STACK.json`: a whole stack, from raw slices to a sharded Neuroglancer
//! volume, through the component's typed WIT exports.
//!
//! Order (`docs/design.md` §1): every aligned slice (each writes its tile pack), then the
//! volume's `info`, then every 1024³ block. Tasks of a phase are independent and run `--jobs`
//! at a time, each in its own instance; a phase starts only when the previous one succeeded.
//!
//! A rerun skips what is finished (`finished.rs`; `--force` redoes everything), and the run ends
//! with `verify` of the volume (`verify.rs`).
//!
//! A block splits into two halves on two cores (`--split`, `task.rs`) when fewer blocks are left
//! to start than there are free cores: with many blocks, whole blocks already fill every core,
//! and it is the last ones (or a stack of fewer blocks than `--jobs`) that would leave cores idle.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tokio::task::JoinSet;

use crate::bindings::{EndpointsPre, aligned_slice, ng_meta, ng_shard};
use crate::engine::{Emwrite, HostState, Settings};
use crate::error::HostError;
use crate::finished;
use crate::log::AboveBar;
use crate::neuroglancer::Framing;
use crate::store::{self, HostStore};
use crate::task::{self, Split, Task};
use crate::units::{show_bytes, show_duration};
use crate::verify;
use crate::view;

/// Edge of a block, of the tile packs' tiles and of `shard-size`: the only value the original
/// and our sharding layout support (`docs/design.md` §4).
const BLOCK: u32 = emwrite::layout::BLOCK_EDGE;

/// A stack file: where the volume goes and how each raw slice maps into the aligned frame.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stack {
    /// Location holding `raw/` and receiving `align/` and `neuroglancer/`.
    dest: String,
    /// Location receiving the tile packs.
    #[serde(rename = "dest-tmp")]
    dest_tmp: String,
    /// Width and height of the aligned frame.
    bbox: [u32; 2],
    /// Voxel size at scale 0, nm.
    #[serde(default = "default_resolution")]
    resolution: f64,
    /// Also write the raw-encoded volume.
    #[serde(rename = "writeRaw", alias = "write-raw", default)]
    write_raw: bool,
    /// JPEG quality of the volume, 1–100.
    #[serde(
        rename = "jpegQuality",
        alias = "jpeg-quality",
        default = "default_jpeg_quality"
    )]
    jpeg_quality: u8,
    slices: Vec<Slice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Slice {
    z: u32,
    /// Object name under `<dest>/raw/`.
    img: String,
    /// `[a, b, c, d, e, f]` by columns, as in the original.
    transform: [f64; 6],
}

fn default_resolution() -> f64 {
    8.0
}

fn default_jpeg_quality() -> u8 {
    // tensorstore's default, which the original used.
    75
}

/// Runs the stack (skipping finished tasks unless `force`), verifies the volume, and prints
/// where it is and how to view it.
pub fn pipeline(
    stack_file: &Path,
    jobs: Option<u32>,
    split: Split,
    force: bool,
    settings: Settings,
) -> Result<(), HostError> {
    let stack = read_stack(stack_file)?;
    let jobs = jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        |n| n as usize,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Guests compute on the worker that polls them: one worker per job runs them in parallel.
        .worker_threads(jobs)
        .enable_all()
        .build()
        .map_err(|e| HostError::Config(format!("cannot start the async runtime: {e}")))?;
    let (data_dir, report) = runtime.block_on(async {
        let store = store::open(&settings)?;
        let data_dir = run_stack(&store, &stack, jobs, split, force, &settings).await?;
        let dest = emwrite::storage::location::Location::parse("dest", &stack.dest)
            .map_err(|e| HostError::Config(e.to_string()))?;
        Ok::<_, HostError>((data_dir, verify::verify(&store, &dest).await?))
    })?;
    for line in report.problem_lines() {
        tracing::error!("{line}");
    }
    tracing::info!("{}", report.summary(&stack.dest));
    report.into_result(&stack.dest)?;
    let volume = volume_location(&stack.dest, data_dir.as_deref());
    println!("{volume}");
    println!("{}", how_to_view(&stack, data_dir.as_deref()));
    Ok(())
}

/// Reads and checks a stack file.
pub fn read_stack(file: &Path) -> Result<Stack, HostError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| HostError::Config(format!("stack file {}: {e}", file.display())))?;
    // The path of the value serde stopped at (`bbox`, `slices[1].transform`) names the field.
    let mut json = serde_json::Deserializer::from_str(&text);
    let stack: Stack = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let (path, inner) = (e.path().to_string(), e.into_inner());
        let at = if path == "." {
            String::new()
        } else {
            format!("{path}: ")
        };
        HostError::Config(format!("stack file {}: {at}{inner}", file.display()))
    })?;
    let invalid =
        |message: String| HostError::Config(format!("stack file {}: {message}", file.display()));
    if stack.slices.is_empty() {
        return Err(invalid("slices: empty".to_owned()));
    }
    if stack.bbox.contains(&0) {
        return Err(invalid(format!("bbox: {:?} has a zero side", stack.bbox)));
    }
    let mut seen = BTreeSet::new();
    for slice in &stack.slices {
        if !seen.insert(slice.z) {
            return Err(invalid(format!("slices: z={} appears twice", slice.z)));
        }
    }
    Ok(stack)
}

/// A stack's tasks, phase by phase, in the order they run.
pub struct Phases {
    /// One alignedslice task per slice.
    pub slices: Vec<Task>,
    /// The ngmeta task.
    pub meta: Task,
    /// One ngshard task per block holding slices (`layout::stack_blocks`).
    pub blocks: Vec<Task>,
}

/// The tasks of `stack`.
pub fn stack_phases(stack: &Stack) -> Phases {
    // `read_stack` rejected an empty list.
    let minz = stack.slices.iter().map(|s| s.z).min().unwrap_or(0);
    let maxz = stack.slices.iter().map(|s| s.z).max().unwrap_or(0);
    let [width, height] = stack.bbox;
    let slices = stack
        .slices
        .iter()
        .map(|slice| {
            Task::Slice(aligned_slice::Request {
                img: slice.img.clone(),
                transform: slice.transform.to_vec(),
                bbox: (width, height),
                dest: stack.dest.clone(),
                dest_tmp: stack.dest_tmp.clone(),
                slice: slice.z,
                shard_size: BLOCK,
            })
        })
        .collect();
    let meta = Task::Meta(ng_meta::Request {
        dest: stack.dest.clone(),
        minz,
        maxz,
        shard_size: BLOCK,
        bbox: (width, height),
        write_raw: stack.write_raw,
        resolution: stack.resolution,
    });
    let blocks = emwrite::layout::stack_blocks(stack.bbox, minz, maxz)
        .map(|[bx, by, bz]| Task::Block {
            request: ng_shard::Request {
                dest: stack.dest.clone(),
                source: stack.dest_tmp.clone(),
                start: (bx, by, bz),
                shard_size: BLOCK,
                minz,
                maxz,
                bbox: (width, height),
                write_raw: stack.write_raw,
                jpeg_quality: stack.jpeg_quality,
            },
            // Decided as the block starts, by the cores then free (`run_phase`).
            split: false,
        })
        .collect();
    Phases {
        slices,
        meta,
        blocks,
    }
}

/// Runs every phase's unfinished tasks; returns the data directory, or `None` when bare buckets
/// are GCS buckets.
async fn run_stack(
    store: &HostStore,
    stack: &Stack,
    jobs: usize,
    split: Split,
    force: bool,
    settings: &Settings,
) -> Result<Option<PathBuf>, HostError> {
    let progress = Progress::new();
    let emwrite = Emwrite::load(settings)?;
    let pre = EndpointsPre::new(emwrite.instance_pre().clone()).map_err(|e| {
        HostError::engine(
            "the component does not export the emwrite:core endpoints",
            &e,
        )
    })?;
    let phases = stack_phases(stack);
    let plan = [
        ("align", phases.slices, jobs),
        ("info", vec![phases.meta], 1),
        ("shard", phases.blocks, jobs),
    ];
    for (phase, tasks, jobs) in plan {
        let (tasks, skipped) = finished::unfinished(store, tasks, force).await?;
        if skipped > 0 {
            tracing::info!("{phase}: {skipped} tasks already finished, skipped");
        }
        run_phase(&emwrite, &pre, &progress, phase, tasks, jobs, split).await?;
    }
    progress.bar.finish_and_clear();
    Ok(emwrite.data_dir().map(Path::to_path_buf))
}

/// The progress bar on stderr, with the log printed above it (`log.rs`). Indicatif hides the bar
/// when stderr is not a terminal; the log still prints.
struct Progress {
    bar: ProgressBar,
    /// Held for its drop: the log goes above the bar while the bar lives.
    _log_above: AboveBar,
}

impl Progress {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        // The template is a constant; should it ever fail to parse, the default bar is fine.
        let style = ProgressStyle::with_template(
            "{prefix:>5} [{elapsed_precise}] {wide_bar} {pos}/{len} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let _log_above = AboveBar::new(&bar);
        Progress { bar, _log_above }
    }

    fn start_phase(&self, phase: &'static str, total: usize) {
        self.bar.reset();
        self.bar.set_length(total as u64);
        self.bar.set_prefix(phase);
    }
}

/// Runs `tasks` on `jobs` cores: a task takes one, a split block two. After the first failure no new task starts (a failure is
/// usually systematic: a wrong bucket, a bad transform), the running ones finish, and every
/// failure is printed with the slice or block it belongs to.
async fn run_phase(
    emwrite: &Emwrite,
    pre: &EndpointsPre<HostState>,
    progress: &Progress,
    phase: &'static str,
    tasks: Vec<Task>,
    jobs: usize,
    split: Split,
) -> Result<(), HostError> {
    let total = tasks.len();
    let started = Instant::now();
    progress.start_phase(phase, total);
    let mut pending = tasks.into_iter();
    let mut running = JoinSet::new();
    let mut busy_cores = 0_usize;
    let (mut done, mut failed, mut objects, mut bytes) = (0_usize, 0_usize, 0_usize, 0_u64);
    loop {
        while failed == 0 && busy_cores < jobs {
            let not_started = pending.len();
            let Some(mut task) = pending.next() else {
                break;
            };
            if let Task::Block { split: splits, .. } = &mut task {
                *splits = split.splits(jobs - busy_cores, not_started);
            }
            let cores = task.cores();
            busy_cores += cores;
            let (emwrite, pre) = (emwrite.clone(), pre.clone());
            running.spawn(async move { (cores, task::run(emwrite, pre, task).await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let outcome = match joined {
            Ok((cores, outcome)) => {
                busy_cores -= cores;
                outcome
            }
            // Only a panic in the host ends a task this way; its cores count as busy until the
            // phase ends, which is soon: the failure stops new tasks.
            Err(join) => Err(HostError::Engine {
                context: phase.to_owned(),
                message: format!("host task failed: {join}"),
            }),
        };
        match outcome {
            Ok(written) => {
                done += 1;
                objects += written.objects.len();
                bytes += written.bytes;
                progress.bar.inc(1);
            }
            Err(error) => {
                failed += 1;
                if let Some(backtrace) = error.backtrace() {
                    tracing::error!("{backtrace}");
                }
                tracing::error!("{error}");
            }
        }
    }

    if failed > 0 {
        progress.bar.abandon();
        return Err(HostError::Phase {
            phase,
            failed,
            done,
            total,
        });
    }
    tracing::info!(
        "{phase}: {done} tasks, {objects} objects, {} in {}",
        show_bytes(bytes),
        show_duration(started.elapsed())
    );
    Ok(())
}

/// Where the JPEG volume is: the URL as given for `gs://` locations; for a bucket name, a local
/// path under the data dir, or `gs://bucket/...` when there is none (`--store gcs`).
fn volume_location(dest: &str, data_dir: Option<&Path>) -> String {
    match data_dir {
        _ if dest.starts_with("gs://") => {
            format!("{}/neuroglancer/jpeg", dest.trim_end_matches('/'))
        }
        Some(data_dir) => data_dir
            .join(dest)
            .join("neuroglancer")
            .join("jpeg")
            .display()
            .to_string(),
        None => format!("gs://{}/neuroglancer/jpeg", dest.trim_end_matches('/')),
    }
}

/// The `emwrite view` command for the stack's volume and the Neuroglancer link (`view.rs`),
/// centred on the stack's slices.
fn how_to_view(stack: &Stack, data_dir: Option<&Path>) -> String {
    let minz = stack.slices.iter().map(|s| s.z).min().unwrap_or(0);
    let maxz = stack.slices.iter().map(|s| s.z).max().unwrap_or(0);
    let framing = Framing::of_stack(stack.bbox, minz, maxz, stack.resolution);
    view::how_to_view(&stack.dest, data_dir, framing.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_file_reads_the_documented_shape() {
        let stack: Stack = serde_json::from_str(
            r#"{"dest": "lab", "dest-tmp": "lab-tmp", "bbox": [2048, 1500], "resolution": 8,
                "writeRaw": true, "slices": [{"z": 3, "img": "s3.png",
                "transform": [1, 0, 0, 1, 0, 0]}]}"#,
        )
        .expect("a valid stack file");
        assert_eq!(stack.bbox, [2048, 1500]);
        assert_eq!(stack.jpeg_quality, 75);
        assert!(stack.write_raw);
        assert_eq!(stack.slices[0].transform, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn volume_location_is_absolute_for_buckets_and_kept_for_gcs() {
        let data = Some(Path::new("/srv/data"));
        assert_eq!(
            volume_location("lab", data),
            "/srv/data/lab/neuroglancer/jpeg"
        );
        assert_eq!(
            volume_location("gs://lab/vol/", data),
            "gs://lab/vol/neuroglancer/jpeg"
        );
    }

    #[test]
    fn bare_buckets_are_gcs_buckets_with_store_gcs() {
        assert_eq!(volume_location("lab", None), "gs://lab/neuroglancer/jpeg");
        assert_eq!(
            volume_location("gs://lab/vol", None),
            "gs://lab/vol/neuroglancer/jpeg"
        );
    }
}
