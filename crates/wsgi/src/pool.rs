//! The bounded pool of Python threads and its bounded queue.
//!
//! ```text
//!   WsgiApp::call ── admit ──► [ queue ] ──► N threads, each attached to CPython for life
//!        └─ more than threads + queue admitted: 503      └─ waiting for a job: GIL released
//! ```
//!
//! Admission is a counter of requests admitted and not yet answered (running or queued), taken
//! before the job is queued: at most `threads + queue`. The permit travels in the job and is
//! given back just before the answer, so a client sending its next request as soon as it has the
//! previous answer never meets a spurious 503. The queue is a `VecDeque` under a mutex with a
//! condition variable: a job wakes exactly one idle thread (a shared `mpsc::Receiver` behind a
//! mutex would wake a second thread per job to take over the `recv`). Threads keep one thread
//! state each, and release the GIL while they wait for work, for request bytes and for the client.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use pyo3::prelude::*;

use crate::config::Config;
use crate::environ::Flags;
use crate::error::Error;
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

/// Jobs waiting for a thread.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next job, waiting for one; `None` once the pool is dropped and the queue is empty.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
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
            return Err(Error::Overloaded {
                threads: self.threads,
                queue: self.queue_len,
            });
        }
        Ok(permit)
    }

    /// Queues an admitted job for the next idle thread.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Error> {
        let mut state = self.queue.lock();
        if state.closed {
            return Err(Error::WorkerLost);
        }
        state.jobs.push_back(job);
        drop(state);
        self.queue.ready.notify_one();
        Ok(())
    }

    /// The number of threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

/// A pool thread: attached to the interpreter, serving jobs until the pool is dropped.
fn work(queue: &Queue, app: &Py<PyAny>, flags: Flags) {
    Python::attach(|py| {
        while let Some(job) = py.detach(|| queue.next()) {
            let info = job.req.info.clone();
            // A panic is a bug of ours: the job's `done` is dropped (its request gets a 500) and
            // the thread keeps serving, so the pool does not shrink.
            if catch_unwind(AssertUnwindSafe(|| worker::run(py, app, flags, job))).is_err() {
                tracing::error!(
                    peer = %info.peer,
                    request_id = info.id,
                    "wsgi worker panicked while serving the request"
                );
            }
        }
    });
}
