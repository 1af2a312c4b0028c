//! The policy for the component's outgoing HTTP requests: which hosts it may reach, and the GCS
//! token, added by the host to requests for Google Cloud Storage and to nothing else.
//!
//! It runs as wasmtime-wasi-http's `WasiHttpHooks::send_request` hook (`docs/design.md` §2, §6),
//! so the component holds no credentials and cannot reach hosts nobody allowed. Allowed are GCS
//! itself ([`GCS_BASE_URL`], over https on its port only), the emulator named by
//! `STORAGE_EMULATOR_HOST` (Google's client-library convention; it gets no token), and each
//! `--allow-host HOST[:PORT]`. What the guest hears when the hook does not send a request is
//! [`HostRefusal`]'s protocol.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use emwrite::guest_env::EMULATOR_HOST_ENV;
use emwrite::storage::gcs::{GCS_BASE_URL, emulator_base_url};
use emwrite::storage::retry::HostRefusal;
use http::uri::Authority;
use hyper::header::AUTHORIZATION;
use hyper::{Request, Response, Uri};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::embed::credentials::Credentials;
use crate::embed::pooled_client::{InstanceSlot, PooledClient};
use crate::error::HostError;

/// A host name or IP address with an optional port, as `--allow-host` takes it: an [`Authority`]
/// with no user info whose port, if any, is 1–65535.
///
/// Without a port, every port of the host is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lowercase; an IPv6 address keeps its brackets, as [`Uri::host`] returns it.
    authority: Authority,
}

impl AllowedHost {
    fn matches(&self, host: &str, port: u16) -> bool {
        self.authority.host().eq_ignore_ascii_case(host)
            && self.authority.port_u16().is_none_or(|own| own == port)
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.authority.as_str())
    }
}

impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let invalid = |why: &str| format!("{text:?}: {why} (expected HOST or HOST:PORT)");
        if text.contains("://") {
            return Err(invalid("a URL, not a host"));
        }
        let authority: Authority = text
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| invalid(&format!("not a host name: {e}")))?;
        // `user@host` would make the authority the connection uses differ from the host judged
        // here; the http crate accepts it, as URLs may carry it.
        if authority.as_str().contains('@') {
            return Err(invalid("user info is not part of a host"));
        }
        let host = authority.host();
        if host.is_empty() || host == "[]" {
            return Err(invalid("no host"));
        }
        // The http crate reads a port it cannot parse (`:http`, `:99999`) or text after an IPv6
        // address's `]` as no port at all; here that would allow every port.
        let port = authority.port_u16().filter(|&port| port != 0);
        let expected = match port {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        if authority.as_str() != expected {
            return Err(invalid(
                "the port must be a number from 1 to 65535 (an IPv6 address needs brackets, \
                 e.g. [::1]:8080)",
            ));
        }
        Ok(AllowedHost { authority })
    }
}

/// The host and port a base URL (GCS's, the emulator's) sends requests to, the port made explicit,
/// and whether it is https.
fn base_url_host(url: &str) -> Result<(bool, AllowedHost), String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    let https = match uri.scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
        _ => return Err(format!("{url:?}: only http:// and https:// are supported")),
    };
    let authority = uri.authority().ok_or_else(|| format!("{url:?}: no host"))?;
    let port = authority.port_u16().unwrap_or(default_port(https));
    let host = format!("{}:{port}", authority.host()).parse()?;
    Ok((https, host))
}

fn default_port(https: bool) -> u16 {
    if https { 443 } else { 80 }
}

/// What happens to one outgoing request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// To GCS over https: sent with the GCS token.
    Gcs,
    /// To the emulator or an `--allow-host`: sent as the guest made it, without credentials.
    Plain,
    /// Not allowed: the guest gets `HTTP-request-denied`.
    Refused,
}

/// Which hosts the component may reach; see the module docs.
#[derive(Debug, Clone)]
pub struct Policy {
    /// GCS's host and port, from [`GCS_BASE_URL`]: reached over https only.
    gcs: AllowedHost,
    /// `STORAGE_EMULATOR_HOST` with its port made explicit.
    emulator: Option<AllowedHost>,
    allowed: Vec<AllowedHost>,
}

