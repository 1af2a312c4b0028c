//! Which storage failures are worth another attempt, and how long to wait before it.
//!
//! docs/design.md §6: retry 408, 429, 5xx, timeouts and resets with truncated exponential backoff and
//! jitter, 1 s doubling to 32 s — Google's advice for GCS
//! (<https://cloud.google.com/storage/docs/retry-strategy>). The jitter is "full": each wait is
//! drawn uniformly from zero to the bound, so thousands of tasks throttled by the same bucket at
//! the same moment spread out instead of returning together.
//!
//! One exception: a request's first failure to get an answer at all (a reset, a closed
//! connection) is sent again at once. With pooled connections the usual cause is a connection
//! the server closed just as the request went out on it; waiting up to a second before a fresh
//! connection only stalls the task. A second such failure backs off as usual.

use crate::guest_env::RETRY_BASE_DELAY_ENV;
use crate::{Error, Result};
use std::time::Duration;

/// The first retry waits up to this long.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_secs(1);

/// Attempts per request, the first included: with a 1 s base the waits add up to at most
/// 1 + 2 + 4 + 8 + 16 + 4 × 32 = 159 s, under any sensible task time limit.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// The bound stops doubling after this many retries: 1 s → 32 s.
const DOUBLINGS: u32 = 5;

/// Largest base delay [`RETRY_BASE_DELAY_ENV`] may set; above it a task would wait for hours.
const MAX_BASE_DELAY_MS: u64 = 60_000;

/// How many times to try a request and how long to wait between tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The bound of the first wait; each later bound doubles, up to 32 × this.
    pub base_delay: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: DEFAULT_BASE_DELAY,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }
}

impl RetryPolicy {
    /// The default policy with the base delay from [`RETRY_BASE_DELAY_ENV`]'s value, if set.
    ///
    /// ```
    /// use emwrite::storage::retry::RetryPolicy;
    /// use std::time::Duration;
    /// let p = RetryPolicy::with_base_delay_ms(Some("10")).unwrap();
    /// assert_eq!(p.base_delay, Duration::from_millis(10));
    /// assert!(RetryPolicy::with_base_delay_ms(Some("fast")).is_err());
    /// ```
    pub fn with_base_delay_ms(value: Option<&str>) -> Result<Self> {
        let Some(text) = value else {
            return Ok(Self::default());
        };
        match text.trim().parse::<u64>() {
            Ok(ms) if ms <= MAX_BASE_DELAY_MS => Ok(Self {
                base_delay: Duration::from_millis(ms),
                ..Self::default()
            }),
            _ => Err(Error::internal(format!(
                "{RETRY_BASE_DELAY_ENV}: expected a whole number of milliseconds up to \
                 {MAX_BASE_DELAY_MS}, got {text:?}"
            ))),
        }
    }

    /// The longest any single wait can be: the base delay doubled [`DOUBLINGS`] times.
    pub fn max_delay(&self) -> Duration {
        self.base_delay.saturating_mul(1 << DOUBLINGS)
    }

    /// The bound of the wait before retry number `retry` (0 for the first retry).
    pub fn delay_bound(&self, retry: u32) -> Duration {
        self.base_delay
            .saturating_mul(1 << retry.min(DOUBLINGS))
            .min(self.max_delay())
    }

    /// The wait before retry `retry`, for `unit`, a random number in [0, 1): full jitter.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        self.delay_bound(retry).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// The waits between one request's attempts: [`RetryPolicy`]'s backoff, except that the first
/// failure without an answer is retried at once (see the module's documentation).
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    backed_off: u32,
    resent_at_once: bool,
}

/// How an attempt failed, as far as the wait before the next one goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An answer worth repeating the request for (408, 429, 5xx): the server asks for time.
    Status,
    /// No answer: the connection failed, reset or timed out.
    Transport,
}

impl Backoff {
    /// The waits for a new request.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            backed_off: 0,
            resent_at_once: false,
        }
    }

    /// The wait before the next attempt after a `failure`, for `unit`, a random number in [0, 1).
    ///
    /// ```
    /// use emwrite::storage::retry::{Backoff, Failure, RetryPolicy};
    /// use std::time::Duration;
    /// let mut waits = Backoff::new(RetryPolicy::default());
    /// assert_eq!(waits.next(Failure::Transport, 0.5), Duration::ZERO);
    /// assert_eq!(waits.next(Failure::Transport, 0.5), Duration::from_millis(500));
    /// assert_eq!(waits.next(Failure::Status, 0.5), Duration::from_secs(1));
    /// ```
    pub fn next(&mut self, failure: Failure, unit: f64) -> Duration {
        if failure == Failure::Transport && !self.resent_at_once {
            self.resent_at_once = true;
            return Duration::ZERO;
        }
        let delay = self.policy.delay(self.backed_off, unit);
        self.backed_off += 1;
        delay
    }
}

