//! `emwrite run ENDPOINT FILE`: one task from a request JSON file, through the component's typed
//! exports in a fresh instance (an ngshard block possibly as two halves, `embed/call.rs`), and its
//! report as JSON on stdout.
//!
//! The file is parsed by the core's own parser of the original's request JSON (the one the
//! component's HTTP handler runs, `docs/design.md` §2), compiled into the host, so `run` accepts
//! exactly what `serve` accepts; the typed exports then validate the same request again.

use std::time::Instant;

use emwrite::tasks::ReportBody;

use crate::cli::RunArgs;
use crate::embed::bindings::Written;
use crate::embed::call::{self, Task};
use crate::embed::engine::Emwrite;
use crate::error::HostError;
use crate::request::Request;
use crate::runtime::{cores, runtime};

/// Runs the request in the file and prints the task's report: objects, bytes, retries, notes,
/// the stage times in µs and the wall time.
pub fn run(args: RunArgs) -> Result<(), HostError> {
    let settings = args.engine.prepare();
    let (endpoint, file, split) = (args.endpoint, args.file.as_path(), args.split.split);
    let body = std::fs::read(file)
        .map_err(|e| HostError::Config(format!("request file {}: {e}", file.display())))?;
    let request = Request::from_json(endpoint, &body).map_err(|error| HostError::Task {
        context: format!("{} {}", endpoint.route(), file.display()),
        error,
    })?;
    let task = Task::new(&request).with_split(split, cores(), 1);
    // One instance is one core (wasm32 has no threads): one worker per instance that runs at
    // once. The filesystem work still runs on tokio's blocking pool.
    let runtime = runtime(Some(task.cores()))?;
    let (written, wall) = runtime.block_on(async {
        let emwrite = Emwrite::load(&settings)?;
        let pre = call::endpoints_pre(&emwrite)?;
        // The wall time of the task alone, without loading the component.
        let started = Instant::now();
        let written = call::run(emwrite, pre, task).await?;
        Ok::<_, HostError>((written, started.elapsed()))
    })?;
    println!("{}", report(&written, wall.as_micros()));
    Ok(())
}

/// The report `run` prints: the HTTP API's JSON success body plus the wall time.
fn report(written: &Written, wall_us: u128) -> String {
    let mut body = ReportBody::from(written);
    body.wall_us = Some(u64::try_from(wall_us).unwrap_or(u64::MAX));
    body.to_json()
}
