//! `emwrite serve`: an HTTP/1 server that hands every request to a fresh instance of the
//! component's `wasi:http/incoming-handler`, as `wasmtime serve` does.
//!
//! The component routes and answers (the original API and `GET /healthz`); the host adds only
//! what a guest cannot say about itself: traps, exceeded limits, and a log line per request.
//! One exception: an ngshard block the `--split` rule splits (two cores free) runs as two
//! halves in two instances and their merge (`embed/call.rs`), as `run` and `pipeline` do, since
//! one instance is one core; its answer is the component's (`success`, or the JSON report).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use emwrite::endpoint::{Endpoint, is_health_route};
use emwrite::request::NgShardRequest;
use emwrite::tasks::ReportBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT, CONNECTION, CONTENT_TYPE, HOST, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::embed::bindings::EndpointsPre;
use crate::embed::call::{self, Split, Task};
use crate::embed::engine::{Emwrite, HostState, Settings};
use crate::embed::incoming::{self, Started};
use crate::error::HostError;
use crate::request::Request as TaskRequest;
use crate::runtime::runtime;
use crate::server::accept;
use crate::server::auth::BearerToken;
use crate::server::limits::{self, Admission, RETRY_AFTER_SECONDS, ServeLimits};
use crate::server::shutdown::{self, Connections, Shutdown};
use crate::units::show_duration;

/// Time left for tasks after the grace: wasmtime's blocking file operations are short, and the
/// process must exit before Cloud Run's SIGKILL.
const RUNTIME_STOP_TIMEOUT: Duration = Duration::from_millis(500);

/// What `emwrite serve` was asked for beyond the engine's settings.
#[derive(Debug)]
pub struct ServeOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The limits on clients.
    pub limits: ServeLimits,
    /// The token requests must carry, if any.
    pub auth: Option<BearerToken>,
    /// When an ngshard block runs as two halves.
    pub split: Split,
    /// This machine's cores.
    pub cores: usize,
}

/// Loads the component, listens on `options.addr` and serves until SIGINT or SIGTERM, then
/// drains (see `shutdown.rs`).
pub fn serve(options: ServeOptions, settings: Settings) -> Result<(), HostError> {
    let runtime = runtime(None)?;
    let result = runtime.block_on(serve_until_shutdown(options, settings));
    // Requests still running after the grace are dropped here, with their instances.
    runtime.shutdown_timeout(RUNTIME_STOP_TIMEOUT);
    result
}

struct Server {
    emwrite: Emwrite,
    proxy: ProxyPre<HostState>,
    endpoints: EndpointsPre<HostState>,
    split: Split,
    cores: usize,
    next_id: AtomicU64,
    limits: ServeLimits,
    admission: Admission,
    auth: Option<BearerToken>,
    shutdown: Shutdown,
}

async fn serve_until_shutdown(options: ServeOptions, settings: Settings) -> Result<(), HostError> {
    let addr = options.addr;
    let emwrite = Emwrite::load(&settings)?;
    let proxy = incoming::proxy_pre(&emwrite)?;
    let endpoints = call::endpoints_pre(&emwrite)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| HostError::Config(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| HostError::Config(format!("cannot listen on {addr}: {e}")))?;
    match emwrite.data_dir() {
        Some(dir) => tracing::info!("store local: data dir {}", dir.display()),
        None => tracing::info!("store gcs: bare bucket names are GCS buckets"),
    }
    tracing::info!("outgoing requests allowed to {}", emwrite.allowed_hosts());
    let limits = options.limits;
    tracing::info!(
        "limits: body {} bytes, headers {}, idle {}, {} connections, {} in flight, grace {}{}",
        limits.max_body,
        show_duration(limits.header_timeout),
        show_duration(limits.idle_timeout),
        limits.max_connections,
        limits.max_in_flight,
        show_duration(limits.shutdown_grace),
        if options.auth.is_some() {
            ", bearer token required"
        } else {
            ""
        },
    );
    // On stdout, alone: a caller that passed --port 0 reads the port from this line.
    println!("listening on http://{local}");

    let connections = Connections::new(limits.max_connections);
    let shutdown = Shutdown::new();
    let server = Arc::new(Server {
        emwrite,
        proxy,
        endpoints,
        split: options.split,
        cores: options.cores,
        next_id: AtomicU64::new(1),
        admission: Admission::new(limits.max_in_flight),
        limits,
        auth: options.auth,
        shutdown: shutdown.clone(),
    });
    accept::accept_until(&listener, shutdown::signal(), |stream, peer| {
        let Some(open) = connections.try_open() else {
            // Closing at once costs nothing; serving it would cost a task and buffers.
            tracing::warn!(
                "connection from {peer} closed: {} connections open (--max-connections)",
                server.limits.max_connections
            );
            drop(stream);
            return;
        };
        tokio::spawn(serve_connection(server.clone(), stream, peer, local, open));
    })
    .await;

    // New connections are refused from here on; open ones finish their request and close.
    drop(listener);
    shutdown.begin();
    tracing::info!(
        "shutting down: waiting up to {} for requests in flight (--shutdown-grace)",
        show_duration(server.limits.shutdown_grace)
    );
    let abandoned = connections.drain(server.limits.shutdown_grace).await;
    if abandoned > 0 {
        tracing::warn!("shutting down: abandoning {abandoned} connection(s) still open");
    } else {
        tracing::info!("shutting down: every request finished");
    }
    Ok(())
}

