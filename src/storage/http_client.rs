//! The HTTP seam under the GCS store: plain request and response values and a client trait.
//!
//! The core never touches WASI: the component implements [`HttpClient`] over
//! `wasi:http/outgoing-handler` (`component/wasi_http.rs`), and tests implement it with scripted
//! answers. The client also provides the sleep that retries wait with, because only the runtime
//! that drives the futures knows how to wait without blocking the others.

use std::fmt;
use std::time::Duration;

/// The methods the GCS JSON API needs here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Downloads.
    Get,
    /// Media uploads.
    Post,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Post => "POST",
        })
    }
}

/// One request; `body` is borrowed so that a retried upload resends the caller's bytes
/// without the store keeping a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest<'a> {
    /// The method.
    pub method: Method,
    /// The absolute URL, already percent-encoded.
    pub url: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body; empty for downloads.
    pub body: &'a [u8],
}

/// One response, its body read whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names and values as received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (compared case-insensitively).
    ///
    /// ```
    /// use emwrite::storage::http_client::HttpResponse;
    /// let r = HttpResponse {
    ///     status: 206,
    ///     headers: vec![("Content-Range".into(), "bytes 0-9/20".into())],
    ///     body: vec![],
    /// };
    /// assert_eq!(r.header("content-range"), Some("bytes 0-9/20"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

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
    async fn send(&self, request: &HttpRequest<'_>) -> Result<HttpResponse, TransportError>;

    /// Waits `duration` without blocking other futures of the same task.
    async fn sleep(&self, duration: Duration);
}
