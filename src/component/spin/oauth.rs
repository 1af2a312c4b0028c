//! Bearer tokens on GCS requests, minted by the component itself (the Spin build's credentials).
//!
//! Spin cannot add headers to a guest's outgoing requests, so there the component holds a
//! service-account key and does what the native host's send hook does elsewhere (docs/design.md §2):
//! it wraps the [`HttpClient`] under the GCS store and adds `Authorization: Bearer …` to requests
//! for `https://storage.googleapis.com` only, never for an emulator or any other host. Tokens come
//! from Google's JWT-bearer grant (RFC 7523; the assertion is built in [`super::jwt`]), posted
//! through the same client, and are reused until five minutes before they expire. Concurrent
//! requests wait for one token rather than each minting their own.
//!
//! Neither the key nor a token appears in a message, a log line or a `Debug` output.

use super::jwt::{ServiceAccountKey, TOKEN_URL};
use crate::storage::gcs::GCS_BASE_URL;
use crate::storage::http_client::{Bytes, HttpClient, HttpRequest, HttpResponse, TransportError};
use crate::storage::retry::is_retryable_status;
use futures::lock::Mutex;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method};
use serde::Deserialize;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long before its expiry a token is replaced: longer than any single request may take, so
/// a token never runs out in the middle of an upload. Google's own client libraries use a
/// similar margin (3¾ minutes).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The grant type of RFC 7523 §2.1, form-encoded.
const JWT_BEARER_GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// Longest part of an error response quoted in a message.
const MAX_QUOTED_CHARS: usize = 200;

/// An access token and when to stop using it.
struct AccessToken {
    value: String,
    refresh_at: Instant,
}

impl AccessToken {
    /// A token obtained at `obtained`, which the endpoint said lives `expires_in`.
    fn new(value: String, obtained: Instant, expires_in: Duration) -> Self {
        // A token shorter-lived than the margin (never seen from Google) is still used for half
        // its life rather than fetched anew for every request.
        let usable = expires_in
            .checked_sub(REFRESH_MARGIN)
            .unwrap_or(expires_in / 2);
        Self {
            value,
            refresh_at: obtained + usable,
        }
    }

    fn is_fresh_at(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

/// The token endpoint's answer (RFC 6749 §5.1 and §5.2).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

/// An [`HttpClient`] that adds a bearer token to GCS requests when it holds a key, and passes
/// every request through unchanged when it does not (an emulator needs no credentials).
pub struct AuthorizingClient<C> {
    inner: C,
    key: Option<ServiceAccountKey>,
    token: Mutex<Option<AccessToken>>,
}

impl<C: fmt::Debug> fmt::Debug for AuthorizingClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key's own Debug hides the key; the token is left out altogether.
        f.debug_struct("AuthorizingClient")
            .field("inner", &self.inner)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<C: HttpClient> AuthorizingClient<C> {
    /// Sends through `inner`, authorizing GCS requests with `key` if there is one.
    pub fn new(inner: C, key: Option<ServiceAccountKey>) -> Self {
        Self {
            inner,
            key,
            token: Mutex::new(None),
        }
    }

    /// A token that is good for a while yet: the cached one, or a new one.
    async fn access_token(&self, key: &ServiceAccountKey) -> Result<String, TransportError> {
        // Held across the token request on purpose: the other requests of this task wait for
        // the one token instead of each asking for their own.
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.is_fresh_at(Instant::now())) {
            return Ok(token.value.clone());
        }
        let token = self.fetch_token(key).await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    /// Trades a fresh assertion for a token at Google's token endpoint.
    async fn fetch_token(&self, key: &ServiceAccountKey) -> Result<AccessToken, TransportError> {
        let failed = |retryable: bool, problem: String| TransportError {
            retryable,
            message: format!(
                "getting an access token for {}: {problem}",
                key.client_email()
            ),
        };
        let now_unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| failed(false, "the clock is before 1970".to_owned()))?
            .as_secs();
        let assertion = key
            .assertion(now_unix_secs)
            .map_err(|e| failed(false, e.message().to_owned()))?;
        let body = format!("grant_type={JWT_BEARER_GRANT}&assertion={assertion}");
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(TOKEN_URL)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Bytes::from(body))
            .map_err(|e| failed(false, format!("cannot build the token request: {e}")))?;
        let sent = Instant::now();
        let response = self
            .inner
            .send(&request)
            .await
            .map_err(|e| failed(e.retryable, e.message))?;
        let answer: Option<TokenResponse> = serde_json::from_slice(response.body()).ok();
        let status = response.status().as_u16();
        if status != 200 {
            return Err(failed(
                is_retryable_status(status),
                describe_refusal(&response, answer.as_ref()),
            ));
        }
        match answer {
            Some(TokenResponse {
                access_token: Some(value),
                expires_in: Some(seconds),
                ..
            }) if !value.is_empty() => {
                Ok(AccessToken::new(value, sent, Duration::from_secs(seconds)))
            }
            _ => Err(failed(
                false,
                "HTTP 200 without an access_token and expires_in".to_owned(),
            )),
        }
    }
}

