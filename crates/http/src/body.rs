//! The response body hyper writes: the app's deliveries turned into frames, with the
//! `Content-Length` contract enforced and the byte budget held until hyper takes the bytes.
//!
//! ```text
//!   app ── QueueChannel ──[ Delivery(Body) … Finish | Abort ]── ResponseBody ── hyper ── socket
//!                                                              holds the last Delivery (its
//!                                                              credit) until hyper polls again
//! ```
//!
//! hyper polls for the next frame only once its write buffer has room, so holding each delivery
//! until that next poll makes the per-request budget real backpressure. hyper's write buffer
//! may hold up to its `max_buf_size` (256 KiB) per connection; a stream gives it no more than
//! [`WRITE_AHEAD`] bytes beyond what the socket accepted, so a slow client costs little memory
//! (with a response spool, the rest of the answer waits in a temp file).
//!
//! hyper drops the body as soon as the message is complete: after the last announced byte, or
//! at once for `HEAD`, 204 and 304. The app may still be running then (about to call `finish`),
//! so a dropped body hands its queue to a small drainer task that lets the app end normally and
//! notices bytes written past the announced length.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use gatehouse_channel_request::{
    CancellationToken, Delivery, DeliveryReceiver, Output, RequestInfo,
};
use hyper::body::{Frame, SizeHint};
use tokio::task::AbortHandle;

use crate::conn::ConnShared;
use crate::error::Error;

/// The most body bytes given to hyper that the socket has not accepted yet.
pub(crate) const WRITE_AHEAD: u64 = 64 << 10;

/// Marks a request as in progress for the connection's timeouts until dropped.
pub(crate) struct InFlight(Arc<ConnShared>);

impl InFlight {
    pub(crate) fn start(shared: Arc<ConnShared>) -> Self {
        shared.timeouts(|t, _| t.handle_request_start());
        Self(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.timeouts(|t, now| t.handle_request_end(now));
    }
}

/// The app's task: cancelled (its "client gone" token fired, its future dropped) when this is
/// dropped while armed, i.e. when the connection can no longer carry its response.
pub(crate) struct AppTask {
    abort: Option<AbortHandle>,
    token: CancellationToken,
}

impl AppTask {
    pub(crate) fn new(abort: AbortHandle, token: CancellationToken) -> Self {
        Self {
            abort: Some(abort),
            token,
        }
    }

    /// The app ended its response: let its task finish on its own (cleanup such as a WSGI
    /// iterable's `close()` must still run).
    pub(crate) fn disarm(&mut self) {
        self.abort = None;
    }

    /// The response will not be sent: tell the app, but let it end on its own.
    pub(crate) fn release(&mut self) {
        self.token.cancel();
        self.abort = None;
    }
}

impl Drop for AppTask {
    fn drop(&mut self) {
        if let Some(abort) = self.abort.take() {
            self.token.cancel();
            abort.abort();
        }
    }
}

/// Everything a response needs to log, time and cancel its request.
pub(crate) struct RequestCtx {
    pub(crate) shared: Arc<ConnShared>,
    pub(crate) info: RequestInfo,
    /// `None` once the response is complete as far as the connection goes.
    pub(crate) in_flight: Option<InFlight>,
    pub(crate) task: AppTask,
}

/// The body of a response hyper is writing.
pub(crate) enum ResponseBody {
    /// A whole body made here (a 400 or 500 answer).
    Fixed(Option<Bytes>),
    /// The app's streamed body.
    Stream(Box<Stream>),
}

/// The state of an app's streamed body.
pub(crate) struct Stream {
    rx: Option<DeliveryReceiver>,
    /// Outputs received before the response was released (the request body was still arriving),
    /// taken before `rx`.
    early: VecDeque<Delivery>,
    /// The chunk hyper was last given; its credit returns on the next poll.
    held: Option<Delivery>,
    announced: Option<u64>,
    /// Whether bytes past `announced` are an app error (not for HEAD, 204, 304).
    enforce_length: bool,
    sent: u64,
    ended: bool,
    overrun_logged: bool,
    ctx: Option<RequestCtx>,
    /// The connection's written-bytes count when the stream started.
    written_base: u64,
}

impl ResponseBody {
    pub(crate) fn fixed(bytes: Bytes) -> Self {
        Self::Fixed(Some(bytes).filter(|b| !b.is_empty()))
    }

