//! The connection's timeouts as a sans-io state machine: events and `now` in, deadlines out.
//!
//! hyper's own `header_read_timeout` starts when a connection goes idle, so it cannot tell a
//! quiet keep-alive connection from a slowloris head; this core keeps them apart:
//!
//! ```text
//!            first byte read              head complete (request starts)
//!   Idle ───────────────────► Head ──────────────────────────────────► Busy
//!    ▲  idle_timeout            header_read_timeout                      │ no timeout: the
//!    └───────────────────────────────────────────────────────────────────┘ app may take its time
//!                          last response done
//! ```
//!
//! Independently of the phase, a write the socket would not take (the client stopped reading)
//! expires after `idle_timeout` without progress. Progress is a write the socket takes, or, while
//! none does, the socket's send queue shrinking (the client took bytes): it is sampled every
//! quarter of `idle_timeout`, so a client that stops reading is cut `idle_timeout` to 1.25 x
//! `idle_timeout` after the last byte it took. Waiting for request body bytes is timed by the
//! body pump, which knows when it is waiting on the client rather than on the app.

use std::time::{Duration, Instant};

/// Where the connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in progress and no byte of the next one yet.
    Idle { since: Instant },
    /// Bytes of a request head arrived; the head is not complete.
    Head { since: Instant },
    /// At least one request is being answered.
    Busy,
}

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// No new request within `idle_timeout`: close quietly.
    Idle,
    /// A started request head not complete within `header_read_timeout`.
    Header,
    /// The client did not take response bytes for `idle_timeout`.
    Send,
}

/// A write the socket would not take, and the progress the client made since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Blocked {
    /// The latest progress seen: the refused write, or a sample that found the queue shorter.
    progress: Instant,
    /// When the send queue was last sampled.
    sampled: Instant,
    /// The send queue then (`None`: the transport cannot tell).
    queued: Option<u64>,
}

/// The timeouts of one connection.
#[derive(Debug)]
pub(crate) struct Timeouts {
    idle: Duration,
    header: Duration,
    phase: Phase,
    in_flight: usize,
    write_blocked: Option<Blocked>,
    /// Request heads completed on this connection.
    started: u64,
}

impl Timeouts {
    /// A fresh connection, idle since `now`.
    pub(crate) fn new(idle: Duration, header: Duration, now: Instant) -> Self {
        Self {
            idle,
            header,
            phase: Phase::Idle { since: now },
            in_flight: 0,
            write_blocked: None,
            started: 0,
        }
    }

    /// Bytes arrived from the client. Returns whether the earliest deadline may have changed.
    pub(crate) fn handle_read(&mut self, now: Instant) -> bool {
        if let Phase::Idle { .. } = self.phase {
            self.phase = Phase::Head { since: now };
            return true;
        }
        false
    }

    /// A request head is complete and its answer is being made.
    pub(crate) fn handle_request_start(&mut self) -> bool {
        self.in_flight += 1;
        self.started += 1;
        self.phase = Phase::Busy;
        true
    }

    /// How many requests were started on this connection, and how many are in progress.
    pub(crate) fn requests(&self) -> (u64, usize) {
        (self.started, self.in_flight)
    }

