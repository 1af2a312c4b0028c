//! The `emwrite` command line: parses arguments (`cli.rs`) and runs the subcommand
//! (`commands/`): `serve`, `run`, `pipeline`, `task`, `plan`, `verify`, `status`, `view` or
//! `precompile`.
//!
//! Every command runs the emwrite WASI component (embedded at build time, or `--component FILE`)
//! in wasmtime (`embed/`), a fresh instance per request or task. Bare bucket names are folders of
//! the local data directory (preopened at `/data` in the guest) or, with `--store gcs`, GCS
//! buckets; the component reaches GCS through the host, which adds the credentials
//! (`embed/outgoing.rs`). `serve` answers HTTP (`server/`); `pipeline`, `task`, `plan` and
//! `status` work on whole stacks (`stack/`); `verify` and `view` on a written volume (`volume/`).

mod cli;
mod commands;
mod embed;
mod error;
mod log;
mod request;
mod runtime;
mod server;
mod stack;
mod units;
mod volume;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init();
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Pipeline(args) => commands::pipeline::run(args),
        Command::Task(args) => commands::task::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::View(args) => commands::view::run(args),
        Command::Window(args) => commands::window::run(args),
        Command::Precompile => commands::precompile::run(),
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
