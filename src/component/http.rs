//! The original HTTP API over `wasi:http/incoming-handler`: route, parse, run, answer.
//!
//! Routes come from [`Endpoint`]; a failure answers with its [`ErrorKind::status`] and, for JSON
//! clients, an [`ErrorBody`].

use crate::endpoint::{ENDPOINT_METHODS, Endpoint, HEALTH_METHODS, HEALTH_ROUTE, MAX_BODY_BYTES};
use crate::request::{AlignedSliceRequest, NgMetaRequest, NgShardRequest};
use crate::tasks::{self, ReportBody, Written};
use crate::{Error, ErrorBody, ErrorKind};
use wstd::http::{Body, Method, Request, Response, StatusCode};

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

async fn handle(mut request: Request<Body>) -> Response<Body> {
    let wants_json = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let method = request.method().clone();
    let outcome = match (Endpoint::from_route(&path), path.as_str(), &method) {
        (None, HEALTH_ROUTE, &Method::GET | &Method::HEAD) => {
            return text(StatusCode::OK, "ok\n".to_owned());
        }
        (Some(endpoint), _, &Method::POST) => match read_body(&mut request).await {
            Ok(body) => run_endpoint(endpoint, &body).await,
            Err(e) => Err(e),
        },
        (Some(_), _, _) => return method_not_allowed(&path, &method, ENDPOINT_METHODS),
        (None, HEALTH_ROUTE, _) => return method_not_allowed(&path, &method, HEALTH_METHODS),
        (None, _, _) => {
            return text(
                StatusCode::NOT_FOUND,
                format!("no endpoint {path}: use {}\n", Endpoint::list_routes()),
            );
        }
    };
    match outcome {
        Ok(written) if wants_json => json(StatusCode::OK, ReportBody::from(&written).to_json()),
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

/// The 405 of a route that does not answer `method`, with the `Allow` header RFC 9110 §15.5.6
/// requires.
fn method_not_allowed(path: &str, method: &Method, allowed: &'static str) -> Response<Body> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{path}: method {method} not allowed: use {allowed}\n"),
    );
    response
        .headers_mut()
        .insert("allow", allowed.parse().expect("static header value"));
    response
}

/// Where the task's time went, in whole microseconds per stage: `{"fetch_us": 1200, ...}`.
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
