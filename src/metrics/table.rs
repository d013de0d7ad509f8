//! The figures as fixed cells: one block of `u64` atomics per process that serves (a worker, or
//! the single process), laid out the same in every block, so that totals are sums of cells.
//!
//! ```text
//!  block: counters (only go up)  │ gauges (up and down) │ maxima │ pid, start │ running-request slots
//!         requests[protocol][class], duration buckets[protocol][bucket], duration sums,
//!         connections accepted[protocol], WSGI rejected, timeouts, CGI killed[reason], slow
//! ```
//!
//! A serving process writes its own block only, with relaxed atomic additions (the hot path: no
//! lock, no allocation). The master sums the blocks when asked; when a worker exits, its
//! counters are added to a retired total the master keeps and its block is zeroed for the next
//! worker, so totals never go backwards (gauges of a dead worker just go away).
//!
//! The running-request slots (what `/status?full` lists) are written under a per-slot sequence
//! check: the slot's id word is set last and cleared first, and a reader keeps a copy only if
//! the id was the same before and after reading the rest.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use gatehouse_channel_request::Protocol;

/// Protocol label values, in cell order.
/// The listener protocols come first (`LISTENER_PROTOCOLS` of them), then CGI mode.
pub(crate) const PROTOCOLS: [&str; 5] = ["fastcgi", "scgi", "http", "uwsgi", "cgi"];
/// Status label values, in cell order: the class of the status sent (see the README: a label
/// per class keeps the series bounded whatever codes apps send).
pub(crate) const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
/// Upper bounds of the duration histogram's buckets, in seconds (+Inf follows).
pub(crate) const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Reasons a CGI script is killed, in cell order (`gatehouse_cgi_exec::CgiStats::killed_by_reason`'s).
pub(crate) const CGI_KILL_REASONS: [&str; 3] = ["timeout", "wallclock", "client_gone"];

const P: usize = PROTOCOLS.len();
const C: usize = CLASSES.len();
/// Buckets with +Inf.
pub(crate) const NB: usize = BUCKETS.len() + 1;

// Counters.
pub(crate) const REQUESTS: usize = 0;
pub(crate) const DURATION: usize = REQUESTS + P * C;
pub(crate) const DURATION_SUM_US: usize = DURATION + P * NB;
pub(crate) const ACCEPTED: usize = DURATION_SUM_US + P;
pub(crate) const WSGI_REJECTED: usize = ACCEPTED + P;
pub(crate) const REQUEST_TIMEOUTS: usize = WSGI_REJECTED + 1;
pub(crate) const CGI_KILLED: usize = REQUEST_TIMEOUTS + 1;
pub(crate) const SLOW_REQUESTS: usize = CGI_KILLED + CGI_KILL_REASONS.len();
pub(crate) const CGI_MAX_CHILDREN_REACHED: usize = SLOW_REQUESTS + 1;
pub(crate) const CGI_STARTED: usize = CGI_MAX_CHILDREN_REACHED + 1;
/// CPU time of the process, in microseconds (the largest value seen: `fetch_max`).
/// Access log lines dropped because the disk was slower than the requests.
pub(crate) const ACCESS_LOG_DROPPED: usize = CGI_STARTED + 1;
pub(crate) const CPU_US: usize = ACCESS_LOG_DROPPED + 1;
/// Cells below this are counters.
pub(crate) const COUNTERS: usize = CPU_US + 1;
// Gauges.
pub(crate) const IN_FLIGHT: usize = COUNTERS;
pub(crate) const CONN_OPEN: usize = IN_FLIGHT + 1;
pub(crate) const WSGI_BUSY: usize = CONN_OPEN + P;
pub(crate) const WSGI_THREADS: usize = WSGI_BUSY + 1;
pub(crate) const WSGI_QUEUE: usize = WSGI_THREADS + 1;
pub(crate) const CGI_RUNNING: usize = WSGI_QUEUE + 1;
pub(crate) const CGI_QUEUE: usize = CGI_RUNNING + 1;
pub(crate) const WSGI_STUCK: usize = CGI_QUEUE + 1;
/// Cells from [`COUNTERS`] below this are gauges.
pub(crate) const GAUGES: usize = WSGI_STUCK + 1;
// Maxima (over the workers, and kept for the retired ones).
pub(crate) const WSGI_QUEUE_MAX: usize = GAUGES;
pub(crate) const MAXIMA: usize = WSGI_QUEUE_MAX + 1;
// Who writes the block.
pub(crate) const PID: usize = MAXIMA;
pub(crate) const STARTED_UNIX_US: usize = PID + 1;
/// The first running-request slot.
const SLOTS_AT: usize = STARTED_UNIX_US + 1;
/// Running requests listed per process; more run unlisted (`/status` says how many).
pub(crate) const SLOTS: usize = 64;
const SLOT_WORDS: usize = 32;
const METHOD_WORDS: usize = 2;
const URI_WORDS: usize = SLOT_WORDS - 3 - METHOD_WORDS;
/// A slot being written.
const FILLING: u64 = u64::MAX;
/// Cells per block.
pub(crate) const BLOCK_WORDS: usize = SLOTS_AT + SLOTS * SLOT_WORDS;

/// A protocol's cell index.
pub(crate) fn protocol_index(p: Protocol) -> usize {
    match p {
        Protocol::FastCgi => 0,
        Protocol::Scgi => 1,
        Protocol::Http => 2,
        Protocol::Uwsgi => 3,
        Protocol::Cgi => 4,
    }
}

/// A status's class index: `2xx` for 200..=299, ..., `other` outside 100..=599.
pub(crate) fn class_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => C - 1,
    }
}

