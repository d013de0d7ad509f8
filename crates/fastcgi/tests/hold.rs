//! The response hold over `tokio::io::duplex`: a request's response is not written while its
//! `FCGI_STDIN` still arrives (nginx stops sending the body once it has the head), and goes out
//! on the first of: the body's end, the app's end, the response budget, the hold timeout.
//! Time is paused: "nothing arrives within half the hold timeout" is an ordering of timers,
//! not a wall-clock measurement.

#![allow(clippy::unwrap_used)] // reason: test helpers outside #[test] fns; a failed unwrap is a failed test

mod common;

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use common::{begin, params, request, settle, stdin, Client, Harness};
use gatehouse_channel_request::Peer;
use gatehouse_fastcgi::codec::RecordCodec;
use gatehouse_fastcgi::config::RESPONSE_HOLD_TIMEOUT;
use gatehouse_fastcgi::record::{Payload, Record};
use gatehouse_fastcgi::{serve_connection, Config};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::time::timeout;
use tokio_util::codec::{Decoder, Encoder};

/// A request whose body (`CONTENT_LENGTH: len`) is only partly sent: BEGIN, PARAMS, `sent`.
fn partial(id: u16, app: &str, len: usize, sent: &[u8]) -> Vec<Record> {
    let len = len.to_string();
    let mut recs = vec![begin(id, true)];
    recs.extend(params(
        id,
        &[("APP", app), ("CONTENT_LENGTH", &len), ("SIZE", "4194304")],
    ));
    recs.push(stdin(id, sent));
    recs
}

/// Asserts that nothing arrives within half the hold timeout.
async fn nothing_yet(c: &mut Client) {
    let got = timeout(RESPONSE_HOLD_TIMEOUT / 2, c.recv()).await;
    assert!(got.is_err(), "the response must be held: {got:?}");
}

