//! The bounded pool of Python threads and its bounded queue.
//!
//! ```text
//!   WsgiApp::call ── admit ──► idle thread? ── yes: handed to the one idle the shortest time
//!        │                          └── no: [ queue ] ──► taken by the next thread to finish
//!        └─ more than threads + queue admitted: 503      (with the GIL still held)
//! ```
//!
//! Admission is a counter of requests admitted and not yet answered (running or queued), taken
//! before the job is queued: at most `threads + queue`. The permit travels in the job and is
//! given back just before the answer, so a client sending its next request as soon as it has the
//! previous answer never meets a spurious 503. A queued job whose client goes away is withdrawn
//! from the queue at once ([`Pool::withdraw`]), and its place with it; so is one whose
//! `--request-timeout` runs out while it waits (by the [`watchdog`]).
//!
//! Each hand-over between threads is a futex wake and a context switch, and every thread that
//! wakes up to run Python first has to win the GIL from the others; on a loaded machine those
//! cost more than a small app itself. So:
//! - a job goes straight to one idle thread, the one that went idle last (LIFO): under a light
//!   load one hot thread serves everything, with its caches warm, and exactly one thread wakes
//!   per job (never one that then finds nothing to do);
//! - a thread that finishes a job takes the next queued one without releasing the GIL, and
//!   releases it only to wait for work (also for request bytes and for the client).
//!
//! Threads keep one thread state each, attached to CPython for life. With time limits set, each
//! thread also has a [`Slot`] saying which request it runs (its permit moves there), for the
//! watchdog: a thread whose request it declares stuck leaves the pool when that request finally
//! returns, and a replacement takes its place.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_channel_request::env::REQUEST_URI;
use gatehouse_channel_request::Request;
use pyo3::prelude::*;

use crate::config::Config;
use crate::environ::{Flags, Template};
use crate::error::Error;
use crate::interpreter;
use crate::outbox::OutHandle;
use crate::stats;
use crate::watchdog;
use crate::worker::{self, Job};

/// The running pool; dropping it lets the threads finish their jobs and exit.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    admitted: Arc<AtomicUsize>,
    queue_len: usize,
    /// Stops the watchdog when dropped.
    _watchdog: Option<watchdog::Handle>,
}

/// What the pool's threads and its watchdog share.
pub(crate) struct Shared {
    pub(crate) queue: Queue,
    app: Py<PyAny>,
    flags: Flags,
    /// The number of threads asked for (`--threads`).
    pub(crate) threads: usize,
    /// The time limits; `None` when none is set (then nothing is tracked per request).
    pub(crate) limits: Option<Limits>,
    /// Every thread's slot, when `limits` is set.
    pub(crate) slots: Mutex<Vec<Arc<Slot>>>,
    /// Threads of this pool declared stuck that have not returned yet.
    pub(crate) stuck: AtomicUsize,
    /// Numbers the threads' names (`wsgi-N`).
    next_thread: AtomicUsize,
}

/// `--request-timeout` and `--slow-log-timeout`, at least one set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) slow_log_timeout: Option<Duration>,
}

/// One admitted request; dropping it (answered, or dropped unserved) frees its place.
#[derive(Debug)]
pub(crate) struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Jobs waiting for a thread, and the threads waiting for a job.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    /// Idle threads, the one idle the shortest time last.
    idle: Vec<Arc<Seat>>,
    closed: bool,
}

/// Where one idle thread waits for the job handed to it.
#[derive(Default)]
struct Seat {
    state: Mutex<SeatState>,
    ready: Condvar,
}

