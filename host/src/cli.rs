//! The command line: every flag defined once, and turned into what the commands run with in one
//! place.
//!
//! Flags several commands share are groups, each declared once and flattened where it applies:
//! the stack file and the fields a CSV stack takes from the command line ([`StackArgs`]), where
//! bare bucket names live ([`StoreArgs`]), the engine's limits and reach ([`EngineArgs`]), how a
//! block splits ([`SplitArgs`]), a run in this process ([`InProcessArgs`]) and a deployed
//! service ([`RemoteArgs`]). The methods here turn them into the engine's [`Settings`], the
//! driver's [`Mode`], the server's [`ServeOptions`]; the commands (`commands/`) take it from
//! there. The help text a user reads is the doc comments below.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use emwrite::endpoint::{Endpoint, MAX_BODY_BYTES};
use emwrite::guest_env::DEFAULT_STORE_ENV;
use emwrite::request::OutputFormat;
use emwrite::storage::retry::RetryPolicy;
use emwrite::storage::router::DefaultStore;

use crate::embed::call::Split;
use crate::embed::engine::Settings;
use crate::embed::outgoing::AllowedHost;
use crate::embed::sweep;
use crate::error::HostError;
use crate::runtime::cores;
use crate::server::auth::BearerToken;
use crate::server::limits::{ServeLimits, default_max_in_flight};
use crate::server::serve::ServeOptions;
use crate::stack::driver::Mode;
use crate::stack::executor::remote::RemoteOptions;
use crate::stack::parse::{self, Overrides};
use crate::stack::requests::Prices;
use crate::stack::source::StackFile;
use crate::stack::tasks::{Phase, Stack};
use crate::units::{parse_byte_size, parse_duration};
use crate::volume::neuroglancer::DEMO_VIEWER;
use crate::volume::view::DEFAULT_PORT;

/// Aligned EM slices and Neuroglancer precomputed volumes, run in a WASI component.
#[derive(Debug, Parser)]
#[command(name = "emwrite", version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, each run by its file in `commands/`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the original HTTP API (POST /alignedslice, /ngmeta, /ngshard; GET /healthz).
    Serve(ServeArgs),
    /// Run one task from a request JSON file in the original API's shape and print the response.
    Run(RunArgs),
    /// Run every task of a stack file not yet finished: all aligned slices, the volume's info,
    /// every block; in-process, or on a deployed emwrite service with --endpoint; then verify
    /// the volume (with --endpoint: when it is on GCS, where this process can look too).
    Pipeline(PipelineArgs),
    /// Run this batch task's share of one phase of a stack (Cloud Run Jobs, Kubernetes Indexed
    /// Jobs), skipping finished tasks: its index and the task count come from the flags or the
    /// engine's environment.
    Task(TaskArgs),
    /// Print what a stack will cost per phase (tasks, bytes, peak memory, core-seconds) before
    /// anything runs.
    Plan(PlanArgs),
    /// Check a volume: every block's manifest, shards and chunks; exit status 0 only if complete.
    Verify(VerifyArgs),
    /// Tasks of a stack finished per phase, from what storage holds.
    Status(StatusArgs),
    /// Suggest the window that maps a 16-bit stack to 8 bits, from a sample of its raw slices.
    Window(WindowArgs),
    /// Serve a local volume to Neuroglancer on loopback and print the link that opens it (for a
    /// GCS volume: print its link).
    View(ViewArgs),
    /// Compile the embedded component for this machine once, so that later starts load it
    /// instead (the container image runs this as it is built).
    /// It goes next to the executable, where every start looks for it.
    Precompile,
}

