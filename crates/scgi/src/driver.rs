//! The tokio driver of one SCGI connection: socket in, app outputs out, timers, shutdown.
//!
//! ```text
//!            ┌── read head (header_timeout, shutdown) ──► bad: 400, linger, close
//!  socket ───┤
//!            └── body ──(reserve room first: backpressure)──► BodySender ──► app task
//!  socket ◄── ResponseWriter ◄── Hold (while body bytes remain) ◄── Delivery ◄── QueueChannel
//! ```
//!
//! While body bytes remain, the app's outputs wait in a hold
//! (`gatehouse_channel_request::hold`: nginx stops sending the body once it has the response
//! head); see the crate docs' "Flow control". A delivery's credit
//! is dropped once its bytes are written (or when the hold takes it, which bounds itself).
//!
//! Protocol decisions live in [`crate::codec`], `gatehouse_channel_request::hold` and
//! [`crate::response`]; this file only moves bytes and reacts to what they say. One request per connection (SCGI section 2): once
//! the response is complete, the write side is shut and the connection closed, lingering while
//! the peer may still be sending body bytes.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use gatehouse_channel_request::{
    body_channel, delivery_queue, serve_request, Application, BodySender, CancellationToken,
    Delivery, DeliveryReceiver, Output, Peer, Protocol, QueueChannel, Request, RequestInfo,
    Response, SendQueue,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, timeout_at, Instant, Sleep};

use crate::codec::{BodyDecoder, BodyFrame, HeadDecoder};
use crate::error::{Error, LimitError};
use crate::head::RequestHead;
use crate::reader::{Linger, Reader};
use crate::response::{error_response, Action, ResponseWriter};
use crate::server::{Config, Server, RESPONSE_HOLD_TIMEOUT};
use gatehouse_channel_request::{Hold, Offer, SHUTDOWN_FIRST_REQUEST_GRACE};

/// Serves one SCGI connection: reads the request, runs the app, writes the response, closes.
///
/// Never panics on peer input and always ends: a bad head is answered `400` (one `warn` log
/// line with the peer and the offending bytes escaped), a dead peer by the timeouts of
/// [`Config`]. `shutdown` closes the connection if it is still waiting for its head; a request
/// already running is let finish (bound that with a drain timeout by dropping this future).
///
/// # Cancel safety
/// Dropping the future closes the connection and cancels the app (its task is aborted).
pub async fn serve_connection<IO>(
    server: Arc<Server>,
    io: IO,
    peer: Peer,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let info = RequestInfo::new(Protocol::Scgi, peer);
    let mut conn = Conn::new(io, server.config().clone());
    let Some(_slot) = server.try_admit() else {
        let limit = server.config().max_conns;
        return conn
            .refuse(&info, Error::from(LimitError::Connections { limit }))
            .await;
    };
    match conn.read_head(&shutdown).await {
        Ok(Some(head)) => conn.serve(server.app().clone(), head, info).await,
        Ok(None) => {}
        Err(e) => conn.refuse(&info, e).await,
    }
}

/// Where reading the socket stands while the request runs.
enum Inbound {
    /// Body bytes go to the app.
    Body(BodySender),
    /// The app dropped its body: the rest is read and discarded.
    Discard,
    /// The body is complete; reading only notices a reset (or the peer's half-close).
    AfterBody,
    /// Nothing more to read: end of input, or given up.
    Closed,
}

/// How the request ended, for [`Conn::serve`]'s close.
enum Ending {
    /// The response was written in full.
    Complete,
    /// The app aborted after bytes went out: close, the response is incomplete.
    Aborted,
    /// The app's task ended without any response byte out.
    AppFailed,
    /// The connection failed (peer error, timeout, client gone).
    Failed(Error),
}

/// Aborts the app's task when dropped: cancellation is `drop`.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Conn<IO> {
    reader: Reader<ReadHalf<IO>>,
    wr: WriteHalf<IO>,
    /// The socket's send queue: a slow reader's progress while a write waits.
    send_queue: SendQueue,
    config: Config,
}

