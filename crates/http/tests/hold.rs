//! The response hold: an app's early answer waits while its request body still arrives (a
//! proxy such as nginx stops sending the body once it has our head). In-memory streams, tokio's
//! clock paused: deterministic however loaded the machine is.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_channel_request::{Application, CancellationToken, Peer, ResponseHead};
use gatehouse_http::{serve_connection, Config, Server, RESPONSE_HOLD_TIMEOUT};
use support::*;
use tokio::io::DuplexStream;
use tokio::time::{timeout, Instant};

const BUDGET: usize = 64 * 1024;

fn serve(app: Arc<dyn Application>) -> Client<DuplexStream> {
    let (client, server_io) = tokio::io::duplex(1 << 20);
    let config = Config {
        response_budget: BUDGET,
        ..Config::default()
    };
    let peer = Peer::Tcp("192.0.2.1:4000".parse().unwrap());
    let conn = serve_connection(
        Server::new(app, config),
        server_io,
        peer,
        None,
        CancellationToken::new(),
    );
    tokio::spawn(conn);
    Client::new(client)
}

/// Answers at once (head and `early` bytes of body), then reads its whole body and reports
/// its length, like a CGI script printing its head first.
fn early(early: usize) -> Arc<dyn Application> {
    app(move |mut req, resp| {
        Box::pin(async move {
            resp.send_head(ResponseHead::new(200).with_header("Content-Type", "text/plain")?)
                .await?;
            resp.write(Bytes::from(vec![b'e'; early])).await?;
            let mut total = 0;
            while let Some(c) = req.body.chunk().await? {
                total += c.len();
            }
            resp.write(Bytes::from(format!("|read {total}"))).await?;
            resp.finish().await?;
            Ok(())
        })
    })
}

/// Answers without ever reading its body (but keeps it), and does not end its response until
/// told.
fn never_reads(done: Arc<tokio::sync::Notify>) -> Arc<dyn Application> {
    app(move |req, resp| {
        let done = done.clone();
        Box::pin(async move {
            let _unread = req.body;
            resp.send_head(ResponseHead::new(200).with_header("Content-Type", "text/plain")?)
                .await?;
            resp.write(Bytes::from_static(b"hi")).await?;
            done.notified().await;
            resp.finish().await?;
            Ok(())
        })
    })
}

fn post_head(len: usize, extra: &str) -> String {
    format!("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: {len}{extra}\r\n\r\n")
}

#[tokio::test(start_paused = true)]
async fn early_head_waits_for_the_body() {
    let mut c = serve(early(5));
    c.send(post_head(10, "")).await;
    c.send("abcd").await;
    // Less than the hold timeout, with the body incomplete: nothing comes.
    let waited = timeout(RESPONSE_HOLD_TIMEOUT / 2, c.read_head()).await;
    assert!(waited.is_err(), "the head went out before the body was in");
    c.send("efghij").await;
    let resp = c.read_response().await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "eeeee|read 10");
}

#[tokio::test(start_paused = true)]
async fn held_head_goes_out_when_the_body_stalls() {
    let done = Arc::new(tokio::sync::Notify::new());
    let mut c = serve(never_reads(done.clone()));
    let start = Instant::now();
    c.send(post_head(10, "")).await;
    c.send("abc").await;
    let head = c.read_head().await;
    assert_eq!(head.status, 200);
    let waited = start.elapsed();
    assert!(waited >= RESPONSE_HOLD_TIMEOUT, "{waited:?}");
    assert!(waited < RESPONSE_HOLD_TIMEOUT * 3, "{waited:?}");
    done.notify_one();
}

#[tokio::test(start_paused = true)]
async fn held_bytes_reaching_the_budget_go_out() {
    let mut c = serve(early(BUDGET * 2));
    let start = Instant::now();
    c.send(post_head(10, "")).await;
    c.send("abc").await;
    let head = c.read_head().await;
    assert_eq!(head.status, 200);
    // Released by the budget, not by the timeout (no timer had to fire).
    assert!(
        start.elapsed() < RESPONSE_HOLD_TIMEOUT,
        "{:?}",
        start.elapsed()
    );
    c.send("defghij").await;
    let resp_body = {
        // The rest of the chunked body: the early bytes, then the report.
        let mut rest = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let want = "|read 10";
        loop {
            use tokio::io::AsyncReadExt;
            let n = c.stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            rest.extend_from_slice(&buf[..n]);
            if rest.ends_with(b"0\r\n\r\n") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&rest).into_owned();
        assert!(text.contains(want), "no report in the body");
        text
    };
    assert!(resp_body.matches('e').count() >= BUDGET * 2);
}

#[tokio::test(start_paused = true)]
async fn app_ending_its_response_releases_it() {
    let done = Arc::new(tokio::sync::Notify::new());
    let mut c = serve(never_reads(done.clone()));
    let start = Instant::now();
    c.send(post_head(10, "")).await;
    c.send("abc").await;
    tokio::time::sleep(RESPONSE_HOLD_TIMEOUT / 4).await;
    done.notify_one();
    let resp = c.read_response().await;
    assert_eq!(resp.text(), "hi");
    assert!(
        start.elapsed() < RESPONSE_HOLD_TIMEOUT,
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn expect_continue_answered_early_is_not_held() {
    let done = Arc::new(tokio::sync::Notify::new());
    let mut c = serve(never_reads(done.clone()));
    let start = Instant::now();
    // The client waits for `100 Continue` before sending its body: the early answer is what
    // it asked for, at once.
    c.send(post_head(10, "\r\nExpect: 100-continue")).await;
    let head = c.read_head().await;
    assert_eq!(head.status, 200);
    assert!(
        start.elapsed() < RESPONSE_HOLD_TIMEOUT,
        "{:?}",
        start.elapsed()
    );
    done.notify_one();
}

#[tokio::test(start_paused = true)]
async fn requests_without_a_body_are_not_held() {
    let done = Arc::new(tokio::sync::Notify::new());
    let mut c = serve(never_reads(done.clone()));
    let start = Instant::now();
    c.send(get("/", "")).await;
    let head = c.read_head().await;
    assert_eq!(head.status, 200);
    assert_eq!(start.elapsed(), Duration::ZERO);
    done.notify_one();
}
