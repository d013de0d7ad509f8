//! When requests go out: the run's clock (warm-up, measured period, end) shared by every
//! thread, and each connection's [`Schedule`]: closed loop (send as soon as a slot is free) or
//! open loop (connection `i` of `c` owns every `c`-th slot of a fixed arrival schedule at
//! `--rate`, and a request held back by the server counts its latency from its slot's time,
//! however late it went out: see [`timed_from`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::args::{Plan, Stop};

/// The run's clock and the measured-request counter, shared by every thread.
#[derive(Debug)]
pub struct Clock {
    /// Load starts.
    pub start: Instant,
    /// Measurement starts (after the warm-up).
    pub measure_from: Instant,
    /// Measurement ends (duration mode).
    pub end: Option<Instant>,
    /// `-n`: requests to measure.
    pub limit: Option<u64>,
    issued: AtomicU64,
}

impl Clock {
    /// The clock of `plan`, starting at `start`.
    pub fn new(plan: &Plan, start: Instant) -> Self {
        let measure_from = start + plan.warmup;
        let (end, limit) = match plan.stop {
            Stop::Duration(d) => (Some(measure_from + d), None),
            Stop::Requests(n) => (None, Some(n)),
        };
        Self {
            start,
            measure_from,
            end,
            limit,
            issued: AtomicU64::new(0),
        }
    }

    /// Whether the run is over at `now` (no new request may start).
    pub fn over(&self, now: Instant) -> bool {
        match (self.end, self.limit) {
            (Some(end), _) => now >= end,
            (None, Some(n)) => self.issued.load(Ordering::Relaxed) >= n,
            (None, None) => false,
        }
    }

    /// Takes one measured request from the `-n` budget: false when it is spent.
    fn take_one(&self) -> bool {
        match self.limit {
            Some(n) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
            None => true,
        }
    }
}

/// A request about to go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// When it was due: latency counts from here.
    pub intended: Instant,
    /// Whether it counts (sent after the warm-up).
    pub measured: bool,
}

/// What a connection does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send now.
    Send(Slot),
    /// Nothing is due before this time.
    WaitUntil(Instant),
    /// The run is over.
    Finished,
}

/// One connection's arrival schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    next_due: Option<Instant>,
    interval: Duration,
}

impl Schedule {
    /// Connection `index` of the plan's connections.
    pub fn new(plan: &Plan, clock: &Clock, index: usize) -> Self {
        match plan.rate {
            None => Self {
                next_due: None,
                interval: Duration::ZERO,
            },
            Some(rate) => {
                let gap = Duration::from_secs_f64(1.0 / rate);
                Self {
                    next_due: Some(clock.start + gap.mul_f64(index as f64)),
                    interval: gap.mul_f64(plan.connections as f64),
                }
            }
        }
    }

    /// Decides at `now`.
    pub fn next(&mut self, clock: &Clock, now: Instant) -> Next {
        if clock.over(now) {
            return Next::Finished;
        }
        let intended = match self.next_due {
            None => now,
            Some(due) if due > now => return Next::WaitUntil(due),
            Some(due) => due,
        };
        let measured = intended >= clock.measure_from;
        if measured && !clock.take_one() {
            return Next::Finished;
        }
        if let Some(due) = &mut self.next_due {
            *due += self.interval;
        }
        Next::Send(Slot { intended, measured })
    }
}

/// The time a request's latency counts from, given when it was due and when the request id
/// (or connection) that carries it became free.
///
/// If the id was already free when the request fell due, any delay before it went out is the
/// client's own (the runtime timer wakes up to 1 ms late): time it from `now`, when it went out.
/// If the id only became free after the request was due, the server held it up: time it from
/// when it was due, so the stall shows in the latency (no coordinated omission).
pub fn timed_from(due: Instant, freed_at: Instant, now: Instant) -> Instant {
    if freed_at <= due {
        now.max(due)
    } else {
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::tests::plan;

    #[test]
    fn closed_loop_with_count() {
        let p = plan(&["--fastcgi=127.0.0.1:1", "-n3", "--warmup=1s"]);
        let t0 = Instant::now();
        let clock = Clock::new(&p, t0);
        let mut s = Schedule::new(&p, &clock, 0);
        // During the warm-up: sent, not measured, not counted.
        assert_eq!(
            s.next(&clock, t0),
            Next::Send(Slot {
                intended: t0,
                measured: false
            })
        );
        let t1 = t0 + Duration::from_secs(2);
        for _ in 0..3 {
            assert!(matches!(
                s.next(&clock, t1),
                Next::Send(Slot { measured: true, .. })
            ));
        }
        assert_eq!(s.next(&clock, t1), Next::Finished);
        assert!(clock.over(t1));
    }

    #[test]
    fn late_because_of_the_server_or_of_the_client() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // Free since 0, due at 10, our timer fired at 11: timed from 11.
        assert_eq!(timed_from(ms(10), ms(0), ms(11)), ms(11));
        // Due at 10, the previous response only came at 30: timed from 10.
        assert_eq!(timed_from(ms(10), ms(30), ms(30)), ms(10));
    }

    #[test]
    fn open_loop_keeps_its_schedule() {
        // 100/s over 2 connections: each connection every 20 ms, connection 1 offset by 10 ms.
        let p = plan(&["--fastcgi=127.0.0.1:1", "-c2", "--rate=100", "-d1s"]);
        let t0 = Instant::now();
        let clock = Clock::new(&p, t0);
        let mut s = Schedule::new(&p, &clock, 1);
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(s.next(&clock, t0), Next::WaitUntil(ms(10)));
        // Late by 35 ms: the overdue slots go out at once, each timed from when it was due.
        let late = ms(45);
        for due in [10, 30] {
            let want = Next::Send(Slot {
                intended: ms(due),
                measured: true,
            });
            assert_eq!(s.next(&clock, late), want);
        }
        assert_eq!(s.next(&clock, late), Next::WaitUntil(ms(50)));
        assert_eq!(s.next(&clock, ms(1000)), Next::Finished);
    }
}
