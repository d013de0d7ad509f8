//! The per-connection tokio driver: owns the socket, runs the apps, and carries out the sans-io
//! [`Connection`]'s events. It makes no protocol decision.
//!
//! ```text
//!            ┌──────────────────── select! ────────────────┐
//!  socket ─► │ socket (write OutQueue, read records) ·      │ ─► Connection::handle_*
//!            │ shutdown · app outputs · body backlogs ·     │ ◄─ Connection::poll_event
//!            │ idle timer · reap finished tasks             │
//!            └──────────────────────────────────────────────┘
//! ```
//!
//! An app whose request is the only one on the connection is polled once by the driver itself,
//! after the records already read are taken (so a body that came with the head is all queued
//! for it): an app that answers at once (a built-in, a cached page) then costs no task, no
//! wake-up and no cross-thread hand-off. An app that waits is moved to a task of its own
//! ([`JoinSet`]), so requests multiplexed on a connection run concurrently; cancelling a
//! request drops its future wherever it is.
//!
//! `requests.rs` starts apps and feeds their bodies; `socket.rs` reads records, writes the
//! output and closes (at once when the peer sent everything, else lingering).
//!
//! Backpressure: a body chunk that does not fit its request's body queue waits in that
//! request's backlog. FastCGI has no per-request flow control, so a request alone on its
//! connection (nginx's way) stops the reading at once until its app makes room; when several
//! are multiplexed, reading goes on until [`MULTIPLEXED_BACKLOG`] bytes wait in backlogs, so one
//! app not reading its body does not stop the others' bodies (past it, reading pauses: memory
//! stays bounded). Responses still go out meanwhile; the idle timer stops, but a response held
//! while its body arrives is still released after `RESPONSE_HOLD_TIMEOUT`. Reading also pauses
//! while more than [`OUT_HIGH_WATER`] bytes wait for the socket, which bounds what management
//! answers and refusals can queue.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use gatehouse_channel_request::{
    delivery_queue, CancellationToken, Delivery, DeliveryReceiver, DeliverySender, Peer,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFuture;

use crate::conn::{Connection, Event};
use crate::error::Error;
use crate::id_map::IdMap;
use crate::record::Record;
use crate::server::Server;

mod requests;
mod socket;

use requests::{poll_backlogs, Handle, Starting};
use socket::{poll_socket, Input, Socket};

/// Reading and taking app outputs pause while this many bytes wait for the socket.
pub(crate) const OUT_HIGH_WATER: usize = 256 * 1024;

/// Body bytes a connection with several requests keeps for apps that do not read them yet,
/// before it stops reading records (see the module documentation).
pub(crate) const MULTIPLEXED_BACKLOG: usize = 1024 * 1024;

/// Serves one accepted connection until it closes.
///
/// A TCP peer missing from `Config::web_server_addrs` is refused (one log line, closed
/// unread). `shutdown` cancelled means graceful: new `FCGI_BEGIN_REQUEST`s are answered
/// `FCGI_OVERLOADED`, requests in flight finish, then the connection closes (at once when idle).
///
/// # Cancel safety
/// Dropping the future closes the connection and aborts its requests' tasks.
pub async fn serve_connection<IO>(
    server: Arc<Server>,
    io: IO,
    peer: Peer,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    if !server.peer_allowed(&peer) {
        if let Peer::Tcp(addr) = &peer {
            let error = Error::PeerNotAllowed(addr.ip());
            tracing::warn!(peer = %peer, error = %error, "connection refused");
        }
        return;
    }
    let _counted = server.shared().connection_guard();
    let (outputs_tx, outputs) = delivery_queue();
    let clock = now();
    let conn = Connection::new(&server, peer, clock);
    let driver = Driver {
        clock,
        server,
        conn,
        io,
        input: Input {
            buf: BytesMut::new(),
            eof: false,
        },
        outputs,
        outputs_tx,
        tasks: None,
        requests: IdMap::default(),
        backlog_bytes: 0,
        starting: None,
        shutdown_seen: false,
        armed: None,
    };
    driver.run(&shutdown).await;
}

