//! Objects in Google Cloud Storage through its JSON API, over an [`HttpClient`].
//!
//! docs/design.md §6: media uploads, `alt=media` downloads with `Range`, 404 = absent, the object name
//! percent-encoded as one path segment, and the emulator from `STORAGE_EMULATOR_HOST`. Requests
//! that fail in a way worth repeating are retried as [`super::retry`] says. No credentials pass
//! through here: the host adds them to requests for the GCS host (docs/design.md §2).
//!
//! Objects written in parts (resumable uploads, and objects whose prefix comes last, composed
//! from two temporaries) are `upload.rs`'s.

use super::http_client::{Bytes, HttpClient, HttpRequest, HttpResponse, header};
use super::retry::{Backoff, Failure, RetryPolicy, is_retryable_status, jitter_unit};
use super::{
    BINARY, FinishedObject, JSON, ObjectWriter, PrefixedObjectWriter, SentObject, Storage,
    StreamingStorage, prefix_length_error,
};
use crate::storage::location::{ObjectPath, Store};
use crate::{Error, ErrorKind, Result};
use http::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE, USER_AGENT};
use http::{HeaderName, Method};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

mod upload;

pub use upload::{GcsPrefixedWriter, GcsWriter, UPLOAD_PART_BYTES};

/// The GCS endpoint when no emulator is configured; the native host sends its token there only.
pub const GCS_BASE_URL: &str = "https://storage.googleapis.com";

/// The OAuth scope of every GCS token: read and write objects, nothing else.
pub const GCS_OAUTH_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// Everything but RFC 3986's unreserved characters is escaped, so a `/` in an object name becomes
/// `%2F` and the name stays one path segment (or one query value, in uploads).
const NAME_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest part of an error response body quoted in a message.
const MAX_QUOTED_CHARS: usize = 200;

/// The API base URL for the value of
/// [`EMULATOR_HOST_ENV`](crate::guest_env::EMULATOR_HOST_ENV), if set: the emulator's (see
/// [`emulator_base_url`]), else [`GCS_BASE_URL`].
///
/// ```
/// use emwrite::storage::gcs::base_url;
/// assert_eq!(base_url(None), "https://storage.googleapis.com");
/// assert_eq!(base_url(Some("127.0.0.1:4443")), "http://127.0.0.1:4443");
/// assert_eq!(base_url(Some("https://gcs.test/")), "https://gcs.test");
/// ```
pub fn base_url(emulator_host: Option<&str>) -> String {
    emulator_base_url(emulator_host).unwrap_or_else(|| GCS_BASE_URL.to_owned())
}

