//! The response hold over `tokio::io::duplex`: the response is not written while the body
//! still arrives (nginx stops sending the body once it has the head), and goes out on the first
//! of: `CONTENT_LENGTH` bytes read, the app's end, the response budget, the hold timeout.
//! Time is paused: "nothing arrives within half the hold timeout" is an ordering of timers,
//! not a wall-clock measurement.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::{
    AppError, Application, BoxFuture, CancellationToken, Peer, Request, Response, ResponseHead,
};
use gatehouse_scgi::{encode_head, serve_connection, Config, Server, RESPONSE_HOLD_TIMEOUT};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::time::timeout;

/// `APP` picks: `early` (head and `early\n` before reading the body, then `read N\n`), `stall`
/// (the same, then neither reads nor ends), `first` (answers the first body chunk and ends),
/// `big` (writes 4 MiB without reading its body).
struct Early {
    written: Arc<AtomicUsize>,
}

impl Application for Early {
    fn call<'a>(
        &'a self,
        mut req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        let written = self.written.clone();
        Box::pin(async move {
            let app = req.env.get_str("APP").unwrap_or_default().to_string();
            let head = ResponseHead::new(200).with_header("Content-Type", "text/plain")?;
            if app == "first" {
                let first = req.body.chunk().await?.unwrap_or_default();
                return Ok(resp.send_full(200, "text/plain", first).await?);
            }
            resp.send_head(head).await?;
            if app == "big" {
                let chunk = Bytes::from(vec![b'z'; 64 * 1024]);
                for _ in 0..64 {
                    resp.write(chunk.clone()).await?;
                    written.fetch_add(chunk.len(), Ordering::SeqCst);
                }
                return Ok(resp.finish().await?);
            }
            resp.write(Bytes::from_static(b"early\n")).await?;
            if app == "stall" {
                std::future::pending::<()>().await;
            }
            let mut n = 0;
            while let Some(c) = req.body.chunk().await? {
                n += c.len();
            }
            resp.write(Bytes::from(format!("read {n}\n"))).await?;
            Ok(resp.finish().await?)
        })
    }
}

fn head(app: &str, len: usize) -> Vec<u8> {
    let len = len.to_string();
    let pairs = [
        ("CONTENT_LENGTH", len.as_str()),
        ("SCGI", "1"),
        ("REQUEST_METHOD", "POST"),
        ("APP", app),
    ];
    let mut out = BytesMut::new();
    encode_head(
        pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        &mut out,
    );
    out.to_vec()
}

