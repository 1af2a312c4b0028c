//! The `emwrite` command line: parses arguments and dispatches to `serve`, `run`, `pipeline`,
//! `task`, `plan`, `verify`, `status` or `view`.
//!
//! Every command runs the emwrite WASI component (embedded at build time, or `--component FILE`)
//! in wasmtime, a fresh instance per request or task. Bare bucket names are folders of the local
//! data directory (preopened at `/data` in the guest) or, with `--store gcs`, GCS buckets; the
//! component reaches GCS through the host, which adds the credentials (`outgoing.rs`).

mod commands;
mod embed;
mod error;
mod log;
mod server;
mod stack;
mod units;
mod volume;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use emwrite::endpoint::{Endpoint, MAX_BODY_BYTES};
use emwrite::guest_env::DEFAULT_STORE_ENV;
use emwrite::storage::router::DefaultStore;

use crate::embed::call::Split;
use crate::embed::engine::Settings;
use crate::embed::outgoing::AllowedHost;
use crate::error::HostError;
use crate::server::auth::BearerToken;
use crate::server::limits::{ServeLimits, default_max_in_flight};
use crate::server::serve::ServeOptions;
use crate::stack::batch::Share;
use crate::stack::driver::Mode;
use crate::stack::executor::remote::RemoteOptions;
use crate::stack::source::StackFile;
use crate::stack::tasks::{Overrides, Phase, Stack};
use crate::units::{parse_byte_size, parse_duration};

/// Aligned EM slices and Neuroglancer precomputed volumes, run in a WASI component.
#[derive(Debug, Parser)]
#[command(name = "emwrite", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
struct ServeArgs {
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
    #[command(flatten)]
    engine: EngineArgs,
}

impl ServeArgs {
    /// The server's options; reads the token file.
    fn options(&self) -> Result<ServeOptions, HostError> {
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
        })
    }
}

/// Options of `emwrite run`.
#[derive(Debug, Args)]
struct RunArgs {
    /// The endpoint, as in the original's URL path.
    #[arg(value_enum)]
    endpoint: Endpoint,
    /// Request JSON, exactly as it would be POSTed to the service.
    file: PathBuf,
    /// Run an ngshard block as two halves in two instances at once, then their merge (same
    /// bytes); auto: when the machine has at least 2 cores and the block has no writeRaw.
    #[arg(long, value_enum, default_value_t = Split::Auto)]
    split: Split,
    #[command(flatten)]
    engine: EngineArgs,
}

/// The stack file and the fields a CSV stack takes from the command line.
#[derive(Debug, Args)]
struct StackArgs {
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
    /// Voxel size in nm [CSV default: 8].
    #[arg(long, value_name = "NM")]
    resolution: Option<f64>,
    /// Also write the raw-encoded volume [CSV default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    write_raw: Option<bool>,
    /// JPEG quality of the volume, 1-100 [CSV default: 75].
    #[arg(long, value_name = "Q")]
    jpeg_quality: Option<u8>,
}

