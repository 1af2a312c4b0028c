//! The core's one error type, grouped by who is at fault (as image-png groups its decoding errors).
//!
//! Each [`ErrorKind`] has one HTTP status and one kebab-case name, both defined here and used by
//! every edge: the component's HTTP handler, its WIT `task-error` (whose cases carry the same
//! names) and the native host, which answers with the same [`ErrorBody`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// Who caused a failure; each kind maps to exactly one HTTP status at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A request field is missing, mistyped or out of range (HTTP 400).
    BadRequest,
    /// An object the request refers to does not exist (HTTP 404).
    NotFound,
    /// An input object exists but cannot be decoded, e.g. a corrupt PNG (HTTP 422).
    UnreadableInput,
    /// The request asks for more than a limit allows (HTTP 413).
    TooLarge,
    /// The storage backend kept failing (HTTP 502).
    Storage,
    /// A bug in emwrite itself (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// Every kind, in the order of the WIT `task-error` cases.
    pub const ALL: [Self; 6] = [
        Self::BadRequest,
        Self::NotFound,
        Self::UnreadableInput,
        Self::TooLarge,
        Self::Storage,
        Self::Internal,
    ];

    /// The HTTP status of an answer that failed with this kind (docs/design.md §4: 4xx for the
    /// request's fault, 5xx for ours or storage's).
    ///
    /// ```
    /// assert_eq!(emwrite::ErrorKind::UnreadableInput.status(), 422);
    /// ```
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::NotFound => 404,
            Self::UnreadableInput => 422,
            Self::TooLarge => 413,
            Self::Storage => 502,
            Self::Internal => 500,
        }
    }

    /// The kind's kebab-case name: the WIT `task-error` case and the `error` of an [`ErrorBody`].
    ///
    /// ```
    /// assert_eq!(emwrite::ErrorKind::BadRequest.name(), "bad-request");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::NotFound => "not-found",
            Self::UnreadableInput => "unreadable-input",
            Self::TooLarge => "too-large",
            Self::Storage => "storage",
            Self::Internal => "internal",
        }
    }
}

/// An error with its kind and a lowercase message that names the field or object at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A bad request field: `field` names it, `problem` says what is wrong.
    ///
    /// ```
    /// let e = emwrite::Error::bad_field("bbox", "expected 2 numbers, got 3");
    /// assert_eq!(e.to_string(), "bbox: expected 2 numbers, got 3");
    /// ```
    pub fn bad_field(field: &str, problem: impl fmt::Display) -> Self {
        Self::new(ErrorKind::BadRequest, format!("{field}: {problem}"))
    }

    /// A referenced object that does not exist.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what}: not found"))
    }

    /// An input object that cannot be decoded.
    pub fn unreadable(what: impl fmt::Display, problem: impl fmt::Display) -> Self {
        Self::new(ErrorKind::UnreadableInput, format!("{what}: {problem}"))
    }

    /// A storage failure that retries did not cure.
    pub fn storage(what: impl fmt::Display, problem: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Storage, format!("{what}: {problem}"))
    }

    /// A broken invariant inside emwrite.
    pub fn internal(problem: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Internal, problem.to_string())
    }

    /// Who is at fault.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Wraps the message with where it happened: `"{context}: {message}"`, keeping the kind.
    #[must_use]
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The JSON body of an error answer, for clients that send `Accept: application/json`:
/// `{"error": "bad-request", "message": "maxz: missing"}`.
///
/// The component and the native host both answer with it; `error` is an [`ErrorKind::name`] or,
/// from the host, the name of a failure of its own (`memory-limit`, `trap`, …).
///
/// ```
/// let e = emwrite::Error::bad_field("maxz", "missing");
/// let body = emwrite::ErrorBody::from(&e).to_json();
/// assert_eq!(body, r#"{"error":"bad-request","message":"maxz: missing"}"#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Who is at fault, as a kebab-case name.
    pub error: String,
    /// What went wrong, naming the field or object.
    pub message: String,
}

impl ErrorBody {
    /// The body as JSON text.
    pub fn to_json(&self) -> String {
        // Serialising two strings into a String cannot fail.
        serde_json::to_string(self).expect("two strings always serialise")
    }
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        Self {
            error: e.kind().name().to_owned(),
            message: e.message().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_kind_and_prefixes_message() {
        let e = Error::not_found("raw/s0001.png in bucket lab").context("alignedslice");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "alignedslice: raw/s0001.png in bucket lab: not found"
        );
    }

    #[test]
    fn each_kind_has_its_own_status_and_name() {
        let statuses: Vec<u16> = ErrorKind::ALL.iter().map(|k| k.status()).collect();
        assert_eq!(statuses, [400, 404, 422, 413, 502, 500]);
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            [
                "bad-request",
                "not-found",
                "unreadable-input",
                "too-large",
                "storage",
                "internal"
            ]
        );
    }

    #[test]
    fn error_body_round_trips() {
        let body = ErrorBody::from(&Error::not_found("info in bucket lab"));
        let parsed: ErrorBody = serde_json::from_str(&body.to_json()).unwrap();
        assert_eq!(parsed, body);
        assert_eq!(parsed.error, "not-found");
    }
}
