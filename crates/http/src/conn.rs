//! What one connection's parts share: its peer, its timeouts, and the signals between the hyper
//! service (running inside the connection) and the driver's `select!`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use gatehouse_channel_request::{CancellationToken, Peer, SendQueue};
use tokio::sync::Notify;

use crate::watchdog::Timeouts;
use crate::Server;

/// State shared by the driver, the socket wrapper, the service and the response bodies of one
/// connection.
pub(crate) struct ConnShared {
    pub(crate) server: Arc<Server>,
    pub(crate) peer: Peer,
    pub(crate) local: Option<SocketAddr>,
    /// The socket's send queue, sampled while a write waits (a slow reader's progress).
    send_queue: SendQueue,
    timeouts: Mutex<Timeouts>,
    /// Wakes the driver: a deadline may have moved, or a close was requested.
    wake: Notify,
    close_after: AtomicBool,
    /// Sticky: no new request is served once a close was requested.
    closing: AtomicBool,
    /// Some request body was not read to its end: the client may still be sending.
    unread: AtomicBool,
    /// Cancelled to abort the connection at once (no lingering, no more bytes).
    pub(crate) kill: CancellationToken,
    /// Cancelled when the connection is over; every request's "client gone" token is a child.
    pub(crate) gone: CancellationToken,
    /// Bytes the socket accepted so far (heads and bodies).
    written: AtomicU64,
    /// A response body waiting for hyper's buffered bytes to reach the socket.
    write_waker: Mutex<Option<Waker>>,
}

impl ConnShared {
    pub(crate) fn new(
        server: Arc<Server>,
        peer: Peer,
        local: Option<SocketAddr>,
        send_queue: SendQueue,
    ) -> Arc<Self> {
        let config = server.config();
        let timeouts = Timeouts::new(config.idle_timeout, config.header_read_timeout, now());
        Arc::new(Self {
            server,
            peer,
            local,
            send_queue,
            timeouts: Mutex::new(timeouts),
            wake: Notify::new(),
            close_after: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            unread: AtomicBool::new(false),
            kill: CancellationToken::new(),
            gone: CancellationToken::new(),
            written: AtomicU64::new(0),
            write_waker: Mutex::new(None),
        })
    }

    /// Bytes the socket accepted so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// The socket accepted `n` bytes: wakes a response body waiting for that.
    pub(crate) fn wrote(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::AcqRel);
        let waker = self
            .write_waker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes `waker` on the next bytes the socket accepts.
    pub(crate) fn wake_on_write(&self, waker: &Waker) {
        *self.write_waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(waker.clone());
    }

    /// The socket's send queue, in bytes, when it can be known.
    pub(crate) fn queued(&self) -> Option<u64> {
        self.send_queue.bytes()
    }

    /// Runs `f` on the timeouts with the current time; wakes the driver when `f` says a deadline
    /// may have changed.
    pub(crate) fn timeouts(&self, f: impl FnOnce(&mut Timeouts, Instant) -> bool) {
        if f(&mut self.lock(), now()) {
            self.wake.notify_one();
        }
    }

    /// The earliest deadline, for the driver's timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.lock().poll_timeout()
    }

    /// How many requests were started on this connection, and how many are in progress.
    pub(crate) fn requests(&self) -> (u64, usize) {
        self.lock().requests()
    }

    /// What expired at the current time, if anything.
    pub(crate) fn expired(&self) -> Option<crate::watchdog::Expired> {
        self.lock().handle_timeout(now(), || self.queued())
    }

    /// Asks the driver to close the connection once the response in progress is written.
    pub(crate) fn request_close(&self) {
        self.closing.store(true, Ordering::Release);
        self.close_after.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether a close was requested: requests parsed from now on are not answered.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Records whether a request body is being read (`true` until its end was read).
    pub(crate) fn set_unread(&self, unread: bool) {
        self.unread.store(unread, Ordering::Release);
    }

    /// Whether some request body was left unread, so a lingering close is needed.
    pub(crate) fn has_unread(&self) -> bool {
        self.unread.load(Ordering::Acquire)
    }

    /// Whether a close was requested since the last call.
    pub(crate) fn take_close_request(&self) -> bool {
        self.close_after.swap(false, Ordering::AcqRel)
    }

    /// Resolves when the driver should look at the state again.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, Timeouts> {
        // A panic while holding this lock cannot leave the timeouts inconsistent (every update
        // is a single assignment), so a poisoned lock is still usable.
        match self.timeouts.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The current time on tokio's clock (which tests can pause), as a std `Instant` for the sans-io
/// core.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
