//! How a connection closes: at once when the peer sent every request whole, lingering (write
//! side shut, input drained for a bounded time) when the peer may still be sending. The
//! decision in the sans-io core, then its effect through the driver with time paused.

#![allow(clippy::unwrap_used)] // reason: test helpers outside #[test] fns; a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{begin, begin_role, params, request, settle, stdin, Client, Harness, Seen, TestApp};
use gatehouse_channel_request::{
    delivery_queue, CancellationToken, Delivery, Peer, QueueChannel, Response,
};
use gatehouse_fastcgi::config::SHUTDOWN_LINGER_TIMEOUT;
use gatehouse_fastcgi::conn::{Connection, Dispatch, Event};
use gatehouse_fastcgi::{Config, Role, Server};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

fn connection() -> Connection {
    let app = Arc::new(TestApp(Arc::new(Seen::default())));
    let server = Server::new(app, Config::default());
    Connection::new(&server, Peer::Stdio, Instant::now())
}

fn feed(conn: &mut Connection, records: Vec<gatehouse_fastcgi::Record>) -> Vec<Event> {
    for r in records {
        conn.handle_record(Instant::now(), r);
    }
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn dispatched(events: &[Event]) -> &Dispatch {
    events
        .iter()
        .find_map(|e| match e {
            Event::Dispatch(d) => Some(d),
            _ => None,
        })
        .expect("a Dispatch event")
}

/// What an app answering "ok" at once queues for request `tag`.
fn answer(tag: u64) -> Vec<Delivery> {
    let (tx, mut rx) = delivery_queue();
    let mut resp = Response::new(QueueChannel::new(
        tag,
        tx,
        1 << 16,
        CancellationToken::new(),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async { resp.send_full(200, "text/plain", "ok").await.unwrap() });
    drop(resp);
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// Delivers the app's answer; returns the events that follow.
fn respond(conn: &mut Connection, tag: u64) -> Vec<Event> {
    for d in answer(tag) {
        conn.handle_delivery(Instant::now(), d);
    }
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn close_of(events: &[Event]) -> Option<bool> {
    events.iter().find_map(|e| match e {
        Event::Close { linger } => Some(*linger),
        _ => None,
    })
}

#[test]
fn peer_sent_everything_no_linger() {
    let mut conn = connection();
    let evs = feed(
        &mut conn,
        request(1, false, &[("CONTENT_LENGTH", "3")], b"abc"),
    );
    let tag = dispatched(&evs).info.id;
    assert_eq!(close_of(&respond(&mut conn, tag)), Some(false));
}

#[test]
fn app_answering_mid_body_lingers() {
    let mut conn = connection();
    let mut recs = vec![begin(1, false)];
    recs.extend(params(1, &[("CONTENT_LENGTH", "100")]));
    recs.push(stdin(1, b"first part"));
    let evs = feed(&mut conn, recs);
    let tag = dispatched(&evs).info.id;
    assert_eq!(close_of(&respond(&mut conn, tag)), Some(true));
}

#[test]
fn refused_request_makes_the_close_linger() {
    // Two requests multiplexed; the refused one (unknown role) never had its input read.
    let mut conn = connection();
    let mut recs = request(1, false, &[], b"");
    recs.push(begin_role(2, Role::Filter, false));
    let evs = feed(&mut conn, recs);
    assert_eq!(close_of(&evs), None, "request 1 still runs");
    let tag = dispatched(&evs).info.id;
    assert_eq!(
        close_of(&respond(&mut conn, tag)),
        Some(true),
        "request 2's FCGI_PARAMS and FCGI_STDIN may still come"
    );
}

#[test]
fn abort_mid_body_then_close_lingers() {
    let mut conn = connection();
    let mut recs = vec![begin(1, false)];
    recs.extend(params(1, &[]));
    recs.push(stdin(1, b"some"));
    recs.push(gatehouse_fastcgi::Record::new(
        1,
        gatehouse_fastcgi::record::Payload::AbortRequest,
    ));
    assert_eq!(close_of(&feed(&mut conn, recs)), Some(true));
}

#[test]
fn idle_and_shutdown_closes_do_not_linger() {
    let mut conn = connection();
    let deadline = conn.poll_timeout().unwrap();
    conn.handle_timeout(deadline);
    let evs: Vec<_> = std::iter::from_fn(|| conn.poll_event()).collect();
    assert_eq!(
        close_of(&evs),
        Some(false),
        "nothing came: nothing to drain"
    );

    let mut conn = connection();
    let evs = feed(&mut conn, request(1, true, &[], b""));
    let tag = dispatched(&evs).info.id;
    conn.handle_shutdown(Instant::now());
    assert_eq!(close_of(&respond(&mut conn, tag)), Some(false));
}

/// A connection whose app (`first`) answers after the first body chunk, the rest of the body
/// (`CONTENT_LENGTH: 100`) not sent: the server must linger.
async fn answered_mid_body(h: &Harness) -> (Client, JoinHandle<()>) {
    let (mut c, task) = h.connect();
    c.send(&[begin(1, false)]).await;
    c.send(&params(1, &[("APP", "first"), ("CONTENT_LENGTH", "100")]))
        .await;
    c.send(&[stdin(1, b"early")]).await;
    assert_eq!(c.response(1).await.body(), b"early");
    c.expect_closed().await; // Our write side is shut: the peer sees the end of the response.
    (c, task)
}

#[tokio::test(start_paused = true)]
async fn complete_request_closes_at_once() {
    let h = Harness::new(Config::default());
    let (mut c, task) = h.connect();
    c.send(&request(1, false, &[("CONTENT_LENGTH", "4")], b"ping"))
        .await;
    assert_eq!(c.response(1).await.body(), b"ping");
    c.expect_closed().await;
    let start = tokio::time::Instant::now();
    task.await.unwrap(); // The peer has not closed: the server did not wait for it.
    assert_eq!(start.elapsed(), Duration::ZERO, "no lingering");
    assert!(
        c.io.write_all(b"late").await.is_err(),
        "the socket is closed, not just shut for writing"
    );
}

#[tokio::test(start_paused = true)]
async fn early_answer_lingers_draining_until_the_peer_closes() {
    let h = Harness::new(Config::default());
    let (mut c, task) = answered_mid_body(&h).await;
    settle().await;
    assert!(!task.is_finished(), "lingering: the peer may still send");
    // What the peer still sends is read and dropped.
    c.send(&[stdin(1, &[b'x'; 95]), stdin(1, b"")]).await;
    c.io.write_all(&[0u8; 100_000]).await.unwrap();
    settle().await;
    assert!(!task.is_finished());
    drop(c);
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn lingering_ends_at_linger_timeout() {
    let linger = Duration::from_secs(5);
    let h = Harness::new(Config {
        linger_timeout: linger,
        ..Config::default()
    });
    let (_c, task) = answered_mid_body(&h).await;
    let start = tokio::time::Instant::now();
    task.await.unwrap();
    let waited = start.elapsed();
    assert!(
        waited > linger - Duration::from_millis(100) && waited <= linger,
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_cuts_lingering_short() {
    let h = Harness::new(Config {
        linger_timeout: Duration::from_secs(60),
        ..Config::default()
    });
    let (_c, task) = answered_mid_body(&h).await;
    settle().await;
    h.shutdown.cancel();
    let start = tokio::time::Instant::now();
    task.await.unwrap();
    assert_eq!(start.elapsed(), SHUTDOWN_LINGER_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn partial_record_buffered_lingers() {
    let h = Harness::new(Config::default());
    let (mut c, task) = h.connect();
    c.send(&request(1, false, &[], b"")).await;
    c.send_raw(&[1, 5, 0]).await; // The start of a record header.
    assert_eq!(c.response(1).await.status(), 200);
    c.expect_closed().await;
    settle().await;
    assert!(!task.is_finished(), "the peer stopped mid-record");
    drop(c);
    task.await.unwrap();
}
