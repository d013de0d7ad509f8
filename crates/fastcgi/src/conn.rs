//! The sans-io FastCGI connection: records and app outputs in, events and bytes out. No socket,
//! no clock, no spawn: the caller passes `now` and carries out the [`Event`]s.
//!
//! ```text
//!  handle_record(now, rec) ──► request table (id ─► RequestState) ──► poll_event(): Dispatch,
//!  handle_delivery(now, d) ──► OutQueue (STDOUT, STDERR, END_REQUEST) Stdin, StdinEnd, Cancel,
//!  handle_timeout / handle_shutdown / handle_read_closed              Ended, Close
//! ```
//!
//! Section 3.3: "A request ID R becomes active when the application receives a record
//! {FCGI_BEGIN_REQUEST, R, ...} and becomes inactive when the application sends a record
//! {FCGI_END_REQUEST, R, ...} to the Web server. While a request ID R is inactive, the
//! application ignores records with requestId == R, except for FCGI_BEGIN_REQUEST records."
//! Requests are multiplexed (`FCGI_MPXS_CONNS` = 1); each gets a tag unique in the process
//! for its response channel, since web servers reuse request IDs.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gatehouse_channel_request::{Delivery, Output, Peer, Protocol, RequestInfo};

use crate::config::RESPONSE_HOLD_TIMEOUT;
use crate::error::{Error, LimitError, ProtocolError};
pub use crate::event::{Dispatch, Event};
use crate::id_map::IdMap;
use crate::management;
use crate::record::{
    BeginRequestBody, Payload, ProtocolStatus, Record, RecordType, Role, FCGI_NULL_REQUEST_ID,
};
use crate::request::{RequestState, StdinStep};
use crate::response::{OutQueue, APP_STATUS_FAILED, APP_STATUS_OK};
use crate::server::{Server, Shared};
use gatehouse_channel_request::{Offer, SHUTDOWN_FIRST_REQUEST_GRACE};

/// Records in a row that carry no request data (management queries, empty records for
/// inactive requests) allowed before the connection is closed as a flood.
pub const MAX_IDLE_RECORDS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Taking requests.
    Open,
    /// Taking no new request (shutdown, or `FCGI_KEEP_CONN` unset); closes when the last ends.
    Draining,
    /// Closing or closed: input is ignored.
    Closed,
}

/// One FastCGI transport connection, without I/O.
#[derive(Debug)]
pub struct Connection {
    shared: Arc<Shared>,
    peer: Peer,
    requests: IdMap<u16, RequestState>,
    tags: IdMap<u64, u16>,
    events: VecDeque<Event>,
    out: OutQueue,
    state: State,
    last_progress: Instant,
    idle_records: usize,
    error: Option<Error>,
    /// A request ended (answered, refused or aborted) before the peer finished its input: the
    /// peer may still be sending records we will never read, so closing must linger.
    input_unread: bool,
    /// Requests holding their response back while their body arrives
    /// (`gatehouse_channel_request::hold`): the hold deadlines are looked for only when there
    /// are some.
    holding: usize,
    /// Shut down while idle: until then one more request is still taken
    /// ([`SHUTDOWN_FIRST_REQUEST_GRACE`]).
    first_request_grace: Option<Instant>,
}

impl Connection {
    /// A connection from `peer` to `server`, accepted at `now`.
    pub fn new(server: &Server, peer: Peer, now: Instant) -> Self {
        Self {
            shared: server.shared().clone(),
            peer,
            requests: IdMap::default(),
            tags: IdMap::default(),
            events: VecDeque::new(),
            out: OutQueue::new(),
            state: State::Open,
            last_progress: now,
            idle_records: 0,
            error: None,
            input_unread: false,
            holding: 0,
            first_request_grace: None,
        }
    }

    /// Handles one record from the peer.
    pub fn handle_record(&mut self, now: Instant, record: Record) {
        if self.state == State::Closed {
            return;
        }
        self.last_progress = now;
        match self.on_record(now, record) {
            Err(e) => self.fail(e),
            Ok(true) => self.idle_records = 0,
            Ok(false) => {
                self.idle_records += 1;
                if self.idle_records > MAX_IDLE_RECORDS {
                    let limit = MAX_IDLE_RECORDS;
                    self.fail(LimitError::RecordFlood { limit }.into());
                }
            }
        }
    }

