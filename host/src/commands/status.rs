//! `emwrite status STACK`: how far a stack's run has got, from what storage holds, for a run
//! happening elsewhere (batch tasks, a remote service) or one that was cut short.
//!
//! Per phase, the tasks finished out of all (the rule of `stack/finished.rs`), and which are
//! missing while few are.

use crate::cli::StatusArgs;
use crate::embed::engine::Settings;
use crate::embed::store;
use crate::error::HostError;
use crate::runtime::runtime;
use crate::stack::finished;
use crate::stack::tasks::{Phase, StackTask};

/// Missing tasks named per phase; past it, only the count.
const NAMED_MISSING: usize = 10;

/// Prints one line per phase: `blocks  3/4 finished; missing: block (1, 0, 0)`.
pub fn run(args: StatusArgs) -> Result<(), HostError> {
    let stack = args.stack.read(&args.engine.allow_hosts)?;
    // Read-only: no sweep of temporary files.
    let settings = Settings::from(args.engine);
    let runtime = runtime(None)?;
    runtime.block_on(async {
        let store = store::open(&settings)?;
        for phase in Phase::ALL {
            let checked = finished::check_all(&store, stack.tasks(phase)).await?;
            let label = match phase {
                Phase::Align => "slices",
                Phase::Meta => "meta",
                Phase::Shard => "blocks",
            };
            println!("{}", phase_line(label, &checked));
        }
        Ok(())
    })
}

/// `slices  18/20 finished; missing: slice z=3 (s3.png), slice z=7 (s7.png)`.
fn phase_line(phase: &str, checked: &[(StackTask, bool)]) -> String {
    let done = checked.iter().filter(|(_, done)| *done).count();
    let mut line = format!("{phase:<6} {done}/{} finished", checked.len());
    let missing: Vec<String> = checked
        .iter()
        .filter(|(_, done)| !done)
        .map(|(task, _)| task.id.to_string())
        .collect();
    if !missing.is_empty() && missing.len() <= NAMED_MISSING {
        line.push_str("; missing: ");
        line.push_str(&missing.join(", "));
    }
    line
}