struct Driver<IO> {
    /// `now` for the connection: read once per wake-up, for everything it brought.
    clock: std::time::Instant,
    server: Arc<Server>,
    conn: Connection,
    io: IO,
    input: Input,
    outputs: DeliveryReceiver,
    outputs_tx: DeliverySender,
    /// The apps that did not finish where they were dispatched; made for the first one.
    tasks: Option<JoinSet<()>>,
    requests: IdMap<u64, Handle>,
    /// Body bytes in the requests' backlogs (chunks that did not fit their body queues).
    backlog_bytes: usize,
    /// An app dispatched alone, to start before the driver waits.
    starting: Option<Starting>,
    shutdown_seen: bool,
    /// When the idle timer fires; it may fire before the connection's deadline, which moves
    /// later with every record: the connection re-checks, and the timer is re-armed then.
    armed: Option<Instant>,
}

/// The shutdown signal's future and the idle timer, pinned in [`Driver::run`]'s frame so
/// that waiting on them costs one registration per connection and no allocation. The timer
/// is made the first time the connection waits for its peer.
struct Waits<'a, 's> {
    shutdown: Pin<&'a mut WaitForCancellationFuture<'s>>,
    timer: Pin<&'a mut Option<Sleep>>,
}

/// What woke the driver.
enum Woke {
    Socket(Socket),
    Shutdown,
    Output(Delivery),
    Room,
    Timer,
    Joined(Result<(), JoinError>),
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl<IO: AsyncRead + AsyncWrite + Send + Unpin + 'static> Driver<IO> {
    async fn run(mut self, shutdown: &CancellationToken) {
        let mut waits = Waits {
            shutdown: pin!(shutdown.cancelled()),
            timer: pin!(None),
        };
        let linger = loop {
            if let Some(linger) = self.apply_events() {
                break linger;
            }
            // Records already read need no waiting: nginx sends a whole request at once, and
            // taking it all before the app's answer lets the close see the input complete.
            if self.can_read() {
                if let Some(item) = self.input.next_buffered() {
                    self.on_record(item);
                    continue;
                }
            }
            if self.starting.is_some() {
                self.start();
                continue;
            }
            self.step(&mut waits).await;
        };
        self.close(linger, waits).await;
    }

    /// Waits for one thing to happen and hands it to the connection.
    async fn step(&mut self, waits: &mut Waits<'_, '_>) {
        let deadline = match self.reading_paused() {
            false => self.conn.poll_timeout(),
            // Not reading: the peer cannot be idle on our account, but a held response whose
            // app stopped reading its body must still go out.
            true => self.conn.poll_hold_timeout(),
        }
        .map(Instant::from_std);
        if let Some(d) = deadline {
            if self.armed.is_none_or(|armed| d < armed) {
                match waits.timer.as_mut().as_pin_mut() {
                    Some(timer) => timer.reset(d),
                    None => waits.timer.set(Some(tokio::time::sleep_until(d))),
                }
                self.armed = Some(d);
            }
        }
        let roomy = self.conn.out_len() < OUT_HIGH_WATER;
        let can_read = self.can_read();
        let can_write = self.conn.out_len() > 0;
        let backlogged = self.backlog_bytes > 0;
        let running = !self.requests.is_empty();
        let (io, input, conn) = (&mut self.io, &mut self.input, &mut self.conn);
        let (requests, backlog_bytes) = (&mut self.requests, &mut self.backlog_bytes);
        let has_tasks = self.tasks.as_ref().is_some_and(|t| !t.is_empty());
        let tasks = &mut self.tasks;
        let mut timer = waits.timer.as_mut();
        // Unbiased on purpose: no source of work starves the others.
        let woke = tokio::select! {
            sock = poll_fn(|cx| poll_socket(io, Some(&mut *input), conn, can_write, can_read, cx)),
                if can_write || can_read => Woke::Socket(sock),
            () = waits.shutdown.as_mut(), if !self.shutdown_seen => Woke::Shutdown,
            // Only running requests send: with none, an app answering where it is dispatched
            // later queues its outputs without waking this task for nothing.
            Some(d) = self.outputs.recv(), if roomy && running => Woke::Output(d),
            () = poll_fn(|cx| poll_backlogs(requests, backlog_bytes, cx)), if backlogged => {
                Woke::Room
            }
            () = poll_fn(|cx| poll_timer(timer.as_mut(), cx)), if deadline.is_some() => Woke::Timer,
            Some(res) = poll_fn(|cx| poll_join(tasks, cx)), if has_tasks => Woke::Joined(res),
        };
        self.clock = now();
        match woke {
            Woke::Socket(sock) => self.on_socket(sock).await,
            Woke::Shutdown => {
                self.shutdown_seen = true;
                self.conn.handle_shutdown(self.clock);
            }
            Woke::Output(d) => {
                self.conn.handle_delivery(self.clock, d);
                while self.conn.out_len() < OUT_HIGH_WATER {
                    let Ok(d) = self.outputs.try_recv() else {
                        break;
                    };
                    self.conn.handle_delivery(self.clock, d);
                }
            }
            Woke::Room => self.conn.handle_body_accepted(self.clock),
            Woke::Timer => {
                self.armed = None;
                match self.reading_paused() {
                    false => self.conn.handle_timeout(self.clock),
                    true => self.conn.handle_hold_timeout(self.clock),
                }
            }
            Woke::Joined(Err(e)) if e.is_panic() => {
                tracing::error!(error = %e, "request task panicked outside the app");
            }
            Woke::Joined(_) => {}
        }
    }

