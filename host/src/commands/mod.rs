//! One file per subcommand: what each does with its flags.

pub mod pipeline;
pub mod run;
pub mod status;