/// The emulator's base URL for the value of
/// [`EMULATOR_HOST_ENV`](crate::guest_env::EMULATOR_HOST_ENV); `None` when unset or empty.
///
/// Google's client libraries accept both `host:port` and `http://host:port` there; a bare
/// `host:port` means plain HTTP, as emulators serve it. The native host parses the same result to
/// allow the emulator's host and port.
///
/// ```
/// use emwrite::storage::gcs::emulator_base_url;
/// assert_eq!(emulator_base_url(Some(" ")), None);
/// assert_eq!(emulator_base_url(Some("localhost:9023")).as_deref(), Some("http://localhost:9023"));
/// ```
pub fn emulator_base_url(emulator_host: Option<&str>) -> Option<String> {
    let host = emulator_host.map(str::trim).filter(|h| !h.is_empty())?;
    let host = host.trim_end_matches('/');
    Some(if host.contains("://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    })
}

/// A GCS client for objects of any bucket the credentials reach.
#[derive(Debug)]
pub struct GcsStorage<C> {
    client: C,
    base_url: String,
    policy: RetryPolicy,
    /// Attempts repeated so far, for the task report.
    retries: AtomicU32,
}

/// What a request was for, in messages.
#[derive(Clone, Copy)]
enum Doing {
    Reading,
    Writing,
    /// A delete: of a temporary part, so that its failure is not taken for a failed write.
    Deleting,
}

impl Doing {
    fn verb(self) -> &'static str {
        match self {
            Doing::Reading => "reading",
            Doing::Writing => "writing",
            Doing::Deleting => "deleting",
        }
    }
}

impl<C: HttpClient> GcsStorage<C> {
    /// A store sending requests to `base_url` (see [`base_url`]) through `client`.
    pub fn new(client: C, base_url: impl Into<String>, policy: RetryPolicy) -> Self {
        Self {
            client,
            base_url: base_url.into(),
            policy,
            retries: AtomicU32::new(0),
        }
    }

    /// The object's metadata URL, which deletes take and the others extend.
    fn object_url(&self, object: &ObjectPath) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base_url,
            utf8_percent_encode(&object.bucket, NAME_ESCAPES),
            utf8_percent_encode(&object.name, NAME_ESCAPES)
        )
    }

    fn download_url(&self, object: &ObjectPath) -> String {
        format!("{}?alt=media", self.object_url(object))
    }

    /// Makes `object` the concatenation of `sources` (in its bucket), typed `content_type`.
    async fn compose(
        &self,
        object: &ObjectPath,
        sources: &[&ObjectPath],
        content_type: &str,
    ) -> Result<()> {
        let url = format!("{}/compose", self.object_url(object));
        let names: Vec<_> = sources
            .iter()
            .map(|source| serde_json::json!({ "name": source.name }))
            .collect();
        let body = serde_json::json!({
            "sourceObjects": names,
            "destination": { "contentType": content_type },
        })
        .to_string();
        let typed = [(CONTENT_TYPE, JSON.to_owned())];
        let request = Self::request(object, Method::POST, &url, &typed, body)?;
        let response = self.send(object, &request, Doing::Writing).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(object, &response, Doing::Writing))
        }
    }

    /// Deletes `object`; one already gone (say, by an attempt whose answer was lost) is fine.
    async fn delete(&self, object: &ObjectPath) -> Result<()> {
        let url = self.object_url(object);
        let request = Self::request(object, Method::DELETE, &url, &[], Bytes::new())?;
        let response = self.send(object, &request, Doing::Deleting).await?;
        if response.status().is_success() || response.status().as_u16() == 404 {
            Ok(())
        } else {
            Err(status_error(object, &response, Doing::Deleting))
        }
    }

    fn upload_url(&self, object: &ObjectPath, upload_type: &str) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o?uploadType={upload_type}&name={}",
            self.base_url,
            utf8_percent_encode(&object.bucket, NAME_ESCAPES),
            utf8_percent_encode(&object.name, NAME_ESCAPES)
        )
    }

    /// The size of `object` from its metadata, or `None` when it does not exist.
    async fn size_of(&self, object: &ObjectPath) -> Result<Option<u64>> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base_url,
            utf8_percent_encode(&object.bucket, NAME_ESCAPES),
            utf8_percent_encode(&object.name, NAME_ESCAPES)
        );
        let request = Self::request(object, Method::GET, &url, &[], Bytes::new())?;
        let response = self.send(object, &request, Doing::Reading).await?;
        if response.status() == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(status_error(object, &response, Doing::Reading));
        }
        // The JSON API gives the size as a decimal string.
        let metadata: serde_json::Value = serde_json::from_slice(response.body())
            .map_err(|e| Error::storage(object, format!("unreadable object metadata: {e}")))?;
        Ok(metadata["size"].as_str().and_then(|s| s.parse().ok()))
    }

    /// The session URI of a resumable upload, sent to this store's base URL: GCS answers with
    /// one on its own API host, but an emulator behind a proxy (or a test's fault injector)
    /// answers with its own address, which the host may not let the component reach.
    fn session_url(&self, object: &ObjectPath, location: &str) -> Result<String> {
        let uri: http::Uri = location.parse().map_err(|e| {
            Error::storage(
                object,
                format!("the upload session URI {location:?} is invalid: {e}"),
            )
        })?;
        let path = uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        Ok(format!("{}{path}", self.base_url))
    }

    /// Sends `request` until it gets an answer not worth repeating, or the attempts run out.
    async fn send(
        &self,
        object: &ObjectPath,
        request: &HttpRequest,
        doing: Doing,
    ) -> Result<HttpResponse> {
        let mut attempt = 1;
        let mut backoff = Backoff::new(self.policy);
        loop {
            let (failure, message) = match self.client.send(request).await {
                Ok(response) if !is_retryable_status(response.status().as_u16()) => {
                    return Ok(response);
                }
                Ok(response) => (Failure::Status, describe_status(&response)),
                Err(e) if !e.retryable => {
                    return Err(Error::storage(
                        object,
                        format!("{} failed: {e}", doing.verb()),
                    ));
                }
                Err(e) => (Failure::Transport, e.message),
            };
            if attempt >= self.policy.max_attempts {
                return Err(Error::storage(
                    object,
                    format!(
                        "{} failed after {attempt} attempts, the last with {message}",
                        doing.verb()
                    ),
                ));
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            let delay = backoff.next(failure, jitter_unit());
            if !delay.is_zero() {
                self.client.sleep(delay).await;
            }
            attempt += 1;
        }
    }

    /// A request to `url` with emwrite's user agent; `extra` headers and `body` as given.
    fn request(
        object: &ObjectPath,
        method: Method,
        url: &str,
        extra: &[(HeaderName, String)],
        body: impl Into<Bytes>,
    ) -> Result<HttpRequest> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(url)
            .header(USER_AGENT, concat!("emwrite/", env!("CARGO_PKG_VERSION")));
        for (name, value) in extra {
            builder = builder.header(name, value);
        }
        // Only a malformed base URL (a bad emulator setting) or header value gets here.
        builder
            .body(body.into())
            .map_err(|e| Error::storage(object, format!("cannot build the request to {url}: {e}")))
    }
}

