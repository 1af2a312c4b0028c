//! Objects in Google Cloud Storage through its JSON API, over an [`HttpClient`].
//!
//! docs/design.md §6: media uploads, `alt=media` downloads with `Range`, 404 = absent, the object name
//! percent-encoded as one path segment, and the emulator from `STORAGE_EMULATOR_HOST`. Requests
//! that fail in a way worth repeating are retried as [`super::retry`] says. No credentials pass
//! through here: the host adds them to requests for the GCS host (docs/design.md §2).
//!
//! An object written with a prefix that comes last ([`StreamingStorage::start_put_with_prefix`])
//! is uploaded as two hidden temporary objects beside it, `<dir>/.<name>.part-<16 hex>-body`
//! (streamed) and `…-prefix`, which one `compose` request concatenates into the object before
//! both are deleted. GCS cannot write into the start of an object it already holds, and compose
//! copies nothing through the client.

use super::http_client::{HttpClient, HttpRequest, HttpResponse, header};
use super::retry::{Backoff, Failure, RetryPolicy, is_retryable_status, jitter_unit};
use super::{
    BINARY, FinishedObject, JSON, ObjectWriter, PrefixedObjectWriter, Storage, StreamingStorage,
    prefix_length_error,
};
use crate::storage::location::{ObjectPath, Store};
use crate::{Error, ErrorKind, Result};
use http::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE, USER_AGENT};
use http::{HeaderName, Method};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

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
}

impl Doing {
    fn verb(self) -> &'static str {
        match self {
            Doing::Reading => "reading",
            Doing::Writing => "writing",
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
        let request = Self::request(object, Method::POST, &url, &typed, body.as_bytes())?;
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
        let request = Self::request(object, Method::DELETE, &url, &[], &[])?;
        let response = self.send(object, &request, Doing::Writing).await?;
        if response.status().is_success() || response.status().as_u16() == 404 {
            Ok(())
        } else {
            Err(status_error(object, &response, Doing::Writing))
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
        let request = Self::request(object, Method::GET, &url, &[], &[])?;
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
        request: &HttpRequest<'_>,
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
    fn request<'a>(
        object: &ObjectPath,
        method: Method,
        url: &str,
        extra: &[(HeaderName, String)],
        body: &'a [u8],
    ) -> Result<HttpRequest<'a>> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(url)
            .header(USER_AGENT, concat!("emwrite/", env!("CARGO_PKG_VERSION")));
        for (name, value) in extra {
            builder = builder.header(name, value);
        }
        // Only a malformed base URL (a bad emulator setting) or header value gets here.
        builder
            .body(body)
            .map_err(|e| Error::storage(object, format!("cannot build the request to {url}: {e}")))
    }
}

