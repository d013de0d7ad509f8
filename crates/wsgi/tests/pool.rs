//! The bounded pool: queueing, the 503 beyond the queue, and the GIL released while a thread
//! waits for request bytes or for the client.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use gatehouse_channel_request::{
    delivery_queue, serve_request, BodySender, CancellationToken, DeliveryReceiver, Output,
    QueueChannel, Request, Response,
};
use gatehouse_wsgi::{Config, WsgiApp};
use support::{load, Call, End};

const CASES: &str = "wsgi_cases.py";

fn pool(threads: usize, queue: usize) -> Config {
    Config {
        threads,
        queue,
        ..Config::default()
    }
}

fn drain(rx: &mut DeliveryReceiver) -> (u16, Vec<u8>, bool) {
    let (mut status, mut body, mut finished) = (0, Vec::new(), false);
    while let Ok(d) = rx.try_recv() {
        match d.output {
            Output::Head(h) => status = h.status(),
            Output::Body(b) => body.extend_from_slice(&b),
            Output::Finish => finished = true,
            _ => {}
        }
    }
    (status, body, finished)
}

#[tokio::test]
async fn eight_concurrent_requests_on_two_threads() {
    // `paired` waits until a second request runs beside it: all eight complete only if two
    // threads serve at once, and none reports more than two running together.
    let app = Arc::new(load(CASES, "paired", pool(2, 8)));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let app = app.clone();
        set.spawn(async move { Call::get("/").run(&*app).await });
    }
    let mut answers = Vec::new();
    while let Some(a) = set.join_next().await {
        answers.push(a.expect("task"));
    }
    assert_eq!(answers.len(), 8);
    for a in &answers {
        assert_eq!((a.status(), a.end), (200, End::Finish));
        assert_eq!(a.text(), "2", "peak concurrency");
    }
}

fn start_read(len: &str) -> (BodySender, Request, Response, DeliveryReceiver) {
    let call = Call::post("/", "text/plain", Bytes::new()).var("CONTENT_LENGTH", len);
    let (tx, req) = call.request();
    let (dtx, drx) = delivery_queue();
    let resp = Response::new(QueueChannel::new(1, dtx, 1 << 16, CancellationToken::new()));
    (tx, req, resp, drx)
}

#[tokio::test]
async fn beyond_pool_and_queue_is_503() {
    let app = Arc::new(load(CASES, "read_body", pool(1, 1)));
    // A: on the only thread, proven by the app taking a chunk (the body queue holds two, so the
    // third send waits for the app), then waiting for its 4th byte.
    let (mut tx_a, req_a, resp_a, mut rx_a) = start_read("4");
    let app_a = app.clone();
    let task_a = tokio::spawn(async move { serve_request(&*app_a, req_a, resp_a).await });
    for b in ["a", "b", "c"] {
        tx_a.send(Bytes::from(b)).await.unwrap();
    }
    // B: queued. One poll submits it.
    let (mut tx_b, req_b, resp_b, mut rx_b) = start_read("1");
    let mut task_b = Box::pin(serve_request(&*app, req_b, resp_b));
    tokio::select! {
        biased;
        () = &mut task_b => panic!("B cannot finish while the only thread is busy"),
        () = std::future::ready(()) => {}
    }
    // C: no thread, no queue slot.
    let c = Call::get("/").run(&*app).await;
    assert_eq!(c.status(), 503);
    assert_eq!(c.end, End::Finish);
    // Release A, then B: both served, nothing lost.
    tx_a.send(Bytes::from("d")).await.unwrap();
    tx_a.finish();
    let _ = task_a.await;
    assert_eq!(drain(&mut rx_a), (200, b"4".to_vec(), true));
    tx_b.send(Bytes::from("x")).await.unwrap();
    tx_b.finish();
    task_b.await;
    assert_eq!(drain(&mut rx_b), (200, b"1".to_vec(), true));
    // And the pool takes new work again.
    let d = Call::get("/").var("CONTENT_LENGTH", "0").run(&*app).await;
    assert_eq!((d.status(), d.text().as_str()), (200, "0"));
}