impl<C: HttpClient> Storage for GcsStorage<C> {
    async fn get(&self, object: &ObjectPath) -> Result<Vec<u8>> {
        let url = self.download_url(object);
        let request = Self::request(object, Method::GET, &url, &[], Bytes::new())?;
        let response = self.send(object, &request, Doing::Reading).await?;
        match response.status().as_u16() {
            200 => Ok(response.into_body()),
            _ => Err(status_error(object, &response, Doing::Reading)),
        }
    }

    async fn get_range(&self, object: &ObjectPath, range: Range<u64>) -> Result<Vec<u8>> {
        let wanted = range.end.saturating_sub(range.start);
        // HTTP ranges are inclusive and never empty: for an empty range ask for one byte and
        // drop it, so that a missing object is still reported as missing, as `FsStorage` does.
        let last = range.start.saturating_add(wanted.max(1) - 1);
        let url = self.download_url(object);
        let wanted_range = [(RANGE, format!("bytes={}-{last}", range.start))];
        let request = Self::request(object, Method::GET, &url, &wanted_range, Bytes::new())?;
        let response = self.send(object, &request, Doing::Reading).await?;
        let mut bytes = match response.status().as_u16() {
            206 => {
                check_content_range(object, &response, range.start)?;
                response.into_body()
            }
            // A server may ignore `Range` and send the whole object.
            200 => {
                let mut body = response.into_body();
                let start = usize::try_from(range.start)
                    .unwrap_or(usize::MAX)
                    .min(body.len());
                body.drain(..start);
                body
            }
            // The range starts at or past the end: the object has none of its bytes.
            416 => Vec::new(),
            _ => return Err(status_error(object, &response, Doing::Reading)),
        };
        bytes.truncate(usize::try_from(wanted).unwrap_or(usize::MAX));
        Ok(bytes)
    }

    async fn put(&self, object: &ObjectPath, bytes: &[u8], content_type: &str) -> Result<()> {
        // Retrying an upload is safe: tasks write deterministic content at deterministic
        // names, so a repeated upload (even after an attempt that did land) leaves the same
        // object, and no generation precondition is needed.
        let url = self.upload_url(object, "media");
        let typed = [(CONTENT_TYPE, content_type.to_owned())];
        let request = Self::request(
            object,
            Method::POST,
            &url,
            &typed,
            Bytes::copy_from_slice(bytes),
        )?;
        let response = self.send(object, &request, Doing::Writing).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(object, &response, Doing::Writing))
        }
    }

    /// From the object's metadata (`GET …/o/{name}`), without its bytes.
    async fn size(&self, object: &ObjectPath) -> Result<Option<u64>> {
        self.size_of(object).await
    }

    fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// A 206 must start where we asked; anything else would put bytes in the wrong place.
