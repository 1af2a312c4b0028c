//! The process's one HTTP client for the component's outgoing requests: HTTP/1.1 with keep-alive,
//! its connection pool shared by every instance, https through rustls with the bundled webpki
//! roots (as wasmtime-wasi-http's own client verifies them).
//!
//! wasmtime-wasi-http's `default_send_request` opens a connection per request: for a block's
//! ~2,000 range reads against GCS, as many TCP and TLS handshakes. Here a connection serves
//! request after request, from any instance. The guest's timeouts (`RequestOptions`) are honoured
//! per request: connecting plus the first byte within their sum, and each later body frame within
//! the between-bytes timeout.
//!
//! The pool opens at most [`STORAGE_REQUESTS_IN_FLIGHT`] connections per host for each instance
//! alive ([`ConnectionBudget`]). hyper's pool, when a request finds no idle connection, starts a
//! new one and takes whichever comes first, the new one or a connection that frees up, keeping
//! the other: without a cap a split block opened 16–20 connections for its 16 requests in flight.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use emwrite::tasks::ng_shard::STORAGE_REQUESTS_IN_FLIGHT;
use http_body_util::BodyExt;
use hyper::Uri;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::{Request, Response};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::{Builder, Client};
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tower_service::Service;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What wasmtime-wasi-http's own client waits when the guest sets no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an idle connection stays in the pool: GCS closes idle connections after a few
/// minutes, and a request finding a connection closed under it is retried on a new one by the
/// pool (it had not been sent), so this only bounds idle sockets.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP/1.1 keep-alive client for http and https URLs (rustls, webpki roots) whose idle
/// connections close after `idle`, with no cap on connections: the remote executor's, whose
/// `--concurrency` bounds its requests.
pub fn keep_alive_client<B>(idle: Duration) -> Client<HttpsConnector<HttpConnector>, B>
where
    B: Body + Send + 'static,
    B::Data: Send,
{
    keep_alive_builder(idle).build(https_connector())
}

fn keep_alive_builder(idle: Duration) -> Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(idle);
    builder
}

fn https_connector() -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    // The scheme decides TLS (`https_or_http` below), not this connector.
    http.enforce_http(false);
    http.set_nodelay(true);
    HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// How many connections the pool may hold open per host: [`STORAGE_REQUESTS_IN_FLIGHT`] for
/// each live instance (each [`InstanceSlot`]), and as many with none (the host's own reads).
/// Cheap to clone; clones share the count.
#[derive(Clone, Default)]
pub struct ConnectionBudget {
    shared: Arc<Budget>,
}

#[derive(Default)]
struct Budget {
    counts: Mutex<Counts>,
    /// Signalled when a connection closes or an instance starts.
    changed: Notify,
}

#[derive(Default)]
struct Counts {
    instances: usize,
    open: HashMap<String, usize>,
}

impl Counts {
    fn cap(&self) -> usize {
        STORAGE_REQUESTS_IN_FLIGHT * self.instances.max(1)
    }
}

impl Budget {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent whatever panicked while holding them.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ConnectionBudget {
    /// Counts one more instance until the slot is dropped (with its store).
    pub fn instance(&self) -> InstanceSlot {
        self.shared.counts().instances += 1;
        self.shared.changed.notify_waiters();
        InstanceSlot {
            budget: self.shared.clone(),
        }
    }

    /// Waits until `host` has room for one more connection, and takes it.
    async fn connection(&self, host: String) -> ConnectionSlot {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so that a change right after it is not missed.
            changed.as_mut().enable();
            {
                let mut counts = self.shared.counts();
                let cap = counts.cap();
                let open = counts.open.entry(host.clone()).or_default();
                if *open < cap {
                    *open += 1;
                    return ConnectionSlot {
                        budget: self.shared.clone(),
                        host,
                    };
                }
            }
            changed.await;
        }
    }
}

/// One live instance in a [`ConnectionBudget`].
pub struct InstanceSlot {
    budget: Arc<Budget>,
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        self.budget.counts().instances -= 1;
    }
}

