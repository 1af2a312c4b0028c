//! `emwrite plan STACK`: what a stack will cost per phase before anything runs, as a table
//! (`stack/costs.rs` has the figures and how they multiply out).

use emwrite::layout::BLOCK_EDGE;
use emwrite::request::wire;

use crate::cli::PlanArgs;
use crate::error::HostError;
use crate::stack::costs::{Input, costs, raw_input};
use crate::units::{show_bytes, show_duration};

/// Reads the stack and prints its plan.
pub fn run(args: PlanArgs) -> Result<(), HostError> {
    // No --allow-host: a stack file on GCS is read from GCS or its emulator, always allowed.
    let stack = args.stack.read(&[])?;
    let cores = args.cores();
    let raw = raw_input(&stack, args.stores.store, &args.stores.data_dir());
    let costs = costs(&stack, raw);
    println!(
        "stack: {} slices (z {}–{}), frame {} × {}, {} blocks of {BLOCK_EDGE}³, {} {}",
        stack.slices.len(),
        stack.minz(),
        stack.maxz(),
        stack.bbox[0],
        stack.bbox[1],
        stack.blocks().count(),
        wire::WRITE_RAW,
        stack.write_raw
    );
    println!(
        "{:<6} {:>7}  {:<26} {:>12}  {:>10}  {:>10}",
        "phase", "tasks", "reads", "writes (est.)", "peak/task", "core-s"
    );
    let mut total = 0.0;
    for cost in &costs {
        let input = match &cost.input {
            Input::Bytes(bytes) => show_bytes(*bytes),
            Input::Unknown(why) => format!("unknown ({why})"),
            Input::None => "-".to_owned(),
        };
        println!(
            "{:<6} {:>7}  {:<26} {:>12}  {:>10}  {:>10.1}",
            cost.phase.name(),
            cost.tasks,
            input,
            show_bytes(cost.output),
            show_bytes(cost.peak),
            cost.core_seconds
        );
        total += cost.core_seconds;
    }
    let wall = std::time::Duration::from_secs_f64(total / cores.max(1) as f64);
    println!(
        "total: {total:.0} core-seconds, about {} on {cores} cores in-process; figures from \
         measured runs (docs/design.md §10)",
        show_duration(wall)
    );
    Ok(())
}
