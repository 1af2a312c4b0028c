//! What `emwrite serve` lets one client or all of them take: body size, time to send headers and
//! body, open connections, requests computing at once.
//!
//! Everything here is decided before an instance exists, so a slow or greedy client costs a
//! socket and at most `--max-body` bytes, never an instance.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::{HeaderMap, Request};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::HostError;
use crate::runtime::cores;

/// The limits of `emwrite serve`, from its command line.
#[derive(Clone, Debug)]
pub struct ServeLimits {
    /// Largest request body in bytes (`--max-body`).
    pub max_body: u64,
    /// Time a client has to send a request's headers (`--header-timeout`).
    pub header_timeout: Duration,
    /// Longest pause while a request body arrives (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed at once (`--max-connections`).
    pub max_connections: usize,
    /// Requests handed to instances at once; more get 503 (`--max-in-flight`).
    pub max_in_flight: usize,
    /// Time in-flight requests get to finish after SIGTERM (`--shutdown-grace`).
    pub shutdown_grace: Duration,
}

/// What a refused client is told to wait before trying again, in seconds: an instance's request
/// takes about that long, so a slot is likely free by then.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The default `--max-in-flight`: two requests per core (a request waits on storage part of the
/// time), but no more than the memory holds at `--memory-limit` each; at least one.
pub fn default_max_in_flight(memory_limit_bytes: u64) -> usize {
    let cores = cores();
    let by_cores = 2 * cores;
    let by_memory = available_memory_bytes()
        .map(|total| usize::try_from(total / memory_limit_bytes.max(1)).unwrap_or(usize::MAX));
    by_memory.map_or(by_cores, |m| m.min(by_cores)).max(1)
}

/// The memory this process may use: the cgroup's limit when there is one (a container, Cloud
/// Run), else the machine's total. None where neither can be read (not Linux).
fn available_memory_bytes() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map(|kib| kib * 1024)
        });
    match (cgroup, total) {
        (Some(limit), Some(total)) => Some(limit.min(total)),
        (limit, total) => limit.or(total),
    }
}

/// The slots for requests computing at once (`--max-in-flight`).
#[derive(Clone, Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
}

impl Admission {
    /// Room for `max_in_flight` requests at once.
    pub fn new(max_in_flight: usize) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(max_in_flight)),
        }
    }

    /// A slot, held until the request's instance is done; None when all are taken: the caller
    /// answers 503 rather than queueing, so a burst cannot pile up instances and memory.
    pub fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Slots free now.
    pub fn free(&self) -> usize {
        self.slots.available_permits()
    }
}

/// The 413 a body over `max_body` gets: the core's own error, as the component words it.
pub fn too_large(context: &str, max_body: u64) -> HostError {
    HostError::Task {
        context: context.to_owned(),
        error: emwrite::Error::new(
            emwrite::ErrorKind::TooLarge,
            format!("body: larger than {max_body} bytes"),
        ),
    }
}

/// Whether the request announces a body over `max_body` (`Content-Length`).
pub fn announces_too_large(headers: &HeaderMap, max_body: u64) -> bool {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .is_some_and(|length| length > max_body)
}

/// Reads the whole body, stopping as soon as it passes `limits.max_body` (413) or pauses longer
/// than `limits.idle_timeout` (408): a chunked body has no length to check up front, and a
/// client that stops sending must not hold memory or a slot.
pub async fn read_body(
    context: &str,
    request: Request<Incoming>,
    limits: &ServeLimits,
) -> Result<Request<Bytes>, HostError> {
    let (parts, mut body) = request.into_parts();
    let mut collected = BytesMut::new();
    loop {
        let frame = tokio::time::timeout(limits.idle_timeout, body.frame())
            .await
            .map_err(|_elapsed| HostError::Refused {
                context: context.to_owned(),
                status: 408,
                kind: "timeout",
                message: format!(
                    "body: nothing arrived for {} (--idle-timeout)",
                    crate::units::show_duration(limits.idle_timeout)
                ),
            })?;
        let Some(frame) = frame else {
            break;
        };
        let frame = frame.map_err(|e| HostError::Task {
            context: context.to_owned(),
            error: emwrite::Error::bad_field("body", format!("cannot read request body: {e}")),
        })?;
        // Trailers carry nothing the API uses.
        if let Ok(data) = frame.into_data() {
            if collected.len() as u64 + data.len() as u64 > limits.max_body {
                return Err(too_large(context, limits.max_body));
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(Request::from_parts(parts, collected.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_default_is_at_least_one() {
        assert!(default_max_in_flight(u64::MAX) >= 1);
        assert!(default_max_in_flight(1) >= 2);
    }

    #[test]
    fn admission_refuses_past_its_slots() {
        let admission = Admission::new(1);
        let first = admission.try_admit().expect("one slot is free");
        assert!(admission.try_admit().is_none());
        drop(first);
        assert!(admission.try_admit().is_some());
    }

    #[test]
    fn content_length_over_the_limit_is_seen_up_front() {
        let mut headers = HeaderMap::new();
        assert!(!announces_too_large(&headers, 10));
        headers.insert(CONTENT_LENGTH, "11".parse().expect("a header value"));
        assert!(announces_too_large(&headers, 10));
        assert!(!announces_too_large(&headers, 11));
    }
}