    /// A request's response is done (or abandoned).
    pub(crate) fn handle_request_end(&mut self, now: Instant) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.phase = Phase::Idle { since: now };
            return true;
        }
        false
    }

    /// The socket refused a write (its send buffer is full); `queued` samples its send queue.
    pub(crate) fn handle_write_blocked(
        &mut self,
        now: Instant,
        queued: impl FnOnce() -> Option<u64>,
    ) -> bool {
        if self.write_blocked.is_none() {
            self.write_blocked = Some(Blocked {
                progress: now,
                sampled: now,
                queued: queued(),
            });
            return true;
        }
        false
    }

    /// The socket took bytes.
    pub(crate) fn handle_write(&mut self) {
        self.write_blocked = None;
    }

    /// How often a blocked write's send queue is sampled.
    fn sample_every(&self) -> Duration {
        self.idle / 4
    }

    /// The earliest instant at which [`Timeouts::handle_timeout`] may report something (or
    /// sample the send queue).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Idle { since } => Some(since + self.idle),
            Phase::Head { since } => Some(since + self.header),
            Phase::Busy => None,
        };
        let send = self.write_blocked.map(|b| match b.queued {
            Some(_) => (b.progress + self.idle).min(b.sampled + self.sample_every()),
            None => b.progress + self.idle,
        });
        match (phase, send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Which timeout, if any, has expired at `now`; `queued` samples the send queue when a
    /// blocked write is due for it.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        queued: impl FnOnce() -> Option<u64>,
    ) -> Option<Expired> {
        let (idle, every) = (self.idle, self.sample_every());
        if let Some(b) = self.write_blocked.as_mut() {
            if b.queued.is_some() && now >= (b.sampled + every).min(b.progress + idle) {
                let q = queued();
                if matches!((q, b.queued), (Some(q), Some(before)) if q < before) {
                    b.progress = now;
                }
                b.queued = q;
                b.sampled = now;
            }
            if now >= b.progress + idle {
                return Some(Expired::Send);
            }
        }
        match self.phase {
            Phase::Idle { since } if now >= since + self.idle => Some(Expired::Idle),
            Phase::Head { since } if now >= since + self.header => Some(Expired::Header),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);
    const HEAD: Duration = Duration::from_secs(10);

    fn none() -> Option<u64> {
        None
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn idle_then_head_then_busy() {
        let t0 = Instant::now();
        let mut t = Timeouts::new(IDLE, HEAD, t0);
        assert_eq!(t.poll_timeout(), Some(secs(t0, 60)));
        assert_eq!(t.handle_timeout(secs(t0, 59), none), None);
        // First byte at 50 s: the head deadline (60 s) replaces the idle one.
        assert!(t.handle_read(secs(t0, 50)));
        assert!(
            !t.handle_read(secs(t0, 55)),
            "later bytes do not move the head deadline"
        );
        assert_eq!(t.poll_timeout(), Some(secs(t0, 60)));
        assert_eq!(t.handle_timeout(secs(t0, 60), none), Some(Expired::Header));
    }

    #[test]
    fn busy_has_no_deadline_and_idle_restarts_after() {
        let t0 = Instant::now();
        let mut t = Timeouts::new(IDLE, HEAD, t0);
        t.handle_read(secs(t0, 1));
        t.handle_request_start();
        assert_eq!(t.poll_timeout(), None);
        assert_eq!(t.handle_timeout(secs(t0, 10_000), none), None);
        t.handle_read(secs(t0, 10_001));
        assert_eq!(
            t.poll_timeout(),
            None,
            "body bytes do not start a head timer"
        );
        assert!(t.handle_request_end(secs(t0, 10_002)));
        assert_eq!(t.poll_timeout(), Some(secs(t0, 10_062)));
        assert_eq!(
            t.handle_timeout(secs(t0, 10_062), none),
            Some(Expired::Idle)
        );
    }

    #[test]
    fn pipelined_request_without_read_goes_straight_to_busy() {
        let t0 = Instant::now();
        let mut t = Timeouts::new(IDLE, HEAD, t0);
        t.handle_request_start();
        t.handle_request_end(secs(t0, 1));
        t.handle_request_start();
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn blocked_writes_expire_even_when_busy() {
        let t0 = Instant::now();
        let mut t = Timeouts::new(IDLE, HEAD, t0);
        t.handle_request_start();
        assert!(t.handle_write_blocked(secs(t0, 5), none));
        assert!(!t.handle_write_blocked(secs(t0, 30), none));
        assert_eq!(t.poll_timeout(), Some(secs(t0, 65)));
        t.handle_write();
        assert_eq!(t.poll_timeout(), None);
        t.handle_write_blocked(secs(t0, 100), none);
        assert_eq!(t.handle_timeout(secs(t0, 160), none), Some(Expired::Send));
    }

    #[test]
    fn a_shrinking_send_queue_is_progress() {
        let t0 = Instant::now();
        let mut t = Timeouts::new(IDLE, HEAD, t0);
        t.handle_request_start();
        // Blocked at 0 with 1000 bytes queued: sampled every 15 s.
        t.handle_write_blocked(t0, || Some(1000));
        assert_eq!(t.poll_timeout(), Some(secs(t0, 15)));
        // The client reads a little between samples, for much longer than the idle timeout.
        let mut queued = 1000;
        for step in 1..=20 {
            queued -= 10;
            let at = secs(t0, 15 * step);
            assert_eq!(t.handle_timeout(at, || Some(queued)), None, "step {step}");
            assert_eq!(t.poll_timeout(), Some(at + Duration::from_secs(15)));
        }
        // Then stops: cut one idle timeout after the last sample that saw progress.
        let last = secs(t0, 300);
        for s in [315, 330, 345] {
            assert_eq!(t.handle_timeout(secs(t0, s), || Some(queued)), None);
        }
        assert_eq!(
            t.handle_timeout(last + IDLE, || Some(queued)),
            Some(Expired::Send)
        );
    }

    #[test]
    fn an_unknown_send_queue_is_never_sampled() {
        let t0 = Instant::now();
        let mut t = Timeouts::new(IDLE, HEAD, t0);
        t.handle_request_start();
        t.handle_write_blocked(t0, none);
        assert_eq!(t.poll_timeout(), Some(secs(t0, 60)));
        assert_eq!(
            t.handle_timeout(secs(t0, 60), || panic!("no queue to sample")),
            Some(Expired::Send)
        );
    }
}