impl<C: HttpClient> Storage for GcsStorage<C> {
    async fn get(&self, object: &ObjectPath) -> Result<Vec<u8>> {
        let url = self.download_url(object);
        let request = Self::request(object, Method::GET, &url, &[], &[])?;
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
        let request = Self::request(object, Method::GET, &url, &wanted_range, &[])?;
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
        let request = Self::request(object, Method::POST, &url, &typed, bytes)?;
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

/// The part size of resumable uploads: GCS takes parts in multiples of 256 KiB, and larger
/// parts mean fewer round trips; 8 MiB is what Google's client libraries send by default.
const UPLOAD_PART_BYTES: usize = 8 << 20;

/// The header naming the content type of a resumable upload's object.
const UPLOAD_CONTENT_TYPE: HeaderName = HeaderName::from_static("x-upload-content-type");

impl<C: HttpClient> StreamingStorage for GcsStorage<C> {
    type Writer<'a>
        = GcsWriter<'a, C>
    where
        C: 'a;
    type PrefixedWriter<'a>
        = GcsPrefixedWriter<'a, C>
    where
        C: 'a;

    /// Streams the appended bytes to a hidden temporary object beside `object` (see the module
    /// docs); finishing uploads the prefix and composes the two.
    async fn start_put_with_prefix(
        &self,
        object: &ObjectPath,
        content_type: &str,
        prefix_len: u64,
    ) -> Result<GcsPrefixedWriter<'_, C>> {
        let token = part_token();
        let body_object = hidden_part(object, &token, "body");
        let mut body = self.start_put(&body_object, BINARY).await?;
        body.fresh_name = true;
        Ok(GcsPrefixedWriter {
            body,
            object: object.clone(),
            prefix_object: hidden_part(object, &token, "prefix"),
            body_object,
            content_type: content_type.to_owned(),
            prefix_len,
        })
    }

    /// Opens a resumable upload session (docs/design.md §6): the object exists only once the
    /// last part arrives, so an abandoned session leaves nothing (GCS drops it after a week).
    async fn start_put(&self, object: &ObjectPath, content_type: &str) -> Result<GcsWriter<'_, C>> {
        let url = self.upload_url(object, "resumable");
        // The object's content type goes both as GCS's header and in the metadata body, which
        // is what emulators read.
        let metadata = serde_json::json!({ "contentType": content_type }).to_string();
        let headers = [
            (UPLOAD_CONTENT_TYPE, content_type.to_owned()),
            (CONTENT_TYPE, "application/json; charset=UTF-8".to_owned()),
        ];
        let request = Self::request(object, Method::POST, &url, &headers, metadata.as_bytes())?;
        let response = self.send(object, &request, Doing::Writing).await?;
        if !response.status().is_success() {
            return Err(status_error(object, &response, Doing::Writing));
        }
        let location = header(response.headers(), LOCATION.as_str()).ok_or_else(|| {
            Error::storage(object, "the resumable upload answer has no Location header")
        })?;
        let session = self.session_url(object, location)?;
        Ok(GcsWriter {
            store: self,
            object: object.clone(),
            session,
            buffer: Vec::new(),
            persisted: 0,
            fresh_name: false,
        })
    }
}

/// An object being uploaded to GCS in parts of [`UPLOAD_PART_BYTES`] through a resumable
/// upload session.
#[derive(Debug)]
pub struct GcsWriter<'a, C> {
    store: &'a GcsStorage<C>,
    object: ObjectPath,
    /// The session URI GCS answered with.
    session: String,
    /// Bytes appended but not yet persisted by GCS.
    buffer: Vec<u8>,
    /// Bytes GCS has persisted, all before `buffer`.
    persisted: u64,
    /// Whether no other upload ever writes `object` (a temporary part with a random name), so
    /// that an object of the right size under it can only be this upload's.
    fresh_name: bool,
}

impl<C: HttpClient> GcsWriter<'_, C> {
    /// Sends the first `len` buffered bytes; with `total`, as the object's last part.
    async fn send_part(&mut self, len: usize, total: Option<u64>) -> Result<()> {
        let first = self.persisted;
        let range = match (len, total) {
            (0, Some(total)) => format!("bytes */{total}"),
            (_, Some(total)) => format!("bytes {first}-{}/{total}", first + len as u64 - 1),
            (_, None) => format!("bytes {first}-{}/*", first + len as u64 - 1),
        };
        let object = &self.object;
        let request = GcsStorage::<C>::request(
            object,
            Method::PUT,
            &self.session,
            &[(CONTENT_RANGE, range)],
            &self.buffer[..len],
        )?;
        let response = match self.store.send(object, &request, Doing::Writing).await {
            Ok(response) => response,
            // The last part landed but its answer was lost, and every retry to the finished
            // session failed too (fake-gcs-server drops such answers midway): an object under a
            // name only this upload writes, of the total size, is this upload, whole.
            Err(error) => match total {
                Some(total)
                    if self.fresh_name
                        && self.store.size_of(object).await.ok().flatten() == Some(total) =>
                {
                    self.persisted += len as u64;
                    self.buffer.clear();
                    return Ok(());
                }
                _ => return Err(error),
            },
        };
        match (response.status().as_u16(), total) {
            (200 | 201, Some(_)) => {
                self.persisted += len as u64;
                self.buffer.clear();
                Ok(())
            }
            // "Resume incomplete": `Range: bytes=0-N` says how much GCS kept of what it got,
            // which may be less than was sent; the rest goes again with the next part.
            (308, None) => {
                let kept = header(response.headers(), RANGE.as_str())
                    .and_then(|r| r.strip_prefix("bytes=0-"))
                    .and_then(|last| last.trim().parse::<u64>().ok())
                    .map_or(0, |last| last + 1);
                let taken = kept
                    .checked_sub(first)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0 && n <= len)
                    .ok_or_else(|| {
                        Error::storage(
                            object,
                            format!(
                                "the upload session kept bytes up to {kept} after part \
                                 {first}..{}",
                                first + len as u64
                            ),
                        )
                    })?;
                self.buffer.drain(..taken);
                self.persisted = kept;
                Ok(())
            }
            // The last part landed but its answer was lost (a reset after the server had it),
            // and the retry found the session finished: the object is there, whole.
            (404 | 410, Some(total)) if self.store.size_of(object).await? == Some(total) => {
                self.persisted += len as u64;
                self.buffer.clear();
                Ok(())
            }
            // The session expired (GCS keeps one a week) or was lost: the parts already sent
            // are gone with it, so only running the task again can write the object.
            (404 | 410, _) => Err(Error::storage(
                object,
                format!(
                    "the upload session ended before the object was whole ({})",
                    describe_status(&response)
                ),
            )),
            _ => Err(status_error(object, &response, Doing::Writing)),
        }
    }
}

