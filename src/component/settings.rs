//! The portable build's store settings: the guest environment the host provides.

use super::wasi_http::WasiHttpClient;
use crate::Result;
use crate::guest_env::{DEFAULT_STORE_ENV, EMULATOR_HOST_ENV};
use crate::storage::gcs::base_url;
use crate::storage::router::DefaultStore;

/// The client under the GCS store: the host adds the credentials to what it sends
/// (docs/design.md §2), so the guest sends requests as they are.
pub type GcsClient = WasiHttpClient;

/// The GCS API base URL (`STORAGE_EMULATOR_HOST`, else Google's) and the client to reach it.
pub fn gcs_endpoint() -> Result<(String, GcsClient)> {
    let emulator = std::env::var(EMULATOR_HOST_ENV).ok();
    Ok((base_url(emulator.as_deref()), WasiHttpClient))
}

/// Where bare bucket names go (`EMWRITE_STORE`).
pub fn default_store() -> Result<DefaultStore> {
    DefaultStore::parse(std::env::var(DEFAULT_STORE_ENV).ok().as_deref())
}
