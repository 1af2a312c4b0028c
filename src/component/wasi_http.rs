//! [`HttpClient`] over `wasi:http/outgoing-handler`, through wstd's client and reactor.
//!
//! Each request is a future on wstd's reactor, which waits on the pollables of every pending
//! request at once (`wasi:io/poll`): the tile reads ngshard keeps in flight overlap although the
//! instance has a single thread. The host sends the requests and adds credentials (docs/design.md §2).

use crate::storage::http_client::{HttpClient, HttpRequest, HttpResponse, TransportError};
use http::header::CONTENT_LENGTH;
use std::time::Duration;
use wstd::http::body::Bytes;
use wstd::http::body::util::{BodyExt, Empty};
use wstd::http::{Body, Client, ErrorCode, HeaderValue, Request};

/// Time to open a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Time from the request to the response head when there is nothing to upload. The host counts
/// the upload inside this wait, so [`first_byte_timeout`] adds time per byte sent.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

/// The slowest upload rate allowed for before the response head times out: 1 MiB/s, far below
/// what Cloud Run reaches to GCS, so only a stalled upload hits it.
const UPLOAD_BYTES_PER_SECOND: u64 = 1 << 20;

/// Longest silence while the response body streams in.
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends requests through the host's `wasi:http/outgoing-handler`.
#[derive(Clone, Copy, Debug, Default)]
pub struct WasiHttpClient;

impl HttpClient for WasiHttpClient {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut client = Client::new();
        client.set_connect_timeout(CONNECT_TIMEOUT);
        client.set_first_byte_timeout(first_byte_timeout(request.body().len()));
        client.set_between_bytes_timeout(BETWEEN_BYTES_TIMEOUT);

        // wstd's body owns its bytes: `Bytes` shares the caller's, so an attempt copies nothing.
        // A bodiless request (a download) sends no body frame at all: wstd writes even zero
        // bytes through the body's stream, and once the host's client has sent a request of
        // length 0 and dropped that stream, the write fails as a "connection reset", abandoning
        // a request that was going well (and its pooled connection).
        let body = match request.body() {
            bytes if bytes.is_empty() => Body::from_http_body(Empty::<Bytes>::new()),
            bytes => Body::from(bytes.clone()),
        };
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = request.method().clone();
        *outgoing.uri_mut() = request.uri().clone();
        *outgoing.headers_mut() = request.headers().clone();
        // Every request states its length (0 for a download), so the host frames the body with
        // Content-Length rather than chunked encoding, which GCS media uploads do not expect.
        outgoing
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(request.body().len()));

        let response = client
            .send(outgoing)
            .await
            .map_err(|e| transport_error(&e, Phase::Send))?;
        let (head, body) = response.into_parts();
        let body = read_body(body)
            .await
            .map_err(|e| transport_error(&e, Phase::ReadBody))?;
        Ok(HttpResponse::from_parts(head, body))
    }

    async fn sleep(&self, duration: Duration) {
        wstd::task::sleep(duration.into()).await;
    }
}

/// The whole of a response's `body`, its frames (64 KiB each from wstd) copied once into a buffer
/// of the announced length. wstd's `bytes_contents` collects the frames, then copies them into
/// one buffer, which stays shared with the body, so making a `Vec` of it copied it again: three
/// copies of each 1 MiB tile in linear memory at once, and two extra passes over the GiB of
/// tiles an ngshard block reads.
async fn read_body(body: Body) -> Result<Vec<u8>, wstd::http::Error> {
    let announced = body.content_length().unwrap_or(0);
    // The length is the server's word: trusted for a first reservation only up to a bound, and
    // the buffer grows past it if more comes.
    let mut bytes =
        Vec::with_capacity(usize::try_from(announced.min(MAX_RESERVED_BODY)).unwrap_or(0));
    let mut body = body.into_boxed_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// The largest body length reserved in advance on the server's word alone.
const MAX_RESERVED_BODY: u64 = 64 << 20;

/// [`FIRST_BYTE_TIMEOUT`] plus the time to upload `body_bytes` at [`UPLOAD_BYTES_PER_SECOND`].
fn first_byte_timeout(body_bytes: usize) -> Duration {
    FIRST_BYTE_TIMEOUT + Duration::from_secs(body_bytes as u64 / UPLOAD_BYTES_PER_SECOND)
}

/// Where a request failed.
#[derive(Clone, Copy)]
enum Phase {
    /// Sending the request and waiting for the response head.
    Send,
    /// Reading the response body.
    ReadBody,
}

/// Classifies a failure to get a whole response.
fn transport_error(error: &wstd::http::Error, phase: Phase) -> TransportError {
    let Some(code) = error.downcast_ref::<ErrorCode>() else {
        // Without a wasi:http error code, an I/O error while uploading or any failure while
        // the body streams in means the host cut the stream (a reset mid-transfer): sending
        // again may work. Anything else is wstd refusing the request before it left (a host
        // that does not support the timeout options, say), which no retry cures.
        let streaming = matches!(phase, Phase::ReadBody) || error.is::<std::io::Error>();
        return TransportError {
            retryable: streaming,
            message: format!("{error:#}"),
        };
    };
    let name = error_code_name(code);
    if matches!(code, ErrorCode::HttpRequestDenied) {
        return TransportError {
            retryable: false,
            message: format!(
                "the host refused to send the request ({name}): is the destination allowed?"
            ),
        };
    }
    let retryable = matches!(
        code,
        ErrorCode::DnsTimeout
            | ErrorCode::DnsError(_)
            | ErrorCode::DestinationUnavailable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTerminated
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::ConnectionLimitReached
            // The host reports a reset during the TLS handshake as a protocol error; a bad
            // certificate has its own code and is not retried.
            | ErrorCode::TlsProtocolError
            | ErrorCode::HttpResponseIncomplete
            | ErrorCode::HttpResponseTimeout
            // What a reset in the middle of the response head becomes (hyper's errors).
            | ErrorCode::HttpProtocolError
            // Also the native host's "unavailable for now" (a token refresh failed), while its
            // `configuration-error` is final: the protocol is `storage::retry::HostRefusal`.
            | ErrorCode::InternalError(_)
    );
    TransportError {
        retryable,
        message: name,
    }
}

/// The WIT name of an error code with its payload, if any: `connection-refused`,
/// `internal-error: <the host's message>`.
fn error_code_name(code: &ErrorCode) -> String {
    if let ErrorCode::InternalError(Some(message)) = code {
        return format!("internal-error: {message}");
    }
    // The bindings name variants only through Debug (`ErrorCode::ConnectionRefused`); turning
    // that into WIT's kebab-case is shorter than a 39-arm match and stays right when WASI adds one.
    let debug = format!("{code:?}");
    let debug = debug.strip_prefix("ErrorCode::").unwrap_or(&debug);
    let split = debug.find('(').unwrap_or(debug.len());
    let (variant, payload) = debug.split_at(split);
    let mut name = String::with_capacity(debug.len() + 4);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('-');
        }
        name.push(c.to_ascii_lowercase());
    }
    name.push_str(payload);
    name
}
