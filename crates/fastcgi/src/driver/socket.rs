//! The driver's socket: records read with [`RecordCodec`], the `OutQueue` written with
//! vectored writes (both polled at once), and the close: at once, or lingering while the peer
//! may still be sending.

use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tokio_util::sync::WaitForCancellationFuture;

use super::{Driver, Waits};
use crate::codec::RecordCodec;
use crate::config::SHUTDOWN_LINGER_TIMEOUT;
use crate::conn::Connection;
use crate::error::Error;
use crate::record::Record;
use crate::response::MAX_IOVECS;

/// The read buffer's first size: a whole request from nginx (its `FCGI_PARAMS` are 0.5-2 KiB)
/// fits; the buffer grows by [`READ_CHUNK`] when a record needs more.
const READ_FIRST: usize = 4 * 1024;

/// Room made in the read buffer when less than [`READ_MIN_ROOM`] is left.
const READ_CHUNK: usize = 16 * 1024;
const READ_MIN_ROOM: usize = 1024;

/// What happened on the socket in one poll: both directions are polled, so a response
/// streaming out never starves reading (an `FCGI_ABORT_REQUEST`, other requests' input).
pub(super) struct Socket {
    pub(super) wrote: Option<std::io::Result<usize>>,
    pub(super) read: Option<Option<Result<Record, Error>>>,
}

impl<IO: AsyncRead + AsyncWrite + Send + Unpin + 'static> Driver<IO> {
    /// Writes what is queued, then (with `linger`) shuts the write side and drains the peer's
    /// input, all within `Config::linger_timeout`, and within [`SHUTDOWN_LINGER_TIMEOUT`] once
    /// shutdown is signalled. Without `linger` the socket is closed at once: the peer sent
    /// everything, so no unread input can turn our close into a reset. Tasks of requests that
    /// already ended may finish in the background; the others were cancelled by the connection.
    pub(super) async fn close(&mut self, linger: bool, waits: Waits<'_, '_>) {
        let deadline = Instant::from_std(self.clock) + self.server.config().linger_timeout;
        if self.conn.out_len() > 0 {
            let _ = tokio::time::timeout_at(deadline, self.flush_all()).await;
        }
        // Part of a record is buffered: the peer stopped mid-record and may go on sending.
        let linger = linger || !self.input.buf.is_empty();
        if linger && self.conn.out_len() == 0 {
            // Boxed: a rare path, kept out of every connection's future.
            Box::pin(self.linger(deadline, waits.shutdown)).await;
        }
        if let Some(tasks) = &mut self.tasks {
            tasks.detach_all();
        }
    }

    /// Lingering close: shuts the write side (the peer reads our last bytes, then the end of
    /// input), then reads and discards until the peer closes, `deadline` passes, or shutdown
    /// has been signalled for [`SHUTDOWN_LINGER_TIMEOUT`].
    async fn linger(
        &mut self,
        deadline: Instant,
        shutdown: Pin<&mut WaitForCancellationFuture<'_>>,
    ) {
        let (io, buf) = (&mut self.io, &mut self.input.buf);
        let drain = async {
            io.shutdown().await?;
            loop {
                buf.clear();
                buf.reserve(READ_CHUNK);
                if io.read_buf(buf).await? == 0 {
                    return Ok::<(), std::io::Error>(());
                }
            }
        };
        let seen = self.shutdown_seen;
        let cut_short = async move {
            if !seen {
                shutdown.await;
            }
            tokio::time::sleep(SHUTDOWN_LINGER_TIMEOUT).await;
        };
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, drain) => {}
            () = cut_short => {}
        }
    }

    async fn flush_all(&mut self) {
        while self.conn.out_len() > 0 {
            // The slices live in the poll, not in this future: it stays small.
            let (io, conn) = (&mut self.io, &mut self.conn);
            let res = poll_fn(|cx| match poll_socket(io, None, conn, true, false, cx) {
                Poll::Ready(Socket {
                    wrote: Some(res), ..
                }) => Poll::Ready(res),
                _ => Poll::Pending,
            })
            .await;
            self.wrote(res).await;
        }
        let _ = self.io.flush().await;
    }
}

/// Writes what is queued (when `write`) and reads the next record (when `read`).
pub(super) fn poll_socket<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    input: Option<&mut Input>,
    conn: &mut Connection,
    write: bool,
    read: bool,
    cx: &mut Context<'_>,
) -> Poll<Socket> {
    let mut sock = Socket {
        wrote: None,
        read: None,
    };
    if write {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = conn.out().chunks_vectored(&mut slices);
        if let Poll::Ready(res) = Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]) {
            sock.wrote = Some(res);
        }
    }
    if let (true, Some(input)) = (read, input) {
        if let Poll::Ready(item) = input.poll_record(io, cx) {
            sock.read = Some(item);
        }
    }
    if sock.wrote.is_some() || sock.read.is_some() {
        Poll::Ready(sock)
    } else {
        Poll::Pending
    }
}

/// Reads records with [`RecordCodec`] (`FramedRead`'s job, without its `Stream` plumbing).
pub(super) struct Input {
    pub(super) buf: BytesMut,
    pub(super) eof: bool,
}

impl Input {
    /// The next record already in the buffer (no I/O); `None` when a read is needed.
    pub(super) fn next_buffered(&mut self) -> Option<Option<Result<Record, Error>>> {
        if self.eof {
            return None;
        }
        RecordCodec::new()
            .decode(&mut self.buf)
            .transpose()
            .map(Some)
    }

    /// The next record, `None` at a clean end of input. Bytes read stay in the buffer, and
    /// decoding is synchronous, so dropping a pending poll loses nothing.
    pub(super) fn poll_record<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Record, Error>>> {
        loop {
            if self.eof {
                return Poll::Ready(RecordCodec::new().decode_eof(&mut self.buf).transpose());
            }
            if let Some(item) = RecordCodec::new().decode(&mut self.buf).transpose() {
                return Poll::Ready(Some(item));
            }
            if self.buf.capacity() == 0 {
                self.buf.reserve(READ_FIRST);
            } else if self.buf.capacity() - self.buf.len() < READ_MIN_ROOM {
                self.buf.reserve(READ_CHUNK);
            }
            match pin!(io.read_buf(&mut self.buf)).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }
}