/// Options of `emwrite serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one; the address is printed on stdout).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Address to listen on; Cloud Run needs 0.0.0.0.
    #[arg(long, default_value = "127.0.0.1")]
    addr: IpAddr,
    /// Largest request body, e.g. 1MiB; a larger one gets 413 as soon as it passes the limit,
    /// before an instance is made (chunked bodies too).
    #[arg(long, value_name = "SIZE", default_value_t = MAX_BODY_BYTES as u64, value_parser = parse_byte_size)]
    max_body: u64,
    /// Time a client has to send a request's headers; a connection silent that long closes.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// Longest pause while a request body arrives; a body that stalls longer gets 408.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Connections open at once; more are closed at once.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Requests computing at once, each in its own instance; more get 503 with Retry-After
    /// (default: 2 × cores, at most memory / --memory-limit, at least 1; /healthz is never refused).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: Option<u32>,
    /// After SIGTERM or SIGINT, time requests in flight get to finish before they are dropped
    /// (Cloud Run kills 10 s after SIGTERM).
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Require `Authorization: Bearer <token>` on every request but /healthz; the token is
    /// this file's content, trimmed, read once at start.
    #[arg(long, value_name = "FILE")]
    auth_token_file: Option<PathBuf>,
    /// How an ngshard block splits: auto splits a block when two cores are free (counting a
    /// request in flight as one core busy, a split block as two).
    #[command(flatten)]
    pub split: SplitArgs,
    /// The engine.
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl ServeArgs {
    /// The server's options; reads the token file.
    pub fn options(&self) -> Result<ServeOptions, HostError> {
        let max_in_flight = match self.max_in_flight {
            Some(n) => n as usize,
            None => default_max_in_flight(self.engine.memory_limit),
        };
        Ok(ServeOptions {
            addr: SocketAddr::new(self.addr, self.port),
            limits: ServeLimits {
                max_body: self.max_body,
                header_timeout: self.header_timeout,
                idle_timeout: self.idle_timeout,
                max_connections: self.max_connections as usize,
                max_in_flight,
                shutdown_grace: self.shutdown_grace,
            },
            auth: self
                .auth_token_file
                .as_deref()
                .map(BearerToken::read)
                .transpose()?,
            split: self.split.split,
            cores: cores(),
        })
    }
}

/// Options of `emwrite run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The endpoint, as in the original's URL path.
    #[arg(value_enum)]
    pub endpoint: Endpoint,
    /// Request JSON, exactly as it would be POSTed to the service.
    pub file: PathBuf,
    /// How an ngshard block splits.
    #[command(flatten)]
    pub split: SplitArgs,
    /// The engine.
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Options of `emwrite pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// A run in this process.
    #[command(flatten)]
    in_process: InProcessArgs,
    /// A deployed service instead.
    #[command(flatten)]
    remote: RemoteArgs,
    /// The engine.
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl PipelineArgs {
    /// Where the stack's tasks run: on the service of `--endpoint`, whose storage this process
    /// also reads when every location of `stack` is on GCS (unless `--force`); else here.
    pub fn mode(self, stack: &Stack) -> Mode {
        let Some(options) = self.remote.options() else {
            return self.in_process.mode(self.engine);
        };
        let sees_storage = stack.all_on_gcs(self.engine.stores.store) && !self.in_process.force;
        Mode::Remote {
            options,
            // Read-only here: no sweep of temporary files.
            shared_storage: sees_storage.then(|| self.engine.into()),
        }
    }
}

/// Options of `emwrite task`.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// The phase this batch job runs: align, then meta, then shard, each job started when the
    /// previous one succeeded.
    #[arg(long, value_enum)]
    pub phase: Phase,
    /// This task's index, 0-based [default: CLOUD_RUN_TASK_INDEX or JOB_COMPLETION_INDEX].
    #[arg(long, value_name = "I")]
    pub task_index: Option<usize>,
    /// The number of tasks sharing the phase [default: CLOUD_RUN_TASK_COUNT or
    /// EMWRITE_TASK_COUNT].
    #[arg(long, value_name = "N")]
    pub task_count: Option<usize>,
    /// A run in this process.
    #[command(flatten)]
    in_process: InProcessArgs,
    /// The engine.
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl TaskArgs {
    /// The share's tasks run here.
    pub fn mode(self) -> Mode {
        self.in_process.mode(self.engine)
    }
}

/// Options of `emwrite plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// Where the raw slices are (they are sized only on the local store).
    #[command(flatten)]
    pub stores: StoreArgs,
    /// Cores of each machine or service instance the wall time assumes (default: this
    /// machine's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    cores: Option<u32>,
    /// Machines or service instances running tasks at once, each with --cores cores.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub instances: u32,
    /// US dollars per 1,000 GCS class A requests (writes); the default is GCS Standard's.
    #[arg(long, value_name = "USD", default_value_t = Prices::GCS_STANDARD.class_a_per_1000, value_parser = parse_price)]
    pub price_class_a: f64,
    /// US dollars per 1,000 GCS class B requests (reads); the default is GCS Standard's.
    #[arg(long, value_name = "USD", default_value_t = Prices::GCS_STANDARD.class_b_per_1000, value_parser = parse_price)]
    pub price_class_b: f64,
    /// US dollars per core-second of compute, to add the compute to the cost (e.g. Cloud Run's
    /// price per vCPU-second).
    #[arg(long, value_name = "USD", value_parser = parse_price)]
    pub price_core_second: Option<f64>,
}

