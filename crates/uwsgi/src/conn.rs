//! The sans-io uwsgi connection: bytes, app outputs and `now` in; events out, deadlines as
//! values. No socket, no clock, no spawn, no channel: the driver carries out the [`Event`]s.
//!
//! ```text
//!  handle_input(now, buf) ─► HeadDecoder ─► Event::Request ─┐ BodyDecoder ─► Event::Body/BodyEnd
//!  handle_eof(now, buf)                                      │
//!  handle_delivery(now, d) ─► Hold (while body remains) ─► ResponseWriter ─► Event::Transmit
//!  handle_timeout(now) · handle_shutdown(now) · handle_failure(err) · handle_app_gone()
//!  poll_event() · poll_timeout() · wants_input() · wants_body_room() · linger()
//! ```
//!
//! One request per connection: the packet, `CONTENT_LENGTH` body bytes, the response, then the
//! end ([`Event::Close`]). Every failure is logged here, once, with the peer and request id.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::{
    Delivery, Hold, Offer, Output, RequestInfo, SHUTDOWN_FIRST_REQUEST_GRACE,
};
use tokio_util::codec::Decoder;

use crate::codec::{BodyDecoder, BodyFrame, HeadDecoder};
use crate::error::{Error, LimitError};
use crate::head::RequestHead;
use crate::response::{error_response, Action, ResponseWriter};
use crate::server::{Config, RESPONSE_HOLD_TIMEOUT};

/// What the driver must do.
#[derive(Debug)]
pub enum Event {
    /// The request is read: start the app with a body queue of `head.content_length` bytes.
    Request(RequestHead),
    /// Body bytes for the app, into the slot reserved before the read that brought them.
    Body(Bytes),
    /// The body is complete.
    BodyEnd,
    /// Bytes to write, in order; call [`Connection::handle_written`] once they are out.
    Transmit(Bytes),
    /// The connection is over; cancel the app unless the close is [`Close::Graceful`] after a
    /// complete response.
    Close(Close),
}

/// How the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Shut the write side, drain what [`Connection::linger`] says, close.
    Graceful,
    /// The response is incomplete: reset a TCP connection so the front server can tell.
    Reset,
    /// Nothing to say: close now (the peer sent nothing, or shutdown before the request).
    Quiet,
}

/// What a closing connection still expects from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linger {
    /// Nothing: the request was read whole, or the peer closed.
    No,
    /// The rest of the body: this many bytes.
    Body(u64),
    /// An unknown amount: the packet could not be read.
    UntilEof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the packet.
    Head,
    /// The app runs; the body (if any) streams in, the response out.
    Running,
    /// Closed.
    Done,
}

/// One uwsgi connection, without I/O.
#[derive(Debug)]
pub struct Connection {
    info: RequestInfo,
    config: Config,
    phase: Phase,
    head_dec: HeadDecoder,
    body: BodyDecoder,
    /// The app still reads its body (else body bytes are read and discarded).
    body_wanted: bool,
    /// The peer ended its side (after the body: a half-close).
    read_closed: bool,
    head_deadline: Instant,
    shutdown_deadline: Option<Instant>,
    hold: Hold,
    writer: ResponseWriter,
    /// Deliveries whose bytes are being transmitted: their credit returns once written.
    unsent: Vec<Delivery>,
    events: VecDeque<Event>,
    /// The app's response went out whole.
    complete: bool,
    /// The packet was read (the body decoder counts the request's body).
    head_read: bool,
}

impl Connection {
    /// A connection accepted at `now`.
    pub fn new(info: RequestInfo, config: Config, now: Instant) -> Self {
        Self {
            head_dec: HeadDecoder::new(config.max_vars_bytes),
            head_deadline: now + config.header_timeout,
            info,
            config,
            phase: Phase::Head,
            body: BodyDecoder::new(0),
            body_wanted: true,
            read_closed: false,
            shutdown_deadline: None,
            hold: Hold::default(),
            writer: ResponseWriter::new(),
            unsent: Vec::new(),
            events: VecDeque::new(),
            complete: false,
            head_read: false,
        }
    }

    /// A connection over the limit: answered `503` and closed.
    pub fn refused(info: RequestInfo, config: Config, now: Instant) -> Self {
        let limit = config.max_conns;
        let mut conn = Self::new(info, config, now);
        conn.fail(LimitError::Connections { limit }.into());
        conn
    }

    /// The request's identity (peer, id).
    pub fn info(&self) -> &RequestInfo {
        &self.info
    }