impl<IO: AsyncRead + AsyncWrite + Send + Unpin + 'static> Conn<IO> {
    fn new(io: IO, config: Config) -> Self {
        let send_queue = SendQueue::of(&io);
        let (rd, wr) = tokio::io::split(io);
        Self {
            reader: Reader::new(rd),
            wr,
            send_queue,
            config,
        }
    }

    /// Reads the head; `Ok(None)` when the peer closed or `shutdown` came first.
    async fn read_head(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Option<RequestHead>, Error> {
        let mut dec =
            HeadDecoder::new(self.config.max_header_bytes).with_duplicates(self.config.duplicates);
        let limit = self.config.header_timeout;
        let head = timeout(limit, self.reader.next(&mut dec));
        tokio::pin!(head);
        let head = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                // Accepted before the shutdown: its web server is sending the request and would
                // not retry it on another connection. Taken if it comes soon, then answered.
                match timeout(SHUTDOWN_FIRST_REQUEST_GRACE, &mut head).await {
                    Ok(head) => head,
                    Err(_) => return Ok(None),
                }
            }
            head = &mut head => head,
        };
        head.map_err(|_| Error::HeaderTimeout(limit))?
    }

    /// Answers an unreadable request (or a refused connection) with its status, then closes.
    async fn refuse(self, info: &RequestInfo, err: Error) {
        log_failure(info, &err);
        if let Some(status) = err.http_status() {
            self.answer(status, Linger::UntilEof).await;
        }
    }

    /// Runs the request: spawns the app, pumps the body in and the response out, closes.
    async fn serve(mut self, app: Arc<dyn Application>, head: RequestHead, info: RequestInfo) {
        let RequestHead {
            env,
            content_length,
        } = head;
        let (body_tx, body) = body_channel(self.config.body_queue_chunks, Some(content_length));
        let (dtx, mut drx) = delivery_queue();
        let gone = CancellationToken::new();
        let mut chan = QueueChannel::new(info.id, dtx, self.config.response_budget, gone.clone());
        if let Some(spool) = &self.config.response_spool {
            chan = chan.with_spool(spool.clone());
        }
        let req = Request {
            env,
            body,
            info: info.clone(),
        };
        let task = AbortOnDrop(tokio::spawn(async move {
            serve_request(&*app, req, Response::new(chan)).await;
        }));
        let mut writer = ResponseWriter::new();
        let mut dec = BodyDecoder::new(content_length);
        let ending = self
            .pump(
                Inbound::Body(body_tx),
                &mut dec,
                &mut drx,
                &mut writer,
                &info,
            )
            .await;
        if !matches!(ending, Ending::Complete) {
            gone.cancel();
            drop(task);
        }
        let linger = Linger::body(dec);
        match ending {
            Ending::Complete => self.close(linger).await,
            Ending::Aborted => self.reset(),
            Ending::AppFailed => {
                tracing::error!(peer = %info.peer, request_id = info.id, "application ended without a response");
                self.answer(500, linger).await;
            }
            Ending::Failed(err) => {
                log_failure(&info, &err);
                match err.http_status() {
                    Some(status) if !writer.has_written() => self.answer(status, linger).await,
                    _ if writer.has_written() => self.reset(),
                    _ => {}
                }
            }
        }
    }

    /// The request's loop: body in (when the app has room), outputs out, until the response ends.
    /// While body bytes remain, the app's outputs are held (`gatehouse_channel_request::hold`:
    /// nginx stops sending the body once it has the response head).
    async fn pump(
        &mut self,
        mut inbound: Inbound,
        dec: &mut BodyDecoder,
        drx: &mut DeliveryReceiver,
        writer: &mut ResponseWriter,
        info: &RequestInfo,
    ) -> Ending {
        let budget = self.config.response_budget;
        let mut hold = Hold::default();
        // Made when a response is first held: a request without a body never arms a timer.
        let mut timer = pin!(None::<Sleep>);
        loop {
            let deadline = hold.deadline(RESPONSE_HOLD_TIMEOUT).map(Instant::from_std);
            if let Some(d) = deadline {
                match timer.as_mut().as_pin_mut() {
                    Some(t) if t.deadline() == d => {}
                    Some(t) => t.reset(d),
                    None => timer.set(Some(sleep_until(d))),
                }
            }
            let held = tokio::select! {
                read = self.read_step(&mut inbound, dec), if !matches!(inbound, Inbound::Closed) => {
                    match read.map_err(|e| (e.short_body(), e)) {
                        Err((None, e)) => return Ending::Failed(e),
                        Err((Some(short), e)) => {
                            // The body's error is the app's to see, as behind FastCGI and as a
                            // CGI program: an app that reads its body gets it (answered 400),
                            // one that does not is answered as it answers. Failing the
                            // connection here made the answer depend on whether the app had
                            // answered first.
                            log_failure(info, &e);
                            if let Inbound::Body(tx) = std::mem::replace(&mut inbound, Inbound::Closed) {
                                tx.fail(short);
                            }
                            hold.release()
                        }
                        Ok(()) => {
                            if hold.is_holding() {
                                hold.input_progress(now());
                            }
                            if dec.remaining() > 0 {
                                continue;
                            }
                            hold.release() // The body is complete.
                        }
                    }
                }
                delivery = drx.recv() => {
                    // The queue ends with Finish or Abort; a closed queue is an app task gone.
                    let Some(delivery) = delivery else { return Ending::AppFailed };
                    // The clock is read only while the body is incomplete (a hold may start).
                    // (A body cut short never completes: nothing is held for it.)
                    let body_due = dec.remaining() > 0 && !matches!(inbound, Inbound::Closed);
                    let open_at = body_due.then(now);
                    let was_holding = hold.is_holding();
                    match hold.offer(delivery, open_at, budget) {
                        Offer::Started | Offer::Kept => continue,
                        Offer::Full => hold.release(),
                        Offer::Pass(delivery) => {
                            let ends = matches!(delivery.output, Output::Finish | Output::Abort);
                            if was_holding && ends {
                                if let Some(ending) = self.write_held(hold.release(), writer).await {
                                    return ending;
                                }
                            }
                            let action = writer.handle_output(delivery.output.clone());
                            let step = self.act(action).await;
                            drop(delivery); // The bytes are written: return the credit.
                            match step {
                                Some(ending) => return ending,
                                None => continue,
                            }
                        }
                    }
                }
                () = poll_fn(|cx| poll_timer(timer.as_mut(), cx)), if deadline.is_some() => {
                    tracing::debug!(peer = %info.peer, request_id = info.id, timeout = ?RESPONSE_HOLD_TIMEOUT, "no request body input: the held response goes out");
                    hold.release()
                }
            };
            if let Some(ending) = self.write_held(held, writer).await {
                return ending;
            }
        }
    }

    /// Writes held outputs in order; `Some` when the response is over.
    async fn write_held(
        &mut self,
        held: Option<Vec<Delivery>>,
        writer: &mut ResponseWriter,
    ) -> Option<Ending> {
        for delivery in held.into_iter().flatten() {
            let action = writer.handle_output(delivery.output);
            if let Some(ending) = self.act(action).await {
                return Some(ending);
            }
        }
        None
    }

    /// Writes what an output step asks for; `Some` when the response is over.
    async fn act(&mut self, action: Action) -> Option<Ending> {
        let written = match action {
            Action::Nothing => return None,
            Action::Abort => return Some(Ending::Aborted),
            Action::Fail => return Some(Ending::AppFailed),
            Action::Write(first, second) => {
                let mut r = self.write_all(&first).await;
                if let (Ok(()), Some(second)) = (&r, second) {
                    r = self.write_all(&second).await;
                }
                r.map(|()| None)
            }
            Action::Finish(last) => match last {
                Some(bytes) => self.write_all(&bytes).await,
                None => Ok(()),
            }
            .map(|()| Some(Ending::Complete)),
        };
        written.unwrap_or_else(|e| Some(Ending::Failed(e)))
    }

    /// One step of reading the socket while the request runs.
    ///
    /// # Cancel safety
    /// Cancel-safe: a reserved body slot stays reserved, read bytes stay buffered.
    async fn read_step(
        &mut self,
        inbound: &mut Inbound,
        dec: &mut BodyDecoder,
    ) -> Result<(), Error> {
        if let Inbound::Body(tx) = inbound {
            // Backpressure: the socket is not read until the app's body queue has room.
            if poll_fn(|cx| tx.poll_reserve(cx)).await.is_err() {
                *inbound = Inbound::Discard;
            }
        }
        let idle = self.config.idle_timeout;
        let frame = match inbound {
            Inbound::Body(_) => timeout(idle, self.reader.next(dec))
                .await
                .map_err(|_| Error::IdleTimeout(idle))??,
            Inbound::Discard => match timeout(idle, self.reader.next(dec)).await {
                Ok(frame) => frame?,
                Err(_) => None, // The app does not need the rest: stop reading, linger later.
            },
            Inbound::AfterBody => self.reader.next(dec).await?,
            Inbound::Closed => return Ok(()),
        };
        match (frame, &mut *inbound) {
            (Some(BodyFrame::Chunk(chunk)), Inbound::Body(tx)) => {
                if tx.send_item(chunk).is_err() {
                    *inbound = Inbound::Discard;
                }
            }
            (Some(BodyFrame::Chunk(_)), _) => {}
            (Some(BodyFrame::End), _) => {
                if let Inbound::Body(tx) = std::mem::replace(inbound, Inbound::AfterBody) {
                    tx.finish();
                }
            }
            // The peer half-closed after the body: the response still goes out.
            (None, _) => *inbound = Inbound::Closed,
        }
        Ok(())
    }

    /// Closes a connection whose response is incomplete so that the peer can tell: a TCP
    /// connection is reset (`SO_LINGER` 0), and nginx then reports "upstream prematurely
    /// closed" instead of passing a truncated body as complete. Other transports have no such
    /// signal and are just closed.
    fn reset(self) {
        let io = self.reader.into_inner().unsplit(self.wr);
        if let Some(tcp) = (&io as &dyn Any).downcast_ref::<TcpStream>() {
            let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
        }
    }

    /// Writes `data`, failing if the peer takes no byte for `idle_timeout`.
    async fn write_all(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let n = self.write_some(data).await?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            data = &data[n..];
        }
        Ok(())
    }

    /// One write, waited for as long as the peer makes progress: the write itself, or (while it
    /// waits for room) the socket's send queue shrinking, sampled every quarter of
    /// `idle_timeout`. A socket is writable again only once much of its buffer has drained,
    /// which a slow but steady reader can take longer than `idle_timeout` to do.
    async fn write_some(&mut self, data: &[u8]) -> Result<usize, Error> {
        let idle = self.config.idle_timeout;
        let mut write = pin!(self.wr.write(data));
        let mut queued = self.send_queue.bytes();
        let mut progress = Instant::now();
        loop {
            let step = if queued.is_some() { idle / 4 } else { idle };
            let wake = (progress + idle).min(Instant::now() + step);
            if let Ok(written) = timeout_at(wake, &mut write).await {
                return Ok(written?);
            }
            let now = Instant::now();
            let q = self.send_queue.bytes();
            if matches!((q, queued), (Some(q), Some(before)) if q < before) {
                progress = now;
            }
            queued = q;
            if now >= progress + idle {
                return Err(Error::IdleTimeout(idle));
            }
        }
    }

    /// Answers with our own `status` response, then closes.
    async fn answer(mut self, status: u16, linger: Linger) {
        if self.write_all(&error_response(status)).await.is_ok() {
            self.close(linger).await;
        }
    }

    /// Shuts the write side (the peer reads the end of the response), then, if the peer may
    /// still be sending, reads and discards for up to `linger_timeout` before closing: closing
    /// with unread input would reset the connection, and the peer could lose our response.
    async fn close(mut self, linger: Linger) {
        let limit = self.config.linger_timeout;
        if timeout(limit, self.wr.shutdown()).await.is_err() {
            return;
        }
        let expected = match linger {
            Linger::No => return,
            Linger::Body(dec) => Some(dec),
            Linger::UntilEof => None,
        };
        let _ = timeout(limit, self.reader.drain(expected)).await;
    }
}

/// `now` for the hold, from tokio's clock (paused in tests).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

fn poll_timer(timer: Pin<&mut Option<Sleep>>, cx: &mut Context<'_>) -> Poll<()> {
    match timer.as_pin_mut() {
        Some(timer) => timer.poll(cx),
        None => Poll::Pending,
    }
}

/// The one log line of a failed connection.
fn log_failure(info: &RequestInfo, err: &Error) {
    let (peer, id) = (&info.peer, info.id);
    match err {
        _ if err.is_client_gone() => {
            tracing::debug!(peer = %peer, request_id = id, error = %err, "scgi: client gone");
        }
        Error::Limit(LimitError::Connections { .. }) => {
            tracing::warn!(peer = %peer, request_id = id, error = %err, "scgi: connection refused");
        }
        _ => tracing::warn!(peer = %peer, request_id = id, error = %err, "scgi: bad request"),
    }
}
