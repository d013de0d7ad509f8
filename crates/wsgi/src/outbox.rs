//! The hand-over of one request's response from its pool thread to the async side: the head,
//! the body chunks and the outcome in one bounded mailbox, with one wake-up per *flush* instead
//! of one per item.
//!
//! ```text
//!  pool thread (Sink)                         async side (WsgiApp::serve)
//!   push(Head) ─┐                               poll_next ◄── woken by flush / finish
//!   push(Body) ─┼─► [ Head Body ] + outcome ──► send_head / write (awaits) / finish
//!   finish(Ok) ─┘ one wake for all three         pops make room: a producer waiting is notified
//! ```
//!
//! Waking a task from a thread outside the runtime is the expensive part of a WSGI request (a
//! futex or eventfd write, a context switch, and tokio waking a second worker to look for more
//! work), so items are pushed without waking and the pool thread *flushes* only where waiting
//! would delay a byte the app produced: before it runs app code again (the next item of an
//! iterator, returning from `write()`, calling `close()`), before it blocks (a full mailbox, a
//! request-body read), and at the end. A one-item list, the commonest WSGI answer, costs a
//! single wake-up for its head, its body and its outcome (PEP 3333 "must not delay the
//! transmission of any block": nothing runs between producing the block and the flush).
//!
//! Backpressure is that of the bounded channel this replaces: at most [`CAPACITY`] items wait,
//! beyond that the producer blocks (with the GIL released) until the async side takes one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use pyo3::prelude::*;

use crate::error::Error;
use crate::sink::Chunk;

/// Items (head or body chunks) a pool thread may queue ahead of the client: the head and a first
/// chunk go without a wait, later chunks one ahead of the one being written.
pub(crate) const CAPACITY: usize = 2;

struct Outbox {
    state: Mutex<State>,
    /// Signalled when an item is taken or the receiver closes, for a producer waiting for room.
    room: Condvar,
    /// The async side stopped listening (client gone, request cancelled): checked without the
    /// lock on every write.
    closed: AtomicBool,
}

