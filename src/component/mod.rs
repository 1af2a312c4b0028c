//! The WASI component: typed WIT exports and the original HTTP API, over the core.
//!
//! Storage is chosen per object (docs/design.md §3): `gs://` locations go to GCS through
//! `wasi:http/outgoing-handler`; bare bucket names go to the data directory the host preopened
//! (`EMWRITE_DATA_DIR`, default `/data`, reached through `wasi:filesystem`), or to GCS when
//! `EMWRITE_STORE=gcs`. `STORAGE_EMULATOR_HOST` points GCS at an emulator and
//! `EMWRITE_RETRY_BASE_MS` shortens the retry waits (tests). Where those settings come from is
//! the platform's business: the guest environment ([`settings`]) in the portable build, Spin
//! variables in the Spin build ([`spin`], feature `spin`), which also mints its own GCS tokens.
//!
//! Natively only the Spin build's credential code compiles (for its unit tests); everything else
//! here needs the `wasm32-wasip2` target.

#[cfg(target_family = "wasm")]
mod bindings;
#[cfg(target_family = "wasm")]
mod exports;
#[cfg(target_family = "wasm")]
mod http;
#[cfg(all(target_family = "wasm", not(feature = "spin")))]
mod settings;
#[cfg(feature = "spin")]
pub mod spin;
#[cfg(target_family = "wasm")]
mod wasi_http;

#[cfg(all(target_family = "wasm", feature = "spin"))]
use spin::settings;

#[cfg(target_family = "wasm")]
use crate::guest_env::{DATA_DIR_ENV, DEFAULT_DATA_DIR, RETRY_BASE_DELAY_ENV};
#[cfg(target_family = "wasm")]
use crate::storage::{fs::FsStorage, gcs::GcsStorage, retry::RetryPolicy, router::Router};

/// The store of one request or task, configured from the platform's settings. A bad setting
/// surfaces as an error when a request first needs that store, never as a trap.
#[cfg(target_family = "wasm")]
fn storage() -> Router<FsStorage, GcsStorage<settings::GcsClient>> {
    let env = |name: &str| std::env::var(name).ok();
    let local = FsStorage::new(env(DATA_DIR_ENV).unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned()));
    let gcs =
        RetryPolicy::with_base_delay_ms(env(RETRY_BASE_DELAY_ENV).as_deref()).and_then(|policy| {
            let (base, client) = settings::gcs_endpoint()?;
            Ok(GcsStorage::new(client, base, policy))
        });
    Router::new(local, gcs, settings::default_store())
}
