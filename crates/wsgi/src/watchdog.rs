//! The time limits of a pool (`--request-timeout`, `--slow-log-timeout`): one thread per pool
//! that looks at the queue and at every pool thread's [`Slot`] a few times per second.
//!
//! ```text
//!  queued past the timeout ──► taken out of the queue, 504 without running, its place freed
//!  running past the slow-log timeout ──► traceback of its thread logged once (warn)
//!  running past the timeout ──► 504 now (or the response cut, if begun); traceback logged;
//!        │                      RequestTimeout raised in its thread (PyThreadState_SetAsyncExc)
//!        ├─ Python code: the app call ends, close() runs, the thread serves the next job
//!        └─ still busy STUCK_GRACE later (blocked in C: time.sleep, a socket read): stuck.
//!             Its place is freed, a replacement thread starts (at most --threads of them at a
//!             time), the stuck-thread hook runs (a worker asks its master to recycle it), and
//!             the stuck thread exits whenever its request returns.
//! ```
//!
//! Everything the watchdog learns it learns under a slot's lock, and it runs Python code
//! (formatting a stack) only with no lock held: nobody waits for the GIL while holding a slot's
//! lock (pool threads take theirs with the GIL held; the scan takes them without it). An exception is scheduled only while the thread's
//! slot still names the timed-out request, with the GIL held; the thread itself withdraws any
//! exception scheduled too late when it leaves the request (also with the GIL held), so an
//! exception meant for one request never lands in the next.
//!
//! Times count from admission (queueing included), as the client sees them.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::interpreter;
use crate::pool::{lock, Limits, Meta, Shared, Slot};
use crate::stats;
use crate::worker::Job;

pyo3::create_exception!(
    gatehouse,
    RequestTimeout,
    pyo3::exceptions::PyBaseException,
    "Raised in a WSGI thread whose request ran out of gatehouse's --request-timeout. A \
     BaseException, like KeyboardInterrupt, so that `except Exception` in the app lets it through."
);

/// How long a thread may take to leave its request after the exception was scheduled before
/// it counts as stuck.
pub(crate) const STUCK_GRACE: Duration = Duration::from_secs(1);

/// The watchdog looks every tenth of the shortest limit, within these bounds.
const MAX_TICK: Duration = Duration::from_millis(100);
const MIN_TICK: Duration = Duration::from_millis(10);

type Hook = Arc<dyn Fn() + Send + Sync>;

static STUCK_HOOK: OnceLock<Mutex<Option<Hook>>> = OnceLock::new();

/// Runs `hook` (on the watchdog's thread) each time a WSGI thread of any pool of the process is
/// declared stuck: a worker process uses it to ask its master for a replacement. Replaces the
/// previous hook.
pub fn on_stuck_thread(hook: impl Fn() + Send + Sync + 'static) {
    *lock(STUCK_HOOK.get_or_init(Mutex::default)) = Some(Arc::new(hook));
}

fn run_stuck_hook() {
    let hook = STUCK_HOOK.get().and_then(|h| lock(h).clone());
    if let Some(hook) = hook {
        hook();
    }
}

/// Stops the watchdog when dropped.
pub(crate) struct Handle {
    stop: Arc<(Mutex<bool>, Condvar)>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let (flag, wake) = &*self.stop;
        *lock(flag) = true;
        wake.notify_all();
    }
}

/// Starts the watchdog of a pool.
pub(crate) fn start(shared: Arc<Shared>, limits: Limits) -> std::io::Result<Handle> {
    let shortest = [limits.request_timeout, limits.slow_log_timeout]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(MAX_TICK);
    let tick = (shortest / 10).clamp(MIN_TICK, MAX_TICK);
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let stopping = stop.clone();
    std::thread::Builder::new()
        .name("wsgi-watchdog".to_owned())
        .spawn(move || {
            let (flag, wake) = &*stopping;
            let mut stopped = lock(flag);
            while !*stopped {
                stopped = wake
                    .wait_timeout(stopped, tick)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
                if *stopped {
                    return;
                }
                drop(stopped);
                look(&shared, limits, Instant::now());
                stopped = lock(flag);
            }
        })?;
    Ok(Handle { stop })
}

/// Answers a request whose time ran out while it was queued: `504` without running it; its
/// place is freed first (as a thread gives it back before its answer).
pub(crate) fn expire_queued(job: Job, limit: Duration) {
    stats::timed_out();
    let Job {
        req,
        reply,
        permit,
        admitted,
    } = job;
    let meta = Meta::new(&req, admitted);
    tracing::warn!(
        peer = %meta.peer,
        request_id = meta.id,
        method = %meta.method,
        uri = %meta.uri,
        "wsgi request still queued after the request timeout ({limit:?}, every thread busy): answered 504 without running it"
    );
    drop(permit);
    reply.time_out();
}

/// What one look found to do.
#[derive(Default)]
struct Found {
    slow: Vec<(Arc<Slot>, Arc<Meta>)>,
    timed_out: Vec<(Arc<Slot>, Arc<Meta>)>,
    stuck: Vec<(Arc<Slot>, Arc<Meta>)>,
}

