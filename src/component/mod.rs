//! The WASI component: typed WIT exports and the original HTTP API, over the core.
//!
//! Storage is chosen per object (docs/design.md §3): `gs://` locations go to GCS through
//! `wasi:http/outgoing-handler`; bare bucket names go to the data directory the host preopened
//! (`EMWRITE_DATA_DIR`, default `/data`, reached through `wasi:filesystem`), or to GCS when
//! `EMWRITE_STORE=gcs`. `STORAGE_EMULATOR_HOST` points GCS at an emulator and
//! `EMWRITE_RETRY_BASE_MS` shortens the retry waits (tests). The Spin build (feature `spin`)
//! takes the store, the emulator and GCS credentials from Spin variables instead
//! ([`spin_settings`]).

mod bindings;
mod exports;
mod http;
#[cfg(feature = "spin")]
mod spin_settings;
mod wasi_http;

use crate::guest_env::{DATA_DIR_ENV, DEFAULT_DATA_DIR, RETRY_BASE_DELAY_ENV};
use crate::storage::fs::FsStorage;
use crate::storage::gcs::GcsStorage;
use crate::storage::retry::RetryPolicy;
use crate::storage::router::Router;
#[cfg(feature = "spin")]
use spin_settings as settings;
use wasi_http::WasiHttpClient;

/// The client under the GCS store: the Spin build adds its own tokens to GCS requests, since
/// Spin cannot (docs/design.md §2); elsewhere the host does.
#[cfg(not(feature = "spin"))]
type GcsClient = WasiHttpClient;
#[cfg(feature = "spin")]
type GcsClient = crate::storage::oauth::AuthorizingClient<WasiHttpClient>;

/// The store of one request or task, configured from the guest environment. A bad setting
/// surfaces as an error when a request first needs that store, never as a trap.
fn storage() -> Router<FsStorage, GcsStorage<GcsClient>> {
    let env = |name: &str| std::env::var(name).ok();
    let local = FsStorage::new(env(DATA_DIR_ENV).unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()));
    let gcs =
        RetryPolicy::with_base_delay_ms(env(RETRY_BASE_DELAY_ENV).as_deref()).and_then(|policy| {
            let (base, client) = settings::gcs_endpoint()?;
            Ok(GcsStorage::new(client, base, policy))
        });
    Router::new(local, gcs, settings::default_store())
}

/// The portable build's store settings, from the guest environment.
#[cfg(not(feature = "spin"))]
mod settings {
    use super::{GcsClient, WasiHttpClient};
    use crate::Result;
    use crate::guest_env::{DEFAULT_STORE_ENV, EMULATOR_HOST_ENV};
    use crate::storage::gcs::base_url;
    use crate::storage::router::DefaultStore;

    /// The GCS API base URL (`STORAGE_EMULATOR_HOST`, else Google's) and the client to reach it.
    pub fn gcs_endpoint() -> Result<(String, GcsClient)> {
        let emulator = std::env::var(EMULATOR_HOST_ENV).ok();
        Ok((base_url(emulator.as_deref()), WasiHttpClient))
    }

    /// Where bare bucket names go (`EMWRITE_STORE`).
    pub fn default_store() -> Result<DefaultStore> {
        DefaultStore::parse(std::env::var(DEFAULT_STORE_ENV).ok().as_deref())
    }
}
