//! `emwrite plan STACK`: what a stack will cost per phase before anything runs, as a table
//! (`stack/costs.rs` has the figures and how they multiply out, `stack/requests.rs` the GCS
//! requests and their prices).

use emwrite::layout::BLOCK_EDGE;
use emwrite::request::wire;

use crate::cli::PlanArgs;
use crate::error::HostError;
use crate::stack::costs::{Input, costs, raw_input, wall_seconds};
use crate::stack::requests::{Requests, requests};
use crate::units::{show_bytes, show_duration};

/// Reads the stack and prints its plan.
pub fn run(args: PlanArgs) -> Result<(), HostError> {
    // No --allow-host: a stack file on GCS is read from GCS or its emulator, always allowed.
    let stack = args.stack.read(&[])?;
    let cores = args.cores();
    let instances = args.instances as usize;
    let prices = args.prices();
    let raw = raw_input(&stack, args.stores.store, &args.stores.data_dir());
    // Blocks split over two cores when an instance has them, as the executors do.
    let requests = requests(&stack, &raw, cores >= 2);
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
        "{:<6} {:>7}  {:<26} {:>12}  {:>10}  {:>10}  {:>12}  {:>12}  {:>12}",
        "phase",
        "tasks",
        "reads",
        "writes (est.)",
        "peak/task",
        "core-s",
        "wall",
        "class A",
        "class B"
    );
    let (mut core_seconds, mut wall, mut total) = (0.0, 0.0, Requests::default());
    for cost in &costs {
        let input = match &cost.input {
            Input::Bytes(bytes) => show_bytes(*bytes),
            Input::Unknown(why) => format!("unknown ({why})"),
            Input::None => "-".to_owned(),
        };
        let phase_wall = wall_seconds(cost, instances, cores);
        let phase_requests = requests.get(&cost.phase).copied().unwrap_or_default();
        println!(
            "{:<6} {:>7}  {:<26} {:>12}  {:>10}  {:>10.1}  {:>12}  {:>12}  {:>12}",
            cost.phase.name(),
            cost.tasks,
            input,
            show_bytes(cost.output),
            show_bytes(cost.peak),
            cost.core_seconds,
            show_seconds(phase_wall),
            phase_requests.class_a,
            phase_requests.class_b,
        );
        core_seconds += cost.core_seconds;
        wall += phase_wall;
        total = total + phase_requests;
    }
    println!(
        "total: {core_seconds:.0} core-seconds; about {} on {instances} × {cores} cores (the \
         phases in turn, a task per core, a block split over two); figures from measured runs \
         (docs/design.md §10)",
        show_seconds(wall)
    );
    let request_cost = prices.requests(total);
    println!(
        "requests: {} class A (${:.2} at ${}/1000), {} class B (${:.2} at ${}/1000), {} deletes \
         (free); each request of a resumable upload counted, retries not",
        total.class_a,
        total.class_a as f64 * prices.class_a_per_1000 / 1000.0,
        prices.class_a_per_1000,
        total.class_b,
        total.class_b as f64 * prices.class_b_per_1000 / 1000.0,
        prices.class_b_per_1000,
        total.free,
    );
    match prices.core_second {
        Some(price) => println!(
            "cost: ${:.2} = ${request_cost:.2} requests + ${:.2} compute ({core_seconds:.0} \
             core-seconds at ${price}); storage and network not included",
            request_cost + core_seconds * price,
            core_seconds * price,
        ),
        None => println!(
            "cost: ${request_cost:.2} in requests; --price-core-second adds the compute; storage \
             and network not included"
        ),
    }
    Ok(())
}

/// A wall time to the second.
fn show_seconds(seconds: f64) -> String {
    show_duration(std::time::Duration::from_secs_f64(seconds.round().max(0.0)))
}