#[derive(Default)]
enum SeatState {
    #[default]
    Waiting,
    Job(Job),
    Closed,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Seat {
    /// Gives the waiting thread its job (or the pool's end) and wakes it.
    fn hand(&self, state: SeatState) {
        *lock(&self.state) = state;
        self.ready.notify_one();
    }

    /// Waits for a job; `None` when the pool is dropped.
    fn wait(&self) -> Option<Job> {
        let mut state = lock(&self.state);
        loop {
            match std::mem::take(&mut *state) {
                SeatState::Waiting => {}
                SeatState::Job(job) => return Some(job),
                SeatState::Closed => return None,
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Queue {
    fn lock_state(&self) -> MutexGuard<'_, QueueState> {
        lock(&self.state)
    }

    /// A queued job, else `None` with `seat` registered as idle (the caller then waits on it).
    /// `Err(())` once the pool is dropped and the queue is empty.
    fn take_or_sit(&self, seat: &Arc<Seat>) -> Result<Option<Job>, ()> {
        let mut state = self.lock_state();
        if let Some(job) = state.jobs.pop_front() {
            stats::dequeued(1);
            return Ok(Some(job));
        }
        if state.closed {
            return Err(());
        }
        state.idle.push(seat.clone());
        Ok(None)
    }

    /// Removes the queued job of request `id`, if it is still queued.
    fn withdraw(&self, id: u64) -> Option<Job> {
        let mut state = self.lock_state();
        let at = state.jobs.iter().position(|job| job.req.info.id == id)?;
        let job = state.jobs.remove(at);
        stats::dequeued(1);
        job
    }

    /// Removes the queued jobs admitted `limit` or more before `now`.
    pub(crate) fn take_expired(&self, now: Instant, limit: Duration) -> Vec<Job> {
        let mut state = self.lock_state();
        let mut expired = Vec::new();
        let mut i = 0;
        while i < state.jobs.len() {
            if now.saturating_duration_since(state.jobs[i].admitted) >= limit {
                expired.extend(state.jobs.remove(i));
            } else {
                i += 1;
            }
        }
        stats::dequeued(expired.len());
        expired
    }
}

impl Pool {
    /// Starts `config.threads` threads (at least one) serving `app`, and the watchdog when a
    /// time limit is set.
    pub(crate) fn start(app: Py<PyAny>, config: &Config) -> Result<Self, Error> {
        let threads = config.threads.max(1);
        let limits = (config.request_timeout.is_some() || config.slow_log_timeout.is_some())
            .then_some(Limits {
                request_timeout: config.request_timeout,
                slow_log_timeout: config.slow_log_timeout,
            });
        let shared = Arc::new(Shared {
            queue: Queue::default(),
            app,
            flags: Flags {
                multithread: threads > 1,
                multiprocess: config.multiprocess,
            },
            threads,
            limits,
            slots: Mutex::new(Vec::new()),
            stuck: AtomicUsize::new(0),
            next_thread: AtomicUsize::new(0),
        });
        for _ in 0..threads {
            shared.spawn_thread().map_err(Error::Io)?;
        }
        let watchdog = match limits {
            Some(limits) => Some(watchdog::start(shared.clone(), limits).map_err(Error::Io)?),
            None => None,
        };
        Ok(Self {
            shared,
            admitted: Arc::new(AtomicUsize::new(0)),
            queue_len: config.queue,
            _watchdog: watchdog,
        })
    }

    /// Admits a request, or refuses it when every thread is busy and the queue is full.
    pub(crate) fn admit(&self) -> Result<Permit, Error> {
        let threads = self.shared.threads;
        let limit = threads.saturating_add(self.queue_len);
        let previous = self.admitted.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(self.admitted.clone());
        if previous >= limit {
            stats::rejected();
            return Err(Error::Overloaded {
                threads,
                queue: self.queue_len,
            });
        }
        Ok(permit)
    }

    /// Hands an admitted job to the thread idle the shortest time, else queues it for the next
    /// thread to finish.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Error> {
        let mut state = self.shared.queue.lock_state();
        if state.closed {
            return Err(Error::WorkerLost);
        }
        match state.idle.pop() {
            Some(seat) => {
                drop(state);
                seat.hand(SeatState::Job(job));
            }
            None => {
                state.jobs.push_back(job);
                stats::queued();
            }
        }
        Ok(())
    }

    /// Takes the job of request `id` out of the queue if no thread has taken it yet: its place
    /// is free at once (its client went away). Whether it was still queued.
    pub(crate) fn withdraw(&self, id: u64) -> bool {
        // Dropped outside the queue's lock.
        self.shared.queue.withdraw(id).is_some()
    }

    /// The number of threads.
    pub(crate) fn threads(&self) -> usize {
        self.shared.threads
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = {
            let mut state = self.shared.queue.lock_state();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        for seat in idle {
            seat.hand(SeatState::Closed);
        }
    }
}

impl Shared {
    /// Starts one more pool thread; its name.
    pub(crate) fn spawn_thread(self: &Arc<Self>) -> std::io::Result<String> {
        let n = self.next_thread.fetch_add(1, Ordering::Relaxed);
        let name = format!("wsgi-{n}");
        let shared = self.clone();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || work(&shared))?;
        Ok(name)
    }
}

/// One pool thread, as the watchdog sees it.
pub(crate) struct Slot {
    /// `threading.get_ident()` of the thread.
    pub(crate) tid: u64,
    /// The thread's name, for logs.
    pub(crate) name: String,
    pub(crate) state: Mutex<SlotState>,
}

#[derive(Default)]
pub(crate) struct SlotState {
    /// The request the thread runs.
    pub(crate) current: Option<Running>,
    /// Declared stuck: the thread leaves the pool when its request returns.
    pub(crate) abandoned: bool,
}

/// The request a thread runs, and what the watchdog did about it.
pub(crate) struct Running {
    pub(crate) meta: Arc<Meta>,
    /// Its place in the pool: given back when the thread is done, or when it is declared stuck.
    pub(crate) permit: Option<Permit>,
    /// To answer it `504` when it times out.
    pub(crate) outbox: Option<OutHandle>,
    pub(crate) slow_logged: bool,
    pub(crate) timed_out_at: Option<Instant>,
    /// An exception was scheduled in the thread.
    pub(crate) raised: bool,
}

/// A request, as its log lines name it.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) id: u64,
    pub(crate) peer: String,
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) admitted: Instant,
}

impl Meta {
    /// Escaped for the log: every byte from the peer.
    pub(crate) fn new(req: &Request, admitted: Instant) -> Self {
        let uri = match req.env.get(REQUEST_URI) {
            Some(uri) => uri.escape_ascii().to_string(),
            None => {
                let mut uri = req.env.path();
                if !req.env.query().is_empty() {
                    uri.push(b'?');
                    uri.extend_from_slice(req.env.query());
                }
                uri.escape_ascii().to_string()
            }
        };
        Self {
            id: req.info.id,
            peer: req.info.peer.to_string(),
            method: req.env.method().escape_ascii().to_string(),
            uri,
            admitted,
        }
    }
}

impl Slot {
    /// The thread starts a request.
    fn begin(&self, running: Running) {
        lock(&self.state).current = Some(running);
    }

