//! `emwrite run ENDPOINT FILE`: one task from a request JSON file, POSTed in-process to a fresh
//! instance's `wasi:http/incoming-handler`.
//!
//! The file goes to the component unread: the core is the one parser of the original's request
//! JSON (`docs/design.md` §2), so `run` accepts exactly what `serve` accepts.

use std::io::Write as _;
use std::path::Path;

use bytes::Bytes;
use emwrite::endpoint::Endpoint;
use http_body_util::{BodyExt, Full};
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request};

use crate::engine::{Emwrite, Settings};
use crate::error::HostError;
use crate::incoming::{self, Started};

/// Runs the request in `file` and prints the response body; a non-2xx status is an error
/// carrying the body.
pub fn run(endpoint: Endpoint, file: &Path, settings: Settings) -> Result<(), HostError> {
    let body = std::fs::read(file)
        .map_err(|e| HostError::Config(format!("request file {}: {e}", file.display())))?;
    // One instance, one core (wasm32 has no threads): a single-threaded runtime is enough; the
    // filesystem work still runs on tokio's blocking pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HostError::Config(format!("cannot start the async runtime: {e}")))?;
    let response = runtime.block_on(post(endpoint, body, &settings))?;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(&response).and_then(|()| {
        if response.ends_with(b"\n") {
            Ok(())
        } else {
            stdout.write_all(b"\n")
        }
    });
    written.map_err(|e| HostError::Config(format!("writing the response to stdout: {e}")))
}

async fn post(endpoint: Endpoint, body: Vec<u8>, settings: &Settings) -> Result<Bytes, HostError> {
    let emwrite = Emwrite::load(settings)?;
    let proxy = incoming::proxy_pre(&emwrite)?;
    let tag = format!("POST {}", endpoint.route());
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://localhost{}", endpoint.route()))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| HostError::Config(format!("{tag}: {e}")))?;

    let Started { response, finished } =
        incoming::handle(&emwrite, &proxy, tag.clone(), request).await?;
    let status = response.status();
    let collected = response.into_body().collect().await;
    // The handler's outcome comes first: a trap while writing the body is the real error.
    match finished.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error),
        Err(join) => {
            return Err(HostError::Engine {
                context: tag,
                message: format!("host task failed: {join}"),
            });
        }
    }
    let body = collected
        .map_err(|e| HostError::Engine {
            context: tag.clone(),
            message: format!("reading the response body: {e}"),
        })?
        .to_bytes();
    if status.is_success() {
        Ok(body)
    } else {
        Err(HostError::Status {
            context: tag,
            status: status.as_u16(),
            message: String::from_utf8_lossy(&body).trim().to_owned(),
        })
    }
}
