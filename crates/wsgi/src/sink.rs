//! The response side of one request on a pool thread: holds the head from `start_response`
//! until the first non-empty body chunk, enforces the app's `Content-Length`, and hands chunks to
//! the async side through the request's [`outbox`](crate::outbox) (a full one is waited on with
//! the GIL released).
//!
//! PEP 3333, "Buffering and Streaming": the server must not delay a chunk, and must send the
//! headers only "when the first non-empty bytestring is yielded by the application, or when the
//! application's first invocation of write() occurs" (or at the end, for an empty body).

use crate::error::Error;
pub(crate) use crate::outbox::OutSender;
use bytes::Bytes;
use gatehouse_channel_request::{RequestInfo, ResponseHead};
use pyo3::prelude::*;

pyo3::create_exception!(
    gatehouse,
    ClientDisconnected,
    pyo3::exceptions::PyOSError,
    "The client went away: nothing more can be sent or read."
);

/// What a pool thread hands to the async side of its request.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// The final head.
    Head(ResponseHead),
    /// A non-empty body chunk.
    Body(Bytes),
}

/// Why a chunk could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The async side stopped listening: the client went away or the request was cancelled.
    Gone,
    /// Body before `start_response`.
    NotStarted,
}

/// One request's response state.
#[derive(Debug)]
pub(crate) struct Sink {
    /// `None` once released: the async side's channel then closes whatever Python still holds.
    out: Option<OutSender>,
    info: RequestInfo,
    head_request: bool,
    /// The head from `start_response`, until it is sent.
    head: Option<ResponseHead>,
    started: bool,
    head_sent: bool,
    /// No body is expected: HEAD request, 204 or 304.
    bodiless: bool,
    content_length: Option<u64>,
    /// The body's whole length when the worker knows it (a one-item list), for `Content-Length`.
    known_length: Option<u64>,
    sent: u64,
    /// `Content-Length` bytes were sent: later bytes are dropped.
    complete: bool,
    gone: bool,
}

impl Sink {
    /// A sink for a request; `head_request` = `REQUEST_METHOD` is `HEAD`.
    pub(crate) fn new(out: OutSender, info: RequestInfo, head_request: bool) -> Self {
        Self {
            out: Some(out),
            info,
            head_request,
            head: None,
            started: false,
            head_sent: false,
            bodiless: head_request,
            content_length: None,
            known_length: None,
            sent: 0,
            complete: false,
            gone: false,
        }
    }

    /// Records (or, before the head is sent, replaces) the head from `start_response`.
    pub(crate) fn start(&mut self, head: ResponseHead, content_length: Option<u64>) {
        self.bodiless = self.head_request || matches!(head.status(), 204 | 304);
        self.head = Some(head);
        self.content_length = content_length;
        self.started = true;
    }

    pub(crate) fn started(&self) -> bool {
        self.started
    }

    pub(crate) fn head_sent(&self) -> bool {
        self.head_sent
    }

    pub(crate) fn is_gone(&self) -> bool {
        self.gone || self.out.as_ref().is_none_or(OutSender::is_closed)
    }

    /// Whether `Content-Length` bytes were sent (iteration can stop).
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// The body is exactly `len` bytes (the app returned a one-item list): lets the head carry a
    /// `Content-Length` the app did not set (PEP 3333, "Handling the Content-Length Header").
    pub(crate) fn set_known_length(&mut self, len: u64) {
        self.known_length = Some(len);
    }

    /// Sends one body chunk, sending the head first. Empty chunks send nothing.
    pub(crate) fn write(&mut self, py: Python<'_>, data: &[u8]) -> Result<(), WriteError> {
        if self.is_gone() {
            self.gone = true;
            return Err(WriteError::Gone);
        }
        if !self.started {
            return Err(WriteError::NotStarted);
        }
        if data.is_empty() || self.complete {
            return Ok(());
        }
        let data = self.clip(data);
        if !self.head_sent {
            self.send_head(py)?;
        }
        if !data.is_empty() {
            self.sent += data.len() as u64;
            self.send(py, Chunk::Body(Bytes::copy_from_slice(data)))?;
        }
        Ok(())
    }

    /// Ends the body: sends the head if no chunk did, and checks the `Content-Length`.
    pub(crate) fn finish(&mut self, py: Python<'_>) -> Result<(), Error> {
        if !self.started {
            return Err(Error::App(
                "the application returned without calling start_response".to_owned(),
            ));
        }
        if !self.head_sent {
            self.send_head(py).map_err(|_| Error::ClientGone)?;
        }
        match self.content_length {
            Some(declared) if self.sent < declared && !self.bodiless => Err(Error::ShortBody {
                declared,
                sent: self.sent,
            }),
            _ => Ok(()),
        }
    }

    /// Cuts `data` at the announced `Content-Length` (PEP 3333: never send more), logging once.
    fn clip<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        let Some(declared) = self.content_length else {
            return data;
        };
        let room = declared.saturating_sub(self.sent);
        if data.len() as u64 >= room {
            self.complete = true;
        }
        if data.len() as u64 <= room {
            return data;
        }
        tracing::warn!(
            peer = %self.info.peer,
            request_id = self.info.id,
            content_length = declared,
            "wsgi app produced more bytes than its Content-Length; the rest is dropped"
        );
        &data[..room as usize]
    }

    fn send_head(&mut self, py: Python<'_>) -> Result<(), WriteError> {
        let Some(mut head) = self.head.take() else {
            return Err(WriteError::NotStarted);
        };
        if let (None, Some(len)) = (self.content_length, self.known_length) {
            let has_body = !matches!(head.status(), 204 | 304);
            if has_body && head.add_header("Content-Length", len.to_string()).is_ok() {
                self.content_length = Some(len);
            }
        }
        self.head_sent = true;
        self.send(py, Chunk::Head(head))
    }

    /// Drops the sender: the request is over, even if the app keeps `start_response` or `write`
    /// alive (a reference cycle, a global), so the async side sees the channel close.
    pub(crate) fn release(&mut self) {
        self.out = None;
    }

    /// Wakes the async side for what was written since the last flush: called before the app
    /// runs again or the thread blocks, so no chunk waits for the app's next one.
    pub(crate) fn flush(&self) {
        if let Some(out) = &self.out {
            out.flush();
        }
    }

    /// Queues a chunk for the async side (without waking it: see [`Sink::flush`]). When the
    /// outbox is full, blocks with the GIL released.
    fn send(&mut self, py: Python<'_>, chunk: Chunk) -> Result<(), WriteError> {
        let Some(out) = &self.out else {
            self.gone = true;
            return Err(WriteError::Gone);
        };
        if out.push(py, chunk).is_err() {
            self.gone = true;
            return Err(WriteError::Gone);
        }
        Ok(())
    }
}