impl Policy {
    /// A policy allowing GCS, the emulator at `emulator` (the value of `STORAGE_EMULATOR_HOST`,
    /// read as the guest reads it: [`emulator_base_url`]) and the `allowed` hosts.
    pub fn new(emulator: Option<&str>, allowed: Vec<AllowedHost>) -> Result<Self, HostError> {
        let emulator = emulator_base_url(emulator)
            .map(|url| {
                base_url_host(&url)
                    .map(|(_, host)| host)
                    .map_err(|why| HostError::Config(format!("{EMULATOR_HOST_ENV}: {why}")))
            })
            .transpose()?;
        let gcs = match base_url_host(GCS_BASE_URL) {
            Ok((true, gcs)) => gcs,
            // A constant of the core; its tests (and this module's) pin it to https.
            other => unreachable!("GCS_BASE_URL is an https URL, got {other:?}"),
        };
        Ok(Policy {
            gcs,
            emulator,
            allowed,
        })
    }

    /// Decides about a request for `uri`.
    pub fn judge(&self, uri: &Uri) -> Verdict {
        let Some(authority) = uri.authority() else {
            return Verdict::Refused;
        };
        // `user@host` would make the authority the connection uses differ from the host judged
        // here; no storage request needs it.
        if authority.as_str().contains('@') {
            return Verdict::Refused;
        }
        let https = match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
            _ => return Verdict::Refused,
        };
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(default_port(https));
        // The emulator comes first: whatever it is called, it never gets a token.
        if self
            .emulator
            .as_ref()
            .is_some_and(|emulator| emulator.matches(host, port))
        {
            Verdict::Plain
        } else if https && self.gcs.matches(host, port) {
            Verdict::Gcs
        } else if self
            .allowed
            .iter()
            .any(|allowed| allowed.matches(host, port))
        {
            Verdict::Plain
        } else {
            Verdict::Refused
        }
    }

    /// The allowed hosts, for messages: `storage.googleapis.com:443, 127.0.0.1:4443 (emulator)`.
    fn describe(&self) -> String {
        let mut hosts = vec![self.gcs.to_string()];
        hosts.extend(
            self.emulator
                .iter()
                .map(|emulator| format!("{emulator} ({EMULATOR_HOST_ENV})")),
        );
        hosts.extend(self.allowed.iter().map(ToString::to_string));
        hosts.join(", ")
    }
}

/// The wasi:http error that tells the guest about `refusal`, as [`HostRefusal`] defines it; `why`
/// goes with the retryable kind, the only one that carries a message.
fn refusal_error(refusal: HostRefusal, why: &str) -> Error {
    match refusal {
        HostRefusal::Denied => Error::HttpRequestDenied,
        HostRefusal::Misconfigured => Error::ConfigurationError,
        HostRefusal::Unavailable => Error::InternalError(Some(why.to_owned())),
    }
}

/// The `send_request` hook: applies the [`Policy`], adds the token for GCS and sends on the
/// process's pooled keep-alive client (`pooled_client.rs`). One is shared by every store; cheap
/// to clone.
#[derive(Clone)]
pub struct Outgoing {
    shared: Arc<Shared>,
}

struct Shared {
    policy: Policy,
    credentials: Credentials,
    client: PooledClient,
    /// `scheme://host:port`s whose refusal was logged: a retrying guest must not flood the log.
    refused: Mutex<HashSet<String>>,
}

