//! `emwrite serve`'s HTTP server: the accept loop, the limits on clients, the bearer token and
//! the drain on shutdown, around the embedding's HTTP handler (`embed::incoming`).

pub mod accept;
pub mod auth;
pub mod limits;
pub mod serve;
pub mod shutdown;