impl<C: HttpClient> ObjectWriter for GcsWriter<'_, C> {
    async fn append(&mut self, mut bytes: &[u8]) -> Result<()> {
        // The buffer never holds more than a part: a shard streams through several writers at
        // once, and a buffer grown by doubling past 8 MiB would keep 16 MiB of linear memory
        // each (which never shrinks) for the task's life.
        while !bytes.is_empty() {
            let room = UPLOAD_PART_BYTES - self.buffer.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            reserve_within_part(&mut self.buffer, now.len());
            self.buffer.extend_from_slice(now);
            bytes = later;
            if self.buffer.len() == UPLOAD_PART_BYTES {
                self.send_part(UPLOAD_PART_BYTES, None).await?;
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<u64> {
        let total = self.persisted + self.buffer.len() as u64;
        self.send_part(self.buffer.len(), Some(total)).await?;
        Ok(total)
    }
}

/// Makes room in `buffer` for `more` bytes, growing it by doubling as `Vec` does but never past
/// [`UPLOAD_PART_BYTES`], which it is not asked to exceed.
fn reserve_within_part(buffer: &mut Vec<u8>, more: usize) {
    let needed = buffer.len() + more;
    if needed > buffer.capacity() {
        let target = needed
            .max(buffer.capacity() * 2)
            .min(UPLOAD_PART_BYTES)
            .max(needed);
        buffer.reserve_exact(target - buffer.len());
    }
}

/// A fresh random token for the temporary objects of one prefixed put.
fn part_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    // Each `RandomState` has its own keys, drawn from the OS (wasi:random in the component).
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{random:016x}")
}

/// The hidden temporary object `<dir>/.<name>.part-<token>-<kind>` beside `object`.
fn hidden_part(object: &ObjectPath, token: &str, kind: &str) -> ObjectPath {
    let (dir, name) = match object.name.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name),
        None => (String::new(), object.name.as_str()),
    };
    ObjectPath {
        name: format!("{dir}.{name}.part-{token}-{kind}"),
        ..object.clone()
    }
}

/// An object being uploaded to GCS after a prefix that comes last: the appended bytes stream to
/// a hidden temporary object; [`PrefixedObjectWriter::finish_with_prefix`] uploads the prefix
/// as another and composes the two into the object. Dropped unfinished, it abandons the upload
/// session and leaves nothing.
#[derive(Debug)]
pub struct GcsPrefixedWriter<'a, C> {
    body: GcsWriter<'a, C>,
    object: ObjectPath,
    body_object: ObjectPath,
    prefix_object: ObjectPath,
    content_type: String,
    prefix_len: u64,
}

