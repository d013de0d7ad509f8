//! The per-connection tokio driver: owns the socket, runs the app tasks, and carries out the
//! sans-io [`Connection`]'s events. It makes no protocol decision.
//!
//! ```text
//!            ┌──────────────────── select! ───────────────┐
//!  socket ─► │ write OutQueue · shutdown · app outputs · │ ─► Connection::handle_*
//!            │ held body chunk · read record · idle timer│ ◄─ Connection::poll_event
//!            │ reap finished tasks                       │
//!            └────────────────────────────────────────────┘
//! ```
//!
//! Backpressure: a body chunk that does not fit its request's body queue is held, and no record
//! is read until the app makes room. FastCGI has no per-request flow control, so while one
//! request's app does not read its body, the whole connection reads nothing (its responses
//! still go out). Reading also pauses while more than [`OUT_HIGH_WATER`] bytes wait for the
//! socket, which bounds what management answers and refusals can queue.

use std::collections::HashMap;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::{
    body_channel, delivery_queue, serve_request, BodyClosed, BodyError, BodySender,
    CancellationToken, DeliveryReceiver, DeliverySender, Peer, QueueChannel, Request, Response,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, Sleep};
use tokio_util::codec::Decoder;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::codec::RecordCodec;
use crate::conn::{Connection, Dispatch, Event};
use crate::error::Error;
use crate::record::Record;
use crate::response::MAX_IOVECS;
use crate::server::Server;

/// Reading and taking app outputs pause while this many bytes wait for the socket.
pub(crate) const OUT_HIGH_WATER: usize = 256 * 1024;

/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

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
    let (read, write) = tokio::io::split(io);
    let (outputs_tx, outputs) = delivery_queue();
    let conn = Connection::new(&server, peer, Instant::now().into_std());
    let driver = Driver {
        server,
        conn,
        reader: RecordReader {
            io: read,
            buf: BytesMut::new(),
            eof: false,
        },
        writer: write,
        outputs,
        outputs_tx,
        tasks: JoinSet::new(),
        requests: HashMap::new(),
        held: None,
        shutdown: Box::pin(shutdown.cancelled_owned()),
        shutdown_seen: false,
        timer: Box::pin(tokio::time::sleep_until(Instant::now())),
        armed: None,
    };
    driver.run().await;
}

struct Driver<IO> {
    server: Arc<Server>,
    conn: Connection,
    reader: RecordReader<ReadHalf<IO>>,
    writer: WriteHalf<IO>,
    outputs: DeliveryReceiver,
    outputs_tx: DeliverySender,
    tasks: JoinSet<()>,
    requests: HashMap<u64, Handle>,
    /// A body chunk waiting for room in its request's body queue.
    held: Option<Held>,
    /// Kept across iterations, so waiting costs no registration per record.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    shutdown_seen: bool,
    timer: Pin<Box<Sleep>>,
    /// When `timer` fires; it may fire before the connection's deadline, which moves later
    /// with every record: the connection re-checks, and the timer is re-armed then.
    armed: Option<Instant>,
}

/// The driver's side of a running request.
struct Handle {
    body: Option<BodySender>,
    gone: CancellationToken,
    task: AbortHandle,
}

struct Held {
    tag: u64,
    data: Bytes,
    /// The end of the body, when it arrived behind the held chunk.
    end: Option<Option<BodyError>>,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl<IO: AsyncRead + AsyncWrite + Send + Unpin + 'static> Driver<IO> {
    async fn run(mut self) {
        let linger = loop {
            if let Some(linger) = self.apply_events() {
                break linger;
            }
            self.step().await;
        };
        self.close(linger).await;
    }