#[derive(Default)]
struct State {
    items: VecDeque<Chunk>,
    outcome: Option<Result<(), Error>>,
    waker: Option<Waker>,
    /// Items pushed since the receiver was last woken.
    unflushed: bool,
    /// The producer waits on `room`.
    producer_waiting: bool,
    /// The request ran out of `--request-timeout` (set by the pool's watchdog): the receiver
    /// answers it without waiting for the outcome.
    timed_out: bool,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Makes a mailbox: the pool thread's [`Reply`] and the async side's [`OutReceiver`].
pub(crate) fn outbox() -> (Reply, OutReceiver) {
    let shared = Arc::new(Outbox {
        state: Mutex::new(State::default()),
        room: Condvar::new(),
        closed: AtomicBool::new(false),
    });
    (
        Reply {
            shared: Some(shared.clone()),
        },
        OutReceiver { shared },
    )
}

impl Outbox {
    /// Marks the request as timed out: the producer's next push fails (a producer waiting for
    /// room wakes), and the receiver wakes to [`Next::TimedOut`].
    fn time_out(&self) {
        self.closed.store(true, Ordering::Release);
        let (waker, waiting) = {
            let mut state = self.lock();
            state.timed_out = true;
            (state.waker.take(), state.producer_waiting)
        };
        if waiting {
            self.room.notify_all();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A handle on a request's mailbox for the watchdog, which can only time it out.
#[derive(Debug, Clone)]
pub(crate) struct OutHandle {
    shared: Arc<Outbox>,
}

impl OutHandle {
    /// The async side answers `504` (or cuts the response) without waiting for the thread.
    pub(crate) fn time_out(&self) {
        self.shared.time_out();
    }
}

/// The pool thread's end for the outcome. Dropped without [`Reply::finish`] (the job was
/// dropped: a panic in the worker, the pool gone) it answers [`Error::WorkerLost`].
pub(crate) struct Reply {
    shared: Option<Arc<Outbox>>,
}

impl Reply {
    /// A sender for the head and the body chunks (the sink's).
    pub(crate) fn sender(&self) -> OutSender {
        OutSender {
            shared: self
                .shared
                .clone()
                .expect("a reply is not used after finish"),
        }
    }

    /// A handle the watchdog keeps to time the request out.
    pub(crate) fn handle(&self) -> Option<OutHandle> {
        self.shared.clone().map(|shared| OutHandle { shared })
    }

    /// Times a request out before it ran (it waited in the queue too long).
    pub(crate) fn time_out(mut self) {
        if let Some(shared) = self.shared.take() {
            shared.time_out();
        }
    }

    /// Whether the async side stopped listening.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|s| s.closed.load(Ordering::Acquire))
    }

    /// Delivers the outcome (with whatever is still unflushed) and wakes the async side.
    pub(crate) fn finish(mut self, outcome: Result<(), Error>) {
        if let Some(shared) = self.shared.take() {
            deliver(&shared, outcome);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            deliver(&shared, Err(Error::WorkerLost));
        }
    }
}

fn deliver(shared: &Outbox, outcome: Result<(), Error>) {
    let waker = {
        let mut state = shared.lock();
        state.outcome = Some(outcome);
        state.unflushed = false;
        state.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

/// The pool thread's end for the head and the body: [`OutSender::push`] queues, and
/// [`OutSender::flush`] wakes the async side.
#[derive(Debug)]
pub(crate) struct OutSender {
    shared: Arc<Outbox>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl OutSender {
    /// Whether the async side stopped listening.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Queues an item without waking the async side. When the mailbox is full it flushes and
    /// waits for room with the GIL released (and keeps the GIL when there is room: releasing
    /// and retaking it costs more than the push). `Err` when the async side stopped listening.
    pub(crate) fn push(&self, py: Python<'_>, item: Chunk) -> Result<(), ()> {
        let mut state = self.shared.lock();
        if state.items.len() >= CAPACITY {
            let waker = state.waker.take();
            state.unflushed = false;
            drop(state);
            if let Some(w) = waker {
                w.wake();
            }
            py.detach(|| {
                let mut state = self.shared.lock();
                while state.items.len() >= CAPACITY && !self.is_closed() {
                    state.producer_waiting = true;
                    state = self
                        .shared
                        .room
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                state.producer_waiting = false;
            });
            // Only this thread pushes: the room found stays.
            state = self.shared.lock();
        }
        if self.is_closed() {
            return Err(());
        }
        state.items.push_back(item);
        state.unflushed = true;
        Ok(())
    }

    /// Wakes the async side if items were queued since it was last woken.
    pub(crate) fn flush(&self) {
        let waker = {
            let mut state = self.shared.lock();
            if !state.unflushed {
                return;
            }
            state.unflushed = false;
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What the async side takes from the mailbox next.
#[derive(Debug)]
pub(crate) enum Next {
    /// The head or a body chunk, in order.
    Item(Chunk),
    /// The request is over: the result's `close()` has returned.
    Done(Result<(), Error>),
    /// The request ran out of `--request-timeout` (queued or running): answer it now; the
    /// thread, if one runs it, is being freed by the watchdog.
    TimedOut,
}

/// The async side's end. Dropping it (or [`OutReceiver::close`]) makes the producer's next push
/// fail, so the app stops at its next chunk.
pub(crate) struct OutReceiver {
    shared: Arc<Outbox>,
}

impl OutReceiver {
    /// The next item, else the outcome once every item was taken.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Next> {
        let mut state = self.shared.lock();
        if state.timed_out {
            state.items.clear();
            return Poll::Ready(Next::TimedOut);
        }
        if let Some(item) = state.items.pop_front() {
            let waiting = state.producer_waiting;
            drop(state);
            if waiting {
                self.shared.room.notify_one();
            }
            return Poll::Ready(Next::Item(item));
        }
        if let Some(outcome) = state.outcome.take() {
            // Polled again after the outcome: the worker is gone.
            state.outcome = Some(Err(Error::WorkerLost));
            return Poll::Ready(Next::Done(outcome));
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next item or the outcome.
    pub(crate) async fn next(&mut self) -> Next {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Stops listening: the producer's next push fails, a producer waiting for room wakes.
    /// Items already queued can still be taken (and are dropped by the caller).
    pub(crate) fn close(&self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Under the lock, so that a producer between its check and its wait sees the flag;
        // notified only when one waits (a notify is a system call even with no waiter).
        let waiting = self.shared.lock().producer_waiting;
        if waiting {
            self.shared.room.notify_all();
        }
    }
}

impl Drop for OutReceiver {
    fn drop(&mut self) {
        self.close();
    }
}
