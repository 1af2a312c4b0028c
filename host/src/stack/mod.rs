//! Whole stacks: the stack file and the tasks of each phase it makes, the driver that runs the
//! phases on an executor (in-process, remote, a batch task's share), which tasks are already
//! finished, the progress shown, and what a stack will cost (time, requests, money).

pub mod batch;
pub mod costs;
pub mod driver;
pub mod executor;
pub mod finished;
pub mod parse;
pub mod progress;
pub mod requests;
pub mod source;
pub mod tasks;