    /// The next thing to do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must be called: the packet's deadline, the
    /// shutdown grace, or the end of a response hold.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Head => Some(
                self.shutdown_deadline
                    .map_or(self.head_deadline, |s| s.min(self.head_deadline)),
            ),
            Phase::Running => self.hold.deadline(RESPONSE_HOLD_TIMEOUT),
            Phase::Done => None,
        }
    }

    /// Whether the socket should be read.
    pub fn wants_input(&self) -> bool {
        self.phase != Phase::Done && !self.read_closed
    }

    /// Whether the next read may bring body bytes for the app: the driver reserves a slot in
    /// the body queue first (backpressure: no read while the app's queue is full).
    pub fn wants_body_room(&self) -> bool {
        self.phase == Phase::Running && self.body_wanted && self.body.remaining() > 0
    }

    /// Whether a read that makes no progress for `idle_timeout` is the peer's fault (body bytes
    /// are due); the driver then calls [`Connection::handle_idle`].
    pub fn read_is_timed(&self) -> bool {
        self.phase == Phase::Running && self.body.remaining() > 0
    }

    /// Whether the app's response went out whole (else, at the close, the app is cancelled).
    pub fn response_complete(&self) -> bool {
        self.complete
    }

    /// What the peer may still send once the connection closes.
    pub fn linger(&self) -> Linger {
        if self.read_closed {
            Linger::No
        } else if !self.head_read {
            Linger::UntilEof
        } else if self.body.remaining() > 0 {
            Linger::Body(self.body.remaining())
        } else {
            Linger::No
        }
    }

    /// Bytes arrived in `buf` (the driver's read buffer; what is used is taken from it).
    pub fn handle_input(&mut self, now: Instant, buf: &mut BytesMut) {
        self.decode(now, buf, false);
    }

    /// The peer ended its side; `buf` holds what is left.
    pub fn handle_eof(&mut self, now: Instant, buf: &mut BytesMut) {
        self.read_closed = true;
        self.decode(now, buf, true);
    }

    fn decode(&mut self, now: Instant, buf: &mut BytesMut, eof: bool) {
        if self.phase == Phase::Head {
            let got = if eof {
                self.head_dec.decode_eof(buf)
            } else {
                self.head_dec.decode(buf)
            };
            match got {
                Ok(Some(head)) => self.start(head),
                Ok(None) if eof => return self.close(Close::Quiet),
                Ok(None) => return,
                Err(e) => return self.fail(e),
            }
        }
        while self.phase == Phase::Running && !self.body.is_ended() {
            let got = if eof {
                self.body.decode_eof(buf)
            } else {
                self.body.decode(buf)
            };
            match got {
                Ok(Some(BodyFrame::Chunk(chunk))) => {
                    self.hold.input_progress(now);
                    if self.body_wanted {
                        self.events.push_back(Event::Body(chunk));
                    }
                }
                Ok(Some(BodyFrame::End)) => {
                    self.events.push_back(Event::BodyEnd);
                    let held = self.hold.release(); // The body is complete.
                    self.write_held(held);
                }
                Ok(None) => break,
                Err(e) => return self.fail(e),
            }
        }
        if self.body.is_ended() {
            buf.clear(); // Past the body: not ours (one request per connection).
        }
    }

    fn start(&mut self, head: RequestHead) {
        if !head.dropped.is_empty() {
            let names: Vec<String> = head
                .dropped
                .iter()
                .map(|n| n.escape_ascii().to_string())
                .collect();
            tracing::debug!(peer = %self.info.peer, request_id = self.info.id, vars = ?names, "uwsgi: magic variables dropped (never acted on)");
        }
        self.body = BodyDecoder::new(head.content_length);
        self.head_read = true;
        self.phase = Phase::Running;
        self.events.push_back(Event::Request(head));
    }

    /// The app dropped its body: the rest is read and discarded.
    pub fn handle_body_closed(&mut self) {
        self.body_wanted = false;
    }

    /// A read waited [`Config::idle_timeout`] with body bytes due.
    pub fn handle_idle(&mut self) {
        if self.body_wanted {
            self.fail(Error::IdleTimeout(self.config.idle_timeout));
        } else {
            // The app does not need the rest: stop reading, linger at the close.
            self.read_closed = true;
        }
    }

    /// One output of the app (from its delivery queue).
    pub fn handle_delivery(&mut self, now: Instant, delivery: Delivery) {
        if self.phase != Phase::Running {
            return;
        }
        // The clock matters only while the body is incomplete (a hold may start).
        let open_at = (self.body.remaining() > 0).then_some(now);
        let was_holding = self.hold.is_holding();
        match self
            .hold
            .offer(delivery, open_at, self.config.response_budget)
        {
            Offer::Started | Offer::Kept => {}
            Offer::Full => {
                let held = self.hold.release();
                self.write_held(held);
            }
            Offer::Pass(delivery) => {
                if was_holding && matches!(delivery.output, Output::Finish | Output::Abort) {
                    let held = self.hold.release();
                    self.write_held(held);
                }
                let action = self.writer.handle_output(delivery.output.clone());
                self.act(action);
                self.unsent.push(delivery); // Its credit returns once the bytes are written.
            }
        }
    }

    /// The transmitted bytes are on the socket: the app's budget gets their credit back.
    pub fn handle_written(&mut self) {
        self.unsent.clear();
    }

    /// The app's delivery queue closed without an end: its task died without answering.
    pub fn handle_app_gone(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        tracing::error!(peer = %self.info.peer, request_id = self.info.id, "uwsgi: application ended without a response");
        self.app_failed();
    }

    /// `now` passed [`Connection::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Head if self.shutdown_deadline.is_some_and(|s| now >= s) => {
                self.close(Close::Quiet);
            }
            Phase::Head if now >= self.head_deadline => {
                self.fail(Error::HeaderTimeout(self.config.header_timeout));
            }
            Phase::Running
                if self
                    .hold
                    .deadline(RESPONSE_HOLD_TIMEOUT)
                    .is_some_and(|d| now >= d) =>
            {
                tracing::debug!(peer = %self.info.peer, request_id = self.info.id, timeout = ?RESPONSE_HOLD_TIMEOUT, "uwsgi: no request body input: the held response goes out");
                let held = self.hold.release();
                self.write_held(held);
            }
            _ => {}
        }
    }

    /// The daemon shuts down: a connection still waiting for its packet gets
    /// `SHUTDOWN_FIRST_REQUEST_GRACE` to send it (its web server would not retry it), then is
    /// closed; a running request finishes.
    pub fn handle_shutdown(&mut self, now: Instant) {
        if self.phase == Phase::Head {
            self.shutdown_deadline = Some(now + SHUTDOWN_FIRST_REQUEST_GRACE);
        }
    }

    /// The driver's I/O failed (read or write error, a stalled write past the idle timeout).
    pub fn handle_failure(&mut self, err: Error) {
        if self.phase != Phase::Done {
            self.fail(err);
        }
    }

    /// Writes held outputs in order.
    fn write_held(&mut self, held: Option<Vec<Delivery>>) {
        for delivery in held.into_iter().flatten() {
            let action = self.writer.handle_output(delivery.output);
            self.act(action);
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Nothing => {}
            Action::Write(first, second) => {
                self.events.push_back(Event::Transmit(first));
                self.events.extend(second.map(Event::Transmit));
            }
            Action::Finish(last) => {
                self.events.extend(last.map(Event::Transmit));
                self.complete = true;
                self.close(Close::Graceful);
            }
            Action::Abort => self.close(Close::Reset),
            Action::Fail => {
                tracing::error!(peer = %self.info.peer, request_id = self.info.id, "uwsgi: application failed before its response");
                self.app_failed();
            }
        }
    }

    fn app_failed(&mut self) {
        if self.writer.has_written() {
            self.close(Close::Reset);
        } else {
            self.answer(500);
        }
    }

    /// The one log line of a failure, then the answer it allows.
    fn fail(&mut self, err: Error) {
        log_failure(&self.info, &err);
        match err.http_status() {
            Some(status) if !self.writer.has_written() => self.answer(status),
            _ if self.writer.has_written() => self.close(Close::Reset),
            _ => self.close(Close::Quiet),
        }
    }

    fn answer(&mut self, status: u16) {
        self.events.clear(); // Nothing half-written goes before our answer.
        self.events
            .push_back(Event::Transmit(error_response(status)));
        self.close(Close::Graceful);
    }

    fn close(&mut self, how: Close) {
        if self.phase == Phase::Done {
            return;
        }
        if how != Close::Graceful {
            self.events.retain(|e| !matches!(e, Event::Transmit(_)));
        }
        self.phase = Phase::Done;
        self.events.push_back(Event::Close(how));
    }
}

/// The one log line of a failed connection.
fn log_failure(info: &RequestInfo, err: &Error) {
    let (peer, id) = (&info.peer, info.id);
    match err {
        _ if err.is_client_gone() => {
            tracing::debug!(peer = %peer, request_id = id, error = %err, "uwsgi: client gone");
        }
        Error::Limit(LimitError::Connections { .. }) => {
            tracing::warn!(peer = %peer, request_id = id, error = %err, "uwsgi: connection refused");
        }
        _ => tracing::warn!(peer = %peer, request_id = id, error = %err, "uwsgi: bad request"),
    }
}