/// Serves one connection until the client closes it, a limit cuts it, or the server stops.
async fn serve_connection(
    server: Arc<Server>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    _open: tokio::sync::OwnedSemaphorePermit,
) {
    let service = service_fn({
        let server = server.clone();
        move |request| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.handle(request, local).await) }
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        // hyper's header timeout needs a timer; it also closes keep-alive connections that
        // stay silent that long.
        .timer(TokioTimer::new())
        .header_read_timeout(server.limits.header_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let finished = tokio::select! {
        result = connection.as_mut() => Some(result),
        () = server.shutdown.stopping() => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            // Finish the request in progress, if any, then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::warn!("connection from {peer}: {error}");
    }
}

impl Server {
    async fn handle(
        &self,
        request: Request<Incoming>,
        local: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line = format!("#{id} {} {}", request.method(), request.uri().path());
        let wants_json = accepts_json(request.headers());
        match self.admit_and_run(&line, request, local).await {
            Ok((Started { response, finished }, slot)) => {
                let status = response.status();
                // The body is still streaming from the guest: log once it has finished, and
                // only then give the slot back.
                tokio::spawn(async move {
                    let outcome = match finished.await {
                        Ok(Ok(())) => String::new(),
                        Ok(Err(error)) => {
                            log_backtrace(&line, &error);
                            format!(": body cut short: {}", error.detail())
                        }
                        Err(join) => format!(": body cut short: host task failed: {join}"),
                    };
                    drop(slot);
                    log_request(&line, status.as_u16(), started, &outcome);
                });
                response
            }
            Err(error) => {
                log_backtrace(&line, &error);
                log_request(
                    &line,
                    error.status(),
                    started,
                    &format!(": {}", error.detail()),
                );
                let mut response = error_response(&error, wants_json);
                self.explain_refusal(error.status(), response.headers_mut());
                response
            }
        }
    }

    /// Checks the request against the limits and the token, reads its body, and hands it to a
    /// fresh instance; the admission slot (none for the health check) is held until the instance
    /// is done.
    async fn admit_and_run(
        &self,
        line: &str,
        mut request: Request<Incoming>,
        local: SocketAddr,
    ) -> Result<(Started, Option<tokio::sync::OwnedSemaphorePermit>), HostError> {
        if self.shutdown.is_stopping() {
            return Err(unavailable(line, "the server is shutting down"));
        }
        // The health check says whether the server is alive: never refused for load or token.
        let health = is_health_route(request.uri().path());
        if !health
            && let Some(token) = &self.auth
            && !token.admits(request.headers())
        {
            return Err(BearerToken::refusal(line));
        }
        if limits::announces_too_large(request.headers(), self.limits.max_body) {
            return Err(limits::too_large(line, self.limits.max_body));
        }
        // wasi:http needs an authority; HTTP/1.0 clients may send no Host header.
        if !request.headers().contains_key(HOST)
            && let Ok(host) = HeaderValue::from_str(&local.to_string())
        {
            request.headers_mut().insert(HOST, host);
        }
        // Read before admission: a slow client holds a socket and the buffer, never a slot.
        let request = limits::read_body(line, request, &self.limits).await?;
        let mut slot = if health {
            None
        } else {
            Some(self.admission.try_admit().ok_or_else(|| {
                unavailable(
                    line,
                    &format!(
                        "{} requests in flight (--max-in-flight)",
                        self.limits.max_in_flight
                    ),
                )
            })?)
        };
        if let Some(first) = &mut slot
            && let Some(task) = self.block_to_split(&request)
            // The second core's slot; without it the block runs whole, in the component.
            && let Some(second) = self.admission.try_admit()
        {
            first.merge(second);
            tracing::info!("{line}: the block runs as two halves in two instances (--split)");
            let written = call::run(self.emwrite.clone(), self.endpoints.clone(), task).await?;
            let (content_type, body) = if accepts_json(request.headers()) {
                ("application/json", ReportBody::from(&written).to_json())
            } else {
                // The original answered a bare `success`, as the component does.
                ("text/plain; charset=utf-8", "success".to_owned())
            };
            let started = Started {
                response: response(StatusCode::OK, content_type, body),
                finished: tokio::spawn(async { Ok(()) }),
            };
            return Ok((started, slot));
        }
        let request = request.map(|bytes| {
            Full::new(bytes).map_err(|never: Infallible| -> hyper::Error { match never {} })
        });
        let started =
            incoming::handle(&self.emwrite, &self.proxy, line.to_owned(), request).await?;
        Ok((started, slot))
    }

    /// The block of a `POST /ngshard` request to run as two halves, when the `--split` rule
    /// says so for the cores free: this machine's, less one per request in flight besides this
    /// one (a split block holds two slots). A body the core refuses goes to the component,
    /// which answers it.
    fn block_to_split(&self, request: &Request<Bytes>) -> Option<Task> {
        let route = request.uri().path().trim_end_matches('/');
        if request.method() != hyper::Method::POST
            || Endpoint::from_route(route) != Some(Endpoint::NgShard)
        {
            return None;
        }
        let block = NgShardRequest::from_json(request.body()).ok()?;
        let in_flight = self.limits.max_in_flight - self.admission.free();
        let free_cores = self.cores.saturating_sub(in_flight.saturating_sub(1));
        let task = Task::new(&TaskRequest::NgShard(block)).with_split(self.split, free_cores, 1);
        (task.cores() == 2).then_some(task)
    }

    /// Headers a refused client needs: when to retry (503), how to authenticate (401), and that
    /// a stopping server closes the connection.
    fn explain_refusal(&self, status: u16, headers: &mut HeaderMap) {
        match status {
            503 => {
                headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            401 => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        if self.shutdown.is_stopping() {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// The 503 of a request the server cannot take now.
fn unavailable(line: &str, why: &str) -> HostError {
    HostError::Refused {
        context: line.to_owned(),
        status: 503,
        kind: "unavailable",
        message: format!("server busy: {why}; retry after {RETRY_AFTER_SECONDS} s"),
    }
}

/// A trap is a bug in the component: its wasm backtrace belongs in the server log.
fn log_backtrace(line: &str, error: &HostError) {
    if let Some(backtrace) = error.backtrace() {
        tracing::error!("[{line}] {backtrace}");
    }
}

fn log_request(line: &str, status: u16, started: Instant, outcome: &str) {
    tracing::info!(
        "{line} {status} {}{outcome}",
        show_duration(started.elapsed())
    );
}

/// Whether the client asked for JSON (`Accept: application/json`), as the component honours.
fn accepts_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/json"))
}

/// The host's own error response: plain text like the original's, or JSON when asked for, in
/// the component's shape.
fn error_response(error: &HostError, json: bool) -> Response<HyperOutgoingBody> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, body) = if json {
        ("application/json", error.body().to_json())
    } else {
        (
            "text/plain; charset=utf-8",
            format!("{}\n", error.body().message),
        )
    };
    response(status, content_type, body)
}

/// A whole response of the host's own.
fn response(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