    /// The thread is done with its request (before its answer goes out): the permit is given
    /// back, and an exception scheduled too late is withdrawn (the GIL is held, so the watchdog
    /// cannot schedule one between the two). Idempotent.
    fn end(&self, py: Python<'_>) {
        let (done, abandoned) = {
            let mut state = lock(&self.state);
            (state.current.take(), state.abandoned)
        };
        let Some(done) = done else { return };
        if done.raised {
            interpreter::clear_raised(py, self.tid);
        }
        if let (Some(at), false) = (done.timed_out_at, abandoned) {
            tracing::info!(
                thread = %self.name,
                request_id = done.meta.id,
                "wsgi thread free again {} ms after its request timed out",
                at.elapsed().as_millis()
            );
        }
    }
}

/// How a pool thread's loop ended.
enum Exit {
    /// The pool was dropped.
    Closed,
    /// The thread was declared stuck; its request has now returned.
    Abandoned,
}

/// A pool thread: attached to the interpreter, serving jobs until the pool is dropped (or until
/// it is declared stuck and its request returns). The GIL is released only while it waits for
/// a job (and inside the job, while it waits for I/O).
fn work(shared: &Arc<Shared>) {
    let seat = Arc::new(Seat::default());
    Python::attach(|py| {
        let template = match Template::new(py, shared.flags) {
            Ok(template) => template,
            Err(e) => {
                // Only a failing allocation gets here; the thread is of no use without it.
                tracing::error!(error = %e, "wsgi pool thread cannot start");
                return;
            }
        };
        let slot = shared.limits.and_then(|_| register(py, shared));
        stats::thread_started();
        let exit = serve_jobs(py, shared, &seat, slot.as_ref(), &template);
        if let Some(slot) = &slot {
            lock(&shared.slots).retain(|s| !Arc::ptr_eq(s, slot));
        }
        match exit {
            Exit::Closed => stats::thread_ended(),
            Exit::Abandoned => {
                shared.stuck.fetch_sub(1, Ordering::Relaxed);
                stats::unstuck();
                let name = slot.as_ref().map(|s| s.name.as_str()).unwrap_or_default();
                tracing::warn!(
                    thread = name,
                    "stuck wsgi thread returned from its timed-out request; it exits (a replacement serves in its place)"
                );
            }
        }
    });
}

/// The calling thread's slot, registered with the watchdog.
fn register(py: Python<'_>, shared: &Shared) -> Option<Arc<Slot>> {
    let tid = py
        .import("threading")
        .and_then(|t| t.call_method0("get_ident"))
        .and_then(|id| id.extract::<u64>());
    let name = std::thread::current().name().unwrap_or("wsgi").to_owned();
    match tid {
        Ok(tid) => {
            let slot = Arc::new(Slot {
                tid,
                name,
                state: Mutex::default(),
            });
            lock(&shared.slots).push(slot.clone());
            Some(slot)
        }
        Err(e) => {
            tracing::error!(thread = %name, error = %e,
                "cannot read the Python id of a wsgi thread: its requests are not timed");
            None
        }
    }
}

/// Takes jobs (queued ones first, with the GIL held) until the pool is dropped.
fn serve_jobs(
    py: Python<'_>,
    shared: &Shared,
    seat: &Arc<Seat>,
    slot: Option<&Arc<Slot>>,
    template: &Template,
) -> Exit {
    loop {
        let job = match shared.queue.take_or_sit(seat) {
            Ok(Some(job)) => job,
            Ok(None) => match py.detach(|| seat.wait()) {
                Some(job) => job,
                None => return Exit::Closed,
            },
            Err(()) => return Exit::Closed,
        };
        serve_one(py, shared, slot, template, job);
        if slot.is_some_and(|slot| lock(&slot.state).abandoned) {
            return Exit::Abandoned;
        }
    }
}

/// Runs one job on this thread.
fn serve_one(
    py: Python<'_>,
    shared: &Shared,
    slot: Option<&Arc<Slot>>,
    template: &Template,
    job: Job,
) {
    if job.reply.is_closed() {
        // Cancelled while it waited in the queue: nobody listens any more.
        return;
    }
    let timeout = shared.limits.and_then(|l| l.request_timeout);
    if let Some(limit) = timeout.filter(|&limit| job.admitted.elapsed() >= limit) {
        // Its time ran out in the queue, before the watchdog saw it there.
        watchdog::expire_queued(job, limit);
        return;
    }
    let Job {
        req,
        reply,
        permit,
        admitted,
    } = job;
    let info = req.info.clone();
    stats::job_started();
    let permit = match slot {
        Some(slot) => {
            slot.begin(Running {
                meta: Arc::new(Meta::new(&req, admitted)),
                permit: Some(permit),
                outbox: reply.handle(),
                slow_logged: false,
                timed_out_at: None,
                raised: false,
            });
            None
        }
        None => Some(permit),
    };
    let release = move |py: Python<'_>| {
        drop(permit);
        if let Some(slot) = slot {
            slot.end(py);
        }
    };
    // A panic is a bug of ours: the job's reply is dropped (its request gets a 500) and the
    // thread keeps serving, so the pool does not shrink.
    let run = catch_unwind(AssertUnwindSafe(|| {
        worker::run(py, &shared.app, template, req, reply, release);
    }));
    if run.is_err() {
        tracing::error!(
            peer = %info.peer,
            request_id = info.id,
            "wsgi worker panicked while serving the request"
        );
    }
    if let Some(slot) = slot {
        slot.end(py);
    }
    // A thread declared stuck left the busy count then (only while it had a request, which
    // `end` has cleared: the flag cannot change under us now).
    if !slot.is_some_and(|slot| lock(&slot.state).abandoned) {
        stats::job_ended();
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};

