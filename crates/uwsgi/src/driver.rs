//! The tokio driver of one uwsgi connection: the socket, the app's task and outputs, the timer
//! and shutdown, around the sans-io [`Connection`]. Protocol decisions live in
//! [`crate::conn`]; this file only moves bytes and carries out [`Event`]s.
//!
//! ```text
//!  socket ──(reserve a body slot first: backpressure)──► Connection ──► Event::Body ──► app
//!  socket ◄── Event::Transmit ◄── Connection ◄── Delivery ◄── QueueChannel ◄── app task
//! ```

use std::any::Any;
use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gatehouse_channel_request::{
    body_channel, delivery_queue, serve_request, Application, BodySender, CancellationToken,
    DeliveryReceiver, Peer, Protocol, QueueChannel, Request, RequestInfo, Response,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

use crate::conn::{Close, Connection, Event, Linger};
use crate::error::Error;
use crate::head::RequestHead;
use crate::server::{Config, Server, LINGER_MAX_BYTES, READ_CHUNK};

/// Serves one uwsgi connection: reads the request, runs the app, writes the response, closes.
///
/// Never panics on peer input and always ends: a bad packet is answered `400` (one `warn` log
/// line with the peer and the offending bytes escaped), a dead peer by the timeouts of
/// [`Config`]. `shutdown` closes the connection if it is still waiting for its packet; a
/// request already running is let finish (bound that with a drain timeout by dropping this
/// future).
///
/// # Cancel safety
/// Dropping the future closes the connection and cancels the app (its task is aborted).
pub async fn serve_connection<IO>(
    server: Arc<Server>,
    io: IO,
    peer: Peer,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let info = RequestInfo::new(Protocol::Uwsgi, peer);
    let config = server.config().clone();
    let slot = server.try_admit();
    let conn = match slot {
        Some(_) => Connection::new(info, config.clone(), now()),
        None => Connection::refused(info, config.clone(), now()),
    };
    let mut driver = Driver {
        io,
        buf: BytesMut::new(),
        conn,
        config,
        app: Running::default(),
    };
    driver.run(server.app(), &shutdown).await;
    drop(slot);
}

/// Aborts the app's task when dropped: cancellation is `drop`.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The app's side of the request, once started.
#[derive(Default)]
struct Running {
    body: Option<BodySender>,
    outputs: Option<DeliveryReceiver>,
    gone: CancellationToken,
    task: Option<AbortOnDrop>,
}

struct Driver<IO> {
    io: IO,
    buf: BytesMut,
    conn: Connection,
    config: Config,
    app: Running,
}

impl<IO: AsyncRead + AsyncWrite + Send + Unpin + 'static> Driver<IO> {
    async fn run(&mut self, app: &Arc<dyn Application>, shutdown: &CancellationToken) {
        let mut shutdown_seen = false;
        loop {
            while let Some(event) = self.conn.poll_event() {
                match event {
                    Event::Request(head) => self.start(app.clone(), head),
                    Event::Body(chunk) => {
                        // Ready at once: the slot was reserved before the read, or (the bytes
                        // that came with the packet) the queue is new and empty.
                        if let Some(tx) = self.app.body.as_mut() {
                            if tx.send(chunk).await.is_err() {
                                self.conn.handle_body_closed();
                            }
                        }
                    }
                    Event::BodyEnd => {
                        if let Some(tx) = self.app.body.take() {
                            tx.finish();
                        }
                    }
                    Event::Transmit(bytes) => {
                        if let Err(e) = self.write_all(&bytes).await {
                            self.conn.handle_failure(e);
                        }
                    }
                    Event::Close(how) => return self.close(how).await,
                }
            }
            self.conn.handle_written();
            let deadline = self.conn.poll_timeout().map(Instant::from_std);
            tokio::select! {
                () = read_step(&mut self.io, &mut self.buf, &mut self.conn, &self.config, &mut self.app.body), if self.conn.wants_input() => {}
                delivery = recv(&mut self.app.outputs) => match delivery {
                    Some(d) => self.conn.handle_delivery(now(), d),
                    None => self.conn.handle_app_gone(),
                },
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.conn.handle_timeout(now());
                }
                () = shutdown.cancelled(), if !shutdown_seen => {
                    shutdown_seen = true;
                    self.conn.handle_shutdown(now());
                }
            }
        }
    }

    /// Request set-up: the body queue, the delivery queue, the app's task.
    fn start(&mut self, app: Arc<dyn Application>, head: RequestHead) {
        let RequestHead {
            env,
            content_length,
            ..
        } = head;
        let (body_tx, body) = body_channel(self.config.body_queue_chunks, Some(content_length));
        let (dtx, drx) = delivery_queue();
        let info = self.conn.info().clone();
        let chan = QueueChannel::new(
            info.id,
            dtx,
            self.config.response_budget,
            self.app.gone.clone(),
        );
        let req = Request { env, body, info };
        self.app.task = Some(AbortOnDrop(tokio::spawn(async move {
            serve_request(&*app, req, Response::new(chan)).await;
        })));
        self.app.body = Some(body_tx);
        self.app.outputs = Some(drx);
    }

    /// Writes `data`, failing if the peer takes no byte for `idle_timeout`.
    async fn write_all(&mut self, mut data: &[u8]) -> Result<(), Error> {
        let idle = self.config.idle_timeout;
        while !data.is_empty() {
            let n = timeout(idle, self.io.write(data))
                .await
                .map_err(|_| Error::IdleTimeout(idle))??;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            data = &data[n..];
        }
        Ok(())
    }

    /// Carries out the end of the connection; the app is cancelled unless it answered whole.
    async fn close(&mut self, how: Close) {
        if !self.conn.response_complete() {
            self.app.gone.cancel();
            self.app.task = None;
        }
        match how {
            Close::Quiet => {}
            Close::Reset => self.reset(),
            Close::Graceful => self.linger().await,
        }
    }

    /// Closes a connection whose response is incomplete so that the peer can tell: a TCP
    /// connection is reset (`SO_LINGER` 0), and nginx then reports "upstream prematurely
    /// closed" instead of passing a truncated body as complete. Other transports are closed.
    fn reset(&self) {
        if let Some(tcp) = (&self.io as &dyn Any).downcast_ref::<TcpStream>() {
            let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
        }
    }

    /// Shuts the write side (the peer reads the end of the response), then, if the peer may
    /// still be sending, reads and discards for up to `linger_timeout` before closing: closing
    /// with unread input would reset the connection, and the peer could lose our response.
    async fn linger(&mut self) {
        let limit = self.config.linger_timeout;
        if timeout(limit, self.io.shutdown()).await.is_err() {
            return;
        }
        let mut left = match self.conn.linger() {
            Linger::No => return,
            Linger::Body(n) => n.min(LINGER_MAX_BYTES as u64),
            Linger::UntilEof => LINGER_MAX_BYTES as u64,
        };
        let drain = async {
            left = left.saturating_sub(self.buf.len() as u64);
            while left > 0 {
                self.buf.clear();
                self.buf.reserve(READ_CHUNK);
                match self.io.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => left = left.saturating_sub(n as u64),
                }
            }
        };
        let _ = timeout(limit, drain).await;
    }
}

