//! The bounded pool of Python threads and its bounded queue.
//!
//! ```text
//!   WsgiApp::call ── try_send ──► [ queue: `queue` jobs ] ──► N threads, each Python::attach
//!        └─ queue full: 503                                    └─ waiting for a job: GIL released
//! ```
//!
//! Admission is a counter of requests admitted and not yet answered (running or queued), taken
//! before the job is queued: at most `threads + queue`. The permit travels in the job and is
//! given back just before the answer, so a client sending its next request as soon as it has
//! the previous answer never meets a spurious 503. The channel itself has room for every admitted
//! job and never refuses one. Threads stay attached to the interpreter for their whole life (one
//! thread state each, reused), and release the GIL while they wait for work, for request bytes
//! and for the client.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;

use crate::config::Config;
use crate::environ::Flags;
use crate::error::Error;
use crate::worker::{self, Job};

/// The running pool; dropping it lets the threads finish their jobs and exit.
pub(crate) struct Pool {
    tx: SyncSender<Job>,
    admitted: Arc<AtomicUsize>,
    threads: usize,
    queue: usize,
}

/// One admitted request; dropping it (answered, or dropped unserved) frees its place.
#[derive(Debug)]
pub(crate) struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    /// Starts `config.threads` threads (at least one) serving `app`.
    pub(crate) fn start(app: Py<PyAny>, config: &Config) -> Result<Self, Error> {
        let threads = config.threads.max(1);
        let (tx, rx) = mpsc::sync_channel(threads.saturating_add(config.queue));
        let rx = Arc::new(Mutex::new(rx));
        let app = Arc::new(app);
        let flags = Flags {
            multithread: threads > 1,
            multiprocess: config.multiprocess,
        };
        for n in 0..threads {
            let (rx, app) = (rx.clone(), app.clone());
            std::thread::Builder::new()
                .name(format!("wsgi-{n}"))
                .spawn(move || work(&rx, &app, flags))
                .map_err(Error::Io)?;
        }
        Ok(Self {
            tx,
            admitted: Arc::new(AtomicUsize::new(0)),
            threads,
            queue: config.queue,
        })
    }

    /// Admits a request: `None` when every thread is busy and the queue is full.
    pub(crate) fn admit(&self) -> Result<Permit, Error> {
        let limit = self.threads.saturating_add(self.queue);
        let previous = self.admitted.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(self.admitted.clone());
        if previous >= limit {
            return Err(Error::Overloaded {
                threads: self.threads,
                queue: self.queue,
            });
        }
        Ok(permit)
    }

    /// Queues an admitted job.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Error> {
        self.tx.try_send(job).map_err(|e| match e {
            // Cannot happen: the channel has room for every admitted job.
            TrySendError::Full(_) => Error::Overloaded {
                threads: self.threads,
                queue: self.queue,
            },
            TrySendError::Disconnected(_) => Error::WorkerLost,
        })
    }

    /// The number of threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }
}

/// A pool thread: attached to the interpreter, serving jobs until the pool is dropped.
fn work(rx: &Mutex<Receiver<Job>>, app: &Py<PyAny>, flags: Flags) {
    Python::attach(|py| loop {
        let next = py.detach(|| rx.lock().unwrap_or_else(PoisonError::into_inner).recv());
        let Ok(job) = next else {
            return;
        };
        // A panic is a bug of ours: the job's `done` is dropped (its request gets a 500) and the
        // thread keeps serving, so the pool does not shrink.
        if catch_unwind(AssertUnwindSafe(|| worker::run(py, app, flags, job))).is_err() {
            tracing::error!("wsgi worker panicked while serving a request");
        }
    });
}
