//! Process-wide counters of the WSGI pools, for metrics and status pages: [`stats()`] reads them.
//!
//! Every pool of the process (one per `wsgi:` mount) adds to the same counters, so the figures
//! are totals over the pools. Updates are relaxed atomic increments on paths a request takes
//! anyway (admission, hand-over, the end of a job); nothing is locked or allocated for them.
//! With `--workers N` each worker process has its own counters: a metrics endpoint sums them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A snapshot of the WSGI counters, summed over every pool of the process.
///
/// Gauges (`threads`, `busy`, `queued`, `stuck_threads`) are read one after the other, not
/// under a lock: under load a snapshot may be off by the requests that moved meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsgiStats {
    /// Python threads serving requests now (`--threads` per pool, plus the replacements of
    /// stuck threads; stuck threads themselves are not counted here).
    pub threads: usize,
    /// Threads running a request now (from the moment a thread takes a job until the app's
    /// result is closed; a stuck thread no longer counts).
    pub busy: usize,
    /// Admitted requests waiting in a queue for a free thread now.
    pub queued: usize,
    /// The highest `queued` seen since the process started.
    pub queue_max_seen: usize,
    /// Requests refused with `503 Service Unavailable` because every thread was busy and the
    /// queue was full (`--wsgi-queue`).
    pub rejected_total: u64,
    /// Requests that ran out of `--request-timeout`: answered `504` (or cut, when their response
    /// had begun), whether they were running or still queued.
    pub timeouts_total: u64,
    /// Requests logged by `--slow-log-timeout` (each at most once).
    pub slow_total: u64,
    /// Threads that did not come back within a short grace after their request timed out
    /// (blocked in native code such as `time.sleep` or a socket read) and have not returned yet.
    /// They were replaced (bounded) and exit when they return.
    pub stuck_threads: usize,
}

static THREADS: AtomicUsize = AtomicUsize::new(0);
static BUSY: AtomicUsize = AtomicUsize::new(0);
static QUEUED: AtomicUsize = AtomicUsize::new(0);
static QUEUE_MAX_SEEN: AtomicUsize = AtomicUsize::new(0);
static REJECTED: AtomicU64 = AtomicU64::new(0);
static TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static SLOW: AtomicU64 = AtomicU64::new(0);
static STUCK: AtomicUsize = AtomicUsize::new(0);

/// The counters now, summed over every WSGI pool of this process.
pub fn stats() -> WsgiStats {
    WsgiStats {
        threads: THREADS.load(Ordering::Relaxed),
        busy: BUSY.load(Ordering::Relaxed),
        queued: QUEUED.load(Ordering::Relaxed),
        queue_max_seen: QUEUE_MAX_SEEN.load(Ordering::Relaxed),
        rejected_total: REJECTED.load(Ordering::Relaxed),
        timeouts_total: TIMEOUTS.load(Ordering::Relaxed),
        slow_total: SLOW.load(Ordering::Relaxed),
        stuck_threads: STUCK.load(Ordering::Relaxed),
    }
}

/// A pool thread started serving.
pub(crate) fn thread_started() {
    THREADS.fetch_add(1, Ordering::Relaxed);
}

/// A pool thread stopped serving (it exits, or it was declared stuck).
pub(crate) fn thread_ended() {
    THREADS.fetch_sub(1, Ordering::Relaxed);
}

/// A thread took a job.
pub(crate) fn job_started() {
    BUSY.fetch_add(1, Ordering::Relaxed);
}

/// A thread is done with its job.
pub(crate) fn job_ended() {
    BUSY.fetch_sub(1, Ordering::Relaxed);
}

/// A job went into a queue.
pub(crate) fn queued() {
    let now = QUEUED.fetch_add(1, Ordering::Relaxed) + 1;
    QUEUE_MAX_SEEN.fetch_max(now, Ordering::Relaxed);
}

/// `n` jobs left a queue (taken by a thread, withdrawn, timed out, dropped).
pub(crate) fn dequeued(n: usize) {
    QUEUED.fetch_sub(n, Ordering::Relaxed);
}

/// A request got 503.
pub(crate) fn rejected() {
    REJECTED.fetch_add(1, Ordering::Relaxed);
}

/// A request ran out of `--request-timeout`.
pub(crate) fn timed_out() {
    TIMEOUTS.fetch_add(1, Ordering::Relaxed);
}

/// A request was slow-logged.
pub(crate) fn slow() {
    SLOW.fetch_add(1, Ordering::Relaxed);
}

/// A thread was declared stuck (it no longer counts in `threads`, nor in `busy`).
pub(crate) fn stuck() {
    STUCK.fetch_add(1, Ordering::Relaxed);
    job_ended();
    thread_ended();
}

/// A stuck thread finally returned and exits.
pub(crate) fn unstuck() {
    STUCK.fetch_sub(1, Ordering::Relaxed);
}
