//! Driver tests on in-memory streams with tokio's clock paused: the timeouts fire on virtual
//! time, so these are deterministic however loaded the machine is.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_channel_request::{Application, CancellationToken, Peer, ResponseHead};
use gatehouse_http::{serve_connection, Config, Server};
use support::*;
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const HEAD: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(60);

fn config() -> Config {
    Config {
        header_read_timeout: HEAD,
        idle_timeout: IDLE,
        // The idle rules alone; the minimum body rate has its own test.
        body_min_rate: None,
        ..Config::default()
    }
}

fn serve(app: Arc<dyn Application>) -> (Client<DuplexStream>, JoinHandle<()>, CancellationToken) {
    let (client, server_io) = tokio::io::duplex(64 * 1024);
    let shutdown = CancellationToken::new();
    let peer = Peer::Tcp("192.0.2.1:4000".parse().unwrap());
    let local = Some("192.0.2.2:80".parse().unwrap());
    let conn = serve_connection(
        Server::new(app, config()),
        server_io,
        peer,
        local,
        shutdown.clone(),
    );
    (Client::new(client), tokio::spawn(conn), shutdown)
}

#[tokio::test(start_paused = true)]
async fn header_timeout_closes_a_slow_head() {
    let (logs, _guard) = Logs::capture();
    let (mut c, conn, _) = serve(echo());
    // Quiet for a while first: the header timer only starts with the first byte.
    tokio::time::sleep(IDLE / 2).await;
    let start = Instant::now();
    c.send("GET / HTTP/1.1\r\nHost: h\r\n").await;
    // Trickling bytes does not extend the deadline.
    for _ in 0..3 {
        tokio::time::sleep(HEAD / 4).await;
        c.send("X-Slow: 1\r\n").await;
    }
    assert_eq!(
        c.read_to_close().await.unwrap(),
        b"",
        "closed without an answer"
    );
    let waited = start.elapsed();
    assert!(waited >= HEAD && waited < IDLE, "{waited:?}");
    conn.await.unwrap();
    let text = logs.text();
    assert!(
        text.contains("request head not complete") && text.contains("192.0.2.1:4000"),
        "{text}"
    );
    assert!(text.contains("X-Slow: 1"), "last bytes shown: {text}");
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_closes_a_quiet_keep_alive_connection() {
    let (mut c, conn, _) = serve(echo());
    c.send(get("/one", "")).await;
    assert_eq!(c.read_response().await.status, 200);
    // Less than the idle timeout: the connection is still there.
    tokio::time::sleep(IDLE / 2).await;
    c.send(get("/two", "")).await;
    assert_eq!(c.read_response().await.json()["path"], "/two");
    let start = Instant::now();
    assert_eq!(c.read_to_close().await.unwrap(), b"");
    let waited = start.elapsed();
    assert!(waited >= IDLE && waited < IDLE + HEAD, "{waited:?}");
    conn.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_app_is_not_timed_out() {
    let slow = app(|_req, resp| {
        Box::pin(async move {
            tokio::time::sleep(IDLE * 10).await;
            resp.send_full(200, "text/plain", "late but fine").await?;
            Ok(())
        })
    });
    let (mut c, _conn, _) = serve(slow);
    c.send(get("/", "")).await;
    let resp = c.read_response().await;
    assert_eq!(resp.body, b"late but fine");
}

/// A body that keeps coming, a byte every 5 s (never idle), is cut by the minimum rate: 20 s of
/// grace, plus 1 s per 500 bytes; a stalled one by the same rule before the idle timeout.
#[tokio::test(start_paused = true)]
async fn a_trickling_body_is_cut_by_the_minimum_rate() {
    let (logs, _guard) = Logs::capture();
    let (client, server_io) = tokio::io::duplex(64 * 1024);
    let peer = Peer::Tcp("192.0.2.1:4000".parse().unwrap());
    let server = Server::new(
        echo(),
        Config {
            body_min_rate: Some(gatehouse_http::DEFAULT_BODY_MIN_RATE),
            ..config()
        },
    );
    let conn = tokio::spawn(serve_connection(
        server,
        server_io,
        peer,
        None,
        CancellationToken::new(),
    ));
    let mut c = Client::new(client);
    c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n")
        .await;
    let start = Instant::now();
    while !conn.is_finished() && start.elapsed() < IDLE {
        tokio::time::sleep(Duration::from_secs(5)).await;
        use tokio::io::AsyncWriteExt;
        if c.stream.get_mut().write_all(b"x").await.is_err() {
            break;
        }
    }
    let waited = start.elapsed();
    assert!(waited < IDLE, "not cut before the idle timeout: {waited:?}");
    conn.await.unwrap();
    assert!(
        logs.text().contains("slower than the minimum rate"),
        "{}",
        logs.text()
    );
}

#[tokio::test(start_paused = true)]
async fn stalled_request_body_closes_the_connection() {
    let (logs, _guard) = Logs::capture();
    let (mut c, conn, _) = serve(echo());
    c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        .await;
    let start = Instant::now();
    assert_eq!(c.read_to_close().await.unwrap(), b"");
    assert!(start.elapsed() >= IDLE);
    conn.await.unwrap();
    assert!(
        logs.text().contains("while waiting for the request body"),
        "{}",
        logs.text()
    );
}

#[tokio::test(start_paused = true)]
async fn client_that_stops_reading_holds_the_app_back_then_is_dropped() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (logs, _guard) = Logs::capture();
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let firehose = app(move |_req, resp| {
        let w = w.clone();
        Box::pin(async move {
            resp.send_head(ResponseHead::new(200)).await?;
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            for _ in 0..1024 {
                resp.write(chunk.clone()).await?;
                w.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            resp.finish().await?;
            Ok(())
        })
    });
    let (mut c, conn, _) = serve(firehose);
    c.send(get("/", "")).await;
    // Never read: the duplex buffer fills, hyper stops polling the body, the app's writes wait
    // on its byte budget; then the send timeout drops the connection.
    conn.await.unwrap();
    let written = written.load(Ordering::SeqCst);
    assert!(
        written < 2 << 20,
        "the app got {written} bytes out of a client that reads nothing"
    );
    assert!(
        logs.text().contains("response bytes to be read"),
        "{}",
        logs.text()
    );
    drop(c);
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_idle_and_lets_busy_finish() {
    let (mut idle, idle_conn, idle_stop) = serve(echo());
    idle.send(get("/", "")).await;
    idle.read_response().await;
    idle_stop.cancel();
    idle_conn.await.unwrap();
    assert_eq!(idle.read_to_close().await.unwrap(), b"");

    let slow = app(|_req, resp| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            resp.send_full(200, "text/plain", "done").await?;
            Ok(())
        })
    });
    let (mut busy, busy_conn, busy_stop) = serve(slow);
    busy.send(get("/", "")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    busy_stop.cancel();
    assert_eq!(busy.read_response().await.body, b"done");
    assert_eq!(busy.read_to_close().await.unwrap(), b"");
    busy_conn.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn request_body_backpressure_stops_reading() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let paused_reader = app(move |mut req, resp| {
        let g = g.clone();
        Box::pin(async move {
            let mut total = req.body.chunk().await?.map_or(0, |c| c.len());
            g.notified().await;
            while let Some(c) = req.body.chunk().await? {
                total += c.len();
            }
            resp.send_full(200, "text/plain", total.to_string()).await?;
            Ok(())
        })
    });
    let (c, _conn, _) = serve(paused_reader);
    let (mut rd, mut wr) = tokio::io::split(c.stream.into_inner());
    const LEN: usize = 8 << 20;
    let mut upload = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let head = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {LEN}\r\n\r\n");
        wr.write_all(head.as_bytes()).await.unwrap();
        wr.write_all(&vec![b'z'; LEN]).await.unwrap();
        wr
    });
    // Everything is blocked on the app: virtual time runs out before the upload can finish.
    let waited = tokio::time::timeout(IDLE / 2, &mut upload).await;
    assert!(
        waited.is_err(),
        "8 MiB went through while the app read nothing"
    );
    gate.notify_one();
    let _wr = upload.await.unwrap();
    let mut c = Client::new(tokio::io::join(&mut rd, tokio::io::sink()));
    let resp = c.read_response().await;
    assert_eq!(resp.text(), LEN.to_string());
}