fn check_content_range(object: &ObjectPath, response: &HttpResponse, start: u64) -> Result<()> {
    let Some(value) = header(response.headers(), "content-range") else {
        return Ok(());
    };
    // `bytes <first>-<last>/<total>` (RFC 9110 §14.4).
    let first = value
        .strip_prefix("bytes ")
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(first, _)| first.trim().parse::<u64>().ok());
    if first == Some(start) {
        Ok(())
    } else {
        Err(Error::storage(
            object,
            format!("asked for bytes from {start}, got content-range {value:?}"),
        ))
    }
}

/// The error for a final response that is not a success.
fn status_error(object: &ObjectPath, response: &HttpResponse, doing: Doing) -> Error {
    let bucket = bucket_name(object);
    let detail = describe_status(response);
    match response.status().as_u16() {
        // An upload cannot miss its object, only its bucket.
        404 if matches!(doing, Doing::Writing) || names_missing_bucket(response) => Error::new(
            ErrorKind::NotFound,
            format!(
                "bucket {bucket}: not found ({} {})",
                doing.verb(),
                object.name
            ),
        ),
        404 => Error::not_found(object),
        // Storage (502), not a request error: the request is fine, the deployment's service
        // account lacks a role, which is for the operator to fix.
        401 | 403 => Error::storage(
            object,
            format!(
                "permission denied {} bucket {bucket} ({detail}): check the service account's \
                 access to the bucket",
                doing.verb()
            ),
        ),
        _ => Error::storage(object, format!("{} failed with {detail}", doing.verb())),
    }
}

/// The bucket as the request named it: `gs://lab` or `lab`.
fn bucket_name(object: &ObjectPath) -> String {
    match object.store {
        Store::Gcs => format!("gs://{}", object.bucket),
        Store::Default => object.bucket.clone(),
    }
}

/// `HTTP 503: <GCS's message>`, quoting at most [`MAX_QUOTED_CHARS`] of the body.
fn describe_status(response: &HttpResponse) -> String {
    let message = error_message(response);
    if message.is_empty() {
        format!("HTTP {}", response.status().as_u16())
    } else {
        format!("HTTP {}: {message}", response.status().as_u16())
    }
}

/// GCS's `{"error": {"message": …}}`, or the start of the body as text.
fn error_message(response: &HttpResponse) -> String {
    let body = response.body();
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let line = text.lines().next().unwrap_or_default().trim();
    line.chars().take(MAX_QUOTED_CHARS).collect()
}

/// Whether a 404 says the bucket, not the object, is missing. GCS says "The specified bucket
/// does not exist."; fake-gcs-server says "bucket not found".
fn names_missing_bucket(response: &HttpResponse) -> bool {
    let message = error_message(response).to_ascii_lowercase();
    !message.contains("no such object")
        && (message.contains("bucket does not exist") || message.contains("bucket not found"))
}

#[cfg(test)]
mod tests {
    use super::super::http_client::TransportError;
    use super::*;
    use crate::storage::location::Location;
    use crate::storage::scripted_client::{ScriptedClient, answer};

    /// A response with an optional `Content-Range`.
    fn partial(status: u16, content_range: Option<&str>, body: &str) -> HttpResponse {
        let mut response = http::Response::builder().status(status);
        if let Some(value) = content_range {
            response = response.header("Content-Range", value);
        }
        response.body(body.as_bytes().to_vec()).unwrap()
    }

    pub(super) fn reset() -> Result<HttpResponse, TransportError> {
        Err(TransportError {
            retryable: true,
            message: "connection reset".to_owned(),
        })
    }

    pub(super) fn store(client: &ScriptedClient) -> GcsStorage<&ScriptedClient> {
        GcsStorage::new(client, "http://127.0.0.1:9", RetryPolicy::default())
    }

