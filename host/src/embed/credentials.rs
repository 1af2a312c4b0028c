//! GCS credentials, kept in the host: Application Default Credentials, looked up on the first
//! request that needs a token and then cached, tokens refreshed before they expire.
//!
//! The lookup is gcp_auth's, which follows Google's order
//! (<https://cloud.google.com/docs/authentication/application-default-credentials>): the
//! service-account key named by `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's application-default
//! credentials file, the metadata server (Cloud Run, GCE), then the gcloud CLI's user. Nothing is
//! looked up before a request for GCS itself, so local-disk and emulator runs need no credentials.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use emwrite::storage::gcs::GCS_OAUTH_SCOPE;
use gcp_auth::TokenProvider;
use hyper::header::HeaderValue;
use tokio::sync::OnceCell;

use crate::units::show_duration;

/// Longest wait for the lookup plus a token, so that an unanswering metadata server or token
/// endpoint fails the request instead of hanging it.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Application Default Credentials, found on first use and shared by every request.
pub struct Credentials {
    provider: OnceCell<Arc<dyn TokenProvider>>,
    /// The last failure written to the log: a retrying guest should not repeat it there.
    last_failure: Mutex<Option<String>>,
}

/// Why there is no token; already in the host's log when returned, and free of secrets.
#[derive(Debug, thiserror::Error)]
#[error("GCS credentials: {reason}")]
pub struct CredentialsError {
    reason: String,
    /// No credentials were found at all, as opposed to a token request that failed.
    none_found: bool,
}

impl CredentialsError {
    /// Whether no credentials were found: a setup problem that retrying will not fix, unlike
    /// a token endpoint that failed or did not answer.
    pub fn none_found(&self) -> bool {
        self.none_found
    }
}

impl Credentials {
    /// Credentials to be looked up when a GCS request first needs a token.
    pub fn new() -> Self {
        Credentials {
            provider: OnceCell::new(),
            last_failure: Mutex::new(None),
        }
    }

    /// Credentials from `provider` instead of the lookup.
    #[cfg(test)]
    pub fn with_provider(provider: Arc<dyn TokenProvider>) -> Self {
        Credentials {
            provider: OnceCell::new_with(Some(provider)),
            last_failure: Mutex::new(None),
        }
    }

    /// The `Authorization` value for a GCS request: `Bearer <token>`, marked sensitive so that
    /// no debug output shows it. A failure is logged (once while it stays the same) and returned.
    pub async fn authorization(&self) -> Result<HeaderValue, CredentialsError> {
        let token = tokio::time::timeout(TOKEN_TIMEOUT, self.token())
            .await
            .unwrap_or_else(|_| {
                Err(CredentialsError {
                    reason: format!(
                        "no token after {}: the metadata server or token endpoint does not \
                         answer",
                        show_duration(TOKEN_TIMEOUT)
                    ),
                    none_found: false,
                })
            });
        let value = token.and_then(|token| {
            // A token is base64url and dots; should one ever not fit in a header, say so
            // without printing it.
            HeaderValue::try_from(format!("Bearer {}", token.as_str())).map_err(|_| {
                CredentialsError {
                    reason: "the token is not a valid HTTP header value".to_owned(),
                    none_found: false,
                }
            })
        });
        match value {
            Ok(mut value) => {
                value.set_sensitive(true);
                Ok(value)
            }
            Err(error) => {
                self.log_failure(&error);
                Err(error)
            }
        }
    }

    async fn token(&self) -> Result<Arc<gcp_auth::Token>, CredentialsError> {
        // A failed lookup is not cached: the next request tries again (the key file may have
        // appeared, or the metadata server may answer now).
        let provider = self
            .provider
            .get_or_try_init(|| async {
                gcp_auth::provider().await.map_err(|e| CredentialsError {
                    reason: describe_lookup(&e),
                    none_found: true,
                })
            })
            .await?;
        provider
            .token(&[GCS_OAUTH_SCOPE])
            .await
            .map_err(|e| CredentialsError {
                reason: format!("getting a token: {}", describe(&e)),
                none_found: false,
            })
    }

    fn log_failure(&self, error: &CredentialsError) {
        let message = error.to_string();
        let mut last = self
            .last_failure
            .lock()
            // Holds only a copy of a message; a poisoned one is as good as any.
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_deref() != Some(message.as_str()) {
            tracing::error!("{message}; requests to GCS fail until this is fixed");
            *last = Some(message);
        }
    }
}

/// Why the lookup found nothing, naming each place it looked.
fn describe_lookup(error: &gcp_auth::Error) -> String {
    match error {
        gcp_auth::Error::NoAuthMethod(gcloud, metadata, user_file) => format!(
            "no Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS is not set; \
             gcloud application-default credentials: {}; metadata server: {}; gcloud CLI: {}",
            describe(user_file),
            describe(metadata),
            describe(gcloud)
        ),
        // Only a failing key file ends the lookup early.
        other => match std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
            Some(path) => format!(
                "GOOGLE_APPLICATION_CREDENTIALS={}: {}",
                path.to_string_lossy(),
                describe(other)
            ),
            None => describe(other),
        },
    }
}

/// An error and its causes, each once: gcp_auth often prints its cause in its own message.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_named_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = gcp_auth::Error::Io("failed to read key.json", io);
        assert_eq!(describe(&error), "failed to read key.json: no such file");

        let no_method = gcp_auth::Error::NoAuthMethod(
            Box::new(gcp_auth::Error::Str("gcloud not found")),
            Box::new(gcp_auth::Error::Str("metadata server unreachable")),
            Box::new(gcp_auth::Error::Str("no credentials file")),
        );
        let text = describe_lookup(&no_method);
        for part in [
            "GOOGLE_APPLICATION_CREDENTIALS is not set",
            "application-default credentials: no credentials file",
            "metadata server: metadata server unreachable",
            "gcloud CLI: gcloud not found",
        ] {
            assert!(text.contains(part), "{part:?} not in {text:?}");
        }
    }
}
