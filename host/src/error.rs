//! `HostError`: why a command, request or task failed, and the HTTP status of each failure.
//!
//! Kinds follow who is at fault (docs/design.md §9): the user's setup (`Config`),
//! wasmtime (`Engine`), the component's own bug (`Trap`), a limit the host enforces, or the task
//! itself, whose WIT `task-error` case says whose fault it was: that case becomes the core's
//! `ErrorKind` (`embed/wit.rs`), and the core says its status and name.

use std::fmt;
use std::time::Duration;

use emwrite::ErrorBody;

use crate::units::{show_bytes, show_duration};

/// A failure of the host or of one request or task it ran.
///
/// Displays as `<context>: <detail>`; [`HostError::detail`] alone is what an HTTP client gets,
/// since it knows which request it sent.
#[derive(Debug)]
pub enum HostError {
    /// The command line, a file it names or the host's environment is wrong.
    Config(String),
    /// Wasmtime could not compile, link or instantiate the component.
    Engine {
        /// What the host was doing.
        context: String,
        /// Wasmtime's error with its causes.
        message: String,
    },
    /// The guest trapped: a bug in the component, whatever the request was.
    Trap {
        /// The request or task.
        context: String,
        /// The trap, as wasmtime names it.
        trap: String,
        /// What the guest wrote last, normally its panic message.
        last_words: Option<String>,
        /// Wasmtime's report with the wasm backtrace, for logs rather than clients.
        backtrace: String,
    },
    /// The instance tried to grow its memory past `--memory-limit`.
    MemoryLimit {
        /// The request or task.
        context: String,
        /// The configured cap.
        limit_bytes: u64,
        /// The memory size the guest asked for.
        requested_bytes: u64,
    },
    /// The request or task ran longer than `--time-limit`.
    TimeLimit {
        /// The request or task.
        context: String,
        /// The configured limit.
        limit: Duration,
    },
    /// The component reported a typed `task-error`, or the request could not reach it.
    Task {
        /// The request or task (slice, block, endpoint).
        context: String,
        /// Its kind and message.
        error: emwrite::Error,
    },
    /// Tasks of a pipeline phase failed (each was reported as it failed); later phases did
    /// not run.
    Phase {
        /// `align`, `info` or `shard`.
        phase: &'static str,
        /// Tasks that failed.
        failed: usize,
        /// Tasks that succeeded.
        done: usize,
        /// Tasks in the phase.
        total: usize,
    },
    /// The host refused a request before an instance saw it: a client that is too slow (408),
    /// unauthorised (401), or arrives while the server is full or stopping (503).
    Refused {
        /// The request.
        context: String,
        /// The HTTP status.
        status: u16,
        /// A short kebab-case name, for the JSON body's `error`.
        kind: &'static str,
        /// What the client should know, naming what is at fault.
        message: String,
    },
    /// `verify` found blocks that must be redone (each problem was printed as found).
    Incomplete {
        /// The volume's location.
        location: String,
        /// Blocks with a problem.
        blocks: usize,
        /// Problems found, at most a few per block.
        problems: usize,
    },
    /// The component answered an HTTP request with a non-2xx status.
    Status {
        /// The request.
        context: String,
        /// The status the component chose.
        status: u16,
        /// The response body.
        message: String,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.context() {
            Some(context) => write!(f, "{context}: {}", self.detail()),
            None => f.write_str(&self.detail()),
        }
    }
}

impl std::error::Error for HostError {}

impl HostError {
    /// The request or task the failure belongs to, if any.
    pub fn context(&self) -> Option<&str> {
        match self {
            HostError::Config(_) => None,
            HostError::Phase { phase, .. } => Some(phase),
            HostError::Incomplete { location, .. } => Some(location),
            HostError::Engine { context, .. }
            | HostError::Trap { context, .. }
            | HostError::MemoryLimit { context, .. }
            | HostError::TimeLimit { context, .. }
            | HostError::Task { context, .. }
            | HostError::Refused { context, .. }
            | HostError::Status { context, .. } => Some(context),
        }
    }