    /// Waits for one thing to happen and hands it to the connection.
    async fn step(&mut self) {
        let deadline = match self.held {
            None => self.conn.poll_timeout().map(Instant::from_std),
            Some(_) => None, // Not reading: the peer cannot be idle on our account.
        };
        if let Some(d) = deadline {
            if self.armed.is_none_or(|armed| d < armed) {
                self.timer.as_mut().reset(d);
                self.armed = Some(d);
            }
        }
        let roomy = self.conn.out_len() < OUT_HIGH_WATER;
        let can_read = self.held.is_none() && self.conn.wants_read() && roomy;
        let held_tag = self.held.as_ref().map(|h| h.tag);
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = self.conn.out().chunks_vectored(&mut slices);
        let requests = &mut self.requests;
        // Unbiased on purpose: a request streaming output must not starve reading (an
        // FCGI_ABORT_REQUEST, other requests' input), nor the reverse.
        tokio::select! {
            res = self.writer.write_vectored(&slices[..n]), if n > 0 => self.wrote(res).await,
            () = self.shutdown.as_mut(), if !self.shutdown_seen => {
                self.shutdown_seen = true;
                self.conn.handle_shutdown(now());
            }
            Some(d) = self.outputs.recv(), if roomy => {
                self.conn.handle_delivery(now(), d);
                while self.conn.out_len() < OUT_HIGH_WATER {
                    let Ok(d) = self.outputs.try_recv() else { break };
                    self.conn.handle_delivery(now(), d);
                }
            }
            res = std::future::poll_fn(|cx| poll_room(requests, held_tag, cx)), if held_tag.is_some() => {
                self.release_held(res);
            }
            item = self.reader.next(), if can_read => match item {
                Some(Ok(record)) => self.conn.handle_record(now(), record),
                Some(Err(e)) => self.conn.handle_read_closed(now(), Some(e)),
                None => self.conn.handle_read_closed(now(), None),
            },
            () = &mut self.timer, if deadline.is_some() => {
                self.armed = None;
                self.conn.handle_timeout(now());
            }
            Some(res) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                if let Err(e) = res {
                    if e.is_panic() {
                        tracing::error!(error = %e, "request task panicked outside the app");
                    }
                }
            }
        }
    }

    async fn wrote(&mut self, res: std::io::Result<usize>) {
        let res = match res {
            Ok(0) => Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                self.conn.out().advance(n);
                if self.conn.out_len() == 0 {
                    self.writer.flush().await
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
                Event::StdinEnd { tag, error } => match &mut self.held {
                    Some(held) if held.tag == tag => held.end = Some(error),
                    _ => self.end_body(tag, error),
                },
                Event::Cancel { tag } => {
                    if let Some(handle) = self.forget(tag) {
                        handle.gone.cancel();
                        handle.task.abort();
                    }
                }
                Event::Ended { tag } => drop(self.forget(tag)),
                Event::Close { linger } => return Some(linger),
            }
        }
        None
    }

    /// Spawns the app on a request: `serve_request` with a `QueueChannel` tagged by the
    /// request's process-unique id. The task owns the request slot until it ends.
    fn dispatch(&mut self, d: Dispatch) {
        let cfg = self.server.config();
        let tag = d.info.id;
        let (body_tx, body) = body_channel(cfg.body_queue_chunks, d.content_length);
        let gone = CancellationToken::new();
        let chan = QueueChannel::new(
            tag,
            self.outputs_tx.clone(),
            cfg.response_budget,
            gone.clone(),
        );
        let req = Request {
            env: d.env,
            body,
            info: d.info,
        };
        let app = self.server.app().clone();
        let slot = d.slot;
        let task = self.tasks.spawn(async move {
            let _slot = slot;
            serve_request(&*app, req, Response::new(chan)).await;
        });
        let handle = Handle {
            body: Some(body_tx),
            gone,
            task,
        };
        self.requests.insert(tag, handle);
    }

    /// Queues a body chunk, or holds it (and stops reading) when the queue is full.
    fn stdin(&mut self, tag: u64, data: Bytes) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match poll_room(&mut self.requests, Some(tag), &mut cx) {
            Poll::Pending => {
                self.held = Some(Held {
                    tag,
                    data,
                    end: None,
                })
            }
            res => self.send_body(tag, data, res),
        }
    }

    fn release_held(&mut self, room: Result<(), BodyClosed>) {
        let Some(held) = self.held.take() else {
            return;
        };
        self.send_body(held.tag, held.data, Poll::Ready(room));
        if let Some(error) = held.end {
            self.end_body(held.tag, error);
        }
        self.conn.handle_body_accepted(now());
    }

    fn send_body(&mut self, tag: u64, data: Bytes, room: Poll<Result<(), BodyClosed>>) {
        let Some(handle) = self.requests.get_mut(&tag) else {
            return;
        };
        let sent = match (room, handle.body.as_mut()) {
            (Poll::Ready(Ok(())), Some(body)) => body.send_item(data).is_ok(),
            _ => false,
        };
        if !sent {
            // The app dropped its body: the rest of it is discarded as it arrives.
            handle.body = None;
        }
    }

    fn end_body(&mut self, tag: u64, error: Option<BodyError>) {
        let body = self.requests.get_mut(&tag).and_then(|h| h.body.take());
        match (body, error) {
            (Some(body), None) => body.finish(),
            (Some(body), Some(e)) => body.fail(e),
            (None, _) => {}
        }
    }

    fn forget(&mut self, tag: u64) -> Option<Handle> {
        if self.held.as_ref().is_some_and(|h| h.tag == tag) {
            self.held = None;
        }
        self.requests.remove(&tag)
    }

    /// Writes what is queued, then (with `linger`) shuts the write side and drains the peer's
    /// input, all within `Config::linger_timeout`. Tasks of requests that already ended may
    /// finish in the background; the others were cancelled by the connection.
    async fn close(mut self, linger: bool) {
        let deadline = Instant::now() + self.server.config().linger_timeout;
        let _ = tokio::time::timeout_at(deadline, self.flush_all()).await;
        if linger && self.conn.out_len() == 0 {
            let drain = async {
                self.writer.shutdown().await?;
                let mut scratch = vec![0u8; 16 * 1024];
                while self.reader.io.read(&mut scratch).await? > 0 {}
                Ok::<(), std::io::Error>(())
            };
            let _ = tokio::time::timeout_at(deadline, drain).await;
        }
        self.tasks.detach_all();
    }

    async fn flush_all(&mut self) {
        while self.conn.out_len() > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let n = self.conn.out().chunks_vectored(&mut slices);
            let res = self.writer.write_vectored(&slices[..n]).await;
            self.wrote(res).await;
        }
        let _ = self.writer.flush().await;
    }
}

/// Polls for room in the body queue of request `tag`; `Err` when the app no longer reads it.
fn poll_room(
    requests: &mut HashMap<u64, Handle>,
    tag: Option<u64>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), BodyClosed>> {
    match tag
        .and_then(|tag| requests.get_mut(&tag))
        .and_then(|h| h.body.as_mut())
    {
        Some(body) => body.poll_reserve(cx),
        None => Poll::Ready(Err(BodyClosed)),
    }
}

/// Reads records with [`RecordCodec`] (`FramedRead`'s job, without its `Stream` plumbing).
struct RecordReader<R> {
    io: R,
    buf: BytesMut,
    eof: bool,
}

impl<R: AsyncRead + Unpin> RecordReader<R> {
    /// The next record, `None` at a clean end of input.
    ///
    /// # Cancel safety
    /// Cancel-safe: bytes read stay in the buffer; decoding is synchronous.
    async fn next(&mut self) -> Option<Result<Record, Error>> {
        loop {
            if self.eof {
                return RecordCodec::new().decode_eof(&mut self.buf).transpose();
            }
            if let Some(item) = RecordCodec::new().decode(&mut self.buf).transpose() {
                return Some(item);
            }
            self.buf.reserve(READ_CHUNK);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}
