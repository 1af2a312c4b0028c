//! The WASI component: typed WIT exports and the original HTTP API, over the core.
//!
//! Storage is the data directory the host preopened (`EMWRITE_DATA_DIR`, default `/data`),
//! reached through `wasi:filesystem`.

mod bindings;
mod exports;
mod http;

use crate::storage::fs::FsStorage;

/// Where the host mounts the data directory unless `EMWRITE_DATA_DIR` says otherwise.
const DEFAULT_DATA_DIR: &str = "/data";

/// The store every request of this instance uses.
fn storage() -> FsStorage {
    let root = std::env::var("EMWRITE_DATA_DIR").unwrap_or_else(|_| DEFAULT_DATA_DIR.to_owned());
    FsStorage::new(root)
}
