//! The remote executor: each task POSTed as the original API's JSON request to a deployed
//! emwrite (a Cloud Run service, a Spin app, SpinKube, another `emwrite serve`), `--concurrency`
//! requests in flight, their rate ramped up (`ramp.rs`), failed attempts retried with backoff
//! and `Retry-After` honoured (`retry.rs`).
//!
//! It asks for `Accept: application/json`, so emwrite answers with the task's report (objects,
//! bytes, the storage retries); a service that answers the original's bare `success` counts as
//! done with nothing reported. A private service gets `Authorization: Bearer` with `--token`, or
//! with the output of `--token-command` (e.g. `gcloud auth print-identity-token`), run once and
//! again when a 401 says the token expired.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use emwrite::ErrorBody;
use emwrite::storage::retry::RetryPolicy;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use tokio::task::JoinSet;

use super::ramp::Ramp;
use super::retry::{self, Next};
use super::tally::Tally;
use crate::embed::pooled_client::keep_alive_client;
use crate::error::HostError;
use crate::stack::progress::{Done, Progress};
use crate::stack::tasks::{Phase, StackTask};
use crate::units::show_duration;

/// Largest answer read: a task's report lists its objects, a few KiB.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// How the remote executor reaches the service.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The service's base URL, e.g. `https://emwrite-xyz.a.run.app`; routes are appended.
    pub endpoint: String,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// A fixed bearer token.
    pub token: Option<String>,
    /// A shell command that prints a bearer token.
    pub token_command: Option<String>,
    /// Attempts per task, the first included, and the backoff between them.
    pub policy: RetryPolicy,
    /// Requests per second at first (0: no ramp).
    pub ramp_start: f64,
    /// The rate doubles this often.
    pub ramp_double: Duration,
    /// Longest wait for one answer (Cloud Run's longest request is 60 minutes).
    pub request_timeout: Duration,
}

/// A deployed emwrite service.
#[derive(Clone)]
pub struct Remote {
    inner: Arc<Inner>,
}

struct Inner {
    base: String,
    options: RemoteOptions,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    ramp: Ramp,
    token: Token,
}

/// The task report's fields the driver counts; the rest of emwrite's report
/// (`emwrite::tasks::ReportBody`, which only serialises) is for people.
#[derive(Debug, Deserialize)]
struct Report {
    #[serde(default)]
    objects: Vec<String>,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    retries: u32,
}

/// How one attempt ended, short of success.
#[derive(Debug)]
enum Failure {
    /// The service answered with a non-2xx status.
    Status {
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    /// No answer: the connection failed, broke, or timed out.
    Transport(String),
}

impl Remote {
    /// A client of the service at `options.endpoint`; checks the URL. Needs a tokio runtime.
    pub fn new(options: RemoteOptions) -> Result<Self, HostError> {
        let base = options.endpoint.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|e| HostError::Config(format!("--endpoint {base}: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(HostError::Config(format!(
                "--endpoint {base}: expected an http:// or https:// URL"
            )));
        }
        let client = keep_alive_client(Duration::from_secs(60));
        let ramp = Ramp::new(options.ramp_start, options.ramp_double);
        let token = Token::new(options.token.clone(), options.token_command.clone());
        Ok(Remote {
            inner: Arc::new(Inner {
                base,
                options,
                client,
                ramp,
                token,
            }),
        })
    }

    /// The service's base URL.
    pub fn endpoint(&self) -> &str {
        &self.inner.base
    }

    /// Runs `tasks` with `--concurrency` requests in flight.
    pub async fn run_phase(
        &self,
        phase: Phase,
        tasks: Vec<StackTask>,
        progress: &Arc<Progress>,
    ) -> Result<(), HostError> {
        let mut tally = Tally::new(phase, tasks.len());
        let mut pending = tasks.into_iter();
        let mut running = JoinSet::new();
        loop {
            while tally.may_start() && running.len() < self.inner.options.concurrency {
                let Some(task) = pending.next() else {
                    break;
                };
                let (inner, progress) = (Arc::clone(&self.inner), Arc::clone(progress));
                running.spawn(async move { inner.run_task(&task, &progress).await });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let outcome = joined.unwrap_or_else(|join| {
                Err(HostError::Engine {
                    context: phase.name().to_owned(),
                    message: format!("host task failed: {join}"),
                })
            });
            tally.record(outcome, progress);
        }
        tally.result()
    }
}