    /// Whether to read records: not while a body chunk is held, the connection is closing, or
    /// too much output waits.
    fn can_read(&self) -> bool {
        !self.reading_paused() && self.conn.wants_read() && self.conn.out_len() < OUT_HIGH_WATER
    }

    /// Whether reading waits for apps to take their backlogged body chunks: at once for a
    /// request alone on its connection (reading more would only buffer it), past
    /// [`MULTIPLEXED_BACKLOG`] bytes when several share it (so that one app not reading its
    /// body does not stop the others' bodies at once).
    fn reading_paused(&self) -> bool {
        let limit = if self.requests.len() > 1 {
            MULTIPLEXED_BACKLOG
        } else {
            0
        };
        self.backlog_bytes > limit
    }

    async fn on_socket(&mut self, sock: Socket) {
        if let Some(res) = sock.wrote {
            self.wrote(res).await;
        }
        if let Some(item) = sock.read {
            self.on_record(item);
        }
    }

    fn on_record(&mut self, item: Option<Result<Record, Error>>) {
        match item {
            Some(Ok(record)) => self.conn.handle_record(self.clock, record),
            Some(Err(e)) => self.conn.handle_read_closed(self.clock, Some(e)),
            None => self.conn.handle_read_closed(self.clock, None),
        }
    }

    async fn wrote(&mut self, res: std::io::Result<usize>) {
        let res = match res {
            Ok(0) => Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                self.conn.out().advance(n);
                if self.conn.out_len() == 0 {
                    self.io.flush().await
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            self.conn.handle_write_error(&e);
        }
    }

    /// Carries out the connection's events; `Some(linger)` when it must close.
    fn apply_events(&mut self) -> Option<bool> {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Dispatch(d) => self.dispatch(d),
                Event::Stdin { tag, data } => self.stdin(tag, data),
                Event::StdinEnd { tag, error } => self.stdin_end(tag, error),
                Event::Cancel { tag } => {
                    if let Some(handle) = self.forget(tag) {
                        handle.gone.cancel();
                        if let Some(task) = handle.task {
                            task.abort();
                        }
                    }
                }
                Event::Ended { tag } => drop(self.forget(tag)),
                Event::Close { linger } => return Some(linger),
            }
        }
        None
    }
}

fn poll_join(
    tasks: &mut Option<JoinSet<()>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<(), JoinError>>> {
    match tasks {
        Some(tasks) => tasks.poll_join_next(cx),
        None => Poll::Ready(None),
    }
}

fn poll_timer(timer: Pin<&mut Option<Sleep>>, cx: &mut Context<'_>) -> Poll<()> {
    match timer.as_pin_mut() {
        Some(timer) => timer.poll(cx),
        None => Poll::Pending,
    }
}
