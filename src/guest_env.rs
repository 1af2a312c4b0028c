//! The guest environment: the variables a host sets for the component, and where it mounts the
//! data directory.
//!
//! Any wasi:http host can run the portable component with these (`wasmtime serve --env K=V
//! --dir DATA::/data`, docs/design.md §8); the native host sets them from its own options and
//! passes [`EMULATOR_HOST_ENV`] and [`RETRY_BASE_DELAY_ENV`] through from its environment. Each
//! name is defined here once; the modules that read the values say what they accept.

/// The guest directory holding one folder per bucket (docs/design.md §3); read by the component,
/// default [`DEFAULT_DATA_DIR`].
pub const DATA_DIR_ENV: &str = "EMWRITE_DATA_DIR";

/// Where the data directory is when [`DATA_DIR_ENV`] is unset: the native host preopens it here.
pub const DEFAULT_DATA_DIR: &str = "/data";

/// Where bare bucket names go: `local` (the default) or `gcs`; see
/// [`DefaultStore`](crate::storage::router::DefaultStore).
pub const DEFAULT_STORE_ENV: &str = "EMWRITE_STORE";

/// A GCS emulator to send every GCS request to, as Google's client libraries read it; see
/// [`base_url`](crate::storage::gcs::base_url). Requests to it carry no credentials.
pub const EMULATOR_HOST_ENV: &str = "STORAGE_EMULATOR_HOST";

/// The base delay of storage retries in milliseconds (tests set it small); see
/// [`RetryPolicy::with_base_delay_ms`](crate::storage::retry::RetryPolicy::with_base_delay_ms).
pub const RETRY_BASE_DELAY_ENV: &str = "EMWRITE_RETRY_BASE_MS";
