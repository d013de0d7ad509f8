//! The response side, sans-io: the app's outputs become the bytes of an HTTP/1.x response.
//!
//! uWSGI answers a modifier1 0 request with a plain HTTP response ("an HTTP response is a valid
//! uwsgi packet"), and that is what nginx `uwsgi_pass` and Apache `mod_proxy_uwsgi` parse: a
//! status line `HTTP/1.1 200 OK`, the headers, a blank line, the body; the end of the
//! connection ends the body (one request per connection).
//!
//! The head is held back and leaves with the first body bytes (one write, one packet for a small
//! answer); bodies are handed on as they are, without copying, except small ones that join the
//! held head. The same state machine as the SCGI crate's, with an HTTP status line instead of
//! a CGI `Status:` header.

use bytes::{BufMut, Bytes, BytesMut};
use gatehouse_channel_request::{Output, ResponseHead};

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
    /// Close without writing more: the response is incomplete (only closing can say so; a
    /// front server that got a `Content-Length` notices the short body).
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
                write_http_head(&head, &mut self.held);
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

/// Appends `head` as an HTTP/1.1 response head: `HTTP/1.1 NNN reason`, the headers (already
/// validated by [`ResponseHead`]: no CR, LF or NUL), a blank line.
pub fn write_http_head(head: &ResponseHead, out: &mut BytesMut) {
    let fields: usize = head
        .headers()
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum();
    out.reserve(9 + 4 + head.reason().len() + 2 + fields + 2);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(head.status().min(999).to_string().as_bytes());
    out.put_u8(b' ');
    out.put_slice(head.reason());
    out.put_slice(b"\r\n");
    for (name, value) in head.headers() {
        out.put_slice(name);
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
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
    write_http_head(
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

    const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";

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
    }

    #[test]
    fn large_chunk_is_not_copied_and_aborts() {
        let mut w = ResponseWriter::new();
        w.handle_output(Output::Head(head()));
        let big = Bytes::from(vec![1u8; COALESCE_MAX + 1]);
        let Action::Write(h, Some(b)) = w.handle_output(Output::Body(big.clone())) else {
            panic!("two writes")
        };
        assert_eq!(&h[..], HEAD);
        assert_eq!(b.as_ptr(), big.as_ptr());
        assert_eq!(w.handle_output(Output::Abort), Action::Abort);
        let mut w = ResponseWriter::new();
        w.handle_output(Output::Head(head()));
        assert_eq!(
            w.handle_output(Output::Abort),
            Action::Fail,
            "head still held"
        );
    }

    #[test]
    fn head_only_and_error_responses() {
        let mut w = ResponseWriter::new();
        w.handle_output(Output::Head(ResponseHead::new(204)));
        let Action::Finish(Some(h)) = w.handle_output(Output::Finish) else {
            panic!("head at finish")
        };
        assert_eq!(&h[..], b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(
            &error_response(400)[..],
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n\
Bad Request\n"
        );
    }
}
