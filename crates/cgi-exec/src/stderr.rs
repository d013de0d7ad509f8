//! A script's stderr: line by line into the log, or forwarded to the front server.
//!
//! ```text
//!  stderr pipe ─► log_lines ─► one `warn` event per line                (--cgi-stderr log)
//!  stderr pipe ─► forward ─► StderrSender ─► FCGI_STDERR records       (--cgi-stderr fastcgi,
//!                   └─ stopped (response over, client gone) ─► log_lines  FastCGI front end)
//! ```
//!
//! Each logged line becomes one `warn` event tagged with the script, the peer and the request
//! id; its bytes are escaped (`escape_ascii`), and lines longer than [`MAX_LINE`] are cut into
//! pieces so a script that never writes a newline cannot grow a buffer without bound. Forwarded
//! stderr goes out in chunks as read (at most [`FORWARD_CHUNK`] bytes), each waiting for the
//! request's response budget: a script flooding stderr is slowed down by a slow front server,
//! like one flooding stdout. The reader runs as its own task until the script's stderr closes,
//! so stderr never waits for the response side and the response never waits for stderr, except
//! at the end: in forwarding mode the response ends only after [`Forwarding::closed`].

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use gatehouse_channel_request::{CancellationToken, RequestInfo, StderrSender};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::DropGuard;

/// Longest stderr line logged as one event.
pub const MAX_LINE: usize = 4096;

/// Who wrote the lines.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The script's path.
    pub(crate) script: Arc<Path>,
    /// The request it serves.
    pub(crate) info: RequestInfo,
}

/// Largest piece of stderr forwarded in one go (one `FCGI_STDERR` record).
pub(crate) const FORWARD_CHUNK: usize = 8 * 1024;

/// One run's stderr being forwarded. Dropping it stops the forwarding: what the script writes
/// later is logged.
#[derive(Debug)]
pub(crate) struct Forwarding {
    /// Cancelled by the reader when it stops forwarding (end of stderr, or stopped).
    done: CancellationToken,
    _stop: DropGuard,
}

impl Forwarding {
    /// Resolves once everything the script wrote to stderr was handed to the front end (its
    /// stderr is closed), or forwarding stopped.
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub(crate) async fn closed(&self) {
        self.done.cancelled().await;
    }
}

/// Starts reading a run's `stderr` in its own task: forwarded through `forward` when given,
/// logged otherwise.
pub(crate) fn start(
    stderr: impl AsyncRead + Unpin + Send + 'static,
    source: Source,
    forward: Option<StderrSender>,
) -> Option<Forwarding> {
    let Some(sender) = forward else {
        tokio::spawn(log_lines(stderr, source, BytesMut::with_capacity(1024)));
        return None;
    };
    let done = CancellationToken::new();
    let stop = CancellationToken::new();
    tokio::spawn(forward_then_log(
        stderr,
        source,
        sender,
        done.clone(),
        stop.clone(),
    ));
    Some(Forwarding {
        done,
        _stop: stop.drop_guard(),
    })
}

/// Forwards `stderr` until its end or `stop`, then logs whatever comes later.
async fn forward_then_log(
    mut stderr: impl AsyncRead + Unpin,
    source: Source,
    sender: StderrSender,
    done: CancellationToken,
    stop: CancellationToken,
) {
    let mut buf = BytesMut::new();
    loop {
        if buf.capacity() < FORWARD_CHUNK / 4 {
            buf.reserve(FORWARD_CHUNK);
        }
        let limit = FORWARD_CHUNK.min(buf.capacity());
        let mut piece = (&mut stderr).take(limit as u64);
        let read = tokio::select! {
            read = piece.read_buf(&mut buf) => read,
            () = stop.cancelled() => break,
        };
        if !matches!(read, Ok(n) if n > 0) {
            done.cancel(); // The end of stderr: all of it was forwarded.
            return;
        }
        let chunk = buf.split().freeze();
        let sent = tokio::select! {
            sent = sender.send(chunk.clone()) => sent.is_ok(),
            () = stop.cancelled() => false,
        };
        if !sent {
            buf.extend_from_slice(&chunk);
            break;
        }
    }
    done.cancel();
    log_lines(stderr, source, buf).await;
}

/// Reads `stderr` to its end, logging each line (`buf` holds what was read before).
pub(crate) async fn log_lines(
    mut stderr: impl AsyncRead + Unpin,
    source: Source,
    mut buf: BytesMut,
) {
    while let Some(line) = next_line(&mut buf) {
        emit(&line, &source);
    }
    loop {
        match stderr.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        while let Some(line) = next_line(&mut buf) {
            emit(&line, &source);
        }
        if buf.capacity() - buf.len() < 256 {
            buf.reserve(1024);
        }
    }
    if !buf.is_empty() {
        emit(&buf, &source);
    }
}

/// Takes one complete line (without its `\n` or `\r\n`) off the front of `buf`, or a
/// [`MAX_LINE`] piece of an overlong one.
fn next_line(buf: &mut BytesMut) -> Option<BytesMut> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i <= MAX_LINE => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            Some(line)
        }
        _ if buf.len() >= MAX_LINE => Some(buf.split_to(MAX_LINE)),
        _ => None,
    }
}

fn emit(line: &[u8], source: &Source) {
    tracing::warn!(
        peer = %source.info.peer,
        request_id = source.info.id,
        script = %crate::error::shown(&source.script),
        "script stderr: {}",
        line.escape_ascii()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_long_runs() {
        let mut b = BytesMut::from(&b"one\r\ntwo\npart"[..]);
        assert_eq!(next_line(&mut b).as_deref(), Some(&b"one"[..]));
        assert_eq!(next_line(&mut b).as_deref(), Some(&b"two"[..]));
        assert_eq!(next_line(&mut b), None);
        assert_eq!(&b[..], b"part");
        let mut long = BytesMut::from(&vec![b'x'; MAX_LINE + 10][..]);
        assert_eq!(next_line(&mut long).map(|l| l.len()), Some(MAX_LINE));
        assert_eq!(long.len(), 10);
        let mut empty_line = BytesMut::from(&b"\n"[..]);
        assert_eq!(next_line(&mut empty_line).as_deref(), Some(&b""[..]));
    }
}