/// One open connection in a [`ConnectionBudget`], given back when the connection closes.
struct ConnectionSlot {
    budget: Arc<Budget>,
    host: String,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(open) = self.budget.counts().open.get_mut(&self.host) {
            *open -= 1;
        }
        self.budget.changed.notify_waiters();
    }
}

/// A connector that opens a connection only when its host has room in the budget.
#[derive(Clone)]
pub struct Budgeted<C> {
    inner: C,
    budget: ConnectionBudget,
}

impl<C> Service<Uri> for Budgeted<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Response: Send,
{
    type Response = BudgetedIo<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let budget = self.budget.clone();
        let mut inner = self.inner.clone();
        let host = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        Box::pin(async move {
            let slot = budget.connection(host).await;
            let io = inner.call(uri).await?;
            Ok(BudgetedIo { io, _slot: slot })
        })
    }
}

/// A connection that holds its place in the budget until it is dropped.
pub struct BudgetedIo<T> {
    io: T,
    _slot: ConnectionSlot,
}

impl<T: Read + Unpin> Read for BudgetedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for BudgetedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for BudgetedIo<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

/// The shared client; cheap to clone (the pool is behind an `Arc` inside).
#[derive(Clone)]
pub struct PooledClient {
    client: Client<Budgeted<HttpsConnector<HttpConnector>>, WasiBody>,
    budget: ConnectionBudget,
}

impl PooledClient {
    /// A client with an empty pool; connections open on first use, within the budget.
    pub fn new() -> Self {
        let budget = ConnectionBudget::default();
        let connector = Budgeted {
            inner: https_connector(),
            budget: budget.clone(),
        };
        PooledClient {
            client: keep_alive_builder(IDLE_TIMEOUT).build(connector),
            budget,
        }
    }

    /// The budget of this client's connections, which each instance joins.
    pub fn budget(&self) -> &ConnectionBudget {
        &self.budget
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

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::{ConnectionBudget, ConnectionSlot, STORAGE_REQUESTS_IN_FLIGHT};

    /// A connection to `host` if the budget grants it without waiting.
    fn granted(budget: &ConnectionBudget, host: &str) -> Option<ConnectionSlot> {
        budget.connection(host.to_owned()).now_or_never()
    }

    #[test]
    fn each_instance_brings_its_share_of_connections_per_host() {
        let budget = ConnectionBudget::default();
        let first = budget.instance();
        let mut open = Vec::new();
        for _ in 0..STORAGE_REQUESTS_IN_FLIGHT {
            open.push(granted(&budget, "https://gcs").expect("within the share"));
        }
        assert!(granted(&budget, "https://gcs").is_none(), "one over");
        // Another host has its own count.
        assert!(granted(&budget, "http://emulator:4443").is_some());
        // A second instance doubles the host's room; a closed connection frees its place.
        let second = budget.instance();
        for _ in 0..STORAGE_REQUESTS_IN_FLIGHT {
            open.push(granted(&budget, "https://gcs").expect("the second share"));
        }
        assert!(granted(&budget, "https://gcs").is_none());
        open.pop();
        assert!(granted(&budget, "https://gcs").is_some());
        // With its instances gone, the host's own reads still get one share.
        drop((first, second, open));
        let alone: Vec<_> = (0..STORAGE_REQUESTS_IN_FLIGHT)
            .map(|_| granted(&budget, "https://gcs").expect("the host's share"))
            .collect();
        assert!(granted(&budget, "https://gcs").is_none());
        drop(alone);
    }

    #[tokio::test]
    async fn a_waiting_connection_opens_when_another_closes() {
        let budget = ConnectionBudget::default();
        let _instance = budget.instance();
        let mut open = Vec::new();
        for _ in 0..STORAGE_REQUESTS_IN_FLIGHT {
            open.push(budget.connection("https://gcs".to_owned()).await);
        }
        let waiting = budget.connection("https://gcs".to_owned());
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        open.pop();
        waiting.await;
    }
}