/// Whether a response with `status` may succeed when sent again: 408 (request timeout),
/// 429 (rate limit) and every 5xx. Other statuses say something about the request itself.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// A random number in [0, 1) for jitter.
///
/// Jitter needs spread, not cryptographic quality, so this takes std's randomly keyed hasher
/// (seeded from `wasi:random` in the component) rather than adding a dependency for it.
pub fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    // Each `RandomState::new` on a thread steps its keys, so successive calls differ.
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    // The top 53 bits fill an f64 mantissa exactly: the result is below 1.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Why a host's outgoing-request hook did not send a storage request, and whether the guest
/// should try again: the protocol between the native host and the component.
///
/// wasi:http has no "try again later" of its own, so the host answers with one of its
/// `error-code` cases and the component (`component/wasi_http.rs`) classifies it:
///
/// | refusal | wasi:http `error-code` | the component |
/// | --- | --- | --- |
/// | [`Denied`](Self::Denied) | `HTTP-request-denied` | fails the request: the host is not allowed |
/// | [`Misconfigured`](Self::Misconfigured) | `configuration-error` | fails the request: retrying cannot help |
/// | [`Unavailable`](Self::Unavailable) | `internal-error` with a message | retries with backoff |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostRefusal {
    /// The destination is not on the host's allow-list.
    Denied,
    /// The host is set up wrong, e.g. it has no GCS credentials at all.
    Misconfigured,
    /// A step of the host failed for now, e.g. getting a GCS token.
    Unavailable,
}

impl HostRefusal {
    /// The wasi:http `error-code` case that carries it.
    pub fn error_code(self) -> &'static str {
        match self {
            Self::Denied => "HTTP-request-denied",
            Self::Misconfigured => "configuration-error",
            Self::Unavailable => "internal-error",
        }
    }

    /// Whether the component retries a request the host refused this way.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses_are_408_429_and_5xx() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 206, 400, 401, 403, 404, 409, 412, 416, 499, 600] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }

    #[test]
    fn bounds_double_from_one_second_to_thirty_two() {
        let policy = RetryPolicy::default();
        let bounds: Vec<u64> = (0..9).map(|r| policy.delay_bound(r).as_secs()).collect();
        assert_eq!(bounds, [1, 2, 4, 8, 16, 32, 32, 32, 32]);
        assert_eq!(policy.delay_bound(u32::MAX), Duration::from_secs(32));
        assert_eq!(policy.max_delay(), Duration::from_secs(32));
    }

    #[test]
    fn jittered_delays_stay_within_zero_and_the_bound() {
        let policy = RetryPolicy::default();
        for retry in 0..12 {
            assert_eq!(policy.delay(retry, 0.0), Duration::ZERO);
            assert_eq!(policy.delay(retry, 1.0), policy.delay_bound(retry));
            assert_eq!(policy.delay(retry, 7.0), policy.delay_bound(retry));
            let d = policy.delay(retry, jitter_unit());
            assert!(d <= policy.delay_bound(retry), "{retry}: {d:?}");
        }
        assert_eq!(policy.delay(2, 0.5), Duration::from_secs(2));
    }

    #[test]
    fn only_the_first_failure_without_an_answer_is_resent_at_once() {
        let policy = RetryPolicy::default();
        let mut waits = Backoff::new(policy);
        assert_eq!(waits.next(Failure::Status, 1.0), policy.delay_bound(0));
        assert_eq!(waits.next(Failure::Transport, 1.0), Duration::ZERO);
        assert_eq!(waits.next(Failure::Transport, 1.0), policy.delay_bound(1));
        assert_eq!(waits.next(Failure::Status, 1.0), policy.delay_bound(2));
        let mut waits = Backoff::new(policy);
        let bounds: Vec<Duration> = (0..4).map(|_| waits.next(Failure::Status, 1.0)).collect();
        assert_eq!(
            bounds,
            (0..4).map(|r| policy.delay_bound(r)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn jitter_is_in_the_unit_interval_and_varies() {
        let draws: Vec<f64> = (0..100).map(|_| jitter_unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(draws.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn base_delay_env_scales_every_bound() {
        let policy = RetryPolicy::with_base_delay_ms(Some(" 5 ")).unwrap();
        assert_eq!(policy.delay_bound(0), Duration::from_millis(5));
        assert_eq!(policy.max_delay(), Duration::from_millis(160));
        assert_eq!(policy.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(
            RetryPolicy::with_base_delay_ms(None).unwrap(),
            RetryPolicy::default()
        );
        assert_eq!(
            RetryPolicy::with_base_delay_ms(Some("0"))
                .unwrap()
                .delay_bound(3),
            Duration::ZERO
        );
        for bad in ["", "-1", "1.5", "1s", "60001"] {
            let e = RetryPolicy::with_base_delay_ms(Some(bad)).unwrap_err();
            assert!(
                e.message().starts_with("EMWRITE_RETRY_BASE_MS: "),
                "{bad}: {e}"
            );
        }
    }
}
