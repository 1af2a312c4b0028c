//! `emwrite task STACK --phase P`: this batch task's share of one phase, in-process, skipping
//! finished tasks (`stack/batch.rs` says how the share is chosen).

use crate::cli::TaskArgs;
use crate::error::HostError;
use crate::stack::batch::Share;
use crate::stack::driver;

/// Runs the share; fails when one of its tasks failed, so the batch engine retries it.
pub fn run(args: TaskArgs) -> Result<(), HostError> {
    let stack = args.stack.read(&args.engine.allow_hosts)?;
    let share = Share::resolve(args.task_index, args.task_count, |name| {
        std::env::var(name).ok()
    })?;
    tracing::info!("{} phase, {share}", args.phase);
    let phase = args.phase;
    driver::drive(&stack, &[phase], share, args.mode()).map(drop)
}
