//! The host's own access to the stores the component writes: the same locations (a bare bucket is
//! a folder of `--data-dir`, or a GCS bucket with `--store gcs`; `gs://` is always GCS), through
//! the core's own stores (`storage::fs`, `storage::gcs`, `storage::router`), so object names,
//! GCS requests, retries and errors have one home.
//!
//! GCS requests go through the same outgoing policy as the component's (`outgoing.rs`): the
//! emulator of `STORAGE_EMULATOR_HOST` without credentials, GCS with the host's Application
//! Default Credentials, `--allow-host` hosts, nothing else. `stack/finished.rs`,
//! `volume/verify.rs`, `commands/status.rs` and `stack/source.rs` read through it.

use std::time::Duration;

use emwrite::guest_env::{EMULATOR_HOST_ENV, RETRY_BASE_DELAY_ENV};
use emwrite::storage::fs::FsStorage;
use emwrite::storage::gcs::{GcsStorage, base_url};
use emwrite::storage::http_client::{HttpClient, HttpRequest, HttpResponse, TransportError};
use emwrite::storage::retry::RetryPolicy;
use emwrite::storage::router::Router;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, RequestOptions};

use crate::embed::credentials::Credentials;
use crate::embed::engine::Settings;
use crate::embed::outgoing::{AllowedHost, Outgoing, Policy};
use crate::error::HostError;

/// The stores as the host reads them: the core's router over the local data directory and GCS.
pub type HostStore = Router<FsStorage, GcsStorage<HostHttpClient>>;

/// Timeouts of the host's storage requests: those the component sets for its own
/// (`component/wasi_http.rs`); the host only reads metadata and whole shards.
const TIMEOUTS: RequestOptions = RequestOptions {
    connect_timeout: Some(Duration::from_secs(30)),
    first_byte_timeout: Some(Duration::from_secs(60)),
    between_bytes_timeout: Some(Duration::from_secs(60)),
};

/// The stores `settings` name, reached as the component reaches them. Must be used inside a
/// tokio runtime (the pooled HTTP client spawns its connections there).
pub fn open(settings: &Settings) -> Result<HostStore, HostError> {
    let gcs = open_gcs(&settings.allow_hosts)?;
    // A missing data directory holds no objects: reading creates nothing.
    let local = FsStorage::new(&settings.data_dir);
    Ok(Router::new(local, gcs, Ok(settings.store)))
}

/// GCS alone, reached as the component reaches it: the emulator of `STORAGE_EMULATOR_HOST`
/// without credentials, else GCS with the host's. The inner error is a bad retry setting, which
/// fails only the requests that need GCS. Must be used inside a tokio runtime.
pub fn open_gcs(
    allow_hosts: &[AllowedHost],
) -> Result<emwrite::Result<GcsStorage<HostHttpClient>>, HostError> {
    let emulator = std::env::var(EMULATOR_HOST_ENV).ok();
    let policy = Policy::new(emulator.as_deref(), allow_hosts.to_vec())?;
    let client = HostHttpClient {
        outgoing: Outgoing::new(policy, Credentials::new()),
    };
    Ok(
        RetryPolicy::with_base_delay_ms(std::env::var(RETRY_BASE_DELAY_ENV).ok().as_deref())
            .map(|policy| GcsStorage::new(client, base_url(emulator.as_deref()), policy)),
    )
}

/// The core's [`HttpClient`] over the host's outgoing path.
pub struct HostHttpClient {
    outgoing: Outgoing,
}

impl HttpClient for HostHttpClient {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let body = Full::new(request.body().clone())
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut outgoing = http::Request::new(body);
        *outgoing.method_mut() = request.method().clone();
        *outgoing.uri_mut() = request.uri().clone();
        *outgoing.headers_mut() = request.headers().clone();
        let response = self
            .outgoing
            .send(outgoing, Some(TIMEOUTS))
            .await
            .map_err(transport_error)?;
        let (head, body) = response.into_parts();
        let body = body.collect().await.map_err(transport_error)?.to_bytes();
        Ok(HttpResponse::from_parts(head, body.to_vec()))
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Whether a failed request may succeed when sent again: the classification the component
/// applies to the same codes (`component/wasi_http.rs`, `transport_error`), which works on the
/// guest's WIT error codes and so cannot be shared with the host's wasmtime ones.
fn transport_error(error: Error) -> TransportError {
    let retryable = matches!(
        error,
        Error::Hyper(_)
            | Error::Connect(_)
            | Error::Tls(_)
            | Error::DnsTimeout
            | Error::DestinationUnavailable
            | Error::ConnectionRefused
            | Error::ConnectionTerminated
            | Error::ConnectionTimeout
            | Error::ConnectionReadTimeout
            | Error::ConnectionWriteTimeout
            | Error::ConnectionLimitReached
            | Error::TlsProtocolError
            | Error::HttpResponseIncomplete
            | Error::HttpResponseTimeout
            | Error::HttpProtocolError
            // The host's "no token for now" (`storage::retry::HostRefusal::Unavailable`).
            | Error::InternalError(_)
    );
    let message = match error {
        Error::HttpRequestDenied => {
            "the destination is not allowed (--allow-host HOST[:PORT] adds one)".to_owned()
        }
        Error::ConfigurationError => {
            "no GCS credentials: the log above says where the host looked".to_owned()
        }
        other => other.to_string(),
    };
    TransportError { retryable, message }
}