impl PlanArgs {
    /// `--cores`, or this machine's.
    pub fn cores(&self) -> usize {
        self.cores.map_or_else(cores, |n| n as usize)
    }

    /// The prices the cost is computed from.
    pub fn prices(&self) -> Prices {
        Prices {
            class_a_per_1000: self.price_class_a,
            class_b_per_1000: self.price_class_b,
            core_second: self.price_core_second,
        }
    }
}

/// A price in US dollars: a finite number, zero or more.
fn parse_price(text: &str) -> Result<f64, String> {
    match text.trim().trim_start_matches('$').parse::<f64>() {
        Ok(price) if price.is_finite() && price >= 0.0 => Ok(price),
        _ => Err(format!(
            "{text:?}: expected a price in US dollars, like 0.005"
        )),
    }
}

/// Options of `emwrite verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The volume's destination: a bucket name, gs://bucket/prefix, or a local folder path
    /// (with a `/`) holding neuroglancer/.
    pub location: String,
    /// The engine (its stores and reach).
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Options of `emwrite status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// The engine (its stores and reach).
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Options of `emwrite window`.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// The engine (its stores and reach).
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Raw slices read, spread evenly through the stack.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub sample: usize,
    /// The percentiles of the sampled pixels that become LOW and HIGH.
    #[arg(long, value_name = "LOW,HIGH", default_value = "0.5,99.5", value_parser = parse_percentiles)]
    pub percentiles: [f64; 2],
}

/// `--percentiles 0.5,99.5`.
fn parse_percentiles(text: &str) -> Result<[f64; 2], String> {
    let parts: Vec<Option<f64>> = text.split(',').map(|p| p.trim().parse().ok()).collect();
    match parts.as_slice() {
        [Some(low), Some(high)] if (0.0..=100.0).contains(low) && low < high && *high <= 100.0 => {
            Ok([*low, *high])
        }
        _ => Err(format!(
            "{text:?}: expected LOW,HIGH with 0 ≤ LOW < HIGH ≤ 100, e.g. 0.5,99.5"
        )),
    }
}

/// Options of `emwrite view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The volume's destination, as in the stack file's `dest`: a bucket name (the folder
    /// DIR/BUCKET, or a GCS bucket with --store gcs), gs://bucket/prefix, or a folder path; or
    /// the volume's own folder, the one holding its info (e.g. data/emdata/neuroglancer/jpeg).
    pub location: String,
    /// Loopback port to serve on (0 picks a free one; the address is printed on stdout).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// The Neuroglancer deployment the link opens, e.g. a self-hosted one.
    #[arg(long, value_name = "URL", default_value = DEMO_VIEWER)]
    pub viewer: String,
    /// Where the volume is.
    #[command(flatten)]
    pub stores: StoreArgs,
}

/// The stack file and the fields a CSV stack takes from the command line.
#[derive(Debug, Args)]
pub struct StackArgs {
    /// Stack file: JSON {"dest", "dest-tmp", "bbox": [w, h], "slices": [{"z", "img",
    /// "transform"}, ...]}, or CSV (a name ending in .csv) with the header z,img,a,b,c,d,e,f; a
    /// local path, or a GCS object gs://BUCKET/OBJECT (read with the host's GCS access, or from
    /// STORAGE_EMULATOR_HOST).
    #[arg(value_parser = StackFile::parse)]
    stack: StackFile,
    /// Where raw/ is and align/ and neuroglancer/ go (required for CSV; replaces the JSON's).
    #[arg(long, value_name = "LOCATION")]
    dest: Option<String>,
    /// Where the tile packs go (required for CSV; replaces the JSON's).
    #[arg(long, value_name = "LOCATION")]
    dest_tmp: Option<String>,
    /// Width and height of the aligned frame (required for CSV; replaces the JSON's).
    #[arg(long, value_name = "W,H", value_parser = parse_bbox)]
    bbox: Option<[u32; 2]>,
    /// Voxel size in nm: one number for cubic voxels, or X,Y,Z (e.g. 8,8,40) [CSV default: 8].
    #[arg(long, value_name = "NM|X,Y,Z", value_parser = parse_resolution)]
    resolution: Option<[f64; 3]>,
    /// Also write the raw-encoded volume [CSV default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    write_raw: Option<bool>,
    /// JPEG quality of the volume, 1-100 [CSV default: 75].
    #[arg(long, value_name = "Q")]
    jpeg_quality: Option<u8>,
    /// Maps 16-bit slices to 8 bits: LOW and below to 0, HIGH and above to 255, linear between
    /// (replaces the JSON's "window"; `emwrite window STACK` suggests one).
    #[arg(long, value_name = "LOW,HIGH", value_parser = parse_window)]
    window: Option<[u64; 2]>,
    /// Fills slices missing between the first and last z with black, instead of refusing the
    /// stack (as "fill-missing": true in a JSON stack file).
    #[arg(long)]
    fill_missing: bool,
    /// The volumes written: precomputed (neuroglancer/), ome-zarr (an OME-Zarr 0.5 image in
    /// ome-zarr/), or both [CSV default: precomputed; replaces the JSON's "format"].
    #[arg(long, value_name = "FORMAT")]
    format: Option<OutputFormat>,
}