    use gatehouse_channel_request::{Env, Peer, Protocol, RequestBody, RequestInfo};

    use super::*;
    use crate::outbox::{outbox, Next, OutReceiver};

    fn job(admitted: Instant, counter: &Arc<AtomicUsize>) -> (Job, OutReceiver, u64) {
        let mut env = Env::default();
        env.set("REQUEST_METHOD", "GET");
        env.set("REQUEST_URI", "/a\nb");
        let info = RequestInfo::new(Protocol::Http, Peer::Stdio);
        let id = info.id;
        let (reply, out) = outbox();
        counter.fetch_add(1, Ordering::AcqRel);
        let job = Job {
            req: Request {
                env,
                body: RequestBody::empty(),
                info,
            },
            reply,
            permit: Permit(counter.clone()),
            admitted,
        };
        (job, out, id)
    }

    fn poll(out: &mut OutReceiver) -> Poll<Next> {
        out.poll_next(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn withdrawn_and_expired_jobs_leave_the_queue_and_free_their_place() {
        let queue = Queue::default();
        let admitted = Arc::new(AtomicUsize::new(0));
        let now = Instant::now();
        let old = now.checked_sub(Duration::from_secs(10)).unwrap_or(now);
        let (a, _out_a, id_a) = job(now, &admitted);
        let (b, mut out_b, _) = job(old, &admitted);
        let (c, _out_c, id_c) = job(now, &admitted);
        {
            let mut state = queue.lock_state();
            state.jobs.extend([a, b, c]);
        }
        assert_eq!(admitted.load(Ordering::Acquire), 3);

        // The client of `a` left: its job goes, and its place with it.
        assert!(queue.withdraw(id_a).is_some());
        assert!(queue.withdraw(id_a).is_none(), "only once");
        assert_eq!(admitted.load(Ordering::Acquire), 2);

        // `b` waited 10 s: past a 5 s limit, `c` is not.
        let expired = queue.take_expired(now, Duration::from_secs(5));
        assert_eq!(expired.len(), 1);
        assert!(matches!(poll(&mut out_b), Poll::Pending));
        for job in expired {
            watchdog::expire_queued(job, Duration::from_secs(5));
        }
        assert!(matches!(poll(&mut out_b), Poll::Ready(Next::TimedOut)));
        assert_eq!(admitted.load(Ordering::Acquire), 1);
        let left: Vec<u64> = queue
            .lock_state()
            .jobs
            .iter()
            .map(|j| j.req.info.id)
            .collect();
        assert_eq!(left, [id_c]);
    }

    #[test]
    fn a_timed_out_request_wins_over_its_outcome_and_logs_escaped() {
        let admitted = Arc::new(AtomicUsize::new(0));
        let (job, mut out, _) = job(Instant::now(), &admitted);
        let meta = Meta::new(&job.req, job.admitted);
        assert_eq!(meta.uri, "/a\\nb", "peer bytes are escaped for the log");
        let handle = job.reply.handle().unwrap();
        handle.time_out();
        job.reply.finish(Ok(()));
        assert!(matches!(poll(&mut out), Poll::Ready(Next::TimedOut)));
        drop(job.permit);
        assert_eq!(admitted.load(Ordering::Acquire), 0);
    }
}