impl<C: HttpClient> PrefixedObjectWriter for GcsPrefixedWriter<'_, C> {
    async fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.body.append(bytes).await
    }

    async fn finish_with_prefix(self, prefix: &[u8]) -> Result<FinishedObject> {
        if prefix.len() as u64 != self.prefix_len {
            return Err(prefix_length_error(
                &self.object,
                self.prefix_len,
                prefix.len(),
            ));
        }
        let store = self.body.store;
        let appended = self.body.finish().await?;
        let parts = [&self.prefix_object, &self.body_object];
        let mut composed = store.put(&self.prefix_object, prefix, BINARY).await;
        if composed.is_ok() {
            composed = store
                .compose(&self.object, &parts, &self.content_type)
                .await;
        }
        // Whether or not the object is whole, the temporaries have served; one that cannot be
        // deleted is worth a note, not a failed task.
        let mut notes = Vec::new();
        for part in parts {
            if let Err(e) = store.delete(part).await {
                notes.push(format!("temporary object left behind: {e}"));
            }
        }
        composed?;
        Ok(FinishedObject {
            bytes: self.prefix_len + appended,
            notes,
        })
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

    fn reset() -> Result<HttpResponse, TransportError> {
        Err(TransportError {
            retryable: true,
            message: "connection reset".to_owned(),
        })
    }

    fn store(client: &ScriptedClient) -> GcsStorage<&ScriptedClient> {
        GcsStorage::new(client, "http://127.0.0.1:9", RetryPolicy::default())
    }

    fn object(name: &str) -> ObjectPath {
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

    const DEFAULT_ATTEMPTS: u32 = super::super::retry::DEFAULT_MAX_ATTEMPTS;

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
        let client = ScriptedClient::new(vec![
            answer(503, ""),
            answer(200, "{}"),
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
    fn answer_with(status: u16, name: &str, value: &str) -> Result<HttpResponse, TransportError> {
        Ok(http::Response::builder()
            .status(status)
            .header(name, value)
            .body(Vec::new())
            .unwrap())
    }

    #[test]
    fn streamed_uploads_go_in_parts_through_one_resumable_session() {
        // The emulator behind a proxy names its own address; the parts go to the store's base.
        let location =
            "http://10.9.9.9:4443/upload/storage/v1/b/lab/o?uploadType=resumable&upload_id=s1";
        let session =
            "http://127.0.0.1:9/upload/storage/v1/b/lab/o?uploadType=resumable&upload_id=s1";
        let part = UPLOAD_PART_BYTES as u64;
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", location),
            // GCS keeps only half of the first part; the rest goes again with the next.
            answer_with(308, "range", &format!("bytes=0-{}", part / 2 - 1)),
            reset(),
            answer_with(308, "range", &format!("bytes=0-{}", part * 3 / 2 - 1)),
            answer(200, "{}"),
        ]);
        let gcs = store(&client);
        let o = object("raw/0.shard");
        let data: Vec<u8> = (0..part * 2 + 10).map(|i| (i % 251) as u8).collect();
        let mut writer = pollster::block_on(gcs.start_put(&o, super::super::BINARY)).unwrap();
        for piece in data.chunks(3 << 20) {
            pollster::block_on(writer.append(piece)).unwrap();
            assert!(
                writer.buffer.capacity() <= UPLOAD_PART_BYTES,
                "at most a part held"
            );
        }
        assert_eq!(
            pollster::block_on(writer.finish()).unwrap(),
            data.len() as u64
        );

        let sent = client.sent.borrow();
        assert_eq!(
            sent[0].url,
            "http://127.0.0.1:9/upload/storage/v1/b/lab/o?uploadType=resumable&name=raw%2F0.shard"
        );
        assert_eq!(
            client.header(0, "x-upload-content-type").as_deref(),
            Some("application/octet-stream")
        );
        let ranges: Vec<_> = (1..sent.len())
            .map(|i| client.header(i, "content-range").unwrap())
            .collect();
        assert_eq!(
            ranges,
            [
                format!("bytes 0-{}/*", part - 1),
                format!("bytes {}-{}/*", part / 2, part * 3 / 2 - 1),
                format!("bytes {}-{}/*", part / 2, part * 3 / 2 - 1),
                format!("bytes {}-{}/{}", part * 3 / 2, data.len() - 1, data.len()),
            ]
        );
        assert!(
            sent[1..]
                .iter()
                .all(|r| r.method == Method::PUT && r.url == session)
        );
        let mut uploaded = sent[1].body[..(part / 2) as usize].to_vec();
        uploaded.extend_from_slice(&sent[3].body);
        uploaded.extend_from_slice(&sent[4].body);
        assert_eq!(uploaded, data, "every byte once, in order");
        assert_eq!(gcs.retries(), 1);
    }

    #[test]
    fn small_and_empty_streamed_objects_take_one_last_part() {
        let session = "http://127.0.0.1:9/session";
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", session),
            answer(200, "{}"),
            answer_with(200, "location", session),
            answer(201, "{}"),
        ]);
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put(&object("a"), super::super::BINARY)).unwrap();
        pollster::block_on(writer.append(b"0123456789")).unwrap();
        assert_eq!(pollster::block_on(writer.finish()).unwrap(), 10);
        let writer = pollster::block_on(gcs.start_put(&object("b"), super::super::BINARY)).unwrap();
        assert_eq!(pollster::block_on(writer.finish()).unwrap(), 0);
        assert_eq!(
            client.header(1, "content-range").as_deref(),
            Some("bytes 0-9/10")
        );
        assert_eq!(
            client.header(3, "content-range").as_deref(),
            Some("bytes */0")
        );
    }

    #[test]
    fn a_session_that_loses_the_upload_is_an_error_naming_the_object() {
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", "http://127.0.0.1:9/session"),
            answer(404, r#"{"error":{"message":"No such upload"}}"#),
        ]);
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put(&object("big"), super::super::BINARY)).unwrap();
        let e = pollster::block_on(writer.append(&vec![0; UPLOAD_PART_BYTES])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert_eq!(
            e.message(),
            "big in bucket gs://lab: the upload session ended before the object was whole \
             (HTTP 404: No such upload)"
        );
    }

    /// The last part's answer is lost and every retry to the finished session breaks too: a
    /// temporary part (a name only this upload writes) of the right size is this upload, but an
    /// object under its final name may be an older version, so that stays an error.
    #[test]
    fn a_last_part_whose_answers_are_all_lost_is_confirmed_by_size_only_for_a_fresh_name() {
        let script = |size: &str| {
            let mut answers = vec![answer_with(200, "location", "http://127.0.0.1:9/session")];
            answers.extend((0..DEFAULT_ATTEMPTS).map(|_| reset()));
            answers.push(answer(200, &format!(r#"{{"size": "{size}"}}"#)));
            ScriptedClient::new(answers)
        };
        let client = script("5");
        let gcs = store(&client);
        let o = object("tmp/.7.part-0123456789abcdef-body");
        let mut writer = pollster::block_on(gcs.start_put(&o, super::super::BINARY)).unwrap();
        writer.fresh_name = true;
        pollster::block_on(writer.append(b"tiles")).unwrap();
        assert_eq!(pollster::block_on(writer.finish()).unwrap(), 5);

        let client = script("5");
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put(&object("tmp/7"), super::super::BINARY)).unwrap();
        pollster::block_on(writer.append(b"tiles")).unwrap();
        let e = pollster::block_on(writer.finish()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    }

    /// The hidden part name of a prefixed put of `tmp/7`, checked, with its token replaced.
    fn part_name(url: &str, prefix: &str, kind: &str) -> String {
        let rest = url.strip_prefix(prefix).unwrap();
        let (token, tail) = rest.strip_prefix("tmp%2F.7.part-").unwrap().split_at(16);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{url}");
        assert!(tail.starts_with(&format!("-{kind}")), "{url}");
        format!("tmp%2F.7.part-T{tail}")
    }

    #[test]
    fn prefixed_objects_are_composed_from_two_temporaries_then_deleted() {
        let session = "http://127.0.0.1:9/session";
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", session),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(204, ""),
            // A delete whose first answer was lost finds nothing: fine.
            answer(404, "No such object"),
        ]);
        let gcs = store(&client);
        let o = object("tmp/7");
        let mut writer =
            pollster::block_on(gcs.start_put_with_prefix(&o, super::super::BINARY, 3)).unwrap();
        pollster::block_on(writer.append(b"tiles")).unwrap();
        let finished = pollster::block_on(writer.finish_with_prefix(b"off")).unwrap();
        assert_eq!(finished.bytes, 8);
        assert!(finished.notes.is_empty(), "{:?}", finished.notes);

        let sent = client.sent.borrow();
        let methods: Vec<_> = sent.iter().map(|r| r.method.clone()).collect();
        assert_eq!(
            methods,
            [
                Method::POST,
                Method::PUT,
                Method::POST,
                Method::POST,
                Method::DELETE,
                Method::DELETE
            ]
        );
        let upload = "http://127.0.0.1:9/upload/storage/v1/b/lab/o?uploadType=";
        assert_eq!(
            part_name(&sent[0].url, &format!("{upload}resumable&name="), "body"),
            "tmp%2F.7.part-T-body"
        );
        assert_eq!(sent[1].body, b"tiles");
        assert_eq!(
            part_name(&sent[2].url, &format!("{upload}media&name="), "prefix"),
            "tmp%2F.7.part-T-prefix"
        );
        assert_eq!(sent[2].body, b"off");
        assert_eq!(
            sent[3].url,
            "http://127.0.0.1:9/storage/v1/b/lab/o/tmp%2F7/compose"
        );
        let compose: serde_json::Value = serde_json::from_slice(&sent[3].body).unwrap();
        let names: Vec<_> = compose["sourceObjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names[0].starts_with("tmp/.7.part-") && names[0].ends_with("-prefix"));
        assert_eq!(
            names[1],
            names[0].replace("-prefix", "-body"),
            "prefix first"
        );
        assert_eq!(
            compose["destination"]["contentType"],
            "application/octet-stream"
        );
        let object_url = "http://127.0.0.1:9/storage/v1/b/lab/o/";
        assert_eq!(
            part_name(&sent[4].url, object_url, "prefix"),
            "tmp%2F.7.part-T-prefix"
        );
        assert_eq!(
            part_name(&sent[5].url, object_url, "body"),
            "tmp%2F.7.part-T-body"
        );
    }

    #[test]
    fn a_failed_delete_is_a_note_and_a_failed_compose_an_error() {
        let session = "http://127.0.0.1:9/session";
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", session),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(403, r#"{"error":{"message":"no storage.objects.delete"}}"#),
            answer(204, ""),
            // Second put: compose fails; both temporaries are still deleted.
            answer_with(200, "location", session),
            answer(200, "{}"),
            answer(200, "{}"),
            answer(400, r#"{"error":{"message":"bad compose"}}"#),
            answer(204, ""),
            answer(204, ""),
        ]);
        let gcs = store(&client);
        let o = object("tmp/7");
        let writer =
            pollster::block_on(gcs.start_put_with_prefix(&o, super::super::BINARY, 2)).unwrap();
        let finished = pollster::block_on(writer.finish_with_prefix(b"ab")).unwrap();
        assert_eq!(finished.bytes, 2);
        assert_eq!(finished.notes.len(), 1);
        assert!(
            finished.notes[0].starts_with("temporary object left behind: tmp/.7.part-"),
            "{:?}",
            finished.notes
        );
        assert!(finished.notes[0].contains("no storage.objects.delete"));

        let writer =
            pollster::block_on(gcs.start_put_with_prefix(&o, super::super::BINARY, 2)).unwrap();
        let e = pollster::block_on(writer.finish_with_prefix(b"ab")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert_eq!(
            e.message(),
            "tmp/7 in bucket gs://lab: writing failed with HTTP 400: bad compose"
        );
        assert_eq!(client.sent.borrow().len(), 12, "both temporaries deleted");
    }

    #[test]
    fn a_last_part_whose_answer_was_lost_is_confirmed_by_the_objects_size() {
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", "http://127.0.0.1:9/session"),
            // The last part reaches GCS, the answer does not; the retry finds the session done.
            reset(),
            answer(404, "Not Found"),
            answer(200, r#"{"name": "a", "size": "10"}"#),
        ]);
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put(&object("a"), super::super::BINARY)).unwrap();
        pollster::block_on(writer.append(b"0123456789")).unwrap();
        assert_eq!(pollster::block_on(writer.finish()).unwrap(), 10);
        assert_eq!(
            client.sent.borrow()[3].url,
            "http://127.0.0.1:9/storage/v1/b/lab/o/a"
        );

        // Not there (or not whole): the session really was lost.
        let client = ScriptedClient::new(vec![
            answer_with(200, "location", "http://127.0.0.1:9/session"),
            answer(404, "Not Found"),
            answer(404, "Not Found"),
        ]);
        let gcs = store(&client);
        let mut writer =
            pollster::block_on(gcs.start_put(&object("a"), super::super::BINARY)).unwrap();
        pollster::block_on(writer.append(b"0123456789")).unwrap();
        let e = pollster::block_on(writer.finish()).unwrap_err();
        assert!(e.message().contains("the upload session ended"), "{e}");
    }

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
