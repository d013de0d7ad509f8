//! A minimum rate for request bodies (Apache's `mod_reqtimeout`, `body=20,MinRate=500`): the
//! bound an idle timeout alone cannot give, since a client sending one byte every few seconds
//! never goes idle. Sans-io: the front end says how long it waited on the client and how many
//! bytes came, and asks how long it may wait next.
//!
//! The body may take `grace`, plus one second for every `rate` bytes received. Only time spent
//! waiting on the client counts: while the app does not read (its body queue is full), the
//! front end does not read either, and the clock stops.

use std::time::Duration;

/// `grace` + `received / rate` seconds for the whole body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Time allowed before any byte counts.
    pub grace: Duration,
    /// Bytes per second the body must average past the grace.
    pub rate: u64,
}

/// One request body's account of time and bytes against its [`MinRate`].
#[derive(Debug, Clone)]
pub struct BodyClock {
    limit: MinRate,
    waited: Duration,
    received: u64,
}

impl BodyClock {
    /// A body that has not started.
    pub fn new(limit: MinRate) -> Self {
        Self {
            limit,
            waited: Duration::ZERO,
            received: 0,
        }
    }

    /// How long the front end may still wait on the client for the next bytes; zero when the
    /// body is already too slow.
    pub fn time_left(&self) -> Duration {
        let earned = if self.limit.rate == 0 {
            Duration::MAX
        } else {
            Duration::from_secs_f64(self.received as f64 / self.limit.rate as f64)
        };
        self.limit
            .grace
            .saturating_add(earned)
            .saturating_sub(self.waited)
    }

    /// The front end waited `waited` on the client, and `bytes` came (maybe none).
    pub fn record(&mut self, waited: Duration, bytes: usize) {
        self.waited = self.waited.saturating_add(waited);
        self.received = self.received.saturating_add(bytes as u64);
    }

    /// The bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The limit.
    pub fn limit(&self) -> MinRate {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: MinRate = MinRate {
        grace: Duration::from_secs(20),
        rate: 500,
    };

    #[test]
    fn grace_then_a_second_per_rate_bytes() {
        let mut c = BodyClock::new(LIMIT);
        assert_eq!(c.time_left(), Duration::from_secs(20));
        c.record(Duration::from_secs(5), 1000);
        assert_eq!(c.time_left(), Duration::from_secs(17));
        c.record(Duration::from_secs(17), 0);
        assert_eq!(c.time_left(), Duration::ZERO);
        c.record(Duration::ZERO, 500);
        assert_eq!(c.time_left(), Duration::from_secs(1));
    }

    #[test]
    fn a_byte_every_few_seconds_runs_out() {
        let mut c = BodyClock::new(LIMIT);
        let mut seconds = 0;
        while c.time_left() > Duration::ZERO {
            c.record(Duration::from_secs(3), 1);
            seconds += 3;
        }
        assert!((20..=24).contains(&seconds), "{seconds}");
    }

    #[test]
    fn a_fast_body_never_runs_out() {
        let mut c = BodyClock::new(LIMIT);
        for _ in 0..10_000 {
            c.record(Duration::from_millis(10), 65536);
        }
        assert!(c.time_left() > Duration::from_secs(20));
    }
}
