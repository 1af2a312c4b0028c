//! The policy for the component's outgoing HTTP requests: which hosts it may reach, and the GCS
//! token, added by the host to requests for Google Cloud Storage and to nothing else.
//!
//! It runs as wasmtime-wasi-http's `WasiHttpHooks::send_request` hook (`docs/design.md` §2, §6),
//! so the component holds no credentials and cannot reach hosts nobody allowed. Allowed are
//! `storage.googleapis.com:443`, the emulator named by `STORAGE_EMULATOR_HOST` (Google's
//! client-library convention; it gets no token), and each `--allow-host HOST[:PORT]`.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::BodyExt;
use hyper::header::AUTHORIZATION;
use hyper::{Request, Response, Uri};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks, default_send_request};

use crate::credentials::Credentials;
use crate::error::HostError;

/// The GCS JSON API's host: the only one that gets a token, and only over https on port 443.
pub const GCS_HOST: &str = "storage.googleapis.com";

/// The GCS port: a token never goes anywhere but to `https://storage.googleapis.com:443`.
const GCS_PORT: u16 = 443;

/// A host name or IP address with an optional port, as `--allow-host` takes it.
///
/// Without a port, every port of the host is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Lowercase; an IPv6 address keeps its brackets, as [`Uri::host`] returns it.
    host: String,
    port: Option<u16>,
}

impl HostPort {
    fn matches(&self, host: &str, port: u16) -> bool {
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|own| own == port)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let invalid = |why: &str| format!("{text:?}: {why} (expected HOST or HOST:PORT)");
        if text.contains("://") {
            return Err(invalid("a URL, not a host"));
        }
        if text.is_empty()
            || text
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#'))
        {
            return Err(invalid("not a host name"));
        }
        // `[::1]:8080`: the brackets keep an IPv6 address's colons apart from the port's.
        let (host, port) = if text.starts_with('[') {
            let close = text.find(']').ok_or_else(|| invalid("unclosed '['"))?;
            let (host, rest) = text.split_at(close + 1);
            match rest {
                "" => (host, None),
                _ => match rest.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(invalid("text after ']'")),
                },
            }
        } else {
            match text.split_once(':') {
                Some((_, port)) if port.contains(':') => {
                    return Err(invalid("an IPv6 address needs brackets, e.g. [::1]:8080"));
                }
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(invalid("no host"));
        }
        let port = port
            .map(|port| {
                port.parse::<u16>()
                    .ok()
                    .filter(|&port| port != 0)
                    .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))
            })
            .transpose()?;
        Ok(HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
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
    /// `STORAGE_EMULATOR_HOST` with its port made explicit.
    emulator: Option<HostPort>,
    allowed: Vec<HostPort>,
}

impl Policy {
    /// A policy allowing GCS, the emulator at `emulator` (the value of `STORAGE_EMULATOR_HOST`:
    /// `host:port` or `http[s]://host:port`; empty means none, as in the guest) and the
    /// `allowed` hosts.
    pub fn new(emulator: Option<&str>, allowed: Vec<HostPort>) -> Result<Self, HostError> {
        let emulator = emulator
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(|value| {
                parse_emulator(value)
                    .map_err(|why| HostError::Config(format!("STORAGE_EMULATOR_HOST: {why}")))
            })
            .transpose()?;
        Ok(Policy { emulator, allowed })
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
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        // The emulator comes first: whatever it is called, it never gets a token.
        if self
            .emulator
            .as_ref()
            .is_some_and(|emulator| emulator.matches(host, port))
        {
            Verdict::Plain
        } else if https && port == GCS_PORT && host.eq_ignore_ascii_case(GCS_HOST) {
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
        let mut hosts = vec![format!("{GCS_HOST}:{GCS_PORT}")];
        hosts.extend(
            self.emulator
                .iter()
                .map(|emulator| format!("{emulator} (STORAGE_EMULATOR_HOST)")),
        );
        hosts.extend(self.allowed.iter().map(ToString::to_string));
        hosts.join(", ")
    }
}

/// Parses `STORAGE_EMULATOR_HOST`: `host:port`, or a URL `http[s]://host[:port][/]` whose
/// port defaults to the scheme's (a bare `host:port` is plain http, as in Google's clients).
fn parse_emulator(value: &str) -> Result<HostPort, String> {
    let value = value.trim();
    let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(value, "https://") {
        (true, rest)
    } else if let Some(rest) = strip_prefix_ignore_case(value, "http://") {
        (false, rest)
    } else if value.contains("://") {
        return Err(format!(
            "{value:?}: only http:// and https:// are supported"
        ));
    } else {
        (false, value)
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut host: HostPort = authority.parse()?;
    host.port.get_or_insert(if https { 443 } else { 80 });
    Ok(host)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The `send_request` hook: applies the [`Policy`], adds the token for GCS and sends with
/// wasmtime-wasi-http's default client. One is shared by every store; cheap to clone.
#[derive(Clone)]
pub struct Outgoing {
    shared: Arc<Shared>,
}

struct Shared {
    policy: Policy,
    credentials: Credentials,
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
                refused: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The allowed hosts, for the startup line of `serve`.
    pub fn describe(&self) -> String {
        self.shared.policy.describe()
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
                return Err(Error::HttpRequestDenied);
            }
            Verdict::Gcs => match self.credentials.authorization().await {
                // `insert` replaces any `Authorization` the guest set: GCS sees only ours.
                Ok(value) => {
                    request.headers_mut().insert(AUTHORIZATION, value);
                }
                // The reason is in the host's log (`Credentials` wrote it); the guest learns
                // only whether trying again may help. Missing credentials are a setup problem:
                // `configuration-error`, which the component does not retry. A token request
                // that failed is `internal-error`, which it retries.
                Err(error) if error.none_found() => return Err(Error::ConfigurationError),
                Err(_) => {
                    return Err(Error::InternalError(Some(
                        "the host could not get a GCS token; its log says why".to_owned(),
                    )));
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
            eprintln!(
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
        let shared = self.shared.clone();
        Box::new(async move {
            let request = shared.authorize(request).await?;
            let (response, io) = default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
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
        let parsed = |text: &str| text.parse::<HostPort>().map(|h| h.to_string());
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
            assert_eq!(scopes, [crate::credentials::GCS_SCOPE]);
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