impl StackArgs {
    /// Reads and checks the stack (from GCS with `allow_hosts` too, as every GCS request): every
    /// problem is reported, and nothing runs if there is one.
    fn read(&self, allow_hosts: &[AllowedHost]) -> Result<Stack, HostError> {
        let overrides = Overrides {
            dest: self.dest.clone(),
            dest_tmp: self.dest_tmp.clone(),
            bbox: self.bbox,
            resolution: self.resolution,
            write_raw: self.write_raw,
            jpeg_quality: self.jpeg_quality,
        };
        let text = self.stack.read(allow_hosts)?;
        Stack::parse(&self.stack, &text, &overrides)
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

/// Options of `emwrite pipeline`.
#[derive(Debug, Args)]
struct PipelineArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Tasks run at once, each in its own instance (default: the number of cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "endpoint")]
    jobs: Option<u32>,
    /// Run a block as two halves in two instances at once, then their merge (same bytes); auto:
    /// when at least 2 of --jobs are free, fewer blocks than free jobs wait (the last ones) and
    /// the stack has no writeRaw.
    #[arg(long, value_enum, default_value_t = Split::Auto)]
    split: Split,
    /// Redo every task, finished or not. Without it finished tasks are skipped in-process, and
    /// with --endpoint when every location is on GCS (the driver looks with its own credentials).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Options of `emwrite verify`.
#[derive(Debug, Args)]
struct VerifyArgs {
    /// The volume's destination: a bucket name, gs://bucket/prefix, or a local folder path
    /// (with a `/`) holding neuroglancer/.
    location: String,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Options of `emwrite status`.
#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Options of `emwrite view`.
#[derive(Debug, Args)]
struct ViewArgs {
    /// The volume's destination, as in the stack file's `dest`: a bucket name (the folder
    /// DIR/BUCKET, or a GCS bucket with --store gcs), gs://bucket/prefix, or a folder path.
    location: String,
    /// Loopback port to serve on (0 picks a free one; the address is printed on stdout).
    #[arg(long, default_value_t = volume::view::DEFAULT_PORT)]
    port: u16,
    /// The Neuroglancer deployment the link opens, e.g. a self-hosted one.
    #[arg(long, value_name = "URL", default_value = volume::neuroglancer::DEMO_VIEWER)]
    viewer: String,
    /// Where bare bucket names live: folders of --data-dir, or GCS buckets (gs://B/... is always
    /// GCS).
    #[arg(long, env = DEFAULT_STORE_ENV, value_enum, default_value_t = DefaultStore::Local)]
    store: DefaultStore,
    /// Local data directory: bucket B is the folder DIR/B.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
}

/// How `emwrite pipeline --endpoint URL` talks to a deployed service.
#[derive(Debug, Args)]
struct RemoteArgs {
    /// POST every task to the emwrite service at URL (Cloud Run, Spin, another emwrite serve)
    /// instead of running it here; bucket names are the service's.
    #[arg(long, value_name = "URL")]
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
    fn options(&self) -> Option<RemoteOptions> {
        let endpoint = self.endpoint.clone()?;
        Some(RemoteOptions {
            endpoint,
            concurrency: self.concurrency as usize,
            token: self.token.clone(),
            token_command: self.token_command.clone(),
            policy: emwrite::storage::retry::RetryPolicy {
                base_delay: self.retry_base,
                max_attempts: self.retries.saturating_add(1),
            },
            ramp_start: self.ramp_start,
            ramp_double: self.ramp_double,
            request_timeout: self.request_timeout,
        })
    }
}

/// Options of `emwrite task`.
#[derive(Debug, Args)]
struct TaskArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// The phase this batch job runs: align, then meta, then shard, each job started when the
    /// previous one succeeded.
    #[arg(long, value_enum)]
    phase: Phase,
    /// This task's index, 0-based [default: CLOUD_RUN_TASK_INDEX or JOB_COMPLETION_INDEX].
    #[arg(long, value_name = "I")]
    task_index: Option<usize>,
    /// The number of tasks sharing the phase [default: CLOUD_RUN_TASK_COUNT or
    /// EMWRITE_TASK_COUNT].
    #[arg(long, value_name = "N")]
    task_count: Option<usize>,
    /// Tasks run at once, each in its own instance (default: the number of cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// As for pipeline.
    #[arg(long, value_enum, default_value_t = Split::Auto)]
    split: Split,
    /// Redo every task of the share, finished or not.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Options of `emwrite plan`.
#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Where bare bucket names live (raw slices are sized only on the local store).
    #[arg(long, env = DEFAULT_STORE_ENV, value_enum, default_value_t = DefaultStore::Local)]
    store: DefaultStore,
    /// Local data directory holding the raw slices.
    #[arg(long, value_name = "DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Cores the in-process estimate assumes (default: this machine's).
    #[arg(long, value_name = "N")]
    cores: Option<usize>,
}

/// Cores busy at once in-process: `--jobs`, or every core.
fn jobs_or_cores(jobs: Option<u32>) -> usize {
    jobs.map_or_else(cores, |n| n as usize)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Options shared by every command: where the component and the data are, what it may reach,
/// and the limits.
#[derive(Debug, Args)]
struct EngineArgs {
    /// Where bare bucket names live: folders of --data-dir, or GCS buckets (gs://B/... is always
    /// GCS). GCS goes to STORAGE_EMULATOR_HOST instead when that is set.
    #[arg(long, env = DEFAULT_STORE_ENV, value_enum, default_value_t = DefaultStore::Local)]
    store: DefaultStore,
    /// Local data directory, preopened in the guest at /data; bucket B is the folder DIR/B
    /// [default: ./data; not used with --store gcs].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Also let the component reach HOST[:PORT] (repeatable; no port: any port). GCS over https
    /// and the STORAGE_EMULATOR_HOST emulator are always allowed; everything else is refused.
    #[arg(
        long = "allow-host",
        value_name = "HOST[:PORT]",
        env = "EMWRITE_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    allow_hosts: Vec<AllowedHost>,
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
    /// command does it before its first instance.
    fn prepare(self) -> Settings {
        let stale_temp_age = self.stale_temp_age;
        let settings = Settings::from(self);
        if settings.store == DefaultStore::Local {
            embed::sweep::sweep_at_start(&settings.data_dir, stale_temp_age);
        }
        settings
    }
}

impl From<EngineArgs> for Settings {
    fn from(args: EngineArgs) -> Self {
        if args.store == DefaultStore::Gcs
            && let Some(dir) = &args.data_dir
        {
            tracing::warn!(
                "--data-dir {} is not used: with --store gcs bare bucket names are GCS buckets",
                dir.display()
            );
        }
        Settings {
            store: args.store,
            data_dir: args.data_dir.unwrap_or_else(|| PathBuf::from("./data")),
            allow_hosts: args.allow_hosts,
            component: args.component,
            memory_limit_bytes: args.memory_limit,
            time_limit: args.time_limit,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init();
    let result = match cli.command {
        Command::Serve(args) => args
            .options()
            .and_then(|options| server::serve::serve(options, args.engine.prepare())),
        Command::Run(args) => {
            commands::run::run(args.endpoint, &args.file, args.split, args.engine.prepare())
        }
        Command::Pipeline(args) => args.stack.read(&args.engine.allow_hosts).and_then(|stack| {
            let mode = match args.remote.options() {
                Some(options) => Mode::Remote {
                    options,
                    // Read-only here: no sweep of temporary files.
                    shared_storage: (stack.all_on_gcs(args.engine.store) && !args.force)
                        .then(|| args.engine.into()),
                },
                None => Mode::InProcess {
                    settings: args.engine.prepare(),
                    jobs: jobs_or_cores(args.jobs),
                    split: args.split,
                    force: args.force,
                },
            };
            commands::pipeline::pipeline(&stack, mode)
        }),
        Command::Task(args) => args.stack.read(&args.engine.allow_hosts).and_then(|stack| {
            let share = Share::resolve(args.task_index, args.task_count, |name| {
                std::env::var(name).ok()
            })?;
            tracing::info!("{} phase, {share}", args.phase);
            let mode = Mode::InProcess {
                settings: args.engine.prepare(),
                jobs: jobs_or_cores(args.jobs),
                split: args.split,
                force: args.force,
            };
            stack::driver::drive(&stack, &[args.phase], share, mode).map(drop)
        }),
        // No --allow-host: a stack file on GCS is read from GCS or its emulator, always allowed.
        Command::Plan(args) => args.stack.read(&[]).map(|stack| {
            stack::costs::plan(
                &stack,
                args.store,
                &args.data_dir,
                args.cores.unwrap_or_else(cores),
            );
        }),
        // Read-only: no sweep of temporary files.
        Command::Verify(args) => volume::verify::verify_command(&args.location, args.engine.into()),
        Command::Status(args) => args
            .stack
            .read(&args.engine.allow_hosts)
            .and_then(|stack| commands::status::status(&stack, args.engine.into())),
        Command::View(args) => volume::view::view(volume::view::ViewOptions {
            location: args.location,
            store: args.store,
            data_dir: args.data_dir,
            port: args.port,
            viewer: args.viewer,
        }),
        Command::Precompile => embed::engine::precompile().map(|path| {
            println!("{}", path.display());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(backtrace) = error.backtrace() {
                tracing::error!("{backtrace}");
            }
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}
