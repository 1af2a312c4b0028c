//! The original HTTP API over `wasi:http/incoming-handler`: route, parse, run, answer.
//!
//! This is the one place where an [`ErrorKind`] becomes an HTTP status.

use crate::request::{AlignedSliceRequest, NgMetaRequest, NgShardRequest};
use crate::tasks::{self, Written};
use crate::{Error, ErrorKind};
use wstd::http::{Body, Method, Request, Response, StatusCode};

/// Request bodies are a few hundred bytes of JSON; anything far larger is a mistake.
const MAX_BODY_BYTES: usize = 1 << 20;

/// `wstd::http_server` exports `wasi:http/incoming-handler`; it must wrap a function named `main`,
/// so it gets a module of its own.
mod entry {
    use wstd::http::{Body, Request, Response};

    #[wstd::http_server]
    async fn main(request: Request<Body>) -> Result<Response<Body>, wstd::http::Error> {
        Ok(super::handle(request).await)
    }
}

/// The HTTP status for each kind of failure.
fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::UnreadableInput => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Storage => StatusCode::BAD_GATEWAY,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "bad-request",
        ErrorKind::NotFound => "not-found",
        ErrorKind::UnreadableInput => "unreadable-input",
        ErrorKind::TooLarge => "too-large",
        ErrorKind::Storage => "storage",
        ErrorKind::Internal => "internal",
    }
}

async fn handle(mut request: Request<Body>) -> Response<Body> {
    let wants_json = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let method = request.method().clone();
    let outcome = match (path.as_str(), &method) {
        ("/healthz", &Method::GET) => return text(StatusCode::OK, "ok\n".to_owned()),
        ("/alignedslice" | "/ngmeta" | "/ngshard", &Method::POST) => {
            match read_body(&mut request).await {
                Ok(body) => run_endpoint(&path, &body).await,
                Err(e) => Err(e),
            }
        }
        ("/alignedslice" | "/ngmeta" | "/ngshard" | "/healthz", _) => {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path}: method {method} not allowed\n"),
            );
        }
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                format!("no endpoint {path}: use /alignedslice, /ngmeta or /ngshard\n"),
            );
        }
    };
    match outcome {
        Ok(written) if wants_json => json(
            StatusCode::OK,
            serde_json::json!({
                "status": "success",
                "objects": written.objects,
                "bytes": written.bytes,
                "retries": written.retries,
            }),
        ),
        // The original answered a bare `success`; clients may test for exactly that.
        Ok(_) => text(StatusCode::OK, "success".to_owned()),
        Err(e) => {
            let status = status_of(e.kind());
            eprintln!("{path}: {status}: {e}");
            if wants_json {
                json(
                    status,
                    serde_json::json!({"error": kind_name(e.kind()), "message": e.message()}),
                )
            } else {
                text(status, format!("{e}\n"))
            }
        }
    }
}

async fn read_body(request: &mut Request<Body>) -> Result<Vec<u8>, Error> {
    let body = request.body_mut();
    if body
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("body: larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    let bytes = body
        .contents()
        .await
        .map_err(|e| Error::bad_field("body", format!("cannot read request body: {e}")))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("body: larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    Ok(bytes.to_vec())
}

async fn run_endpoint(path: &str, body: &[u8]) -> Result<Written, Error> {
    let storage = super::storage();
    match path {
        "/alignedslice" => {
            tasks::aligned_slice::run(&storage, &AlignedSliceRequest::from_json(body)?).await
        }
        "/ngmeta" => tasks::ng_meta::run(&storage, &NgMetaRequest::from_json(body)?).await,
        _ => tasks::ng_shard::run(&storage, &NgShardRequest::from_json(body)?).await,
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        "text/plain; charset=utf-8"
            .parse()
            .expect("static header value"),
    );
    response
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header value"),
    );
    response
}