    /// Handles one app output; the delivery is dropped (returning its budget) once its bytes
    /// are written. While the request's body is still arriving the output is held instead
    /// (`gatehouse_channel_request::hold`), until the body is complete, the app ends its
    /// response, the held bytes reach `Config::response_budget`, or the input stalls for
    /// [`RESPONSE_HOLD_TIMEOUT`].
    pub fn handle_delivery(&mut self, now: Instant, delivery: Delivery) {
        let Some(&id) = self.tags.get(&delivery.tag) else {
            return; // The request was aborted or the connection is closing.
        };
        self.last_progress = now;
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        let budget = self.shared.config.response_budget;
        let was_holding = req.hold.is_holding();
        let offer = req
            .hold
            .offer(delivery, req.input_open().then_some(now), budget);
        match offer {
            Offer::Started => self.holding += 1,
            Offer::Kept => {}
            Offer::Full => {
                self.holding += usize::from(!was_holding);
                self.release(id, "the held bytes reached the response budget");
            }
            Offer::Pass(delivery) => {
                // Only the end of the response releases a hold. An informational head is not
                // written by FastCGI at all; stderr passes it without releasing it.
                if was_holding && matches!(delivery.output, Output::Finish | Output::Abort) {
                    self.release(id, "the app ended its response");
                }
                self.put_output(id, delivery);
            }
        }
    }

    /// Writes one app output of request `id` to the out queue.
    fn put_output(&mut self, id: u16, delivery: Delivery) {
        match &delivery.output {
            Output::Body(body) => {
                let body = body.clone();
                self.out.put_body(id, body, delivery);
                return;
            }
            Output::Stderr(data) => {
                let data = data.clone();
                if let Some(req) = self.requests.get_mut(&id) {
                    req.stderr_sent = true;
                }
                self.out.put_stderr(id, data, delivery);
                return;
            }
            _ => {}
        }
        match delivery.output {
            Output::Head(head) => self.out.put_head(id, &head),
            Output::Finish => self.end_request(id, APP_STATUS_OK),
            Output::Abort => self.end_request(id, APP_STATUS_FAILED),
            Output::Informational(_) | Output::Body(_) | Output::Stderr(_) => {}
        }
    }