fn stdout_of(rec: &Record) -> &[u8] {
    match &rec.payload {
        Payload::Stdout(b) => b,
        other => panic!("expected FCGI_STDOUT, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn head_is_held_until_stdin_ends() {
    let h = Harness::new(Config::default());
    let (mut c, _task) = h.connect();
    c.send(&partial(1, "early", 6, b"abc")).await;
    // The app answered at once; nothing is written while its body still arrives.
    nothing_yet(&mut c).await;
    c.send(&[stdin(1, b"de")]).await;
    nothing_yet(&mut c).await;
    c.send(&[stdin(1, b"f"), stdin(1, b"")]).await;
    let a = c.response(1).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.body(), b"early\nread 6\n");
    assert_eq!(a.end.unwrap().app_status, 0);
}

#[tokio::test(start_paused = true)]
async fn head_is_released_once_content_length_bytes_arrived() {
    // nginx may stop before its empty FCGI_STDIN once it has our head: the body is complete
    // at CONTENT_LENGTH, and the app (which reads no further) answers.
    let h = Harness::new(Config::default());
    let (mut c, _task) = h.connect();
    c.send(&partial(1, "early", 6, b"abc")).await;
    nothing_yet(&mut c).await;
    c.send(&[stdin(1, b"def")]).await;
    let first = timeout(RESPONSE_HOLD_TIMEOUT / 2, c.recv()).await;
    let first = first.expect("released at CONTENT_LENGTH").unwrap();
    assert!(stdout_of(&first).starts_with(b"Status: 200 OK\r\n"));
}

#[tokio::test(start_paused = true)]
async fn held_response_goes_out_when_the_app_finishes() {
    // `first` answers with the first body chunk and ends, its body still incomplete.
    let h = Harness::new(Config::default());
    let (mut c, _task) = h.connect();
    c.send(&partial(1, "first", 100, b"0123456789")).await;
    let a = timeout(RESPONSE_HOLD_TIMEOUT / 2, c.response(1)).await;
    let a = a.expect("the app's end releases the response at once");
    assert_eq!(a.body(), b"0123456789");
    assert!(a.stdout_closed);
    assert_eq!(a.end.unwrap().app_status, 0);
    // The rest of the body is for an inactive request (ignored); the connection goes on.
    c.send(&[stdin(1, &[b'x'; 90]), stdin(1, b"")]).await;
    c.send(&request(1, true, &[], b"again")).await;
    assert_eq!(c.response(1).await.body(), b"again");
}

#[tokio::test(start_paused = true)]
async fn held_response_goes_out_when_it_reaches_the_budget() {
    let budget = 128 * 1024;
    let h = Harness::new(Config {
        response_budget: budget,
        ..Config::default()
    });
    let (mut c, _task) = h.connect();
    // `big` writes 4 MiB without reading its body.
    c.send(&partial(1, "big", 10, b"abc")).await;
    let first = timeout(RESPONSE_HOLD_TIMEOUT / 2, c.recv()).await;
    let first = first
        .expect("released at the budget, not by the timer")
        .unwrap();
    assert_eq!(first.request_id, 1);
    assert!(stdout_of(&first).starts_with(b"Status: 200 OK\r\n"));
    settle().await;
    // Bounded: the held budget, a budget in flight, and a chunk.
    let written = h.seen.written.load(Ordering::SeqCst);
    assert!(written <= 2 * budget + 64 * 1024, "{written} bytes written");
    let mut total = stdout_of(&first).len();
    while total < 4 * 1024 * 1024 {
        let rec = c.recv().await.unwrap();
        total += stdout_of(&rec).len();
    }
}

#[tokio::test(start_paused = true)]
async fn held_response_goes_out_after_the_hold_timeout() {
    let h = Harness::new(Config::default());
    let (mut c, _task) = h.connect();
    c.send(&partial(1, "stall", 100, b"0123456789")).await;
    nothing_yet(&mut c).await;
    let first = timeout(RESPONSE_HOLD_TIMEOUT, c.recv()).await;
    let first = first.expect("released by the hold timeout").unwrap();
    assert!(stdout_of(&first).ends_with(b"\r\n\r\nearly\n"));
}

#[tokio::test(start_paused = true)]
async fn hold_timeout_fires_while_the_body_queue_is_full() {
    // The app reads nothing: its body queue fills and the connection stops reading, so the
    // connection is not idle on the peer's account, yet the held head must go out.
    let h = Harness::new(Config::default());
    let (c, _task) = h.connect();
    let (mut rd, mut wr) = tokio::io::split(c.io);
    let len = 2 * 1024 * 1024;
    let sender = tokio::spawn(async move {
        let mut recs = partial(1, "stall", len, &[7; 60_000]);
        for _ in 1..len / 60_000 {
            recs.push(stdin(1, &[7; 60_000]));
        }
        let mut out = BytesMut::new();
        for r in &recs {
            RecordCodec::new().encode(r, &mut out).unwrap();
        }
        wr.write_all(&out).await.unwrap();
    });
    let mut buf = BytesMut::new();
    let first = loop {
        if let Some(r) = RecordCodec::new().decode(&mut buf).unwrap() {
            break r;
        }
        assert_ne!(rd.read_buf(&mut buf).await.unwrap(), 0, "closed");
    };
    assert!(stdout_of(&first).ends_with(b"early\n"));
    assert!(!sender.is_finished(), "the connection stopped reading");
    sender.abort();
}

#[tokio::test(start_paused = true)]
async fn a_multiplexed_neighbour_is_not_held() {
    let h = Harness::new(Config::default());
    let (mut c, _task) = h.connect();
    c.send(&partial(1, "stall", 100, b"x")).await;
    c.send(&request(2, true, &[("REQUEST_METHOD", "GET")], b""))
        .await;
    let a2 = timeout(RESPONSE_HOLD_TIMEOUT / 2, c.response(2)).await;
    let a2 = a2.expect("request 2 is answered while request 1 holds");
    assert_eq!(a2.status(), 200);
    assert!(a2.others.is_empty(), "request 1's head is still held");
    c.send(&[stdin(1, &[b'y'; 99]), stdin(1, b"")]).await;
    let first = c.recv().await.unwrap();
    assert_eq!(first.request_id, 1);
    assert!(stdout_of(&first).ends_with(b"early\n"));
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

/// Serves one whole request sent in one write; returns the answer and the server's writes.
async fn writes_for(body: &[u8], method: &str) -> (Vec<u8>, usize) {
    let h = Harness::new(Config::default());
    let (client, server_io) = tokio::io::duplex(64 * 1024);
    let writes = Arc::new(AtomicUsize::new(0));
    let io = Counting {
        io: server_io,
        writes: writes.clone(),
    };
    let task = tokio::spawn(serve_connection(
        h.server.clone(),
        io,
        Peer::Unix(None),
        h.shutdown.clone(),
    ));
    let mut c = Client::over(client);
    let len = body.len().to_string();
    let mut pairs = vec![("REQUEST_METHOD", method)];
    if !body.is_empty() {
        pairs.push(("CONTENT_LENGTH", &len));
    }
    c.send(&request(1, false, &pairs, body)).await;
    let a = c.response(1).await;
    c.expect_closed().await;
    task.await.unwrap();
    (a.body().to_vec(), writes.load(Ordering::SeqCst))
}

#[tokio::test(start_paused = true)]
async fn a_whole_request_is_answered_in_one_write() {
    // A GET (nginx sends its empty FCGI_STDIN with the head): head, body, the empty
    // FCGI_STDOUT and FCGI_END_REQUEST leave in one write, nothing held.
    let (body, writes) = writes_for(b"", "GET").await;
    assert_eq!(body, b"");
    assert_eq!(writes, 1);
    // A POST whose body came with its head: complete before the app answers, not held.
    let (body, writes) = writes_for(b"ping", "POST").await;
    assert_eq!(body, b"ping");
    assert_eq!(writes, 1);
}