struct Rig {
    client: DuplexStream,
    written: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

fn start(config: Config) -> Rig {
    let written = Arc::new(AtomicUsize::new(0));
    let writes = Arc::new(AtomicUsize::new(0));
    let app = Arc::new(Early {
        written: written.clone(),
    });
    let (client, conn) = tokio::io::duplex(64 * 1024);
    let io = Counting {
        io: conn,
        writes: writes.clone(),
    };
    let peer = Peer::Unix(None);
    let server = Server::new(app, config);
    let task = tokio::spawn(serve_connection(server, io, peer, CancellationToken::new()));
    Rig {
        client,
        written,
        writes,
        task,
    }
}

/// Reads at least one byte, within half the hold timeout; `None` if nothing came.
async fn some_bytes(client: &mut DuplexStream) -> Option<Vec<u8>> {
    let mut buf = vec![0; 64 * 1024];
    let n = timeout(RESPONSE_HOLD_TIMEOUT / 2, client.read(&mut buf)).await;
    let n = n.ok()?.unwrap();
    buf.truncate(n);
    Some(buf)
}

#[tokio::test(start_paused = true)]
async fn head_is_held_until_the_body_is_read() {
    let mut rig = start(Config::default());
    rig.client.write_all(&head("early", 6)).await.unwrap();
    rig.client.write_all(b"abc").await.unwrap();
    assert_eq!(some_bytes(&mut rig.client).await, None, "held");
    rig.client.write_all(b"de").await.unwrap();
    assert_eq!(some_bytes(&mut rig.client).await, None, "held");
    rig.client.write_all(b"f").await.unwrap();
    let mut out = Vec::new();
    rig.client.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("Status: 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nearly\nread 6\n"), "{text}");
    rig.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn held_response_goes_out_when_the_app_finishes() {
    let mut rig = start(Config::default());
    rig.client.write_all(&head("first", 100)).await.unwrap();
    rig.client.write_all(b"0123456789").await.unwrap();
    let got = some_bytes(&mut rig.client)
        .await
        .expect("released at the app's end");
    assert!(got.starts_with(b"Status: 200 OK\r\n"));
    assert!(got.ends_with(b"\r\n\r\n0123456789"));
    rig.client.write_all(&[b'x'; 90]).await.unwrap();
    let mut rest = Vec::new();
    rig.client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    rig.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn held_response_goes_out_when_it_reaches_the_budget() {
    let budget = 128 * 1024;
    let mut rig = start(Config {
        response_budget: budget,
        ..Config::default()
    });
    rig.client.write_all(&head("big", 10)).await.unwrap();
    rig.client.write_all(b"abc").await.unwrap();
    let got = some_bytes(&mut rig.client)
        .await
        .expect("released at the budget");
    assert!(got.starts_with(b"Status: 200 OK\r\n"));
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let written = rig.written.load(Ordering::SeqCst);
    assert!(written <= 2 * budget + 64 * 1024, "{written} bytes written");
    rig.client.write_all(&[b'y'; 7]).await.unwrap();
    let mut rest = Vec::new();
    rig.client.read_to_end(&mut rest).await.unwrap();
    assert_eq!(
        got.len() + rest.len() - got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4,
        4 << 20
    );
    rig.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn held_response_goes_out_after_the_hold_timeout() {
    let mut rig = start(Config::default());
    rig.client.write_all(&head("stall", 100)).await.unwrap();
    rig.client.write_all(b"0123456789").await.unwrap();
    assert_eq!(some_bytes(&mut rig.client).await, None, "held");
    let mut buf = vec![0; 1024];
    let n = timeout(RESPONSE_HOLD_TIMEOUT, rig.client.read(&mut buf)).await;
    let got = &buf[..n.expect("released by the timer").unwrap()];
    assert!(got.ends_with(b"\r\n\r\nearly\n"));
}

#[tokio::test(start_paused = true)]
async fn hold_timeout_fires_while_the_body_queue_is_full() {
    // The app reads nothing: its body queue fills and the socket is no longer read.
    let rig = start(Config::default());
    let (mut rd, mut wr) = tokio::io::split(rig.client);
    let len = 4 * 1024 * 1024;
    let sender = tokio::spawn(async move {
        wr.write_all(&head("stall", len)).await.unwrap();
        wr.write_all(&vec![7; len]).await.unwrap();
    });
    let mut buf = vec![0; 1024];
    let n = rd.read(&mut buf).await.unwrap();
    assert!(buf[..n].ends_with(b"\r\n\r\nearly\n"));
    assert!(!sender.is_finished(), "the socket is no longer read");
    sender.abort();
}

#[tokio::test(start_paused = true)]
async fn a_request_without_a_body_is_answered_in_one_write() {
    let mut rig = start(Config::default());
    rig.client.write_all(&head("early", 0)).await.unwrap();
    let mut out = Vec::new();
    rig.client.read_to_end(&mut out).await.unwrap();
    assert!(out.ends_with(b"\r\n\r\nearly\nread 0\n"));
    rig.task.await.unwrap();
    // The head joins the first body chunk; `read 0` follows: the writes as before the hold.
    assert_eq!(rig.writes.load(Ordering::SeqCst), 2);
}

/// A duplex end counting the writes that took bytes.
struct Counting {
    io: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write(cx, buf);
        if res.is_ready() {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if res.is_ready() {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
