//! What a run records: one [`Recorder`] per client thread (an HDR histogram of latencies in
//! nanoseconds, counters of requests, bytes and errors by kind), merged into one at the end and
//! summarised as a [`Summary`] (rates and percentiles), which `report` prints.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::outcome::{ErrorKind, Failure};

/// The largest latency the histogram tells apart (larger ones are recorded as this).
pub const MAX_LATENCY: Duration = Duration::from_secs(100);

/// Significant decimal digits kept by the histogram: 0.1% resolution at any magnitude.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The counters of one client thread (or of all, once merged).
#[derive(Debug, Clone)]
pub struct Recorder {
    latency: Histogram<u64>,
    /// Requests answered with a good response in the measured period.
    pub ok: u64,
    /// Errors by [`ErrorKind::index`].
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Non-2xx statuses seen, by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Bytes read from and written to sockets in the measured period.
    pub bytes_in: u64,
    /// See `bytes_in`.
    pub bytes_out: u64,
    /// The first few distinct error descriptions, for the report.
    pub samples: Vec<String>,
    /// Requests still unanswered when the run ended (not errors: the run stopped waiting).
    pub unfinished: u64,
    /// How long the oldest of them had waited.
    pub oldest_unfinished: Duration,
}

/// How many distinct error descriptions a recorder keeps.
const MAX_SAMPLES: usize = 5;

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        let high = MAX_LATENCY.as_nanos() as u64;
        #[allow(clippy::unwrap_used)] // reason: constant bounds that the crate documents valid
        let latency = Histogram::new_with_bounds(1, high, SIGNIFICANT_DIGITS).unwrap();
        Self {
            latency,
            ok: 0,
            errors: [0; ErrorKind::ALL.len()],
            statuses: BTreeMap::new(),
            bytes_in: 0,
            bytes_out: 0,
            samples: Vec::new(),
            unfinished: 0,
            oldest_unfinished: Duration::ZERO,
        }
    }

    /// A good response after `latency`.
    pub fn success(&mut self, latency: Duration) {
        self.ok += 1;
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency.saturating_record(nanos.max(1));
    }

    /// An error.
    pub fn failure(&mut self, failure: &Failure) {
        self.errors[failure.kind.index()] += 1;
        if let Some(status) = failure.status {
            *self.statuses.entry(status).or_default() += 1;
        }
        if self.samples.len() < MAX_SAMPLES {
            let text = failure.to_string();
            if !self.samples.contains(&text) {
                self.samples.push(text);
            }
        }
    }

    /// Errors of every kind.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Self) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.unfinished += other.unfinished;
        self.oldest_unfinished = self.oldest_unfinished.max(other.oldest_unfinished);
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        for s in &other.samples {
            if self.samples.len() < MAX_SAMPLES && !self.samples.contains(s) {
                self.samples.push(s.clone());
            }
        }
    }

    /// Rates over `elapsed` and the latency percentiles.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let h = &self.latency;
        let at = |q: f64| {
            Duration::from_nanos(if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            })
        };
        Summary {
            requests: self.ok,
            errors: self.error_total(),
            elapsed,
            requests_per_sec: self.ok as f64 / secs,
            bytes_in_per_sec: self.bytes_in as f64 / secs,
            bytes_out_per_sec: self.bytes_out as f64 / secs,
            latency: Latency {
                min: Duration::from_nanos(if h.is_empty() { 0 } else { h.min() }),
                mean: Duration::from_nanos(h.mean() as u64),
                p50: at(0.50),
                p90: at(0.90),
                p99: at(0.99),
                p999: at(0.999),
                max: Duration::from_nanos(if h.is_empty() { 0 } else { h.max() }),
            },
        }
    }
}

/// Latency percentiles (each within 0.1% of the exact value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Smallest.
    pub min: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest.
    pub max: Duration,
}

/// A run's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Good responses.
    pub requests: u64,
    /// Errors of every kind.
    pub errors: u64,
    /// The measured period.
    pub elapsed: Duration,
    /// Good responses per second.
    pub requests_per_sec: f64,
    /// Bytes read from sockets per second.
    pub bytes_in_per_sec: f64,
    /// Bytes written to sockets per second.
    pub bytes_out_per_sec: f64,
    /// Latency of good responses.
    pub latency: Latency,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn percentiles_of_known_distribution() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        // 1..=1000 us, split over two recorders as two threads would.
        for i in 1..=1000 {
            if i % 2 == 0 { &mut a } else { &mut b }.success(us(i));
        }
        a.merge(&b);
        a.bytes_in = 2000;
        let s = a.summary(Duration::from_secs(2));
        assert_eq!(s.requests, 1000);
        assert_eq!(s.requests_per_sec, 500.0);
        assert_eq!(s.bytes_in_per_sec, 1000.0);
        let close = |got: Duration, want_ns: f64| {
            let want = want_ns;
            let got = got.as_nanos() as f64;
            assert!((got - want).abs() <= want * 0.001 + 1.0, "{got} vs {want}");
        };
        close(s.latency.min, 1e3);
        close(s.latency.p50, 500e3);
        close(s.latency.p90, 900e3);
        close(s.latency.p99, 990e3);
        close(s.latency.p999, 999e3);
        close(s.latency.max, 1000e3);
        close(s.latency.mean, 500.5e3);
    }

    #[test]
    fn outliers_and_empty() {
        let mut r = Recorder::new();
        let s = r.summary(Duration::from_secs(1));
        assert_eq!(
            (s.requests, s.latency.p99, s.latency.max),
            (0, Duration::ZERO, Duration::ZERO)
        );
        for _ in 0..999 {
            r.success(us(100));
        }
        r.success(Duration::from_secs(1000)); // past MAX_LATENCY: clamped, still counted
        let s = r.summary(Duration::from_secs(1));
        assert_eq!(s.requests, 1000);
        assert!(s.latency.p99 < us(101));
        assert!(
            s.latency.max >= Duration::from_secs(99),
            "{:?}",
            s.latency.max
        );
    }

    #[test]
    fn errors_by_kind() {
        let mut r = Recorder::new();
        let mut status = Failure::new(ErrorKind::Status, "status 502");
        status.status = Some(502);
        for _ in 0..3 {
            r.failure(&status);
        }
        r.failure(&Failure::new(ErrorKind::Timeout, "no answer in 1s"));
        let mut all = Recorder::new();
        all.merge(&r);
        all.merge(&r);
        assert_eq!(all.error_total(), 8);
        assert_eq!(all.errors[ErrorKind::Status.index()], 6);
        assert_eq!(all.statuses.get(&502), Some(&6));
        assert_eq!(
            all.samples,
            ["status: status 502", "timeout: no answer in 1s"]
        );
    }
}
