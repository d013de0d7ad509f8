//! The socket wrapper: tells the connection's timeouts when bytes move, and remembers the start
//! of the latest read so that a log line about a malformed request can show the peer's bytes.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::ConnShared;

/// How many bytes of the latest read are kept for log lines.
pub(crate) const CAPTURE_BYTES: usize = 96;

/// An `AsyncRead + AsyncWrite` that reports progress to [`ConnShared`]'s timeouts.
pub(crate) struct WatchedIo<IO> {
    inner: IO,
    shared: Arc<ConnShared>,
    capture: Vec<u8>,
}

impl<IO> WatchedIo<IO> {
    pub(crate) fn new(inner: IO, shared: Arc<ConnShared>) -> Self {
        Self {
            inner,
            shared,
            capture: Vec::with_capacity(CAPTURE_BYTES),
        }
    }

    /// The first bytes of the latest non-empty read.
    pub(crate) fn last_read(&self) -> &[u8] {
        &self.capture
    }

    pub(crate) fn into_inner(self) -> IO {
        self.inner
    }

    fn wrote(&self, res: &Poll<std::io::Result<usize>>) {
        match res {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.shared.wrote(*n);
                self.shared.timeouts(|t, _| {
                    t.handle_write();
                    false
                });
            }
            Poll::Pending => {
                let shared = &self.shared;
                shared.timeouts(|t, now| t.handle_write_blocked(now, || shared.queued()));
            }
            _ => {}
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WatchedIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = &buf.filled()[before..];
        if matches!(res, Poll::Ready(Ok(()))) && !got.is_empty() {
            let keep = got.len().min(CAPTURE_BYTES);
            self.capture.clear();
            self.capture.extend_from_slice(&got[..keep]);
            self.shared.timeouts(|t, now| t.handle_read(now));
        }
        res
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WatchedIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&res);
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&res);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
