//! `--request-timeout`, `--slow-log-timeout` and the counters of `gatehouse_wsgi::stats()`, in
//! process (fixtures/apps/time_limits.py). One test: the counters are process-wide, and this file
//! is its own process, so every figure is exact.

mod support;

use std::sync::Arc;
use std::time::Duration;

use gatehouse_wsgi::{stats, Config, WsgiStats};
use support::{load, Call, End};

/// Polls the counters until `ok` holds (never a timing assertion: a generous bound).
async fn until(what: &str, ok: impl Fn(&WsgiStats) -> bool) -> WsgiStats {
    for _ in 0..6000 {
        let s = stats();
        if ok(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: counters {:?}", stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_slow_requests_stuck_threads_and_their_counters() {
    let config = Config {
        threads: 1,
        queue: 1,
        request_timeout: Some(Duration::from_secs(2)),
        slow_log_timeout: Some(Duration::from_millis(300)),
        ..Config::default()
    };
    let app = Arc::new(load("time_limits.py", "application", config));
    until("the thread started", |s| s.threads == 1).await;

    // Slow but in time: logged once, answered.
    let a = Call::get("/nap?0.6").run(&*app).await;
    assert_eq!((a.status(), a.end), (200, End::Finish));
    let s = until("idle again", |s| s.busy == 0).await;
    assert_eq!((s.slow_total, s.timeouts_total), (1, 0), "{s:?}");

    // Spinning in Python: 504, the thread is freed and serves the next request.
    let a = Call::get("/spin").run(&*app).await;
    assert_eq!((a.status(), a.end), (504, End::Finish));
    assert_eq!(a.text(), "Gateway Timeout\n");
    until("the spinning thread freed", |s| s.busy == 0).await;
    let a = Call::get("/ok").run(&*app).await;
    assert_eq!(a.status(), 200);
    let s = stats();
    assert_eq!(
        (s.timeouts_total, s.stuck_threads, s.threads),
        (1, 0, 1),
        "{s:?}"
    );
    // The slow log also saw the spinning request (300 ms < 2 s).
    assert_eq!(s.slow_total, 2, "{s:?}");

    // The head already out: the response is cut, not replaced.
    let a = Call::get("/stream-spin").run(&*app).await;
    assert_eq!((a.status(), a.end), (200, End::Abort));
    assert_eq!(a.text(), "begun\n");
    until("the streaming thread freed", |s| s.busy == 0).await;

    // Blocked in time.sleep, with one request queued behind it and one refused.
    let sleeper = {
        let app = app.clone();
        tokio::spawn(async move { Call::get("/sleep").run(&*app).await })
    };
    until("the sleeper runs", |s| s.busy == 1).await;
    let queued = {
        let app = app.clone();
        tokio::spawn(async move { Call::get("/ok").run(&*app).await })
    };
    until("one queued", |s| s.queued == 1).await;
    let refused = Call::get("/ok").run(&*app).await;
    assert_eq!(refused.status(), 503);
    let a = sleeper.await.unwrap();
    assert_eq!(a.status(), 504);
    // The queued request: its own deadline passes in the queue (504 without running), or the
    // replacement thread serves it first (200); either way it is answered.
    let q = queued.await.unwrap();
    assert!(matches!(q.status(), 200 | 504), "{}", q.status());
    // The replacement thread counts once it has started, a moment after the sleeper is
    // declared stuck (on a loaded machine, later than the check would come).
    let s = until("the sleeper declared stuck and replaced", |s| {
        s.stuck_threads == 1 && s.threads == 1
    })
    .await;
    assert_eq!(s.rejected_total, 1, "{s:?}");
    assert!(s.queue_max_seen >= 1, "{s:?}");
    let a = Call::get("/ok").run(&*app).await;
    assert_eq!(a.status(), 200, "the replacement thread serves");
    let s = stats();
    let queued_timed_out = u64::from(q.status() == 504);
    assert_eq!(s.timeouts_total, 3 + queued_timed_out, "{s:?}");
    assert_eq!((s.queued, s.busy), (0, 0), "{s:?}");
}
