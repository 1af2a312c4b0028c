//! The original HTTP API over `wasi:http/incoming-handler`: route, parse, run, answer.
//!
//! Routes come from [`Endpoint`]; a failure answers with its [`ErrorKind::status`] and, for JSON
//! clients, an [`ErrorBody`].

use crate::endpoint::Endpoint;
use crate::request::{AlignedSliceRequest, NgMetaRequest, NgShardRequest};
use crate::tasks::{self, Written};
use crate::{Error, ErrorBody, ErrorKind};
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

/// The HTTP status of a failure of `kind`.
fn status_of(kind: ErrorKind) -> StatusCode {
    // Every `ErrorKind::status` is a valid status code (ErrorKind's tests list them).
    StatusCode::from_u16(kind.status()).expect("ErrorKind::status is a valid status code")
}

/// The health check's route, which is ours rather than the original API's.
const HEALTH_ROUTE: &str = "/healthz";

async fn handle(mut request: Request<Body>) -> Response<Body> {
    let wants_json = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let method = request.method().clone();
    let outcome = match (Endpoint::from_route(&path), path.as_str(), &method) {
        (None, HEALTH_ROUTE, &Method::GET) => return text(StatusCode::OK, "ok\n".to_owned()),
        (Some(endpoint), _, &Method::POST) => match read_body(&mut request).await {
            Ok(body) => run_endpoint(endpoint, &body).await,
            Err(e) => Err(e),
        },
        (Some(_), _, _) | (None, HEALTH_ROUTE, _) => {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path}: method {method} not allowed\n"),
            );
        }
        (None, _, _) => {
            return text(
                StatusCode::NOT_FOUND,
                format!("no endpoint {path}: use {}\n", Endpoint::list_routes()),
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
            })
            .to_string(),
        ),
        // The original answered a bare `success`; clients may test for exactly that.
        Ok(_) => text(StatusCode::OK, "success".to_owned()),
        Err(e) => {
            let status = status_of(e.kind());
            eprintln!("{path}: {status}: {e}");
            if wants_json {
                json(status, ErrorBody::from(&e).to_json())
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

async fn run_endpoint(endpoint: Endpoint, body: &[u8]) -> Result<Written, Error> {
    let storage = super::storage();
    match endpoint {
        Endpoint::AlignedSlice => {
            tasks::aligned_slice::run(&storage, &AlignedSliceRequest::from_json(body)?).await
        }
        Endpoint::NgMeta => tasks::ng_meta::run(&storage, &NgMetaRequest::from_json(body)?).await,
        Endpoint::NgShard => {
            tasks::ng_shard::run(&storage, &NgShardRequest::from_json(body)?).await
        }
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

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header value"),
    );
    response
}
