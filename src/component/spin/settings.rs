//! The Spin build's settings: Spin variables instead of the guest environment.
//!
//! Spin's `environment` values are fixed in spin.toml, while variables are set per deployment
//! (`spin up --variable`, `SPIN_VARIABLE_*`, `spin aka deploy --variable`, `spin cloud deploy
//! --variable`) and may be secret, so with the `spin` feature the store, the emulator URL and
//! the service-account key come from the component variables that spin.toml declares: `store`,
//! `storage_emulator_url` and `gcs_service_account_key`. The `fermyon:spin/variables@2.0.0`
//! import this needs is Spin's alone, which is why only this build has it (docs/design.md §2,
//! §8).
//!
//! With a key, GCS requests go to Google with tokens the component mints itself
//! ([`super::oauth`]); without one they go to the emulator URL with no credentials.

use super::jwt::ServiceAccountKey;
use super::oauth::AuthorizingClient;
use crate::component::wasi_http::WasiHttpClient;
use crate::storage::gcs::{GCS_BASE_URL, base_url};
use crate::storage::router::DefaultStore;
use crate::{Error, Result};

/// Bindings for the one Spin interface used, generated from the vendored WIT in `wit/spin/`.
mod bindings {
    wit_bindgen::generate!({
        world: "spin-settings",
        path: "wit/spin",
        // The interface lives in a dependency package; generate it here rather than map it.
        generate_all,
    });
}

use bindings::fermyon::spin::variables::{self, Error as VariableError};

/// Component variable naming the default store: `local` (the default) or `gcs`.
const STORE: &str = "store";

/// Component variable with the emulator's URL, used when there is no key.
const EMULATOR_URL: &str = "storage_emulator_url";

/// Component variable with a service-account key file's JSON; empty for no credentials.
const KEY: &str = "gcs_service_account_key";

/// The value of component variable `name`; `None` when spin.toml gives the component none.
fn variable(name: &str) -> Result<Option<String>> {
    match variables::get(name) {
        Ok(value) => Ok(Some(value)),
        Err(VariableError::Undefined(_)) => Ok(None),
        // These come from Spin's variable providers and name the variable, not its value.
        Err(
            VariableError::InvalidName(problem)
            | VariableError::Provider(problem)
            | VariableError::Other(problem),
        ) => Err(Error::internal(format!("spin variable {name}: {problem}"))),
    }
}

/// Where bare bucket names go (variable `store`).
pub fn default_store() -> Result<DefaultStore> {
    let value = variable(STORE)?;
    // The parser's message names the portable build's environment variable; name ours.
    DefaultStore::parse(value.as_deref()).map_err(|_| {
        Error::internal(format!(
            "spin variable {STORE}: unknown store {:?}: expected \"local\" or \"gcs\"",
            value.unwrap_or_default()
        ))
    })
}

/// The client under the GCS store: the component adds its own tokens to GCS requests.
pub type GcsClient = AuthorizingClient<WasiHttpClient>;

/// The GCS API base URL and the client to reach it with.
pub fn gcs_endpoint() -> Result<(String, GcsClient)> {
    let key = variable(KEY)?.filter(|k| !k.trim().is_empty());
    match key {
        Some(json) => {
            let key = ServiceAccountKey::from_json(&json)?;
            Ok((
                GCS_BASE_URL.to_owned(),
                AuthorizingClient::new(WasiHttpClient, Some(key)),
            ))
        }
        None => Ok((
            base_url(variable(EMULATOR_URL)?.as_deref()),
            AuthorizingClient::new(WasiHttpClient, None),
        )),
    }
}
