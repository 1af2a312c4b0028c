//! The core's one error type, grouped by who is at fault (as image-png groups its decoding errors).
//!
//! The core knows nothing about HTTP: `component/http.rs` maps [`ErrorKind`] to a status code in
//! one place, and the WIT `task-error` mirrors these kinds case for case.

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
}