/// Whether `request` goes to Google Cloud Storage itself (and so may carry the token).
fn is_gcs(request: &HttpRequest) -> bool {
    request
        .uri()
        .to_string()
        .strip_prefix(GCS_BASE_URL)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// A refused token request: the status and the endpoint's own `error` and `error_description`,
/// which name the problem (`invalid_grant: Invalid JWT Signature.`) and hold nothing secret.
fn describe_refusal(response: &HttpResponse, answer: Option<&TokenResponse>) -> String {
    let status = response.status().as_u16();
    let error = answer.and_then(|a| a.error.as_deref());
    let description = answer.and_then(|a| a.error_description.as_deref());
    let detail = match (error, description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e.to_owned(),
        (None, _) => String::from_utf8_lossy(response.body()).into_owned(),
    };
    let detail: String = detail.trim().chars().take(MAX_QUOTED_CHARS).collect();
    if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    }
}

impl<C: HttpClient> HttpClient for AuthorizingClient<C> {
    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let Some(key) = self.key.as_ref().filter(|_| is_gcs(request)) else {
            return self.inner.send(request).await;
        };
        let token = self.access_token(key).await?;
        let bearer =
            HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| TransportError {
                retryable: false,
                message: "the token endpoint sent a token that is not a valid header value"
                    .to_owned(),
            })?;
        // `http::Request` is not `Clone`; the copy shares the caller's body (`Bytes`).
        let mut authorized = http::Request::new(request.body().clone());
        *authorized.method_mut() = request.method().clone();
        *authorized.uri_mut() = request.uri().clone();
        *authorized.headers_mut() = request.headers().clone();
        authorized.headers_mut().insert(AUTHORIZATION, bearer);
        let response = self.inner.send(&authorized).await?;
        if response.status() == http::StatusCode::UNAUTHORIZED {
            // GCS no longer takes this token (revoked, or the clock jumped): the next request
            // mints a new one.
            *self.token.lock().await = None;
        }
        Ok(response)
    }

    async fn sleep(&self, duration: Duration) {
        self.inner.sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::scripted_client::{ScriptedClient, answer};
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::{Generate, PrivateKey};

    fn token(value: &str, expires_in: u64) -> Result<HttpResponse, TransportError> {
        answer(
            200,
            &serde_json::json!({"access_token": value, "expires_in": expires_in,
                                "token_type": "Bearer"})
            .to_string(),
        )
    }

    fn key() -> ServiceAccountKey {
        let pem = PrivateKey::generate()
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a generated key encodes");
        let file = serde_json::json!({
            "type": "service_account",
            "private_key": pem.as_str(),
            "client_email": "emwrite@lab.iam.gserviceaccount.com",
        });
        ServiceAccountKey::from_json(&file.to_string()).unwrap()
    }

    fn get(url: &str) -> HttpRequest {
        http::Request::builder()
            .method(Method::GET)
            .uri(url)
            .header("range", "bytes=0-9")
            .body(Bytes::new())
            .unwrap()
    }

    const OBJECT: &str = "https://storage.googleapis.com/storage/v1/b/lab/o/info?alt=media";

    #[test]
    fn gcs_requests_carry_one_cached_token() {
        let client = ScriptedClient::new(vec![
            token("ya29.first", 3599),
            answer(200, "a"),
            answer(200, "b"),
        ]);
        let authorizing = AuthorizingClient::new(client, Some(key()));
        for _ in 0..2 {
            let response = pollster::block_on(authorizing.send(&get(OBJECT))).unwrap();
            assert_eq!(response.status(), 200);
        }
        let client = &authorizing.inner;
        assert_eq!(client.urls(), [TOKEN_URL, OBJECT, OBJECT]);
        let token_request = &client.sent.borrow()[0];
        assert!(token_request.headers.contains(&(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded".to_owned()
        )));
        let body = String::from_utf8(token_request.body.clone()).unwrap();
        let assertion = body
            .strip_prefix(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=",
            )
            .expect("a JWT-bearer grant");
        assert_eq!(assertion.split('.').count(), 3);
        assert_eq!(client.header(0, "authorization"), None);
        assert_eq!(
            client.header(1, "authorization").as_deref(),
            Some("Bearer ya29.first")
        );
        assert_eq!(
            client.header(2, "authorization").as_deref(),
            Some("Bearer ya29.first")
        );
        // The caller's own headers are kept.
        assert!(
            client.sent.borrow()[1]
                .headers
                .contains(&("range".to_owned(), "bytes=0-9".to_owned()))
        );
    }

    #[test]
    fn an_expiring_token_is_replaced() {
        // Google's tokens live an hour; one that expires within the margin is used for half of
        // what is left, so with no time left it is replaced at the next request.
        let client = ScriptedClient::new(vec![
            token("ya29.short", 0),
            answer(200, "a"),
            token("ya29.next", 3599),
            answer(200, "b"),
        ]);
        let authorizing = AuthorizingClient::new(client, Some(key()));
        pollster::block_on(authorizing.send(&get(OBJECT))).unwrap();
        pollster::block_on(authorizing.send(&get(OBJECT))).unwrap();
        let client = &authorizing.inner;
        assert_eq!(client.urls(), [TOKEN_URL, OBJECT, TOKEN_URL, OBJECT]);
        assert_eq!(
            client.header(3, "authorization").as_deref(),
            Some("Bearer ya29.next")
        );

        let start = Instant::now();
        let hour = AccessToken::new(String::new(), start, Duration::from_secs(3600));
        assert!(hour.is_fresh_at(start + Duration::from_secs(3299)));
        assert!(!hour.is_fresh_at(start + Duration::from_secs(3300)));
    }

    #[test]
    fn a_401_drops_the_token() {
        let client = ScriptedClient::new(vec![
            token("ya29.revoked", 3599),
            answer(401, "{}"),
            token("ya29.new", 3599),
            answer(200, "a"),
        ]);
        let authorizing = AuthorizingClient::new(client, Some(key()));
        let first = pollster::block_on(authorizing.send(&get(OBJECT))).unwrap();
        assert_eq!(first.status(), 401);
        pollster::block_on(authorizing.send(&get(OBJECT))).unwrap();
        assert_eq!(
            authorizing.inner.header(3, "authorization").as_deref(),
            Some("Bearer ya29.new")
        );
    }

    #[test]
    fn other_hosts_and_keyless_clients_send_no_credentials() {
        let emulator = "http://127.0.0.1:4443/storage/v1/b/lab/o/info?alt=media";
        let lookalike = "https://storage.googleapis.com.evil.test/storage/v1/b/lab/o/x";
        let client = ScriptedClient::new(vec![answer(200, "a"), answer(200, "b")]);
        let authorizing = AuthorizingClient::new(client, Some(key()));
        pollster::block_on(authorizing.send(&get(emulator))).unwrap();
        pollster::block_on(authorizing.send(&get(lookalike))).unwrap();
        assert_eq!(authorizing.inner.urls(), [emulator, lookalike]);
        assert_eq!(authorizing.inner.header(0, "authorization"), None);
        assert_eq!(authorizing.inner.header(1, "authorization"), None);

        let client = ScriptedClient::new(vec![answer(200, "a")]);
        let keyless = AuthorizingClient::new(client, None);
        pollster::block_on(keyless.send(&get(OBJECT))).unwrap();
        assert_eq!(keyless.inner.urls(), [OBJECT]);
        assert_eq!(keyless.inner.header(0, "authorization"), None);
    }

    #[test]
    fn token_failures_say_why_and_whether_to_retry() {
        let refused = answer(
            400,
            r#"{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}"#,
        );
        let client = ScriptedClient::new(vec![
            refused,
            answer(503, "busy"),
            Err(TransportError {
                retryable: true,
                message: "connection-refused".to_owned(),
            }),
            answer(200, r#"{"token_type": "Bearer"}"#),
        ]);
        let authorizing = AuthorizingClient::new(client, Some(key()));
        let expected = [
            (false, "HTTP 400: invalid_grant: Invalid JWT Signature."),
            (true, "HTTP 503: busy"),
            (true, "connection-refused"),
            (false, "HTTP 200 without an access_token and expires_in"),
        ];
        for (retryable, problem) in expected {
            let e = pollster::block_on(authorizing.send(&get(OBJECT))).unwrap_err();
            assert_eq!(e.retryable, retryable, "{e}");
            assert_eq!(
                e.message,
                format!(
                    "getting an access token for emwrite@lab.iam.gserviceaccount.com: {problem}"
                )
            );
        }
        // No GCS request went out without a token.
        assert_eq!(authorizing.inner.urls(), [TOKEN_URL; 4]);
    }

    #[test]
    fn debug_shows_neither_key_nor_token() {
        let client = ScriptedClient::new(vec![token("ya29.secret", 3599), answer(200, "a")]);
        let authorizing = AuthorizingClient::new(client, Some(key()));
        pollster::block_on(authorizing.send(&get(OBJECT))).unwrap();
        let debug = format!("{authorizing:?}");
        assert!(
            debug.contains("emwrite@lab.iam.gserviceaccount.com"),
            "{debug}"
        );
        assert!(!debug.contains("ya29.secret"), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }
}
