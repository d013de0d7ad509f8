//! Process-wide counters of the CGI script runner, for metrics and status pages: [`stats()`]
//! reads them.
//!
//! Every `cgi:` app of the process adds to the same counters (totals over the mounts). Updates
//! are relaxed atomic increments on the paths a request takes anyway (a slot taken, a script
//! spawned and reaped, a script stopped); nothing is locked for them. With `--workers N` each
//! worker process has its own counters: a metrics endpoint sums them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A snapshot of the CGI counters, summed over every `cgi:` app of the process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgiStats {
    /// Scripts spawned and not yet reaped (running, or being stopped).
    pub running: usize,
    /// Requests waiting for a `--cgi-max` slot now.
    pub queued: usize,
    /// Requests that found every `--cgi-max` slot taken and had to wait (php-fpm's
    /// "max children reached").
    pub max_children_reached_total: u64,
    /// Scripts spawned since the process started.
    pub started_total: u64,
    /// Scripts killed because they made no progress for `--cgi-timeout` (idle time).
    pub killed_total_timeout: u64,
    /// Scripts killed because their request ran out of `--request-timeout` (wall-clock time,
    /// counted from when the request arrived).
    pub killed_total_wallclock: u64,
    /// Scripts killed because the client went away before the answer was complete.
    pub killed_total_client_gone: u64,
    /// Requests that ran out of `--request-timeout` (answered `504`, or cut when the response
    /// had begun), whether a script was running or the request still waited for a slot.
    pub timeouts_total: u64,
}

impl CgiStats {
    /// The kills as `(reason, count)` pairs, for a labelled metric
    /// (`gatehouse_cgi_killed_total{reason}`): `timeout`, `wallclock`, `client_gone`.
    pub fn killed_by_reason(&self) -> [(&'static str, u64); 3] {
        [
            ("timeout", self.killed_total_timeout),
            ("wallclock", self.killed_total_wallclock),
            ("client_gone", self.killed_total_client_gone),
        ]
    }
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static QUEUED: AtomicUsize = AtomicUsize::new(0);
static MAX_CHILDREN_REACHED: AtomicU64 = AtomicU64::new(0);
static STARTED: AtomicU64 = AtomicU64::new(0);
static KILLED_TIMEOUT: AtomicU64 = AtomicU64::new(0);
static KILLED_WALLCLOCK: AtomicU64 = AtomicU64::new(0);
static KILLED_CLIENT_GONE: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// The counters now, summed over every `cgi:` app of this process.
pub fn stats() -> CgiStats {
    CgiStats {
        running: RUNNING.load(Ordering::Relaxed),
        queued: QUEUED.load(Ordering::Relaxed),
        max_children_reached_total: MAX_CHILDREN_REACHED.load(Ordering::Relaxed),
        started_total: STARTED.load(Ordering::Relaxed),
        killed_total_timeout: KILLED_TIMEOUT.load(Ordering::Relaxed),
        killed_total_wallclock: KILLED_WALLCLOCK.load(Ordering::Relaxed),
        killed_total_client_gone: KILLED_CLIENT_GONE.load(Ordering::Relaxed),
        timeouts_total: TIMEOUTS.load(Ordering::Relaxed),
    }
}

/// Why a running script was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kill {
    /// `--cgi-timeout`.
    Idle,
    /// `--request-timeout`.
    Wallclock,
    /// The client went away.
    ClientGone,
}

/// A script was spawned.
pub(crate) fn spawned() {
    STARTED.fetch_add(1, Ordering::Relaxed);
    RUNNING.fetch_add(1, Ordering::Relaxed);
}

/// A script was reaped.
pub(crate) fn reaped() {
    RUNNING.fetch_sub(1, Ordering::Relaxed);
}

/// A request waits for a slot (every one was taken).
pub(crate) fn slot_wait_started() {
    MAX_CHILDREN_REACHED.fetch_add(1, Ordering::Relaxed);
    QUEUED.fetch_add(1, Ordering::Relaxed);
}

/// A request stopped waiting for a slot (it got one, or gave up).
pub(crate) fn slot_wait_ended() {
    QUEUED.fetch_sub(1, Ordering::Relaxed);
}

/// A running script is being stopped for `why`.
pub(crate) fn killed(why: Kill) {
    let counter = match why {
        Kill::Idle => &KILLED_TIMEOUT,
        Kill::Wallclock => &KILLED_WALLCLOCK,
        Kill::ClientGone => &KILLED_CLIENT_GONE,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A request ran out of `--request-timeout`.
pub(crate) fn timed_out() {
    TIMEOUTS.fetch_add(1, Ordering::Relaxed);
}
