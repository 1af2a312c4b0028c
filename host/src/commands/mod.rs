//! One file per subcommand: what it does with its flags (`cli.rs`), on the rooms below it
//! (`embed/`, `server/`, `stack/`, `volume/`).

pub mod pipeline;
pub mod plan;
pub mod precompile;
pub mod run;
pub mod serve;
pub mod status;
pub mod task;
pub mod verify;
pub mod view;
pub mod window;
