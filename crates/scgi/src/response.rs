//! The response side, sans-io: the app's outputs become the bytes of a CGI-style response.
//!
//! SCGI specification, section 2: "When the SCGI server sees the end of the request it sends back
//! a response and closes the connection. The format of the response is not specified by this
//! protocol." Every SCGI front server (nginx `scgi_pass`, Apache `mod_proxy_scgi`, lighttpd
//! `mod_scgi`) reads a CGI response (RFC 3875 section 6): `Status:`, the headers, a blank line,
//! the body, and the end of the connection ends the body.
//!
//! The head is held back and leaves with the first body bytes (one write, one packet for a small
//! answer); bodies are handed on as they are, without copying, except small ones that join the
//! held head.

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::{write_cgi_head, Output, ResponseHead};

/// Body chunks up to this size are copied behind the held head, to leave in one write.
pub const COALESCE_MAX: usize = 16 * 1024;

/// What the driver does after an output step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to write yet.
    Nothing,
    /// Write these bytes, in order.
    Write(Bytes, Option<Bytes>),
    /// Write these bytes (if any), then close: the response is complete.
    Finish(Option<Bytes>),
    /// Close without writing more: the response is incomplete (SCGI can only say so by closing;
    /// a front server that got a `Content-Length` notices the short body).
    Abort,
    /// The response failed before any byte went out (the app's task died without a head, or
    /// aborted with its head still held back): answer `500` instead.
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No head yet.
    Start,
    /// The head is written (or held), the body streams.
    Body,
    /// Finished or aborted.
    Done,
}

/// Turns a request's [`Output`] steps into socket writes.
#[derive(Debug)]
pub struct ResponseWriter {
    state: State,
    held: BytesMut,
    written: u64,
}

impl Default for ResponseWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseWriter {
    /// A writer for a response not yet started.
    pub fn new() -> Self {
        Self {
            state: State::Start,
            held: BytesMut::new(),
            written: 0,
        }
    }

    /// Whether any response byte was handed out for writing (after that, an error can no longer
    /// be answered with a status: the connection can only be closed).
    pub fn has_written(&self) -> bool {
        self.written > 0
    }

    /// Whether the response was finished or aborted.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes one output step of the app.
    pub fn handle_output(&mut self, output: Output) -> Action {
        match (self.state, output) {
            (State::Done, _) | (_, Output::Informational(_) | Output::Stderr(_)) => Action::Nothing,
            (State::Start, Output::Head(head)) => {
                write_cgi_head(&head, &mut self.held);
                self.state = State::Body;
                Action::Nothing
            }
            (State::Body, Output::Body(chunk)) => self.body(chunk),
            (State::Body, Output::Finish) => {
                self.state = State::Done;
                Action::Finish(self.take_held())
            }
            (State::Start, Output::Abort | Output::Finish | Output::Body(_)) => {
                // `Response` never sends a body or an end before the head; an abort here is an
                // app task that died without answering.
                self.state = State::Done;
                Action::Fail
            }
            (State::Body, Output::Head(_) | Output::Abort) => {
                self.state = State::Done;
                if self.has_written() {
                    Action::Abort
                } else {
                    self.held.clear();
                    Action::Fail
                }
            }
        }
    }

    fn body(&mut self, chunk: Bytes) -> Action {
        if self.held.is_empty() {
            self.written += chunk.len() as u64;
            return Action::Write(chunk, None);
        }
        if chunk.len() <= COALESCE_MAX {
            self.held.extend_from_slice(&chunk);
            let all = self.held.split().freeze();
            self.written += all.len() as u64;
            return Action::Write(all, None);
        }
        let head = self.held.split().freeze();
        self.written += (head.len() + chunk.len()) as u64;
        Action::Write(head, Some(chunk))
    }

    fn take_held(&mut self) -> Option<Bytes> {
        if self.held.is_empty() {
            return None;
        }
        let held = self.held.split().freeze();
        self.written += held.len() as u64;
        Some(held)
    }
}

/// A complete answer of our own: `status`, a `text/plain` body with its reason phrase.
pub fn error_response(status: u16) -> Bytes {
    let head = ResponseHead::new(status);
    let body = format!("{}\n", String::from_utf8_lossy(head.reason()));
    let mut out = BytesMut::new();
    let head = head
        .with_header("Content-Type", "text/plain")
        .and_then(|h| h.with_header("Content-Length", body.len().to_string()));
    // Both headers are valid constants; without them the status line alone still answers.
    write_cgi_head(
        &head.unwrap_or_else(|_| ResponseHead::new(status)),
        &mut out,
    );
    out.extend_from_slice(body.as_bytes());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> ResponseHead {
        ResponseHead::new(200)
            .with_header("Content-Type", "text/plain")
            .unwrap()
    }

    const HEAD: &[u8] = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n";

    #[test]
    fn head_joins_small_first_chunk() {
        let mut w = ResponseWriter::new();
        assert_eq!(w.handle_output(Output::Head(head())), Action::Nothing);
        assert!(!w.has_written());
        let Action::Write(first, None) = w.handle_output(Output::Body(Bytes::from_static(b"hi")))
        else {
            panic!("one write")
        };
        assert_eq!(&first[..], [HEAD, b"hi"].concat().as_slice());
        let next = w.handle_output(Output::Body(Bytes::from_static(b"more")));
        assert_eq!(next, Action::Write(Bytes::from_static(b"more"), None));
        assert_eq!(w.handle_output(Output::Finish), Action::Finish(None));
        assert!(w.is_done());
        assert_eq!(w.handle_output(Output::Abort), Action::Nothing);
    }

    #[test]
    fn large_chunk_is_not_copied() {
        let mut w = ResponseWriter::new();
        w.handle_output(Output::Head(head()));
        let big = Bytes::from(vec![1u8; COALESCE_MAX + 1]);
        let Action::Write(h, Some(b)) = w.handle_output(Output::Body(big.clone())) else {
            panic!("two writes")
        };
        assert_eq!(&h[..], HEAD);
        assert_eq!(b.as_ptr(), big.as_ptr());
    }

    #[test]
    fn head_only_response_is_written_at_finish() {
        let mut w = ResponseWriter::new();
        w.handle_output(Output::Informational(ResponseHead::new(100)));
        w.handle_output(Output::Head(ResponseHead::new(204)));
        let Action::Finish(Some(h)) = w.handle_output(Output::Finish) else {
            panic!("head at finish")
        };
        assert_eq!(&h[..], b"Status: 204 No Content\r\n\r\n");
        assert!(w.has_written());
    }

    #[test]
    fn aborts() {
        let mut w = ResponseWriter::new();
        assert_eq!(w.handle_output(Output::Abort), Action::Fail);
        let mut w = ResponseWriter::new();
        w.handle_output(Output::Head(head()));
        assert_eq!(
            w.handle_output(Output::Abort),
            Action::Fail,
            "head still held"
        );
        let mut w = ResponseWriter::new();
        w.handle_output(Output::Head(head()));
        w.handle_output(Output::Body(Bytes::from_static(b"x")));
        assert_eq!(w.handle_output(Output::Abort), Action::Abort);
    }

    #[test]
    fn error_responses() {
        assert_eq!(
            &error_response(400)[..],
            b"Status: 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n\
Bad Request\n"
        );
        assert!(error_response(503).starts_with(b"Status: 503 Service Unavailable\r\n"));
    }
}
