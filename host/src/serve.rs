//! `emwrite serve`: an HTTP/1 server that hands every request to a fresh instance of the
//! component's `wasi:http/incoming-handler`, as `wasmtime serve` does.
//!
//! The component routes and answers (the original API and `GET /healthz`); the host adds only
//! what a guest cannot say about itself: traps, exceeded limits, and a log line per request.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::engine::{Emwrite, HostState, Settings};
use crate::error::HostError;
use crate::incoming::{self, Started};
use crate::units::show_duration;

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Loads the component, listens on `addr:port` and serves until SIGINT or SIGTERM.
pub fn serve(addr: IpAddr, port: u16, settings: Settings) -> Result<(), HostError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| HostError::Config(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve_until_shutdown(SocketAddr::new(addr, port), settings))
}

struct Server {
    emwrite: Emwrite,
    proxy: ProxyPre<HostState>,
    next_id: AtomicU64,
}

async fn serve_until_shutdown(addr: SocketAddr, settings: Settings) -> Result<(), HostError> {
    let emwrite = Emwrite::load(&settings)?;
    let proxy = incoming::proxy_pre(&emwrite)?;
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
    // On stdout, alone: a caller that passed --port 0 reads the port from this line.
    println!("listening on http://{local}");

    let server = Arc::new(Server {
        emwrite,
        proxy,
        next_id: AtomicU64::new(1),
    });
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => {
                tracing::info!("shutting down");
                return Ok(());
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.handle(request, local).await) }
            });
            let connection = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::warn!("connection from {peer}: {error}");
            }
        });
    }
}

impl Server {
    async fn handle(
        &self,
        mut request: Request<Incoming>,
        local: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line = format!("#{id} {} {}", request.method(), request.uri().path());
        let wants_json = accepts_json(request.headers());
        // wasi:http needs an authority; HTTP/1.0 clients may send no Host header.
        if !request.headers().contains_key(HOST)
            && let Ok(host) = HeaderValue::from_str(&local.to_string())
        {
            request.headers_mut().insert(HOST, host);
        }

        match incoming::handle(&self.emwrite, &self.proxy, line.clone(), request).await {
            Ok(Started { response, finished }) => {
                let status = response.status();
                // The body is still streaming from the guest: log once it has finished.
                tokio::spawn(async move {
                    let outcome = match finished.await {
                        Ok(Ok(())) => String::new(),
                        Ok(Err(error)) => {
                            log_backtrace(&line, &error);
                            format!(": body cut short: {}", error.detail())
                        }
                        Err(join) => format!(": body cut short: host task failed: {join}"),
                    };
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
                error_response(&error, wants_json)
            }
        }
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
        ("text/plain; charset=utf-8", format!("{}\n", error.detail()))
    };
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

/// Resolves on Ctrl-C, or on SIGTERM, which Cloud Run sends before it stops an instance.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