    /// The app's body: the `early` outputs first, then what comes on `rx`.
    pub(crate) fn stream(
        rx: DeliveryReceiver,
        early: VecDeque<Delivery>,
        announced: Option<u64>,
        enforce_length: bool,
        ctx: RequestCtx,
    ) -> Self {
        let written_base = ctx.shared.written();
        Self::Stream(Box::new(Stream {
            rx: Some(rx),
            early,
            held: None,
            announced,
            enforce_length,
            sent: 0,
            ended: false,
            overrun_logged: false,
            ctx: Some(ctx),
            written_base,
        }))
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.get_mut() {
            Self::Fixed(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Stream(s) => s.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Fixed(bytes) => bytes.is_none(),
            Self::Stream(s) => s.ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Fixed(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            // hyper takes the length from the app's Content-Length header, if any.
            Self::Stream(_) => SizeHint::default(),
        }
    }
}

impl Stream {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        // hyper polls again only once it has taken the previous chunk: return its credit.
        self.held = None;
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(ctx) = &self.ctx {
            // `sent` counts our body bytes; what the socket accepted since we started also
            // counts our head (and, pipelined, the end of the previous response): a bit lenient.
            let accepted = || ctx.shared.written().saturating_sub(self.written_base);
            if self.sent > accepted() + WRITE_AHEAD {
                ctx.shared.wake_on_write(cx.waker());
                if self.sent > accepted() + WRITE_AHEAD {
                    return Poll::Pending;
                }
            }
        }
        loop {
            let Some(rx) = self.rx.as_mut() else {
                return Poll::Ready(None);
            };
            let delivery = match self.early.pop_front() {
                Some(delivery) => delivery,
                None => match ready!(rx.poll_recv(cx)) {
                    Some(delivery) => delivery,
                    // Every QueueChannel queues Abort when dropped, so this is an abort too.
                    None => return Poll::Ready(Some(Err(self.end(Error::ResponseAborted)))),
                },
            };
            match &delivery.output {
                Output::Body(chunk) => {
                    let mut chunk = chunk.clone();
                    if self.enforce_length {
                        self.cut_to_length(&mut chunk);
                        if chunk.is_empty() {
                            // All announced bytes are out (hyper normally stops polling before
                            // this): end the message; the drainer takes the rest of the app's output.
                            return Poll::Ready(None);
                        }
                    }
                    self.sent += chunk.len() as u64;
                    self.held = Some(delivery);
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Output::Finish => return Poll::Ready(self.finish()),
                Output::Abort => {
                    // serve_request already logged why (or the client went away).
                    return Poll::Ready(Some(Err(self.end(Error::ResponseAborted))));
                }
                // The core sends heads only before the body; nothing to do with them here.
                Output::Head(_) | Output::Informational(_) | Output::Stderr(_) => {}
            }
        }
    }

    /// Cuts `chunk` at the announced length; the first cut is an app error: log it and close the
    /// connection after this response.
    fn cut_to_length(&mut self, chunk: &mut Bytes) {
        let Some(announced) = self.announced else {
            return;
        };
        let room = announced.saturating_sub(self.sent);
        if chunk.len() as u64 > room {
            chunk.truncate(room as usize);
            self.log_overrun(announced);
        }
    }

    fn log_overrun(&mut self, announced: u64) {
        if self.overrun_logged {
            return;
        }
        self.overrun_logged = true;
        if let Some(ctx) = &self.ctx {
            let error = Error::ResponseTooLong { announced };
            tracing::error!(peer = %ctx.info.peer, request_id = ctx.info.id, %error, "response cut at its content-length; closing the connection");
            ctx.shared.request_close();
        }
    }

    /// The app finished: fine unless it announced more than it sent.
    fn finish(&mut self) -> Option<Result<Frame<Bytes>, Error>> {
        match self.announced {
            Some(announced) if self.enforce_length && self.sent < announced => {
                let error = Error::ResponseTooShort {
                    announced,
                    sent: self.sent,
                };
                if let Some(ctx) = &self.ctx {
                    tracing::error!(peer = %ctx.info.peer, request_id = ctx.info.id, %error, "aborting the connection");
                }
                Some(Err(self.end(error)))
            }
            _ => {
                self.end(Error::ResponseAborted);
                None
            }
        }
    }

    /// The app's response is over (well or badly): its task may end on its own.
    fn end(&mut self, error: Error) -> Error {
        self.ended = true;
        if let Some(ctx) = self.ctx.as_mut() {
            ctx.task.disarm();
        }
        error
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let (Some(rx), Some(mut ctx)) = (self.rx.take(), self.ctx.take()) else {
            return;
        };
        // The message is complete as far as the connection goes.
        ctx.in_flight = None;
        let full = self
            .announced
            .filter(|&a| self.enforce_length && self.sent >= a);
        let drainer = Drainer {
            early: std::mem::take(&mut self.early),
            rx,
            ctx,
            full,
            overrun_logged: self.overrun_logged,
        };
        // hyper drops bodies inside the connection's task, so a runtime is there; without one
        // the drainer's drop cancels the app, which is the safe fallback.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(drainer.run());
        }
    }
}

/// Consumes what an app still sends after hyper completed its message.
struct Drainer {
    /// Held outputs hyper never asked for, taken before `rx`.
    early: VecDeque<Delivery>,
    rx: DeliveryReceiver,
    ctx: RequestCtx,
    /// The announced length, when all of it was sent (so any more is an overrun).
    full: Option<u64>,
    overrun_logged: bool,
}

impl Drainer {
    async fn run(mut self) {
        let gone = self.ctx.shared.gone.clone();
        loop {
            let delivery = match self.early.pop_front() {
                Some(d) => Some(d),
                None => tokio::select! {
                    d = self.rx.recv() => d,
                    // The connection is over: dropping `self` cancels the app.
                    () = gone.cancelled() => return,
                },
            };
            match delivery.map(|d| d.output) {
                Some(Output::Body(_)) => self.overrun(),
                Some(Output::Finish | Output::Abort) | None => break,
                Some(Output::Head(_) | Output::Informational(_) | Output::Stderr(_)) => {}
            }
        }
        self.ctx.task.disarm();
    }

    fn overrun(&mut self) {
        let Some(announced) = self.full else {
            return;
        };
        if !self.overrun_logged {
            self.overrun_logged = true;
            let (info, error) = (&self.ctx.info, Error::ResponseTooLong { announced });
            tracing::error!(peer = %info.peer, request_id = info.id, %error, "bytes past the content-length discarded; closing the connection");
            self.ctx.shared.request_close();
        }
    }
}