/// One read of the socket, after reserving room in the app's body queue.
///
/// # Cancel safety
/// Cancel-safe: a reserved body slot stays reserved, read bytes stay buffered.
async fn read_step<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buf: &mut BytesMut,
    conn: &mut Connection,
    config: &Config,
    body: &mut Option<BodySender>,
) {
    if conn.wants_body_room() {
        if let Some(tx) = body.as_mut() {
            if poll_fn(|cx| tx.poll_reserve(cx)).await.is_err() {
                conn.handle_body_closed();
            }
        }
    }
    buf.reserve(READ_CHUNK);
    let read = if conn.read_is_timed() {
        match timeout(config.idle_timeout, io.read_buf(buf)).await {
            Ok(read) => read,
            Err(_) => return conn.handle_idle(),
        }
    } else {
        io.read_buf(buf).await
    };
    match read {
        Ok(0) => conn.handle_eof(now(), buf),
        Ok(_) => conn.handle_input(now(), buf),
        Err(e) => conn.handle_failure(e.into()),
    }
}

/// The next delivery, or never when the app is not started.
async fn recv(
    outputs: &mut Option<DeliveryReceiver>,
) -> Option<gatehouse_channel_request::Delivery> {
    match outputs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// `now` for the core, from tokio's clock (paused in tests).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}
