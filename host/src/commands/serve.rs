//! `emwrite serve`: the original HTTP API, each request in a fresh instance of the component
//! (`server/`), until SIGTERM or SIGINT.

use crate::cli::ServeArgs;
use crate::error::HostError;
use crate::server::serve;

/// Reads the token file, sweeps the local store, and serves until stopped.
pub fn run(args: ServeArgs) -> Result<(), HostError> {
    let options = args.options()?;
    serve::serve(options, args.engine.prepare())
}
