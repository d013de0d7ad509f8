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
//! previous answer never meets a spurious 503.
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
//! Threads keep one thread state each, attached to CPython for life.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;

use crate::config::Config;
use crate::environ::{Flags, Template};
use crate::error::Error;
use crate::stats;
use crate::worker::{self, Job};

/// The running pool; dropping it lets the threads finish their jobs and exit.
pub(crate) struct Pool {
    queue: Arc<Queue>,
    admitted: Arc<AtomicUsize>,
    threads: usize,
    queue_len: usize,
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
struct Queue {
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
    /// A queued job, else `None` with `seat` registered as idle (the caller then waits on it).
    /// `Err(())` once the pool is dropped and the queue is empty.
    fn take_or_sit(&self, seat: &Arc<Seat>) -> Result<Option<Job>, ()> {
        let mut state = lock(&self.state);
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
}

impl Pool {
    /// Starts `config.threads` threads (at least one) serving `app`.
    pub(crate) fn start(app: Py<PyAny>, config: &Config) -> Result<Self, Error> {
        let threads = config.threads.max(1);
        let pool = Self {
            queue: Arc::default(),
            admitted: Arc::new(AtomicUsize::new(0)),
            threads,
            queue_len: config.queue,
        };
        let app = Arc::new(app);
        let flags = Flags {
            multithread: threads > 1,
            multiprocess: config.multiprocess,
        };
        for n in 0..threads {
            let (queue, app) = (pool.queue.clone(), app.clone());
            std::thread::Builder::new()
                .name(format!("wsgi-{n}"))
                .spawn(move || work(&queue, &app, flags))
                .map_err(Error::Io)?;
        }
        Ok(pool)
    }

    /// Admits a request, or refuses it when every thread is busy and the queue is full.
    pub(crate) fn admit(&self) -> Result<Permit, Error> {
        let limit = self.threads.saturating_add(self.queue_len);
        let previous = self.admitted.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(self.admitted.clone());
        if previous >= limit {
            stats::rejected();
            return Err(Error::Overloaded {
                threads: self.threads,
                queue: self.queue_len,
            });
        }
        Ok(permit)
    }

    /// Hands an admitted job to the thread idle the shortest time, else queues it for the next
    /// thread to finish.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Error> {
        let mut state = self.queue.lock_state();
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

    /// The number of threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = {
            let mut state = self.queue.lock_state();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        for seat in idle {
            seat.hand(SeatState::Closed);
        }
    }
}

impl Queue {
    fn lock_state(&self) -> MutexGuard<'_, QueueState> {
        lock(&self.state)
    }
}

/// A pool thread: attached to the interpreter, serving jobs until the pool is dropped. The GIL
/// is released only while it waits for a job (and inside the job, while it waits for I/O).
fn work(queue: &Queue, app: &Py<PyAny>, flags: Flags) {
    let seat = Arc::new(Seat::default());
    Python::attach(|py| {
        let template = match Template::new(py, flags) {
            Ok(template) => template,
            Err(e) => {
                // Only a failing allocation gets here; the thread is of no use without it.
                tracing::error!(error = %e, "wsgi pool thread cannot start");
                return;
            }
        };
        stats::thread_started();
        serve_jobs(py, queue, &seat, app, &template);
        stats::thread_ended();
    });
}

/// Takes jobs (queued ones first, with the GIL held) until the pool is dropped.
fn serve_jobs(
    py: Python<'_>,
    queue: &Queue,
    seat: &Arc<Seat>,
    app: &Py<PyAny>,
    template: &Template,
) {
    loop {
        let job = match queue.take_or_sit(seat) {
            Ok(Some(job)) => job,
            Ok(None) => match py.detach(|| seat.wait()) {
                Some(job) => job,
                None => return,
            },
            Err(()) => return,
        };
        let info = job.req.info.clone();
        stats::job_started();
        // A panic is a bug of ours: the job's reply is dropped (its request gets a 500) and
        // the thread keeps serving, so the pool does not shrink.
        if catch_unwind(AssertUnwindSafe(|| worker::run(py, app, template, job))).is_err() {
            tracing::error!(
                peer = %info.peer,
                request_id = info.id,
                "wsgi worker panicked while serving the request"
            );
        }
        stats::job_ended();
    }
}