impl StackArgs {
    /// Reads and checks the stack (from GCS with `allow_hosts` too, as every GCS request): every
    /// problem is reported, and nothing runs if there is one.
    pub fn read(&self, allow_hosts: &[AllowedHost]) -> Result<Stack, HostError> {
        let overrides = Overrides {
            dest: self.dest.clone(),
            dest_tmp: self.dest_tmp.clone(),
            bbox: self.bbox,
            resolution: self.resolution,
            write_raw: self.write_raw,
            jpeg_quality: self.jpeg_quality,
            window: self.window,
            fill_missing: self.fill_missing.then_some(true),
            format: self.format,
        };
        let text = self.stack.read(allow_hosts)?;
        parse::parse(&self.stack, &text, &overrides)
    }
}

/// `--resolution 8` or `--resolution 8,8,40`.
fn parse_resolution(text: &str) -> Result<[f64; 3], String> {
    let axes: Vec<Option<f64>> = text.split(',').map(|nm| nm.trim().parse().ok()).collect();
    match axes.as_slice() {
        [Some(nm)] => Ok([*nm; 3]),
        [Some(x), Some(y), Some(z)] => Ok([*x, *y, *z]),
        _ => Err(format!(
            "{text:?}: expected nm as NM or X,Y,Z, e.g. 8 or 8,8,40"
        )),
    }
}

/// `--window 100,4000`.
fn parse_window(text: &str) -> Result<[u64; 2], String> {
    match text
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [low, high] => match (low.parse(), high.parse()) {
            (Ok(low), Ok(high)) => Ok([low, high]),
            _ => Err(format!(
                "{text:?}: expected LOW,HIGH in whole numbers, e.g. 100,4000"
            )),
        },
        _ => Err(format!("{text:?}: expected LOW,HIGH, e.g. 100,4000")),
    }
}

/// `--bbox 1300,1100`.
fn parse_bbox(text: &str) -> Result<[u32; 2], String> {
    let parts: Vec<&str> = text.split([',', 'x', '×']).map(str::trim).collect();
    match parts.as_slice() {
        [w, h] => match (w.parse(), h.parse()) {
            (Ok(w), Ok(h)) => Ok([w, h]),
            _ => Err(format!(
                "{text:?}: expected W,H in whole pixels, e.g. 1300,1100"
            )),
        },
        _ => Err(format!("{text:?}: expected W,H, e.g. 1300,1100")),
    }
}

/// `--split`: when a block runs as two halves.
#[derive(Debug, Args)]
pub struct SplitArgs {
    /// Run a block as two halves in two instances at once, then their merge (same bytes); auto:
    /// when at least 2 cores are free (of --jobs, for a stack), fewer blocks wait to start than
    /// cores are free (a stack's last ones), and the block has no writeRaw and no OME-Zarr output.
    #[arg(long, value_enum, default_value_t = Split::Auto)]
    pub split: Split,
}

/// A stack's tasks run in this process.
#[derive(Debug, Args)]
pub struct InProcessArgs {
    /// Tasks run at once, each in its own instance (default: the number of cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// How a block splits.
    #[command(flatten)]
    split: SplitArgs,
    /// Redo every task, finished or not. Without it finished tasks are skipped: in-process
    /// always, and with pipeline --endpoint when every location is on GCS (the driver looks
    /// with its own credentials).
    #[arg(long)]
    force: bool,
}

impl InProcessArgs {
    /// The tasks run here on `engine`, after the sweep of the local store.
    fn mode(self, engine: EngineArgs) -> Mode {
        Mode::InProcess {
            settings: engine.prepare(),
            jobs: self.jobs.map_or_else(cores, |n| n as usize),
            split: self.split.split,
            force: self.force,
        }
    }
}