    /// What went wrong, without the context.
    pub fn detail(&self) -> String {
        match self {
            HostError::Config(message)
            | HostError::Engine { message, .. }
            | HostError::Refused { message, .. } => message.clone(),
            HostError::Trap {
                trap, last_words, ..
            } => match last_words {
                Some(words) => format!("component trapped: {trap} (guest: {words})"),
                None => format!("component trapped: {trap}"),
            },
            HostError::MemoryLimit {
                limit_bytes,
                requested_bytes,
                ..
            } => format!(
                "memory limit exceeded: the component asked for {} but the limit is {} \
                 (--memory-limit)",
                show_bytes(*requested_bytes),
                show_bytes(*limit_bytes)
            ),
            HostError::TimeLimit { limit, .. } => {
                format!(
                    "time limit of {} exceeded (--time-limit)",
                    show_duration(*limit)
                )
            }
            // `bad request: transform: expected 6 numbers, got 5`.
            HostError::Task { error, .. } => {
                format!("{}: {error}", error.kind().name().replace('-', " "))
            }
            HostError::Phase {
                failed,
                done,
                total,
                ..
            } => format!(
                "{failed} of {total} tasks failed ({done} done, {} not started); the pipeline \
                 stopped",
                total - failed - done
            ),
            HostError::Status {
                status, message, ..
            } => format!("HTTP {status}: {message}"),
            HostError::Incomplete {
                blocks, problems, ..
            } => format!(
                "incomplete: {problems} problems in {blocks} blocks, listed above with the block \
                 to redo (rerun the pipeline to redo them)"
            ),
        }
    }

    /// The HTTP status of this failure; the host's one place that decides it (the component
    /// decides for its own responses).
    pub fn status(&self) -> u16 {
        match self {
            HostError::Task { error, .. } => error.kind().status(),
            HostError::MemoryLimit { .. } => 413,
            HostError::TimeLimit { .. } => 504,
            HostError::Status { status, .. } | HostError::Refused { status, .. } => *status,
            HostError::Config(_)
            | HostError::Engine { .. }
            | HostError::Trap { .. }
            | HostError::Phase { .. }
            | HostError::Incomplete { .. } => 500,
        }
    }

    /// A short kebab-case name of the kind, for JSON error bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            HostError::Config(_) => "config",
            HostError::Engine { .. } => "engine",
            HostError::Trap { .. } => "trap",
            HostError::MemoryLimit { .. } => "memory-limit",
            HostError::TimeLimit { .. } => "time-limit",
            HostError::Task { error, .. } => error.kind().name(),
            HostError::Phase { .. } => "phase",
            HostError::Incomplete { .. } => "incomplete",
            HostError::Status { .. } => "status",
            HostError::Refused { kind, .. } => kind,
        }
    }

    /// The JSON body of an error answer (`Accept: application/json`), as the component's.
    pub fn body(&self) -> ErrorBody {
        // The core's error keeps the core's own body, word for word as the component sends it.
        if let HostError::Task { error, .. } = self {
            return ErrorBody::from(error);
        }
        ErrorBody {
            error: self.kind().to_owned(),
            message: self.detail(),
        }
    }

    /// Wasmtime's full report of a trap, with the wasm backtrace, for the log.
    pub fn backtrace(&self) -> Option<&str> {
        match self {
            HostError::Trap { backtrace, .. } => Some(backtrace),
            _ => None,
        }
    }

    /// A wasmtime failure while `context`.
    pub fn engine(context: impl Into<String>, error: &wasmtime::Error) -> Self {
        HostError::Engine {
            context: context.into(),
            message: format!("{error:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limit_is_413_and_names_both_sizes() {
        let host = HostError::MemoryLimit {
            context: "POST /ngshard".into(),
            limit_bytes: 2 << 30,
            requested_bytes: (2 << 30) + (512 << 20),
        };
        assert_eq!(host.status(), 413);
        assert_eq!(
            host.to_string(),
            "POST /ngshard: memory limit exceeded: the component asked for 2.5 GiB but the limit \
             is 2.0 GiB (--memory-limit)"
        );
        let body = host.body();
        assert_eq!((body.error.as_str(), host.status()), ("memory-limit", 413));
    }

    #[test]
    fn a_core_error_keeps_the_core_body_and_a_refusal_its_own_kind() {
        let core = emwrite::Error::new(emwrite::ErrorKind::TooLarge, "body: larger than 10 bytes");
        let host = HostError::Task {
            context: "#1 POST /ngmeta".into(),
            error: core.clone(),
        };
        assert_eq!(host.status(), 413);
        assert_eq!(host.body(), ErrorBody::from(&core));
        let refused = HostError::Refused {
            context: "#2 POST /ngmeta".into(),
            status: 503,
            kind: "unavailable",
            message: "server busy".into(),
        };
        let body = refused.body();
        assert_eq!(
            (body.error.as_str(), body.message.as_str()),
            ("unavailable", "server busy")
        );
        assert_eq!(refused.status(), 503);
    }
}
