//! The remote executor's request rate: it starts low and doubles every so often, the way Google
//! asks clients to ramp up on GCS (start at a modest rate, double it at intervals, and back off
//! when throttled: <https://cloud.google.com/storage/docs/request-rate>). A fresh Cloud Run
//! service or SpinKube deployment scales out as requests arrive; a burst of thousands at once
//! meets cold instances and 429s, where a ramp lets new instances come up in time.
//!
//! When the service throttles (429 or 503) the rate steps back to half of what it was and climbs
//! again from there.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Highest rate the ramp reaches, requests per second: past it, `--concurrency` alone limits.
const MAX_RATE: f64 = 1_000_000.0;

/// Requests per second, starting at `start` and doubling every `double_every`.
#[derive(Debug)]
pub struct Ramp {
    start: f64,
    double_every: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The rate at `since`.
    base: f64,
    since: Instant,
    /// When the next request may be sent.
    next: Instant,
}

impl Ramp {
    /// A ramp from `start` requests per second, doubling every `double_every`; `start` of 0 or
    /// less means no ramp.
    pub fn new(start: f64, double_every: Duration) -> Self {
        let now = Instant::now();
        let start = if start > 0.0 { start } else { MAX_RATE };
        Ramp {
            start,
            double_every,
            state: Mutex::new(State {
                base: start,
                since: now,
                next: now,
            }),
        }
    }

    /// Waits until the next request may be sent.
    pub async fn acquire(&self) {
        let slot = self.lock().take_slot(Instant::now(), self.double_every);
        tokio::time::sleep_until(slot).await;
    }

    /// The service asked to slow down: the rate halves (not below the start) and climbs again.
    /// Returns the new rate.
    pub fn throttled(&self) -> f64 {
        self.lock()
            .throttle(Instant::now(), self.start, self.double_every)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain numbers: a poisoned lock's values are as good as any.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The rate at `now`.
    fn rate(&self, now: Instant, double_every: Duration) -> f64 {
        rate_at(
            self.base,
            double_every,
            now.saturating_duration_since(self.since),
        )
    }

    /// When the next request may go, asked at `now`; the one after waits one interval more.
    fn take_slot(&mut self, now: Instant, double_every: Duration) -> Instant {
        let rate = self.rate(now, double_every);
        let slot = self.next.max(now);
        self.next = slot + Duration::from_secs_f64(1.0 / rate);
        slot
    }

    /// Halves the rate at `now`, not below `start`; returns it.
    fn throttle(&mut self, now: Instant, start: f64, double_every: Duration) -> f64 {
        self.base = (self.rate(now, double_every) / 2.0).max(start);
        self.since = now;
        self.base
    }
}

/// The rate `elapsed` after it was `base`: doubled once per whole `double_every`.
pub fn rate_at(base: f64, double_every: Duration, elapsed: Duration) -> f64 {
    if double_every.is_zero() {
        return MAX_RATE;
    }
    let doublings = (elapsed.as_secs_f64() / double_every.as_secs_f64()).floor();
    (base * doublings.min(40.0).exp2()).min(MAX_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_doubles_every_interval() {
        let every = Duration::from_secs(20);
        assert_eq!(rate_at(5.0, every, Duration::ZERO), 5.0);
        assert_eq!(rate_at(5.0, every, Duration::from_secs(19)), 5.0);
        assert_eq!(rate_at(5.0, every, Duration::from_secs(20)), 10.0);
        assert_eq!(rate_at(5.0, every, Duration::from_secs(65)), 40.0);
        assert_eq!(rate_at(5.0, every, Duration::from_secs(1 << 40)), MAX_RATE);
        assert_eq!(rate_at(5.0, Duration::ZERO, Duration::ZERO), MAX_RATE);
    }

    #[test]
    fn requests_are_spaced_by_the_rate_and_throttling_halves_it() {
        let every = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut state = State {
            base: 4.0,
            since: t0,
            next: t0,
        };
        let slots: Vec<Duration> = (0..5).map(|_| state.take_slot(t0, every) - t0).collect();
        // At 4 per second, asked all at once, the fifth request goes out 1 s after the first.
        assert_eq!(slots.last(), Some(&Duration::from_secs(1)));
        assert_eq!(slots[1], Duration::from_millis(250));
        let later = t0 + Duration::from_secs(20);
        assert_eq!(state.rate(later, every), 16.0);
        // A request asked for long after the last slot goes at once.
        assert_eq!(state.take_slot(later, every), later);
        assert_eq!(state.throttle(later, 4.0, every), 8.0);
        assert_eq!(state.throttle(later, 4.0, every), 4.0);
        assert_eq!(
            state.throttle(later, 4.0, every),
            4.0,
            "never below the start"
        );
        assert_eq!(state.rate(later + every, every), 8.0, "and it climbs again");
    }
}