    /// Releases the response held by request `id`, if any: its outputs go to the out queue
    /// in order.
    fn release(&mut self, id: u16, why: &'static str) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        let Some(held) = req.hold.release() else {
            return;
        };
        self.holding = self.holding.saturating_sub(1);
        tracing::trace!(peer = %self.peer, request_id = req.info.id, fcgi_id = id, "response released: {why}");
        for delivery in held {
            self.put_output(id, delivery);
        }
    }

    /// An app accepted a body chunk the driver was holding back (reading resumes).
    pub fn handle_body_accepted(&mut self, now: Instant) {
        self.last_progress = now;
    }

    /// A deadline from [`Connection::poll_timeout`] passed: releases the responses held for
    /// [`RESPONSE_HOLD_TIMEOUT`] without input progress, and closes a connection idle for
    /// `Config::idle_timeout`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_hold_timeout(now);
        if self.first_request_grace.is_some_and(|grace| now >= grace) {
            tracing::debug!(peer = %self.peer, "closing a connection that sent no request while shutting down");
            self.first_request_grace = None;
            self.close_if_drained();
        }
        match self.idle_deadline() {
            Some(deadline) if now >= deadline => {}
            _ => return,
        }
        let error = LimitError::IdleTimeout(self.shared.config.idle_timeout);
        if self.requests.is_empty() {
            // Nothing came for `idle_timeout`: the peer is not sending, no need to linger.
            tracing::debug!(peer = %self.peer, "closing idle connection");
            self.close(false);
        } else {
            self.fail(error.into());
        }
    }

    /// Graceful shutdown: no new request; the connection closes when its requests end. An idle
    /// connection (a new one, or a kept-alive one between requests) still gets one more
    /// request if it comes within [`SHUTDOWN_FIRST_REQUEST_GRACE`], and closes after answering
    /// it: its web server may be sending it already, and a request written into a connection we
    /// close is lost (nginx does not retry a fresh connection, nor a POST); closed after a
    /// response, nginx sees the end of the connection with the response and does not reuse it.
    pub fn handle_shutdown(&mut self, now: Instant) {
        if self.state == State::Open {
            self.state = State::Draining;
            if self.requests.is_empty() {
                self.first_request_grace = Some(now + SHUTDOWN_FIRST_REQUEST_GRACE);
            }
        }
        self.close_if_drained();
    }

    /// The peer's side ended: `None` at end of input, or the read or decode error.
    ///
    /// Section 5.4: a web server "can abort a request by closing the request's transport
    /// connection", so the requests still running are cancelled.
    pub fn handle_read_closed(&mut self, _now: Instant, error: Option<Error>) {
        if self.state == State::Closed {
            return;
        }
        match error {
            Some(Error::Io(e)) => self.lose(&format!("read failed: {e}")),
            Some(e) => self.fail(e),
            None => self.lose("peer closed the connection"),
        }
    }

    /// Writing to the peer failed: the connection is gone.
    pub fn handle_write_error(&mut self, error: &io::Error) {
        if self.state != State::Closed {
            self.lose(&format!("write failed: {error}"));
        }
        self.out = OutQueue::new();
    }

    /// The next thing the driver must do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must be called: while every request (or none) waits
    /// for the peer, `Config::idle_timeout` after the last progress; and while a request holds
    /// its response, [`RESPONSE_HOLD_TIMEOUT`] after its input last progressed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.idle_deadline(),
            self.poll_hold_timeout(),
            self.first_request_grace,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn idle_deadline(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let waiting = self.requests.values().all(RequestState::waits_for_peer);
        waiting.then(|| self.last_progress + self.shared.config.idle_timeout)
    }

    /// The earliest deadline of a held response alone: for a driver that is not reading (a
    /// body chunk waits for room), which must not time the connection out as idle but must
    /// still release a held response whose app stopped reading its body.
    pub fn poll_hold_timeout(&self) -> Option<Instant> {
        if self.holding == 0 {
            return None;
        }
        let requests = self.requests.values();
        requests
            .filter_map(|r| r.hold.deadline(RESPONSE_HOLD_TIMEOUT))
            .min()
    }

    /// The deadline from [`Connection::poll_hold_timeout`] passed: releases the responses
    /// whose request's input made no progress for [`RESPONSE_HOLD_TIMEOUT`].
    pub fn handle_hold_timeout(&mut self, now: Instant) {
        if self.holding == 0 {
            return;
        }
        let expired: Vec<u16> = self
            .requests
            .iter()
            .filter(|(_, r)| {
                r.hold
                    .deadline(RESPONSE_HOLD_TIMEOUT)
                    .is_some_and(|d| now >= d)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            tracing::debug!(peer = %self.peer, fcgi_id = id, timeout = ?RESPONSE_HOLD_TIMEOUT,
                "no body input for the held response's request: releasing it unfinished");
            self.release(id, "no body input progress for RESPONSE_HOLD_TIMEOUT");
        }
    }

    /// The bytes to write to the peer.
    pub fn out(&mut self) -> &mut OutQueue {
        &mut self.out
    }

    /// Bytes queued for the peer.
    pub fn out_len(&self) -> usize {
        self.out.len()
    }

    /// Whether records are still wanted (the connection is not closing).
    pub fn wants_read(&self) -> bool {
        self.state != State::Closed
    }

    /// The peer this connection is from.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The error that closed the connection, if one did.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Active request IDs.
    pub fn active_requests(&self) -> usize {
        self.requests.len()
    }

    fn on_record(&mut self, now: Instant, record: Record) -> Result<bool, Error> {
        let id = record.request_id;
        if id == FCGI_NULL_REQUEST_ID {
            let cfg = &self.shared.config;
            return management::answer(record.payload, cfg, &mut self.out, &self.peer)
                .map(|()| false);
        }
        if let Payload::BeginRequest(body) = record.payload {
            return self.on_begin(id, body).map(|()| true);
        }
        if !self.requests.contains_key(&id) {
            tracing::trace!(peer = %self.peer, fcgi_id = id, "record for an inactive request ignored");
            return Ok(record.payload.content_len() > 0);
        }
        match record.payload {
            Payload::AbortRequest => self.on_abort(id),
            Payload::Params(data) => self.on_params(id, data)?,
            Payload::Stdin(data) => self.on_stdin(now, id, data)?,
            other => return Err(unexpected(other.record_type(), id)),
        }
        Ok(true)
    }

    fn on_begin(&mut self, id: u16, body: BeginRequestBody) -> Result<(), Error> {
        if self.requests.contains_key(&id) {
            return Err(ProtocolError::DuplicateBeginRequest(id).into());
        }
        // The one request an idle connection still takes after a shutdown (see handle_shutdown).
        let first = self.first_request_grace.take().is_some();
        let info = RequestInfo::new(Protocol::FastCgi, self.peer.clone());
        let keep_conn = body.keep_conn();
        if !matches!(body.role, Role::Responder | Role::Authorizer) {
            tracing::info!(peer = %self.peer, request_id = info.id, fcgi_id = id, role = %body.role,
                "role not supported: answering FCGI_UNKNOWN_ROLE");
            self.shared.count_rejected();
            self.out.put_refusal(id, None, ProtocolStatus::UnknownRole);
            self.after_end(keep_conn, false);
            return Ok(());
        }
        let cfg = &self.shared.config;
        let slot = if self.state != State::Open && !first {
            Err(LimitError::Closing)
        } else if self.requests.len() >= cfg.max_reqs_per_conn {
            Err(LimitError::TooManyRequestsOnConnection {
                limit: cfg.max_reqs_per_conn,
            })
        } else {
            let limit = cfg.max_reqs;
            self.shared
                .try_slot()
                .ok_or(LimitError::TooManyRequests { limit })
        };
        match slot {
            Ok(slot) => {
                let req = RequestState::new(info, keep_conn, body.role, slot);
                self.requests.insert(id, req);
            }
            Err(e) => self.refuse(id, &info, keep_conn, e.into()),
        }
        Ok(())
    }

    /// Section 5.4: "the application responds as soon as possible with {FCGI_END_REQUEST, R,
    /// {FCGI_REQUEST_COMPLETE, appStatus}}". The app's task is dropped.
    fn on_abort(&mut self, id: u16) {
        let Some(req) = self.requests.remove(&id) else {
            return;
        };
        tracing::debug!(peer = %self.peer, request_id = req.info.id, fcgi_id = id, "FCGI_ABORT_REQUEST: cancelling the request");
        if req.hold.is_holding() {
            self.holding = self.holding.saturating_sub(1);
        }
        if req.is_running() {
            self.tags.remove(&req.tag());
            self.events.push_back(Event::Cancel { tag: req.tag() });
            self.out.put_end(
                id,
                req.stderr_sent,
                APP_STATUS_FAILED,
                ProtocolStatus::RequestComplete,
            );
        } else {
            self.out
                .put_end_request(id, APP_STATUS_FAILED, ProtocolStatus::RequestComplete);
        }
        self.after_end(req.keep_conn, req.input_complete());
    }

    fn on_params(&mut self, id: u16, data: Bytes) -> Result<(), Error> {
        let limit = self.shared.config.max_params_bytes;
        let Some(req) = self.requests.get_mut(&id) else {
            return Ok(());
        };
        if req.is_running() {
            return Err(unexpected_in_state(
                RecordType::Params,
                id,
                "after the end of FCGI_PARAMS",
            ));
        }
        let outcome = if data.is_empty() {
            req.end_params().map(|r| r.map_err(Error::from))
        } else {
            req.push_params(data, limit).err().map(|e| Err(e.into()))
        };
        match outcome {
            None => {}
            Some(Ok(ready)) => {
                let tag = req.tag();
                self.tags.insert(tag, id);
                self.shared.count_request();
                self.events.push_back(Event::Dispatch(Dispatch {
                    info: req.info.clone(),
                    env: ready.env,
                    content_length: ready.content_length,
                    slot: ready.slot,
                }));
                if req.role == Role::Authorizer {
                    // Section 6.3: an Authorizer gets the request's params, not its body.
                    self.events.push_back(Event::StdinEnd { tag, error: None });
                }
            }
            Some(Err(e)) => {
                if let Some(req) = self.requests.remove(&id) {
                    self.refuse(id, &req.info, req.keep_conn, e);
                }
            }
        }
        Ok(())
    }

    fn on_stdin(&mut self, now: Instant, id: u16, data: Bytes) -> Result<(), Error> {
        let Some(req) = self.requests.get_mut(&id) else {
            return Ok(());
        };
        let step = req
            .stdin(data.len())
            .map_err(|why| unexpected_in_state(RecordType::Stdin, id, why))?;
        let tag = req.tag();
        req.hold.input_progress(now);
        if !req.input_open() {
            self.release(id, "the request body is complete");
        }
        let (forward, end) = match step {
            StdinStep::Forward => (true, None),
            StdinStep::Drop => (false, None),
            StdinStep::Unwanted => {
                tracing::warn!(peer = %self.peer, request_id = tag, fcgi_id = id,
                    "FCGI_STDIN content for an FCGI_AUTHORIZER request (the role has no body): dropped");
                (false, None)
            }
            StdinStep::End(None) => (false, Some(None)),
            StdinStep::ForwardThenFail(e) | StdinStep::End(Some(e)) => {
                tracing::warn!(peer = %self.peer, request_id = tag, fcgi_id = id, error = %e, "bad request body");
                (!data.is_empty(), Some(e.body_error()))
            }
        };
        if forward {
            self.events.push_back(Event::Stdin { tag, data });
        }
        if let Some(error) = end {
            self.events.push_back(Event::StdinEnd { tag, error });
        }
        Ok(())
    }

    /// Refuses a request the app never saw, with a log line naming the peer and the request.
    /// Its `FCGI_PARAMS` or `FCGI_STDIN` are still to come.
    fn refuse(&mut self, id: u16, info: &RequestInfo, keep_conn: bool, error: Error) {
        tracing::warn!(peer = %self.peer, request_id = info.id, fcgi_id = id, error = %error, "request refused");
        self.shared.count_rejected();
        let status = error
            .end_request_status()
            .unwrap_or(ProtocolStatus::Overloaded);
        self.out.put_refusal(id, error.http_status(), status);
        self.after_end(keep_conn, false);
    }

    /// The app finished (or aborted) its response: end the request on the wire.
    fn end_request(&mut self, id: u16, app_status: u32) {
        let Some(req) = self.requests.remove(&id) else {
            return;
        };
        self.tags.remove(&req.tag());
        let stderr = req.stderr_sent;
        self.out
            .put_end(id, stderr, app_status, ProtocolStatus::RequestComplete);
        self.events.push_back(Event::Ended { tag: req.tag() });
        self.after_end(req.keep_conn, req.input_complete());
    }

    /// Section 5.1: with `FCGI_KEEP_CONN` unset, "the application closes the connection after
    /// responding to this request". Other requests multiplexed on it are let finish first.
    /// `input_complete`: whether the peer had sent the whole request (its empty `FCGI_STDIN`).
    fn after_end(&mut self, keep_conn: bool, input_complete: bool) {
        self.input_unread |= !input_complete;
        if !keep_conn && self.state == State::Open {
            self.state = State::Draining;
        }
        self.close_if_drained();
    }

    /// Closes once no request is left: lingering only when the peer may still be sending
    /// (some request ended before its input did). When the peer sent every request whole, as
    /// nginx does (`FCGI_PARAMS` and `FCGI_STDIN` to the empty record before reading), there is
    /// nothing to drain and the connection closes at once.
    fn close_if_drained(&mut self) {
        let waiting_first = self.first_request_grace.is_some();
        if self.state == State::Draining && self.requests.is_empty() && !waiting_first {
            self.close(self.input_unread);
        }
    }

    fn close(&mut self, linger: bool) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.events.push_back(Event::Close { linger });
        }
    }

    /// Cancels every request (their IDs are forgotten: nothing more is sent for them).
    fn abort_all(&mut self) {
        for (_, req) in self.requests.drain() {
            if req.is_running() {
                self.events.push_back(Event::Cancel { tag: req.tag() });
            }
        }
        self.tags.clear();
        self.holding = 0;
    }

    /// A connection error: one log line, every request cancelled, lingering close.
    fn fail(&mut self, error: Error) {
        if self.state == State::Closed {
            return;
        }
        tracing::warn!(peer = %self.peer, error = %error, active_requests = self.requests.len(), "closing connection");
        self.shared.count_connection_error();
        self.abort_all();
        self.error = Some(error);
        self.close(true);
    }

    /// The transport is gone (or going): cancel what runs, no lingering.
    fn lose(&mut self, why: &str) {
        let running: Vec<u64> = self
            .requests
            .values()
            .filter(|r| r.is_running())
            .map(RequestState::tag)
            .collect();
        if !running.is_empty() {
            // The one line about a client that went away, naming the requests it cancels.
            tracing::info!(peer = %self.peer, active_requests = self.requests.len(), request_ids = ?running, "{why}: cancelling its requests");
        } else {
            tracing::debug!(peer = %self.peer, "{why}");
        }
        self.abort_all();
        self.close(false);
    }
}

fn unexpected(record_type: RecordType, request_id: u16) -> Error {
    let why = match record_type {
        RecordType::Data => "(FCGI_DATA belongs to the FCGI_FILTER role, which is not played)",
        RecordType::GetValues | RecordType::GetValuesResult | RecordType::UnknownType => {
            "(a management record type, which needs the null request id)"
        }
        RecordType::Other(_) => "(a record type FastCGI 1.0 does not define)",
        _ => "(only applications send this record type)",
    };
    unexpected_in_state(record_type, request_id, why)
}

fn unexpected_in_state(record_type: RecordType, request_id: u16, why: &'static str) -> Error {
    ProtocolError::UnexpectedRecord {
        record_type,
        request_id,
        why,
    }
    .into()
}