/// The bucket a duration falls in.
pub(crate) fn bucket_index(seconds: f64) -> usize {
    BUCKETS
        .iter()
        .position(|&b| seconds <= b)
        .unwrap_or(BUCKETS.len())
}

/// One process's block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block<'a>(pub(crate) &'a [AtomicU64]);

/// A running request as a slot holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Running {
    pub(crate) id: u64,
    pub(crate) started_unix_us: u64,
    pub(crate) method: String,
    pub(crate) uri: String,
}

impl Block<'_> {
    /// Adds `n` to cell `i`.
    pub(crate) fn add(&self, i: usize, n: u64) {
        self.0[i].fetch_add(n, Ordering::Relaxed);
    }

    /// Takes 1 from (gauge) cell `i`.
    pub(crate) fn sub(&self, i: usize) {
        self.0[i].fetch_sub(1, Ordering::Relaxed);
    }

    /// Sets cell `i`.
    pub(crate) fn set(&self, i: usize, v: u64) {
        self.0[i].store(v, Ordering::Relaxed);
    }

    /// Cell `i`.
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.0[i].load(Ordering::Relaxed)
    }

    /// Requests counted in this block.
    pub(crate) fn requests(&self) -> u64 {
        (REQUESTS..REQUESTS + P * C).map(|i| self.get(i)).sum()
    }

    /// Zeroes every cell (the slot ids first, so no reader keeps a half-cleared slot).
    pub(crate) fn clear(&self) {
        for s in 0..SLOTS {
            self.0[SLOTS_AT + s * SLOT_WORDS].store(0, Ordering::Release);
        }
        for c in self.0 {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Lists request `id` (method and uri cut to what a slot holds); false when every slot is
    /// taken.
    pub(crate) fn claim(&self, id: u64, started_unix_us: u64, method: &[u8], uri: &[u8]) -> bool {
        let first = (id as usize) % SLOTS;
        for k in 0..SLOTS {
            let at = SLOTS_AT + ((first + k) % SLOTS) * SLOT_WORDS;
            let slot = &self.0[at..at + SLOT_WORDS];
            if slot[0]
                .compare_exchange(0, FILLING, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            fence(Ordering::Release);
            slot[1].store(started_unix_us, Ordering::Relaxed);
            let method = &method[..method.len().min(METHOD_WORDS * 8)];
            let uri = &uri[..uri.len().min(URI_WORDS * 8)];
            slot[2].store(
                (method.len() as u64) << 32 | uri.len() as u64,
                Ordering::Relaxed,
            );
            store_bytes(&slot[3..3 + METHOD_WORDS], method);
            store_bytes(&slot[3 + METHOD_WORDS..], uri);
            slot[0].store(id, Ordering::Release);
            return true;
        }
        false
    }

    /// Unlists request `id`.
    pub(crate) fn release(&self, id: u64) {
        let first = (id as usize) % SLOTS;
        for k in 0..SLOTS {
            let at = SLOTS_AT + ((first + k) % SLOTS) * SLOT_WORDS;
            let cell = &self.0[at];
            if cell.load(Ordering::Relaxed) == id {
                cell.store(0, Ordering::Release);
                return;
            }
        }
    }

    /// The requests listed now.
    pub(crate) fn running(&self) -> Vec<Running> {
        let mut out = Vec::new();
        for s in 0..SLOTS {
            let at = SLOTS_AT + s * SLOT_WORDS;
            let slot = &self.0[at..at + SLOT_WORDS];
            let id = slot[0].load(Ordering::Acquire);
            if id == 0 || id == FILLING {
                continue;
            }
            let started_unix_us = slot[1].load(Ordering::Relaxed);
            let lens = slot[2].load(Ordering::Relaxed);
            let method = load_bytes(&slot[3..3 + METHOD_WORDS], (lens >> 32) as usize);
            let uri = load_bytes(&slot[3 + METHOD_WORDS..], (lens & 0xffff_ffff) as usize);
            fence(Ordering::Acquire);
            if slot[0].load(Ordering::Relaxed) != id {
                continue;
            }
            out.push(Running {
                id,
                started_unix_us,
                method: String::from_utf8_lossy(&method).into_owned(),
                uri: String::from_utf8_lossy(&uri).into_owned(),
            });
        }
        out.sort_by_key(|r| r.started_unix_us);
        out
    }
}

fn store_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (w, chunk) in words.iter().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        w.store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
}

fn load_bytes(words: &[AtomicU64], len: usize) -> Vec<u8> {
    let len = len.min(words.len() * 8);
    let mut out: Vec<u8> = words
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
        .collect();
    out.truncate(len);
    out
}

/// Sums of cells over blocks (and a retired total).
#[derive(Debug, Clone)]
pub(crate) struct Totals(pub(crate) Vec<u64>);

impl Totals {
    /// Counters summed (with `retired`), gauges summed, maxima the largest.
    pub(crate) fn of<'a>(blocks: impl Iterator<Item = Block<'a>>, retired: &[u64]) -> Self {
        let mut t = vec![0u64; MAXIMA];
        t[..retired.len().min(MAXIMA)].copy_from_slice(&retired[..retired.len().min(MAXIMA)]);
        for b in blocks {
            for (i, v) in t.iter_mut().enumerate() {
                let cell = b.get(i);
                if i >= GAUGES {
                    *v = (*v).max(cell);
                } else {
                    *v = v.wrapping_add(cell);
                }
            }
        }
        Self(t)
    }

    /// Cell `i` (a counter, or a maximum).
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.0[i]
    }

    /// Gauge cell `i`, which a process may have taken below 0 for a moment.
    pub(crate) fn gauge(&self, i: usize) -> i64 {
        self.0[i] as i64
    }

    /// Requests per protocol and class.
    pub(crate) fn requests(&self, p: usize, c: usize) -> u64 {
        self.get(REQUESTS + p * C + c)
    }

    /// All requests.
    pub(crate) fn all_requests(&self) -> u64 {
        (0..P * C).map(|i| self.get(REQUESTS + i)).sum()
    }

    /// A protocol's histogram: each bucket's own count (upper bound, count; not cumulative),
    /// the count and the sum in seconds.
    pub(crate) fn histogram(&self, p: usize) -> (Vec<(f64, u64)>, u64, f64) {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(NB);
        for b in 0..NB {
            let n = self.get(DURATION + p * NB + b);
            acc += n;
            let bound = BUCKETS.get(b).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, n));
        }
        let sum = self.get(DURATION_SUM_US + p) as f64 / 1e6;
        (buckets, acc, sum)
    }
}

