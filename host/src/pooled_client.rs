//! The process's one HTTP client for the component's outgoing requests: HTTP/1.1 with keep-alive,
//! its connection pool shared by every instance, https through rustls with the bundled webpki
//! roots (as wasmtime-wasi-http's own client verifies them).
//!
//! wasmtime-wasi-http's `default_send_request` opens a connection per request: for a block's
//! ~2,000 range reads against GCS, as many TCP and TLS handshakes. Here a connection serves
//! request after request, from any instance. The guest's timeouts (`RequestOptions`) are honoured
//! per request: connecting plus the first byte within their sum, and each later body frame within
//! the between-bytes timeout.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What wasmtime-wasi-http's own client waits when the guest sets no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an idle connection stays in the pool: GCS closes idle connections after a few
/// minutes, and a request finding a connection closed under it is retried on a new one by the
/// pool (it had not been sent), so this only bounds idle sockets.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP/1.1 keep-alive client for http and https URLs (rustls, webpki roots) whose idle
/// connections close after `idle`: the component's outgoing client, and the remote executor's.
pub fn keep_alive_client<B>(idle: Duration) -> Client<HttpsConnector<HttpConnector>, B>
where
    B: Body + Send + 'static,
    B::Data: Send,
{
    let mut http = HttpConnector::new();
    // The scheme decides TLS (`https_or_http` below), not this connector.
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(idle)
        .build(https)
}

/// The shared client; cheap to clone (the pool is behind an `Arc` inside).
#[derive(Clone)]
pub struct PooledClient {
    client: Client<HttpsConnector<HttpConnector>, WasiBody>,
}

impl PooledClient {
    /// A client with an empty pool; connections open on first use.
    pub fn new() -> Self {
        PooledClient {
            client: keep_alive_client(IDLE_TIMEOUT),
        }
    }

    /// Sends `request` (absolute URI, as the guest made it) on a pooled connection.
    pub async fn send(
        &self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Response<WasiBody>, Error> {
        let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| {
            options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT)
        };
        // Whether a request needs a new connection is the pool's secret, so connecting and the
        // first byte share one deadline, their sum.
        let head_timeout =
            timeout(|o| o.connect_timeout).saturating_add(timeout(|o| o.first_byte_timeout));
        let between_bytes = timeout(|o| o.between_bytes_timeout);
        let response = tokio::time::timeout(head_timeout, self.client.request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(send_error)?;
        Ok(response
            .map(|incoming| BetweenBytes::new(incoming, between_bytes))
            .map(BodyExt::boxed_unsync))
    }
}

/// The wasi:http error for a failed send, as wasmtime-wasi-http's client would report it: a
/// failure to connect carries its I/O error (which tells refused, DNS and TLS failures apart),
/// anything later is read from hyper's error.
fn send_error(error: hyper_util::client::legacy::Error) -> Error {
    if error.is_connect() {
        return match find_source::<io::Error>(&error) {
            // tokio-rustls reports handshake and certificate failures as `InvalidData`.
            Some(io) if io.kind() == io::ErrorKind::InvalidData => Error::Tls(copy_io(io)),
            Some(io) => Error::Connect(copy_io(io)),
            None => Error::ConnectionRefused,
        };
    }
    match find_source::<hyper::Error>(&error) {
        Some(hyper) if hyper.is_incomplete_message() => Error::HttpResponseIncomplete,
        Some(hyper) if hyper.is_timeout() => Error::HttpResponseTimeout,
        Some(hyper) if hyper.is_canceled() || hyper.is_closed() => Error::ConnectionTerminated,
        _ => Error::HttpProtocolError,
    }
}

/// The first error of type `E` in `error`'s chain of sources.
fn find_source<'e, E: std::error::Error + 'static>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e E> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<E>() {
            return Some(found);
        }
        next = current.source();
    }
    None
}

/// `io::Error` is not `Clone`; its kind and message are what the guest's error code comes from.
fn copy_io(error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), error.to_string())
}

/// A response body whose frames must each arrive within the between-bytes timeout.
///
/// wasmtime-wasi-http wraps its own client's bodies the same way, in a type it keeps private.
struct BetweenBytes {
    incoming: Incoming,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl BetweenBytes {
    fn new(incoming: Incoming, limit: Duration) -> Self {
        BetweenBytes {
            incoming,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = Instant::now() + self.limit;
                self.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) if error.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(Error::from(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