    pub(super) fn object(name: &str) -> ObjectPath {
        Location::parse("dest", "gs://lab").unwrap().object(name)
    }

    #[test]
    fn names_are_one_percent_encoded_segment() {
        let client = ScriptedClient::new(vec![answer(200, "x"), answer(200, "{}")]);
        let gcs = store(&client);
        let o = object("run 1/raw/s+1.png");
        pollster::block_on(gcs.get(&o)).unwrap();
        pollster::block_on(gcs.put(&o, b"png", super::super::PNG)).unwrap();
        assert_eq!(
            client.urls(),
            [
                "http://127.0.0.1:9/storage/v1/b/lab/o/run%201%2Fraw%2Fs%2B1.png?alt=media",
                "http://127.0.0.1:9/upload/storage/v1/b/lab/o?uploadType=media&name=run%201%2Fraw%2Fs%2B1.png"
            ]
        );
    }

    #[test]
    fn put_posts_the_bytes_with_their_content_type() {
        let client = ScriptedClient::new(vec![answer(200, "{}")]);
        pollster::block_on(store(&client).put(&object("info"), b"{}", super::super::JSON)).unwrap();
        assert_eq!(client.sent.borrow()[0].method, Method::POST);
        assert_eq!(client.sent.borrow()[0].body, b"{}");
        assert_eq!(
            client.header(0, "content-type").as_deref(),
            Some("application/json")
        );
    }

    #[test]
    fn ranges_read_what_the_object_has() {
        let client = ScriptedClient::new(vec![
            Ok(partial(206, Some("bytes 2-4/10"), "234")),
            // A server that ignores Range sends everything; a short object ends early.
            answer(200, "0123456789"),
            answer(200, "0123456789"),
            answer(416, ""),
            answer(206, "5"),
        ]);
        let gcs = store(&client);
        let o = object("pack/7");
        assert_eq!(pollster::block_on(gcs.get_range(&o, 2..5)).unwrap(), b"234");
        assert_eq!(client.header(0, "range").as_deref(), Some("bytes=2-4"));
        assert_eq!(pollster::block_on(gcs.get_range(&o, 2..5)).unwrap(), b"234");
        assert_eq!(pollster::block_on(gcs.get_range(&o, 8..20)).unwrap(), b"89");
        assert!(
            pollster::block_on(gcs.get_range(&o, 30..40))
                .unwrap()
                .is_empty()
        );
        assert!(
            pollster::block_on(gcs.get_range(&o, 5..5))
                .unwrap()
                .is_empty()
        );
        assert_eq!(client.header(4, "range").as_deref(), Some("bytes=5-5"));
    }

