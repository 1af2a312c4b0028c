//! `emwrite precompile`: the embedded component compiled for this machine, written next to the
//! executable, where every later start loads it instead of compiling (`embed/engine.rs`).

use crate::embed::engine;
use crate::error::HostError;

/// Compiles the component and prints the file written.
pub fn run() -> Result<(), HostError> {
    let path = engine::precompile()?;
    println!("{}", path.display());
    Ok(())
}
