//! The `emwrite` command line: parses arguments and dispatches to `serve`, `run` or `pipeline`.
//!
//! Every command runs the emwrite WASI component (embedded at build time, or `--component FILE`)
//! in wasmtime, a fresh instance per request or task. Bare bucket names are folders of the local
//! data directory (preopened at `/data` in the guest) or, with `--store gcs`, GCS buckets; the
//! component reaches GCS through the host, which adds the credentials (`outgoing.rs`).

mod bindings;
mod credentials;
mod engine;
mod error;
mod guest_log;
mod incoming;
mod outgoing;
mod pipeline;
mod run;
mod serve;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::{Settings, StoreKind};
use crate::outgoing::HostPort;
use crate::run::Endpoint;

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
    /// Run every task of a stack file: all aligned slices, the volume's info, every block.
    Pipeline(PipelineArgs),
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
    #[command(flatten)]
    engine: EngineArgs,
}

/// Options of `emwrite run`.
#[derive(Debug, Args)]
struct RunArgs {
    /// The endpoint, as in the original's URL path.
    #[arg(value_enum)]
    endpoint: Endpoint,
    /// Request JSON, exactly as it would be POSTed to the service.
    file: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Options of `emwrite pipeline`.
#[derive(Debug, Args)]
struct PipelineArgs {
    /// Stack file: {"dest", "dest-tmp", "bbox": [w, h], "slices": [{"z", "img", "transform"}, ...]}.
    stack: PathBuf,
    /// Tasks run at once, each in its own instance (default: the number of cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Options shared by every command: where the component and the data are, what it may reach,
/// and the limits.
#[derive(Debug, Args)]
struct EngineArgs {
    /// Where bare bucket names live: folders of --data-dir, or GCS buckets (gs://B/... is always
    /// GCS). GCS goes to STORAGE_EMULATOR_HOST instead when that is set.
    #[arg(long, env = "EMWRITE_STORE", value_enum, default_value_t = StoreKind::Local)]
    store: StoreKind,
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
    allow_hosts: Vec<HostPort>,
    /// Run this component file instead of the embedded one.
    #[arg(long, value_name = "FILE")]
    component: Option<PathBuf>,
    /// Memory cap of one instance, e.g. 2GiB, 512MiB, 1000000000.
    #[arg(long, value_name = "SIZE", default_value = "2GiB", value_parser = parse_byte_size)]
    memory_limit: u64,
    /// Wall-clock limit of one request or task, e.g. 90s, 10m, 1h (default: none).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    time_limit: Option<Duration>,
}

impl From<EngineArgs> for Settings {
    fn from(args: EngineArgs) -> Self {
        if args.store == StoreKind::Gcs
            && let Some(dir) = &args.data_dir
        {
            eprintln!(
                "warning: --data-dir {} is not used: with --store gcs bare bucket names are GCS \
                 buckets",
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
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args.addr, args.port, args.engine.into()),
        Command::Run(args) => run::run(args.endpoint, &args.file, args.engine.into()),
        Command::Pipeline(args) => pipeline::pipeline(&args.stack, args.jobs, args.engine.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(backtrace) = error.backtrace() {
                eprintln!("{backtrace}");
            }
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Parses a byte count with an optional binary (KiB, MiB, GiB, TiB) or decimal (kB, MB, GB)
/// unit; a bare number is bytes.
fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number of bytes like 2GiB or 512MiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?}: too large"))
}

/// Parses a duration: a number with `ms`, `s`, `m` or `h` (a bare number is seconds).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration like 90s, 10m or 1h"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_accept_binary_and_decimal_units() {
        assert_eq!(parse_byte_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("512 mib"), Ok(512 << 20));
        assert_eq!(parse_byte_size("1000"), Ok(1000));
        assert_eq!(parse_byte_size("3GB"), Ok(3_000_000_000));
        assert!(parse_byte_size("2 parsecs").is_err());
        assert!(parse_byte_size("GiB").is_err());
        assert!(parse_byte_size("99999999999TiB").is_err());
    }

    #[test]
    fn durations_accept_common_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }
}