impl Outgoing {
    /// A hook with `policy`, getting GCS tokens from `credentials` when first needed.
    pub fn new(policy: Policy, credentials: Credentials) -> Self {
        Outgoing {
            shared: Arc::new(Shared {
                policy,
                credentials,
                client: PooledClient::new(),
                refused: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Counts one more instance in the connection budget until the slot is dropped: each live
    /// instance may keep its own share of connections open per storage host.
    pub fn instance(&self) -> InstanceSlot {
        self.shared.client.budget().instance()
    }

    /// The allowed hosts, for the startup line of `serve`.
    pub fn describe(&self) -> String {
        self.shared.policy.describe()
    }

    /// Sends `request` as the component's requests are sent: refused unless allowed, with the
    /// GCS token for GCS, on the pooled client. The host's own storage access (`store.rs`) goes
    /// through here too, so it reaches exactly what the component may, with the same credentials.
    pub async fn send(
        &self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<Response<WasiBody>, Error> {
        let request = self.shared.authorize(request).await?;
        self.shared.client.send(request, options).await
    }
}

impl Shared {
    /// The request as it will be sent (with the token if it goes to GCS), or the error the
    /// guest gets instead.
    async fn authorize<B>(&self, mut request: Request<B>) -> Result<Request<B>, Error> {
        match self.policy.judge(request.uri()) {
            Verdict::Plain => {}
            Verdict::Refused => {
                self.log_refused(request.uri());
                return Err(refusal_error(HostRefusal::Denied, "not an allowed host"));
            }
            Verdict::Gcs => match self.credentials.authorization().await {
                // `insert` replaces any `Authorization` the guest set: GCS sees only ours.
                Ok(value) => {
                    request.headers_mut().insert(AUTHORIZATION, value);
                }
                // The reason is in the host's log (`Credentials` wrote it); the guest learns
                // only whether trying again may help. Missing credentials are a setup problem
                // that no retry cures; a token request that failed may work next time.
                Err(error) => {
                    let refusal = if error.none_found() {
                        HostRefusal::Misconfigured
                    } else {
                        HostRefusal::Unavailable
                    };
                    return Err(refusal_error(
                        refusal,
                        "the host could not get a GCS token; its log says why",
                    ));
                }
            },
        }
        Ok(request)
    }

    fn log_refused(&self, uri: &Uri) {
        let scheme = uri.scheme_str().unwrap_or("?");
        let authority = uri.authority().map_or("", |a| a.as_str());
        let first = self
            .refused
            .lock()
            // A panic while inserting leaves a usable set at worst one entry short.
            .unwrap_or_else(PoisonError::into_inner)
            .insert(format!("{scheme}://{authority}"));
        if first {
            tracing::warn!(
                "refused outgoing requests to {scheme}://{authority}: not an allowed host \
                 (allowed: {}; --allow-host HOST[:PORT] adds one)",
                self.policy.describe()
            );
        }
    }
}

impl WasiHttpHooks for Outgoing {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        // Like the default hook: the request's outcome is reported through the returned
        // future, not this one.
        drop(fut);
        let outgoing = self.clone();
        Box::new(async move {
            let response = outgoing.send(request, options).await?;
            // The pool drives the connection on its own task, so there is no I/O left for the
            // caller to drive.
            let io = std::future::ready(Ok(()));
            Ok((
                response,
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use gcp_auth::{Token, TokenProvider};
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn policy(emulator: Option<&str>, allowed: &[&str]) -> Policy {
        let allowed = allowed.iter().map(|h| h.parse().unwrap()).collect();
        Policy::new(emulator, allowed).unwrap()
    }

    fn judge(policy: &Policy, url: &str) -> Verdict {
        policy.judge(&url.parse::<Uri>().unwrap())
    }

    /// `(STORAGE_EMULATOR_HOST, --allow-host list, url, verdict)`.
    macro_rules! verdicts {
        ($($emulator:expr, [$($allow:expr),*], $url:expr => $verdict:ident;)*) => {
            $(
                let p = policy($emulator, &[$($allow),*]);
                assert_eq!(judge(&p, $url), Verdict::$verdict, "{} with {p:?}", $url);
            )*
        };
    }

    #[test]
    fn only_gcs_over_https_gets_the_token() {
        verdicts! {
            None, [], "https://storage.googleapis.com/storage/v1/b/lab/o/x?alt=media" => Gcs;
            None, [], "https://storage.googleapis.com:443/upload/storage/v1/b/lab/o" => Gcs;
            None, [], "https://STORAGE.GoogleAPIs.com/storage/v1/b/lab" => Gcs;
            // Never a token in plain text or to another port, even when allowed.
            None, [], "http://storage.googleapis.com/storage/v1/b/lab" => Refused;
            None, ["storage.googleapis.com"], "http://storage.googleapis.com/x" => Plain;
            None, [], "https://storage.googleapis.com:8443/x" => Refused;
            // Look-alikes are other hosts.
            None, [], "https://storage.googleapis.com.evil.example/x" => Refused;
            None, [], "https://evil.example/storage.googleapis.com" => Refused;
            None, [], "https://user@storage.googleapis.com/x" => Refused;
            // Allowed hosts never get the token.
            None, ["example.com"], "https://example.com/x" => Plain;
        }
    }

    #[test]
    fn the_emulator_is_allowed_and_never_gets_the_token() {
        verdicts! {
            Some("http://127.0.0.1:4443"), [], "http://127.0.0.1:4443/storage/v1/b/lab" => Plain;
            Some("http://127.0.0.1:4443/"), [], "http://127.0.0.1:4443/x" => Plain;
            Some("127.0.0.1:4443"), [], "http://127.0.0.1:4443/x" => Plain;
            Some("localhost:9023"), [], "http://LOCALHOST:9023/x" => Plain;
            Some("http://localhost"), [], "http://localhost/x" => Plain;
            Some("https://gcs.test"), [], "https://gcs.test:443/x" => Plain;
            // Only the emulator's own host and port.
            Some("http://127.0.0.1:4443"), [], "http://127.0.0.1:4444/x" => Refused;
            Some("http://127.0.0.1:4443"), [], "http://localhost:4443/x" => Refused;
            // Pointing the emulator at GCS itself sends no token there.
            Some("https://storage.googleapis.com"), [], "https://storage.googleapis.com/x" => Plain;
            // GCS stays allowed beside the emulator.
            Some("http://127.0.0.1:4443"), [], "https://storage.googleapis.com/x" => Gcs;
        }
    }

    #[test]
    fn other_hosts_are_refused_unless_allowed() {
        verdicts! {
            None, [], "http://127.0.0.1:8080/x" => Refused;
            None, [], "https://metadata.google.internal/x" => Refused;
            None, [], "http://169.254.169.254/computeMetadata/v1/" => Refused;
            None, ["example.com"], "http://example.com:8080/x" => Plain;
            None, ["example.com:8080"], "http://example.com:8080/x" => Plain;
            None, ["example.com:8080"], "http://example.com/x" => Refused;
            None, ["example.com:8080"], "http://api.example.com:8080/x" => Refused;
            None, ["[::1]:9000"], "http://[::1]:9000/x" => Plain;
            None, ["[::1]:9000"], "http://[::2]:9000/x" => Refused;
            None, ["a.test", "b.test:1"], "http://b.test:1/x" => Plain;
            None, [], "/relative/only" => Refused;
            None, ["example.com"], "ftp://example.com/x" => Refused;
        }
    }

    #[test]
    fn allow_host_parses_hosts_and_ports() {
        let parsed = |text: &str| text.parse::<AllowedHost>().map(|h| h.to_string());
        assert_eq!(parsed("Example.COM"), Ok("example.com".to_owned()));
        assert_eq!(
            parsed("example.com:8080"),
            Ok("example.com:8080".to_owned())
        );
        assert_eq!(parsed(" 127.0.0.1:9 "), Ok("127.0.0.1:9".to_owned()));
        assert_eq!(parsed("[::1]"), Ok("[::1]".to_owned()));
        assert_eq!(parsed("[::1]:443"), Ok("[::1]:443".to_owned()));
        for bad in [
            "",
            "http://example.com",
            "example.com:0",
            "example.com:http",
            "example.com:99999",
            "::1",
            "[::1",
            "[::1]x",
            "a b",
            "u@example.com",
            "example.com/path",
            ":80",
            "example.com:",
            "[]",
        ] {
            let error = parsed(bad).expect_err(bad);
            assert!(error.contains("HOST:PORT"), "{bad:?}: {error}");
        }
        let unset = Policy::new(Some(" "), Vec::new()).unwrap();
        assert_eq!(unset.describe(), "storage.googleapis.com:443");
        let error = Policy::new(Some("ftp://x:1"), Vec::new()).unwrap_err();
        assert!(
            error.to_string().contains("STORAGE_EMULATOR_HOST"),
            "{error}"
        );
    }

    /// A token provider that counts its calls and fails when told to.
    struct FakeProvider {
        calls: AtomicUsize,
        fail: bool,
    }

    #[async_trait::async_trait]
    impl TokenProvider for FakeProvider {
        async fn token(&self, scopes: &[&str]) -> Result<Arc<Token>, gcp_auth::Error> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            assert_eq!(scopes, [emwrite::storage::gcs::GCS_OAUTH_SCOPE]);
            if self.fail {
                return Err(gcp_auth::Error::Str("metadata server said no"));
            }
            let token = serde_json::json!({"access_token": "ya29.fake", "expires_in": 3600});
            Ok(Arc::new(serde_json::from_value(token).unwrap()))
        }

        async fn project_id(&self) -> Result<Arc<str>, gcp_auth::Error> {
            Ok(Arc::from("test"))
        }
    }

    fn hook(emulator: Option<&str>, allowed: &[&str], fail: bool) -> (Outgoing, Arc<FakeProvider>) {
        let provider = Arc::new(FakeProvider {
            calls: AtomicUsize::new(0),
            fail,
        });
        let credentials = Credentials::with_provider(provider.clone());
        (
            Outgoing::new(policy(emulator, allowed), credentials),
            provider,
        )
    }

    fn request(url: &str, authorization: Option<&str>) -> Request<WasiBody> {
        let mut builder = Request::get(url);
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder
            .body(
                Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    #[tokio::test]
    async fn the_token_is_added_for_gcs_and_replaces_the_guests() {
        let (hook, provider) = hook(Some("http://127.0.0.1:4443"), &["example.com"], false);
        let url = "https://storage.googleapis.com/storage/v1/b/lab/o/info?alt=media";
        for guest_header in [None, Some("Bearer guest-made")] {
            let sent = hook
                .shared
                .authorize(request(url, guest_header))
                .await
                .unwrap();
            let values: Vec<_> = sent.headers().get_all(AUTHORIZATION).iter().collect();
            assert_eq!(values, ["Bearer ya29.fake"]);
            assert!(values[0].is_sensitive());
        }
        assert_eq!(provider.calls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn the_emulator_and_allowed_hosts_get_no_token() {
        let (hook, provider) = hook(Some("http://127.0.0.1:4443"), &["example.com"], false);
        for url in [
            "http://127.0.0.1:4443/storage/v1/b/lab",
            "https://example.com/",
        ] {
            let sent = hook.shared.authorize(request(url, None)).await.unwrap();
            assert!(sent.headers().get(AUTHORIZATION).is_none(), "{url}");
        }
        // Local and emulator runs never look for credentials.
        assert_eq!(provider.calls.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_failed_token_request_is_an_internal_error() {
        let (hook, _) = hook(None, &[], true);
        let url = "https://storage.googleapis.com/storage/v1/b/lab";
        let error = hook.shared.authorize(request(url, None)).await.unwrap_err();
        let Error::InternalError(Some(message)) = error else {
            panic!("expected an internal error, got {error:?}");
        };
        assert!(message.contains("GCS token"), "{message}");
    }

    #[test]
    fn refusals_use_the_error_codes_the_guest_reads() {
        for refusal in [
            HostRefusal::Denied,
            HostRefusal::Misconfigured,
            HostRefusal::Unavailable,
        ] {
            let error = refusal_error(refusal, "why");
            let code = match &error {
                Error::HttpRequestDenied => "HTTP-request-denied",
                Error::ConfigurationError => "configuration-error",
                Error::InternalError(Some(why)) if why == "why" => "internal-error",
                other => panic!("{refusal:?} became {other:?}"),
            };
            assert_eq!(code, refusal.error_code());
        }
    }

    #[tokio::test]
    async fn a_refused_request_is_denied_without_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let (mut hook, provider) = hook(None, &[], false);
        let sent =
            Box::into_pin(hook.send_request(request(&url, None), None, Box::new(async { Ok(()) })));
        let Err(error) = sent.await else {
            panic!("a request to {url} was sent");
        };
        assert!(matches!(error, Error::HttpRequestDenied), "{error:?}");
        assert_eq!(provider.calls.load(Ordering::Relaxed), 0);
        // Had the hook connected, that connection would be queued before this one.
        let ours = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (_, first_peer) = listener.accept().await.unwrap();
        assert_eq!(
            first_peer,
            ours.local_addr().unwrap(),
            "the refused request reached the server"
        );
    }

    #[tokio::test]
    async fn an_allowed_request_reaches_its_host_as_the_guest_made_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0_u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let (mut hook, _) = hook(Some(&format!("http://{addr}")), &[], false);
        let url = format!("http://{addr}/storage/v1/b/lab/o/info?alt=media");
        let sent =
            Box::into_pin(hook.send_request(request(&url, None), None, Box::new(async { Ok(()) })));
        let (response, io) = sent.await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ok");
        Box::into_pin(io).await.unwrap();
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("get /storage/v1/b/lab/o/info?alt=media http/1.1"),
            "{head}"
        );
        assert!(!head.contains("authorization"), "{head}");
    }
}