#[tokio::test]
async fn gil_released_while_waiting_for_request_bytes() {
    let reader = Arc::new(load(CASES, "read_body", pool(1, 0)));
    let hello = load(CASES, "hello", pool(1, 0));
    let call = Call::post("/", "text/plain", Bytes::new()).var("CONTENT_LENGTH", "4");
    let (mut tx, req) = call.request();
    let (dtx, mut drx) = delivery_queue();
    let resp = Response::new(QueueChannel::new(1, dtx, 1 << 16, CancellationToken::new()));
    let r = reader.clone();
    let blocked = tokio::spawn(async move { serve_request(&*r, req, resp).await });
    for b in ["a", "b", "c"] {
        tx.send(Bytes::from(b)).await.unwrap(); // the 3rd proves the reader thread is in read()
    }
    // The reader's thread now waits for bytes that never come; if it held the GIL this would
    // hang.
    let a = Call::get("/").run(&hello).await;
    assert_eq!(a.status(), 200);
    tx.send(Bytes::from("d")).await.unwrap();
    tx.finish();
    let _ = blocked.await;
    assert_eq!(drain(&mut drx), (200, b"4".to_vec(), true));
}

#[tokio::test]
async fn gil_released_while_waiting_for_the_client() {
    let endless = Arc::new(load(CASES, "endless", pool(1, 0)));
    let hello = load(CASES, "hello", pool(1, 0));
    let call = Call::get("/");
    let (_tx, req) = call.request();
    let (dtx, mut drx) = delivery_queue();
    let gone = CancellationToken::new();
    let resp = Response::new(QueueChannel::new(1, dtx, 1 << 16, gone.clone()));
    let e = endless.clone();
    let stuck = tokio::spawn(async move { serve_request(&*e, req, resp).await });
    // The client reads the head and one chunk but holds it: the budget is used up and the
    // endless app's thread waits in write.
    let head = drx.recv().await.unwrap();
    assert!(matches!(head.output, Output::Head(_)));
    let held = drx.recv().await.unwrap();
    assert!(matches!(held.output, Output::Body(_)));
    let a = Call::get("/").run(&hello).await;
    assert_eq!(a.status(), 200);
    gone.cancel();
    drop(held);
    let _ = stuck.await;
}

#[tokio::test]
async fn queued_request_cancelled_before_it_runs_is_skipped() {
    let app: Arc<WsgiApp> = Arc::new(load(CASES, "read_body", pool(1, 4)));
    // Busy: on the only thread (it took a chunk), waiting for its 4th byte.
    let (mut tx, req, resp, mut drx) = start_read("4");
    let a = app.clone();
    let busy = tokio::spawn(async move { serve_request(&*a, req, resp).await });
    for b in ["a", "b", "c"] {
        tx.send(Bytes::from(b)).await.unwrap();
    }
    // Queue a request, then drop it (the front end cancels it) while the thread is busy.
    let rec = support::Record::new();
    let call = Call::get("/").var("HTTP_X_RECORD", &rec.header());
    let (tx2, req2) = call.request();
    tx2.finish();
    let (dtx2, _drx2) = delivery_queue();
    let resp2 = Response::new(QueueChannel::new(
        2,
        dtx2,
        1 << 16,
        CancellationToken::new(),
    ));
    let mut queued = Box::pin(serve_request(&*app, req2, resp2));
    tokio::select! {
        biased;
        () = &mut queued => panic!("cannot run yet"),
        () = std::future::ready(()) => {}
    }
    drop(queued);
    tx.send(Bytes::from("d")).await.unwrap();
    tx.finish();
    let _ = busy.await;
    assert_eq!(drain(&mut drx), (200, b"4".to_vec(), true));
    // The pool still serves (after the skipped job), and the cancelled request never reached
    // the app.
    let after = Call::get("/").var("CONTENT_LENGTH", "0").run(&*app).await;
    assert_eq!(after.text(), "0");
    assert_eq!(rec.lines(), Vec::<String>::new());
}
