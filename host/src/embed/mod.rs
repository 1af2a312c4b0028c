//! The wasmtime embedding: the engine and the component loaded once, a fresh store per request or
//! task with its memory and time limits, the typed calls into the component's exports (their WIT
//! records converted from the core's types in `wit.rs`) and the HTTP handler's, the guest's log,
//! and what the guest reaches outside: the outgoing requests' policy with the GCS credentials, the
//! pooled client they share, the host's own access to the same stores, and the sweep of what
//! killed writes left in the local one before the first instance.

pub mod bindings;
pub mod call;
pub mod credentials;
pub mod engine;
pub mod guest_log;
pub mod incoming;
#[cfg(test)]
mod isolation;
pub mod outgoing;
pub mod pooled_client;
pub mod store;
pub mod sweep;
pub mod wit;