/// How `emwrite pipeline --endpoint URL` talks to a deployed service.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// POST every task to the emwrite service at URL (Cloud Run, Spin, another emwrite serve)
    /// instead of running it here; bucket names are the service's.
    #[arg(long, value_name = "URL", conflicts_with = "jobs")]
    endpoint: Option<String>,
    /// Requests in flight at once (with --endpoint).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Bearer token for a private service.
    #[arg(
        long,
        env = "EMWRITE_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_command"
    )]
    token: Option<String>,
    /// Command that prints a bearer token, run once and again when the service answers 401,
    /// e.g. "gcloud auth print-identity-token".
    #[arg(long, value_name = "COMMAND")]
    token_command: Option<String>,
    /// Times a task is sent again after a connection failure, 408, 429 or 5xx.
    #[arg(long, value_name = "N", default_value_t = 6)]
    retries: u32,
    /// First wait before sending a task again; it doubles up to 32 times this (full jitter).
    /// 429 and 503 wait their Retry-After instead.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    retry_base: Duration,
    /// Requests per second at first (0: no ramp); the rate doubles every --ramp-double.
    #[arg(long, value_name = "RATE", default_value_t = 5.0)]
    ramp_start: f64,
    /// How often the request rate doubles.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    ramp_double: Duration,
    /// Longest wait for one task's answer (Cloud Run allows requests up to 60 minutes).
    #[arg(long, value_name = "DURATION", default_value = "60m", value_parser = parse_duration)]
    request_timeout: Duration,
}

impl RemoteArgs {
    /// How to reach the service, if `--endpoint` names one.
    fn options(&self) -> Option<RemoteOptions> {
        let endpoint = self.endpoint.clone()?;
        Some(RemoteOptions {
            endpoint,
            concurrency: self.concurrency as usize,
            token: self.token.clone(),
            token_command: self.token_command.clone(),
            policy: RetryPolicy {
                base_delay: self.retry_base,
                max_attempts: self.retries.saturating_add(1),
            },
            ramp_start: self.ramp_start,
            ramp_double: self.ramp_double,
            request_timeout: self.request_timeout,
        })
    }
}

/// Where bare bucket names live.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Where bare bucket names live: folders of --data-dir, or GCS buckets (gs://B/... is always
    /// GCS). GCS goes to STORAGE_EMULATOR_HOST instead when that is set.
    #[arg(long, env = DEFAULT_STORE_ENV, value_enum, default_value_t = DefaultStore::Local)]
    pub store: DefaultStore,
    /// Local data directory: bucket B is the folder DIR/B (a component instance sees it at
    /// /data) [default: ./data; not used with --store gcs].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// `--data-dir`, or `./data`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./data"))
    }
}

/// Options shared by every command that runs the component or reads its stores: where the
/// component and the data are, what it may reach, and the limits.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Where the stores are.
    #[command(flatten)]
    pub stores: StoreArgs,
    /// Also let the component reach HOST[:PORT] (repeatable; no port: any port). GCS over https
    /// and the STORAGE_EMULATOR_HOST emulator are always allowed; everything else is refused.
    #[arg(
        long = "allow-host",
        value_name = "HOST[:PORT]",
        env = "EMWRITE_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<AllowedHost>,
    /// Run this component file instead of the embedded one.
    #[arg(long, value_name = "FILE")]
    component: Option<PathBuf>,
    /// Memory cap of one instance, e.g. 2GiB, 512MiB, 1000000000.
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = parse_byte_size)]
    memory_limit: u64,
    /// Wall-clock limit of one request or task, e.g. 90s, 10m, 1h (default: none).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    time_limit: Option<Duration>,
    /// At start, remove temporary files of cut-short writes older than this from --data-dir
    /// (0s: all of them; only with the local store).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    stale_temp_age: Duration,
}

impl EngineArgs {
    /// The engine's settings, after sweeping the local store of stale temporary files: every
    /// command that writes does it before its first instance.
    pub fn prepare(self) -> Settings {
        let stale_temp_age = self.stale_temp_age;
        let settings = Settings::from(self);
        if settings.store == DefaultStore::Local {
            sweep::sweep_at_start(&settings.data_dir, stale_temp_age);
        }
        settings
    }
}

/// The engine's settings for a command that only reads: no sweep.
impl From<EngineArgs> for Settings {
    fn from(args: EngineArgs) -> Self {
        if args.stores.store == DefaultStore::Gcs
            && let Some(dir) = &args.stores.data_dir
        {
            tracing::warn!(
                "--data-dir {} is not used: with --store gcs bare bucket names are GCS buckets",
                dir.display()
            );
        }
        Settings {
            store: args.stores.store,
            data_dir: args.stores.data_dir(),
            allow_hosts: args.allow_hosts,
            component: args.component,
            memory_limit_bytes: args.memory_limit,
            time_limit: args.time_limit,
        }
    }
}