    #[test]
    fn a_range_answered_from_elsewhere_is_an_error() {
        let client = ScriptedClient::new(vec![Ok(partial(206, Some("bytes 0-2/10"), "012"))]);
        let e = pollster::block_on(store(&client).get_range(&object("p"), 2..5)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(e.message().starts_with("p in bucket gs://lab: "), "{e}");
    }

    #[test]
    fn missing_object_and_missing_bucket_are_not_found_and_named() {
        let client = ScriptedClient::new(vec![
            answer(
                404,
                r#"{"error":{"code":404,"message":"No such object: lab/raw/s1.png"}}"#,
            ),
            answer(
                404,
                r#"{"error":{"code":404,"message":"The specified bucket does not exist."}}"#,
            ),
            answer(404, "Not Found"),
        ]);
        let gcs = store(&client);
        let e = pollster::block_on(gcs.get(&object("raw/s1.png"))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "raw/s1.png in bucket gs://lab: not found");
        let e = pollster::block_on(gcs.get_range(&object("tmp/3"), 0..8)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "bucket gs://lab: not found (reading tmp/3)");
        let e =
            pollster::block_on(gcs.put(&object("info"), b"{}", super::super::JSON)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "bucket gs://lab: not found (writing info)");
        assert!(client.slept.borrow().is_empty(), "404 is not retried");
    }

    #[test]
    fn throttling_and_resets_are_retried_and_counted() {
        let client = ScriptedClient::new(vec![
            answer(429, ""),
            answer(503, ""),
            reset(),
            answer(408, ""),
            answer(200, "data"),
        ]);
        let gcs = store(&client);
        assert_eq!(pollster::block_on(gcs.get(&object("a"))).unwrap(), b"data");
        assert_eq!(gcs.retries(), 4);
        // The reset is sent again at once; the three statuses back off, each bound doubling.
        let slept = client.slept.borrow();
        assert_eq!(slept.len(), 3);
        for (retry, d) in slept.iter().enumerate() {
            assert!(
                *d <= RetryPolicy::default().delay_bound(retry as u32),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retries_stop_after_the_budget_naming_object_and_last_failure() {
        let mut answers: Vec<_> = (0..DEFAULT_ATTEMPTS - 1).map(|_| answer(500, "")).collect();
        answers.push(answer(
            503,
            r#"{"error":{"code":503,"message":"Backend Error"}}"#,
        ));
        let client = ScriptedClient::new(answers);
        let gcs = store(&client);
        let e =
            pollster::block_on(gcs.put(&object("shard"), b"x", super::super::BINARY)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert_eq!(
            e.to_string(),
            "shard in bucket gs://lab: writing failed after 10 attempts, the last with \
             HTTP 503: Backend Error"
        );
        assert_eq!(client.sent.borrow().len(), DEFAULT_ATTEMPTS as usize);
        assert_eq!(gcs.retries(), DEFAULT_ATTEMPTS - 1);
    }

    pub(super) const DEFAULT_ATTEMPTS: u32 = super::super::retry::DEFAULT_MAX_ATTEMPTS;

    #[test]
    fn permission_denied_is_not_retried_and_names_the_bucket() {
        let client = ScriptedClient::new(vec![answer(
            403,
            r#"{"error":{"code":403,"message":"sa@p.iam.gserviceaccount.com does not have storage.objects.create access"}}"#,
        )]);
        let gcs = store(&client);
        let e =
            pollster::block_on(gcs.put(&object("info"), b"{}", super::super::JSON)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(
            e.message().starts_with(
                "info in bucket gs://lab: permission denied writing bucket gs://lab (HTTP 403: sa@"
            ),
            "{e}"
        );
        assert!(
            e.message()
                .ends_with("check the service account's access to the bucket")
        );
        assert_eq!(gcs.retries(), 0);
    }

    #[test]
    fn a_refused_request_is_not_retried() {
        let client = ScriptedClient::new(vec![Err(TransportError {
            retryable: false,
            message: "the host refused the request (http-request-denied)".to_owned(),
        })]);
        let gcs = store(&client);
        let e = pollster::block_on(gcs.get(&object("a"))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert_eq!(
            e.to_string(),
            "a in bucket gs://lab: reading failed: the host refused the request (http-request-denied)"
        );
        assert!(client.slept.borrow().is_empty());
    }

    #[test]
    fn task_report_counts_retries_across_requests() {
        // Per info: ngmeta reads what is there (nothing), then puts it.
        let client = ScriptedClient::new(vec![
            answer(404, ""),
            answer(503, ""),
            answer(200, "{}"),
            answer(404, ""),
            reset(),
            answer(200, "{}"),
        ]);
        let gcs = store(&client);
        let request = crate::request::NgMetaRequest::from_json(
            br#"{"dest": "gs://lab", "minz": 0, "maxz": 9, "shard-size": 1024,
                 "bbox": [2048, 2048], "writeRaw": "True"}"#,
        )
        .unwrap();
        let written = pollster::block_on(crate::tasks::ng_meta::run(&gcs, &request)).unwrap();
        assert_eq!(written.objects.len(), 2);
        assert_eq!(written.retries, 2);
    }

    /// An answer with one header.
    #[test]
    fn emulator_host_takes_both_forms() {
        assert_eq!(base_url(Some("")), GCS_BASE_URL);
        assert_eq!(base_url(Some("localhost:4443")), "http://localhost:4443");
        assert_eq!(
            base_url(Some("http://127.0.0.1:4443/")),
            "http://127.0.0.1:4443"
        );
    }
}
