//! Which answers of a service the remote executor sends again, and how long it waits first.
//!
//! A task is retried after a connection failure or an answer that may succeed later: 408, 429
//! and 5xx, the statuses the core retries for storage ([`is_retryable_status`]); every other 4xx
//! says the request itself is wrong and fails the task at once. A 429 or 503 with `Retry-After`
//! waits that long; anything else waits the core's backoff for storage ([`RetryPolicy`]:
//! truncated exponential, full jitter, 1 s doubling to 32 s).

use std::time::{Duration, SystemTime};

use emwrite::storage::retry::{RetryPolicy, is_retryable_status, jitter_unit};

/// Longest `Retry-After` honoured: a service asking for more is treated as asking for this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What to do after an attempt that did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send it again after this wait; `throttled`: the service asked to slow down (429, 503).
    Retry {
        /// How long to wait.
        wait: Duration,
        /// Whether the ramp should step back.
        throttled: bool,
    },
    /// The token was refused (401): get a new one, then send again at once.
    RefreshToken,
    /// The request is wrong; sending it again cannot help.
    Fail,
}

/// What to do after an answer with `status` (and its `Retry-After`, if any), before retry
/// number `retry` (0 for the first).
pub fn after_status(
    policy: &RetryPolicy,
    retry: u32,
    status: u16,
    retry_after: Option<Duration>,
) -> Next {
    if status == 401 {
        return Next::RefreshToken;
    }
    if !is_retryable_status(status) {
        return Next::Fail;
    }
    let throttled = matches!(status, 429 | 503);
    let wait = match retry_after {
        Some(wait) if throttled => wait,
        _ => policy.delay(retry, jitter_unit()),
    };
    Next::Retry { wait, throttled }
}

/// The wait before retry number `retry` after a connection failure or timeout.
pub fn after_transport_error(policy: &RetryPolicy, retry: u32) -> Duration {
    policy.delay(retry, jitter_unit())
}

/// Reads a `Retry-After` value (RFC 9110 §10.2.3): a number of seconds or an HTTP date, as of
/// `now`; at most [`MAX_RETRY_AFTER`]. `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: seconds; too many digits to fit is simply long.
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        // 2015-10-21 07:28:00 GMT is `now`; the date 30 s later is a 30 s wait.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("3600", now), Some(MAX_RETRY_AFTER));
        for bad in ["", "-1", "1.5", "soon", "Wed, 21 Oct 2015"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn only_408_429_and_5xx_are_retried_and_401_refreshes_the_token() {
        let policy = RetryPolicy::default();
        for status in [400, 403, 404, 409, 413, 422] {
            assert_eq!(
                after_status(&policy, 0, status, None),
                Next::Fail,
                "{status}"
            );
        }
        assert_eq!(after_status(&policy, 0, 401, None), Next::RefreshToken);
        for status in [408, 500, 502, 504] {
            let next = after_status(&policy, 0, status, Some(Duration::from_secs(99)));
            let Next::Retry { wait, throttled } = next else {
                panic!("{status}: {next:?}");
            };
            assert!(!throttled, "{status}");
            // Retry-After is for 429 and 503; the others wait the backoff.
            assert!(wait <= policy.delay_bound(0), "{status}: {wait:?}");
        }
    }

    #[test]
    fn throttling_answers_wait_their_retry_after_and_step_the_ramp_back() {
        let policy = RetryPolicy::default();
        for status in [429, 503] {
            assert_eq!(
                after_status(&policy, 3, status, Some(Duration::from_secs(7))),
                Next::Retry {
                    wait: Duration::from_secs(7),
                    throttled: true
                }
            );
            let Next::Retry { wait, throttled } = after_status(&policy, 3, status, None) else {
                panic!("{status} is retried");
            };
            assert!(throttled && wait <= policy.delay_bound(3));
        }
    }

    #[test]
    fn backoff_grows_with_the_retry_number() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_attempts: 5,
        };
        for retry in 0..8 {
            assert!(after_transport_error(&policy, retry) <= policy.delay_bound(retry));
        }
        assert_eq!(policy.delay_bound(0), Duration::from_millis(100));
        assert_eq!(policy.delay_bound(3), Duration::from_millis(800));
    }
}