/// Adds a retiring block's counters and maxima into `retired` (of [`MAXIMA`] cells).
pub(crate) fn retire(block: Block<'_>, retired: &mut [u64]) {
    for (i, r) in retired.iter_mut().enumerate().take(MAXIMA) {
        let cell = block.get(i);
        if i < COUNTERS {
            *r = r.wrapping_add(cell);
        } else if i >= GAUGES {
            *r = (*r).max(cell);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn classes_and_buckets() {
        assert_eq!(CLASSES[class_index(200)], "2xx");
        assert_eq!(CLASSES[class_index(499)], "4xx");
        assert_eq!(CLASSES[class_index(599)], "5xx");
        assert_eq!(CLASSES[class_index(0)], "other");
        assert_eq!(CLASSES[class_index(700)], "other");
        assert_eq!(bucket_index(0.0), 0);
        assert_eq!(bucket_index(0.001), 0);
        assert_eq!(bucket_index(0.002), 1);
        assert_eq!(bucket_index(11.0), BUCKETS.len());
    }

    #[test]
    fn totals_sum_counters_and_keep_retired() {
        let (a, b) = (cells(BLOCK_WORDS), cells(BLOCK_WORDS));
        let (a, b) = (Block(&a), Block(&b));
        a.add(REQUESTS + 1, 3); // fastcgi 2xx
        b.add(REQUESTS + 1, 2);
        a.add(IN_FLIGHT, 1);
        a.set(WSGI_QUEUE_MAX, 4);
        b.set(WSGI_QUEUE_MAX, 7);
        let mut retired = vec![0; MAXIMA];
        let t = Totals::of([a, b].into_iter(), &retired);
        assert_eq!(t.requests(0, 1), 5);
        assert_eq!(t.gauge(IN_FLIGHT), 1);
        assert_eq!(t.get(WSGI_QUEUE_MAX), 7);
        retire(b, &mut retired);
        b.clear();
        let t = Totals::of([a, b].into_iter(), &retired);
        assert_eq!(t.requests(0, 1), 5, "retired counters stay");
        assert_eq!(t.get(WSGI_QUEUE_MAX), 7, "retired maxima stay");
        a.sub(IN_FLIGHT);
        a.sub(IN_FLIGHT);
        assert_eq!(Totals::of([a].into_iter(), &retired).gauge(IN_FLIGHT), -1);
    }

    #[test]
    fn histogram_buckets_count_and_sum() {
        let a = cells(BLOCK_WORDS);
        let a = Block(&a);
        a.add(DURATION + 2 * NB + bucket_index(0.0005), 1);
        a.add(DURATION + 2 * NB + bucket_index(0.3), 2);
        a.add(DURATION_SUM_US + 2, 600_500);
        let (buckets, count, sum) = Totals::of([a].into_iter(), &[]).histogram(2);
        assert_eq!(count, 3);
        assert!((sum - 0.6005).abs() < 1e-9);
        assert_eq!(buckets[0], (0.001, 1));
        assert_eq!(buckets[7], (0.25, 0));
        assert_eq!(buckets[8], (0.5, 2));
        assert_eq!(*buckets.last().unwrap(), (f64::INFINITY, 0));
    }

    #[test]
    fn running_slots() {
        let a = cells(BLOCK_WORDS);
        let a = Block(&a);
        let long = vec![b'x'; 1000];
        assert!(a.claim(7, 100, b"GET", b"/slow?q=1"));
        assert!(a.claim(7 + SLOTS as u64, 50, b"POST", &long));
        let listed = a.running();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].method, "POST");
        assert_eq!(listed[0].uri.len(), URI_WORDS * 8);
        assert_eq!(listed[1].uri, "/slow?q=1");
        a.release(7);
        assert_eq!(a.running().len(), 1);
        for id in 100..100 + SLOTS as u64 - 1 {
            assert!(a.claim(id, 1, b"GET", b"/"));
        }
        assert!(!a.claim(9999, 1, b"GET", b"/"), "all slots taken");
        a.clear();
        assert!(a.running().is_empty());
    }
}
