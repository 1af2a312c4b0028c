//! Optional bearer-token auth of `emwrite serve` (`--auth-token-file`).
//!
//! The token is read once at start; requests must carry `Authorization: Bearer <token>`, compared
//! in constant time so response timing does not reveal how much of a guess was right. The token
//! never reaches the log: [`BearerToken`]'s `Debug` hides it.

use std::fmt;
use std::path::Path;

use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use crate::error::HostError;

/// The token every request but the health check must present.
pub struct BearerToken(Vec<u8>);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<hidden>)")
    }
}

impl BearerToken {
    /// Reads the token from `path`, trimmed of surrounding whitespace (a trailing newline).
    pub fn read(path: &Path) -> Result<Self, HostError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HostError::Config(format!("--auth-token-file {}: {e}", path.display())))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(HostError::Config(format!(
                "--auth-token-file {}: the file is empty",
                path.display()
            )));
        }
        Ok(BearerToken(token.as_bytes().to_vec()))
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter_map(|value| {
                let value = value.as_bytes();
                // The scheme is case-insensitive (RFC 9110 §11.1).
                let (scheme, rest) = value.split_at_checked(7)?;
                scheme
                    .eq_ignore_ascii_case(b"bearer ")
                    .then_some(rest.trim_ascii())
            })
            .any(|presented| bool::from(presented.ct_eq(&self.0)))
    }

    /// The 401 a request without the token gets.
    pub fn refusal(context: &str) -> HostError {
        HostError::Refused {
            context: context.to_owned(),
            status: 401,
            kind: "unauthorized",
            message: "authorization: expected a bearer token".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            authorization.parse().expect("a header value"),
        );
        headers
    }

    #[test]
    fn only_the_right_bearer_token_is_admitted() {
        let token = BearerToken(b"s3cret".to_vec());
        assert!(token.admits(&headers("Bearer s3cret")));
        assert!(token.admits(&headers("bearer s3cret")));
        assert!(!token.admits(&headers("Bearer s3cre")));
        assert!(!token.admits(&headers("Bearer s3cret2")));
        assert!(!token.admits(&headers("Basic s3cret")));
        assert!(!token.admits(&HeaderMap::new()));
        assert_eq!(format!("{token:?}"), "BearerToken(<hidden>)");
    }
}