/// One look at the queue and the threads.
fn look(shared: &Arc<Shared>, limits: Limits, now: Instant) {
    if let Some(limit) = limits.request_timeout {
        for job in shared.queue.take_expired(now, limit) {
            expire_queued(job, limit);
        }
    }
    let found = scan(shared, limits, now);
    if !found.slow.is_empty() || !found.timed_out.is_empty() {
        Python::attach(|py| {
            for (slot, meta) in &found.slow {
                let stack = stack_of(py, slot);
                tracing::warn!(
                    peer = %meta.peer,
                    request_id = meta.id,
                    method = %meta.method,
                    uri = %meta.uri,
                    thread = %slot.name,
                    running_ms = u64::try_from(meta.admitted.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "slow wsgi request (--slow-log-timeout {:?}), still running:\n{stack}",
                    limits.slow_log_timeout.unwrap_or_default(),
                );
            }
            for (slot, meta) in &found.timed_out {
                let stack = stack_of(py, slot);
                let raised = raise(py, slot, meta.id);
                let what = if raised {
                    "RequestTimeout raised in its thread"
                } else {
                    "its thread already left it"
                };
                tracing::error!(
                    peer = %meta.peer,
                    request_id = meta.id,
                    method = %meta.method,
                    uri = %meta.uri,
                    thread = %slot.name,
                    "wsgi request still running after the request timeout ({:?}): answered 504 (or cut, if its response had begun); {what}:\n{stack}",
                    limits.request_timeout.unwrap_or_default(),
                );
            }
        });
    }
    for (slot, meta) in &found.stuck {
        declare_stuck(shared, slot, meta);
    }
}

/// Finds, under each slot's lock, the requests to log, to time out and to give up on; times
/// out (answers) and frees what needs no Python.
fn scan(shared: &Shared, limits: Limits, now: Instant) -> Found {
    let slots = lock(&shared.slots).clone();
    let mut found = Found::default();
    for slot in slots {
        let mut state = lock(&slot.state);
        if state.abandoned {
            continue;
        }
        let Some(running) = state.current.as_mut() else {
            continue;
        };
        let age = now.saturating_duration_since(running.meta.admitted);
        if let Some(at) = running.timed_out_at {
            if now.saturating_duration_since(at) >= STUCK_GRACE {
                // Its place goes to the replacement.
                running.permit = None;
                let meta = running.meta.clone();
                state.abandoned = true;
                drop(state);
                found.stuck.push((slot, meta));
            }
            continue;
        }
        if limits.request_timeout.is_some_and(|limit| age >= limit) {
            running.timed_out_at = Some(now);
            if let Some(outbox) = running.outbox.take() {
                outbox.time_out();
            }
            stats::timed_out();
            let meta = running.meta.clone();
            drop(state);
            found.timed_out.push((slot, meta));
            continue;
        }
        if !running.slow_logged && limits.slow_log_timeout.is_some_and(|limit| age >= limit) {
            running.slow_logged = true;
            stats::slow();
            let meta = running.meta.clone();
            drop(state);
            found.slow.push((slot, meta));
        }
    }
    found
}

/// Schedules [`RequestTimeout`] in the slot's thread if it still runs request `id`.
fn raise(py: Python<'_>, slot: &Slot, id: u64) -> bool {
    let exc = py.get_type::<RequestTimeout>();
    let mut state = lock(&slot.state);
    match state.current.as_mut() {
        Some(running) if running.meta.id == id && !running.raised => {
            running.raised = interpreter::raise_in_thread(py, slot.tid, exc.as_any());
            running.raised
        }
        _ => false,
    }
}

/// Gives up on a thread that did not leave its timed-out request: it leaves the pool when it
/// returns; a replacement starts unless `--threads` of this pool's threads are stuck already.
fn declare_stuck(shared: &Arc<Shared>, slot: &Slot, meta: &Meta) {
    stats::stuck();
    let stuck = shared
        .stuck
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    let threads = shared.threads;
    let replacement = if stuck <= threads {
        match shared.spawn_thread() {
            Ok(name) => Some(name),
            Err(e) => {
                tracing::error!(error = %e, "cannot start a replacement wsgi thread");
                None
            }
        }
    } else {
        None
    };
    let grace = STUCK_GRACE;
    match replacement {
        Some(name) => tracing::error!(
            peer = %meta.peer,
            request_id = meta.id,
            method = %meta.method,
            uri = %meta.uri,
            thread = %slot.name,
            "wsgi thread still in its timed-out request {grace:?} after the exception (blocked in native code?): \
             replacement thread {name} started ({stuck} stuck, at most {threads} replaced); the stuck thread exits when it returns"
        ),
        None => tracing::error!(
            peer = %meta.peer,
            request_id = meta.id,
            method = %meta.method,
            uri = %meta.uri,
            thread = %slot.name,
            "wsgi thread still in its timed-out request {grace:?} after the exception (blocked in native code?): \
             no replacement, {stuck} threads are stuck and at most {threads} (--threads) are replaced; the pool is smaller until they return"
        ),
    }
    run_stuck_hook();
}

/// The Python stack of the slot's thread, most recent call last, as `traceback` prints it.
fn stack_of(py: Python<'_>, slot: &Slot) -> String {
    match python_stack(py, slot.tid) {
        Ok(Some(stack)) => format!(
            "Stack of thread {} (most recent call last):\n{}",
            slot.name,
            stack.trim_end()
        ),
        Ok(None) => format!("thread {} runs no Python code now", slot.name),
        Err(e) => format!("the stack of thread {} cannot be read: {e}", slot.name),
    }
}

fn python_stack(py: Python<'_>, tid: u64) -> PyResult<Option<String>> {
    let frames = py.import("sys")?.call_method0("_current_frames")?;
    let Some(frame) = frames.cast::<PyDict>()?.get_item(tid)? else {
        return Ok(None);
    };
    let lines = py
        .import("traceback")?
        .call_method1("format_stack", (frame,))?;
    let text = PyString::new(py, "").call_method1("join", (lines,))?;
    text.extract().map(Some)
}
