//! Where apps run: polled once where they are dispatched when alone on their connection, moved
//! to a task when they wait or when other requests share the connection. Either way a request
//! can be cancelled, and a panic outside the app costs only its request.

#![allow(clippy::unwrap_used)] // reason: test helpers outside #[test] fns; a failed unwrap is a failed test

mod common;

use std::sync::atomic::Ordering;

use common::{begin, params, request, settle, stdin, Harness};
use gatehouse_fastcgi::record::{Payload, Record};
use gatehouse_fastcgi::Config;

#[tokio::test(start_paused = true)]
async fn app_answering_at_once_and_app_waiting_both_answer() {
    let h = Harness::new(Config::default());
    let (mut c, _task) = h.connect();
    // `echo` reads a body that is not there yet: it waits, so it moves to a task.
    c.send(&[begin(1, true)]).await;
    c.send(&params(1, &[("CONTENT_LENGTH", "5")])).await;
    settle().await;
    c.send(&[stdin(1, b"hello"), stdin(1, b"")]).await;
    assert_eq!(c.response(1).await.body(), b"hello");
    // The same app with its whole body already read answers where it is dispatched.
    c.send(&request(1, true, &[("CONTENT_LENGTH", "3")], b"hey"))
        .await;
    assert_eq!(c.response(1).await.body(), b"hey");
    assert_eq!(h.server.stats().requests_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn app_starts_after_the_records_already_read() {
    let h = Harness::new(Config::default());
    let (mut c, _task) = h.connect();
    // Head and the end of the body in one write, as nginx sends a GET: the app sees the end
    // of its body without waiting (a CGI script then needs no stdin pipe).
    c.send(&request(1, true, &[("APP", "peek")], b"")).await;
    assert_eq!(c.response(1).await.body(), b"ended");
    // The body's end sent later: the app started without it.
    c.send(&[begin(1, true)]).await;
    c.send(&params(1, &[("APP", "peek")])).await;
    assert_eq!(c.response(1).await.body(), b"waits");
    c.send(&[stdin(1, b"")]).await;
}

#[tokio::test(start_paused = true)]
async fn app_cancelled_before_it_started_never_runs() {
    let h = Harness::new(Config::default());
    let (mut c, _task) = h.connect();
    let mut recs = request(5, true, &[("APP", "hang")], b"");
    recs.push(Record::new(5, Payload::AbortRequest));
    c.send(&recs).await;
    assert_ne!(c.response(5).await.end.unwrap().app_status, 0);
    settle().await;
    assert_eq!(
        h.calls(),
        0,
        "aborted in the same read: the app never started"
    );
    assert_eq!(h.server.stats().requests_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn waiting_app_moved_to_a_task_is_still_cancelled_by_abort() {
    let h = Harness::new(Config::default());
    let (mut c, _task) = h.connect();
    c.send(&request(3, true, &[("APP", "hang")], b"")).await;
    settle().await;
    c.send(&[Record::new(3, Payload::AbortRequest)]).await;
    assert_ne!(c.response(3).await.end.unwrap().app_status, 0);
    settle().await;
    assert_eq!(h.seen.cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(h.server.stats().requests_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn panic_outside_the_app_ends_only_its_request() {
    let h = Harness::new(Config::default());
    let (mut c, task) = h.connect();
    // Alone on the connection: polled where it is dispatched.
    c.send(&request(1, true, &[("APP", "panic-call")], b""))
        .await;
    let a = c.response(1).await;
    assert_ne!(a.end.unwrap().app_status, 0, "{a:?}");
    // Beside a waiting request: in a task of its own.
    c.send(&request(2, true, &[("APP", "gate")], b"")).await;
    settle().await;
    c.send(&request(4, true, &[("APP", "panic-call")], b""))
        .await;
    assert_ne!(c.response(4).await.end.unwrap().app_status, 0);
    h.seen.gate.notify_one();
    assert_eq!(c.response(2).await.body(), b"gated");
    c.send(&request(1, true, &[], b"still here")).await;
    assert_eq!(c.response(1).await.body(), b"still here");
    assert!(!task.is_finished());
    assert_eq!(h.server.stats().requests_in_flight, 0);
}