impl Inner {
    /// Sends `task` until it succeeds, fails for good, or runs out of attempts.
    async fn run_task(&self, task: &StackTask, progress: &Progress) -> Result<Done, HostError> {
        let policy = &self.options.policy;
        let url = format!("{}{}", self.base, task.request.endpoint().route());
        let mut retry = 0_u32;
        let mut refreshed = false;
        loop {
            self.ramp.acquire().await;
            let token = self.token.current().await?;
            let attempt = tokio::time::timeout(
                self.options.request_timeout,
                self.attempt(&url, task, token.as_deref()),
            )
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Transport(format!(
                    "no answer within {} (--request-timeout)",
                    show_duration(self.options.request_timeout)
                )))
            });
            let (why, wait) = match attempt {
                Ok(done) => return Ok(done),
                Err(Failure::Transport(why)) => (why, retry::after_transport_error(policy, retry)),
                Err(Failure::Status {
                    status,
                    retry_after,
                    message,
                }) => match retry::after_status(policy, retry, status, retry_after) {
                    Next::RefreshToken if !refreshed && self.token.can_refresh() => {
                        tracing::info!("{}: 401, getting a new token", task.id);
                        self.token.refresh(token.as_deref()).await?;
                        refreshed = true;
                        progress.retried();
                        continue;
                    }
                    Next::Retry { wait, throttled } => {
                        if throttled {
                            let rate = self.ramp.throttled();
                            tracing::info!("the service is throttling: {rate:.1} requests/s now");
                        }
                        (format!("HTTP {status}: {message}"), wait)
                    }
                    Next::RefreshToken | Next::Fail => {
                        return Err(HostError::Status {
                            context: format!("{} ({url})", task.id),
                            status,
                            message,
                        });
                    }
                },
            };
            retry += 1;
            if retry >= policy.max_attempts {
                return Err(HostError::Config(format!(
                    "{} ({url}): {why}; gave up after {retry} attempts",
                    task.id
                )));
            }
            tracing::warn!(
                "{} ({url}): {why}; attempt {} in {}",
                task.id,
                retry + 1,
                show_duration(wait)
            );
            progress.retried();
            tokio::time::sleep(wait).await;
        }
    }

    /// One POST of the task's request.
    async fn attempt(
        &self,
        url: &str,
        task: &StackTask,
        token: Option<&str>,
    ) -> Result<Done, Failure> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("emwrite/", env!("CARGO_PKG_VERSION")));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(task.request.to_json())))
            .map_err(|e| Failure::Transport(format!("cannot build the request: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Failure::Transport(describe(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| Failure::Transport(format!("the answer broke off: {e}")))?
            .to_bytes();
        if status.is_success() {
            // A host that answers the original's bare `success` reports nothing more.
            let report = serde_json::from_slice::<Report>(&body).unwrap_or(Report {
                objects: Vec::new(),
                bytes: 0,
                retries: 0,
            });
            return Ok(Done {
                objects: report.objects.len(),
                bytes: report.bytes,
                storage_retries: report.retries,
            });
        }
        let message = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(error) => error.message,
            Err(_) => String::from_utf8_lossy(&body).trim().to_owned(),
        };
        Err(Failure::Status {
            status: status.as_u16(),
            retry_after,
            message,
        })
    }
}

/// hyper-util's error with its causes: `client error (Connect): tcp connect error: Connection
/// refused (os error 111)`.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The bearer token: fixed, or printed by a command, cached until the service refuses it.
struct Token {
    fixed: Option<String>,
    command: Option<String>,
    cached: tokio::sync::Mutex<Option<String>>,
}

impl Token {
    fn new(fixed: Option<String>, command: Option<String>) -> Self {
        Token {
            fixed,
            command,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether a refused token can be replaced.
    fn can_refresh(&self) -> bool {
        self.command.is_some()
    }

    /// The token to send, if any; the command runs on first use.
    async fn current(&self) -> Result<Option<String>, HostError> {
        if let Some(fixed) = &self.fixed {
            return Ok(Some(fixed.clone()));
        }
        let Some(command) = &self.command else {
            return Ok(None);
        };
        let mut cached = self.cached.lock().await;
        if cached.is_none() {
            *cached = Some(run_token_command(command).await?);
        }
        Ok(cached.clone())
    }

    /// The service refused `stale`: run the command again, unless another task already did.
    async fn refresh(&self, stale: Option<&str>) -> Result<(), HostError> {
        let Some(command) = &self.command else {
            return Ok(());
        };
        let mut cached = self.cached.lock().await;
        if cached.as_deref() == stale {
            *cached = Some(run_token_command(command).await?);
        }
        Ok(())
    }
}

/// Runs `command` in `sh -c` and takes its output, trimmed, as the token.
async fn run_token_command(command: &str) -> Result<String, HostError> {
    let owned = command.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&owned)
            .stdin(std::process::Stdio::null())
            .output()
    })
    .await
    .map_err(|e| HostError::Config(format!("--token-command: {e}")))?
    .map_err(|e| HostError::Config(format!("--token-command {command:?}: {e}")))?;
    if !output.status.success() {
        return Err(HostError::Config(format!(
            "--token-command {command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if token.is_empty() {
        return Err(HostError::Config(format!(
            "--token-command {command:?} printed no token"
        )));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_token_command_runs_once_and_again_when_refused() {
        let dir = std::env::temp_dir().join(format!("emwrite-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let counter = dir.join("count");
        // Prints token-1, token-2, … one more each run.
        let command = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo token-$n",
            counter.display()
        );
        let token = Token::new(None, Some(command));
        assert_eq!(token.current().await.expect("runs"), Some("token-1".into()));
        assert_eq!(
            token.current().await.expect("cached"),
            Some("token-1".into())
        );
        token.refresh(Some("token-1")).await.expect("runs again");
        assert_eq!(token.current().await.expect("new"), Some("token-2".into()));
        // A task that still held token-1 finds it already replaced.
        token.refresh(Some("token-1")).await.expect("no run");
        assert_eq!(token.current().await.expect("same"), Some("token-2".into()));
        std::fs::remove_dir_all(&dir).expect("clean up");

        let failing = Token::new(None, Some("echo nope >&2; exit 3".into()));
        let error = failing.current().await.expect_err("fails");
        assert!(error.to_string().contains("nope"), "{error}");
        let fixed = Token::new(Some("abc".into()), None);
        assert_eq!(fixed.current().await.expect("fixed"), Some("abc".into()));
        assert!(!fixed.can_refresh());
    }
}
