//! The response side of a CGI request: the app's outputs as a CGI response on standard output
//! (RFC 3875 section 6: `Status:`, the headers, a blank line, the body), and our own error
//! answers.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::{write_cgi_head, Output, ResponseHead};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::Error;
use crate::stdio::Outcome;

/// Standard output as the response: the CGI head, held back to leave with the first body
/// bytes, then the body.
pub(crate) struct Stdout<W> {
    io: W,
    held: BytesMut,
    written: bool,
}

impl<W: AsyncWrite + Unpin> Stdout<W> {
    pub(crate) fn new(io: W) -> Self {
        Self {
            io,
            held: BytesMut::new(),
            written: false,
        }
    }

    /// Writes one output step; `Ok(true)` when the response is complete.
    pub(crate) async fn output(&mut self, output: Output) -> Result<bool, Error> {
        match output {
            Output::Informational(_) | Output::Stderr(_) => Ok(false),
            Output::Head(head) => {
                write_cgi_head(&head, &mut self.held);
                Ok(false)
            }
            Output::Body(chunk) => {
                self.write_body(chunk).await?;
                Ok(false)
            }
            Output::Finish => {
                self.write_body(Bytes::new()).await?;
                self.io.flush().await.map_err(Error::Stdout)?;
                Ok(true)
            }
            Output::Abort => Err(Error::ResponseAborted),
        }
    }

    async fn write_body(&mut self, chunk: Bytes) -> Result<(), Error> {
        if !self.held.is_empty() {
            self.held.extend_from_slice(&chunk);
            let all = self.held.split().freeze();
            return self.write(&all).await;
        }
        self.write(&chunk).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.written = true;
        self.io.write_all(bytes).await.map_err(Error::Stdout)
    }

    /// Answers `err` with its status if nothing went out yet; the outcome of a failed request.
    pub(crate) async fn fail(&mut self, request_id: u64, err: Error) -> Outcome {
        let mut answered = false;
        if let (Some(status), false) = (err.http_status(), self.written) {
            self.held.clear();
            let answer = error_response(status);
            answered = self.write(&answer).await.is_ok() && self.io.flush().await.is_ok();
        }
        Outcome {
            request_id,
            answered,
            error: Some(err),
        }
    }
}

/// Standard output written in place, blocking the thread, for [`run`](crate::run).
///
/// tokio's `Stdout` hands every write to a helper thread and allows one in flight, so the app
/// waits for the pipe either way; writing in place saves that thread's start and the hand-offs
/// (about a quarter of the CPU time of a small request). Our one task does nothing else while
/// the web server drains the pipe.
pub(crate) struct BlockingStdout(std::io::Stdout);

impl BlockingStdout {
    pub(crate) fn new() -> Self {
        Self(std::io::stdout())
    }
}

impl AsyncWrite for BlockingStdout {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(std::io::Write::write(&mut self.get_mut().0, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(std::io::Write::flush(&mut self.get_mut().0))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// A complete CGI answer of our own: `status`, a `text/plain` body with its reason phrase.
fn error_response(status: u16) -> Bytes {
    let head = ResponseHead::new(status);
    let body = format!("{}\n", String::from_utf8_lossy(head.reason()));
    let head = head
        .with_header("Content-Type", "text/plain")
        .and_then(|h| h.with_header("Content-Length", body.len().to_string()))
        .unwrap_or_else(|_| ResponseHead::new(status));
    let mut out = BytesMut::new();
    write_cgi_head(&head, &mut out);
    out.extend_from_slice(body.as_bytes());
    out.freeze()
}
