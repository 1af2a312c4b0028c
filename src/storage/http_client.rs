//! The HTTP seam under the GCS store: the `http` crate's request and response types and a
//! client trait.
//!
//! The core never touches WASI: the component implements [`HttpClient`] over
//! `wasi:http/outgoing-handler` (`component/wasi_http.rs`), and tests implement it with scripted
//! answers. The client also provides the sleep that retries wait with, because only the runtime
//! that drives the futures knows how to wait without blocking the others.

use std::fmt;
use std::time::Duration;

pub use bytes::Bytes;

/// One request. The body is a shared buffer: a retry resends it and the client hands it to the
/// transport without copying an upload part (8 MiB) once more.
pub type HttpRequest = http::Request<Bytes>;

/// One response, its body read whole.
pub type HttpResponse = http::Response<Vec<u8>>;

/// A request that got no complete response: the connection failed, timed out or was cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// Whether sending the same request again may succeed (a reset or a timeout may; a request
    /// the host refuses to send, or a bad certificate, will not).
    pub retryable: bool,
    /// What happened, lowercase.
    pub message: String,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Sends requests and sleeps; implemented over `wasi:http` in the component.
#[expect(
    async_fn_in_trait,
    reason = "futures run on one thread (wasm32 has none other), so no Send bound is wanted"
)]
pub trait HttpClient {
    /// Sends `request` and reads the whole response body. Any status is a response; only a
    /// failure to get one is an error.
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError>;

    /// Waits `duration` without blocking other futures of the same task.
    async fn sleep(&self, duration: Duration);
}

/// The first value of header `name` as text, if it is text.
///
/// ```
/// use emwrite::storage::http_client::header;
/// let r = http::Response::builder()
///     .status(206)
///     .header("Content-Range", "bytes 0-9/20")
///     .body(Vec::<u8>::new())
///     .unwrap();
/// assert_eq!(header(r.headers(), "content-range"), Some("bytes 0-9/20"));
/// ```
pub fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
