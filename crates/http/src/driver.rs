//! The connection driver: admission, hyper's HTTP/1 state machine, one `select!` over it, the
//! timeouts, a close request and shutdown, then a lingering close.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_channel_request::{CancellationToken, Peer, SendQueue, SHUTDOWN_FIRST_REQUEST_GRACE};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::conn::ConnShared;
use crate::error::Error;
use crate::io::WatchedIo;
use crate::request::Service;
use crate::watchdog::Expired;
use crate::Server;

type Conn<IO> = http1::Connection<TokioIo<WatchedIo<IO>>, Service>;

/// What ended the `select!` loop.
enum Outcome {
    /// hyper is done with the connection.
    Done(Result<(), hyper::Error>),
    /// A request body stalled: abort at once.
    Killed,
    /// A timeout fired.
    Expired(Expired),
}

/// Serves HTTP/1.x requests on `io` until the client closes, a timeout fires, or `shutdown` is
/// cancelled and the request in progress (if any) is answered.
///
/// `peer` becomes `REMOTE_ADDR`/`REMOTE_PORT` and names the client in log lines; `local` is the
/// fallback for `SERVER_NAME`/`SERVER_PORT` when a request has no `Host`. Beyond
/// [`Config::max_conns`](crate::Config::max_conns) open connections, the client gets a `503` and
/// the connection is closed. Every failure is logged here; nothing is returned.
///
/// # Cancel safety
/// Dropping the future closes the connection and cancels the apps of its requests in progress
/// (their "client gone" token fires and their tasks are aborted).
pub async fn serve_connection<IO>(
    server: Arc<Server>,
    io: IO,
    peer: Peer,
    local: Option<SocketAddr>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Some(_permit) = server.admit() else {
        return refuse(io, &server, &peer).await;
    };
    let shared = ConnShared::new(server.clone(), peer, local, SendQueue::of(&io));
    // However this function ends, the requests of the connection learn that it is over.
    let _gone = shared.gone.clone().drop_guard();
    let io = TokioIo::new(WatchedIo::new(io, shared.clone()));
    let service = Service {
        shared: shared.clone(),
    };
    let mut conn = server.builder.serve_connection(io, service);
    let outcome = drive(&mut conn, &shared, &shutdown).await;
    let linger = server.config().linger_timeout;
    let peer = &shared.peer;
    match outcome {
        Outcome::Done(Ok(())) => {
            let parts = conn.into_parts();
            let io = parts.io.into_inner().into_inner();
            if shared.has_unread() || !parts.read_buf.is_empty() {
                lingering_close(io, linger).await;
            } else {
                close(io).await;
            }
        }
        Outcome::Done(Err(e)) => {
            let io = conn.into_parts().io.into_inner();
            if log_hyper_error(&e, peer, io.last_read()) || shared.has_unread() {
                lingering_close(io.into_inner(), linger).await;
            }
        }
        Outcome::Killed => {}
        Outcome::Expired(Expired::Idle) => {
            tracing::debug!(%peer, "idle connection closed");
        }
        Outcome::Expired(Expired::Header) => {
            let bytes = conn
                .into_parts()
                .io
                .into_inner()
                .last_read()
                .escape_ascii()
                .to_string();
            let error = Error::HeaderTimeout(server.config().header_read_timeout);
            tracing::warn!(%peer, %error, bytes, "closing the connection");
        }
        Outcome::Expired(Expired::Send) => {
            let error = Error::IdleTimeout {
                after: server.config().idle_timeout,
                during: "response bytes to be read",
            };
            tracing::warn!(%peer, %error, "closing the connection");
        }
    }
}

/// Polls hyper's connection while watching the timeouts, close requests and shutdown.
async fn drive<IO>(
    conn: &mut Conn<IO>,
    shared: &ConnShared,
    shutdown: &CancellationToken,
) -> Outcome
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut draining = false;
    // Shut down while idle (a new connection, or a kept-alive one between requests): one more
    // request is still taken until then, answered with `Connection: close`. Closing at once
    // would lose a request the client is sending (hyper's graceful shutdown closes an idle
    // connection, one before its first request included).
    let mut idle_grace: Option<(tokio::time::Instant, u64)> = None;
    loop {
        let mut graceful = false;
        let deadline = shared.next_deadline().map(tokio::time::Instant::from_std);
        let deadline = match (deadline, idle_grace.map(|g| g.0)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            res = poll_fn(|cx| conn.poll_without_shutdown(cx)) => return Outcome::Done(res),
            () = shared.kill.cancelled() => return Outcome::Killed,
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                match shared.requests() {
                    (_, 0) if !shared.is_closing() => {
                        let until = tokio::time::Instant::now() + SHUTDOWN_FIRST_REQUEST_GRACE;
                        idle_grace = Some((until, shared.requests().0));
                    }
                    _ => graceful = true,
                }
            }
            () = shared.woken() => graceful = shared.take_close_request(),
            () = sleep_until(deadline) => {
                if let Some(expired) = shared.expired() {
                    return Outcome::Expired(expired);
                }
            }
        }
        let grace_over = idle_grace.is_some_and(|(until, started)| {
            shared.requests().0 > started || tokio::time::Instant::now() >= until
        });
        if grace_over {
            idle_grace = None;
            graceful = true;
        }
        if graceful {
            // Closes an idle connection now, or after the response in progress.
            std::pin::Pin::new(&mut *conn).graceful_shutdown();
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none (a `select!` branch that never fires).
pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Logs why hyper ended the connection; returns whether a lingering close is worth it (the
/// client may still be sending a request we answered with an error).
fn log_hyper_error(e: &hyper::Error, peer: &Peer, last_read: &[u8]) -> bool {
    let bytes = last_read.escape_ascii();
    if let Some(ours) = find_ours(e) {
        // Logged where it happened (ResponseTooShort) or by serve_request (ResponseAborted).
        tracing::debug!(%peer, error = %ours, "connection aborted");
        return false;
    }
    if e.is_parse_too_large() {
        tracing::warn!(%peer, error = %Error::HeadTooLarge, %bytes, "request rejected with 431");
        return true;
    }
    if e.is_parse() || e.is_parse_status() {
        let error = Error::Malformed(e.to_string());
        tracing::warn!(%peer, %error, %bytes, "request rejected with 400");
        return true;
    }
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        tracing::debug!(%peer, error = %e, "client closed the connection");
        return false;
    }
    let error = Error::Io(e.to_string());
    tracing::debug!(%peer, %error, "connection ended");
    false
}

/// Our own error inside hyper's, if the failure came from a response body or the service.
fn find_ours(e: &hyper::Error) -> Option<&Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(ours) = s.downcast_ref::<Error>() {
            return Some(ours);
        }
        source = s.source();
    }
    None
}

/// Closes our side when the client is not sending anything we left unread.
async fn close<IO: AsyncWrite + Unpin>(mut io: IO) {
    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
}

/// Lingering close (seed 003, Twisted `HTTPChannel.lingeringClose`): shut our write side so the
/// client sees the end of our last response, then read and discard what it still sends until it
/// closes too, for at most `linger`. Closing with unread bytes would make the kernel send a reset,
/// which can destroy the response before the client reads it.
async fn lingering_close<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO, linger: Duration) {
    let drain = async {
        io.shutdown().await?;
        let mut buf = vec![0u8; 16 * 1024];
        while io.read(&mut buf).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(linger, drain).await;
}

/// The answer to a connection beyond `max_conns`.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 20\r\nRetry-After: 1\r\nConnection: close\r\n\r\nService Unavailable\n";

async fn refuse<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO, server: &Server, peer: &Peer) {
    let error = Error::TooManyConnections {
        limit: server.config().max_conns,
    };
    tracing::warn!(%peer, %error, "connection refused with 503");
    let write = tokio::time::timeout(server.config().idle_timeout, io.write_all(BUSY)).await;
    if matches!(write, Ok(Ok(()))) {
        lingering_close(io, server.config().linger_timeout).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_answer_is_well_formed() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
