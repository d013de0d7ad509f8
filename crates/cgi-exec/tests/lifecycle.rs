//! Streaming, deadlocks that must not happen, timeouts, cancellation, the concurrency limit, and
//! the promise behind them: every script's process group is stopped and reaped.

mod support;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_cgi_exec::READ_CHUNK;
use gatehouse_channel_request::{serve_request, Output};
use support::{
    app, collect, config, exchange, feed, group_alive, run, tree, until_gone, wait_for_file,
    Exchange, Logs, STEP,
};
use tokio::time::timeout;

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn fifty_mib_stream_with_bounded_memory() {
    let t = tree();
    let mut c = config();
    // The reader below pauses longer than this: waiting for the client must not count.
    c.timeout = Some(Duration::from_secs(1));
    let a = app(&t.cgi, c);
    let budget = 256 * 1024;
    let Exchange {
        req,
        body,
        resp,
        mut deliveries,
        gone: _gone,
    } = exchange(
        &[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/big.sh")],
        budget,
    );
    body.finish();
    let reader = async {
        let Output::Head(head) = deliveries.recv().await.expect("head").output else {
            panic!("no head first");
        };
        let pid: u32 = String::from_utf8_lossy(head.header("x-pid").expect("X-Pid"))
            .parse()
            .expect("pid");
        // Hold every delivery (keeping its credit) until the budget is nearly used.
        let mut held = VecDeque::new();
        let mut held_bytes = 0;
        while held_bytes < budget / 2 {
            let d = deliveries.recv().await.expect("body");
            let Output::Body(b) = &d.output else {
                panic!("unexpected {:?}", d.output);
            };
            assert!(b.len() <= READ_CHUNK);
            held_bytes += b.len();
            held.push_back(d);
        }
        // Streamed, not buffered: with so little taken, the script cannot have finished.
        assert!(
            group_alive(pid),
            "script finished although the client took {held_bytes} bytes"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(held_bytes <= budget);
        let mut total = held_bytes;
        drop(held);
        loop {
            let d = deliveries.recv().await.expect("delivery");
            match d.output {
                Output::Body(b) => {
                    assert!(b.iter().all(|&x| x == 0));
                    total += b.len();
                }
                Output::Finish => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        (total, pid)
    };
    let work = async { tokio::join!(serve_request(&a, req, resp), reader).1 };
    let (total, pid) = timeout(STEP, work).await.expect("timed out");
    assert_eq!(total, 50 * MIB);
    until_gone(pid).await;
}

#[tokio::test]
async fn timeout_kills_and_reaps_the_whole_group() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    let mut c = config();
    c.timeout = Some(Duration::from_millis(300));
    let a = app(&t.cgi, c);
    let pidfile = t.top.join("sleep.pid");
    let pidfile_s = pidfile.display().to_string();
    let ans = run(
        &a,
        &[("PATH_INFO", "/sleep.sh"), ("PIDFILE", &pidfile_s)],
        b"",
    )
    .await;
    assert_eq!(ans.status(), 504);
    assert!(logs.text().contains("idle for 300ms"), "{}", logs.text());
    let pid: u32 = wait_for_file(&pidfile).await.parse().unwrap();
    // sleep.sh ignores SIGTERM, and so does its background `sleep`: SIGKILL must follow.
    until_gone(pid).await;
}

#[tokio::test]
async fn script_reading_half_its_body() {
    let t = tree();
    let a = app(&t.cgi, config());
    let body = vec![b'x'; 8 * MIB];
    let ans = run(
        &a,
        &[("REQUEST_METHOD", "POST"), ("PATH_INFO", "/half_read.py")],
        &body,
    )
    .await;
    assert_eq!(ans.status(), 200);
    assert_eq!(ans.text(), format!("read {} of {}\n", 4 * MIB, 8 * MIB));
}

#[tokio::test]
async fn script_answering_before_reading_its_body() {
    let t = tree();
    let a = app(&t.cgi, config());
    let total = 2 * MIB;
    let length = total.to_string();
    let Exchange {
        req,
        mut body,
        resp,
        mut deliveries,
        gone: _gone,
    } = exchange(
        &[
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/early.pl"),
            ("CONTENT_LENGTH", &length),
        ],
        256 * 1024,
    );
    let client = async {
        body.send(Bytes::from(vec![b'a'; 64 * 1024])).await.unwrap();
        // The rest of the body is sent only once the early answer came back: a server that
        // waits for the whole body before reading the script's output never gets there.
        let mut early = Vec::new();
        while !early.ends_with(b"early\n") {
            match deliveries.recv().await.expect("delivery").output {
                Output::Head(h) => assert_eq!(h.status(), 200),
                Output::Body(b) => early.extend_from_slice(&b),
                other => panic!("unexpected {other:?}"),
            }
        }
        feed(body, Bytes::from(vec![b'b'; total - 64 * 1024])).await;
        let mut rest = Vec::new();
        loop {
            match deliveries.recv().await.expect("delivery").output {
                Output::Body(b) => rest.extend_from_slice(&b),
                Output::Finish => return rest,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let work = async { tokio::join!(serve_request(&a, req, resp), client).1 };
    let rest = timeout(STEP, work)
        .await
        .expect("deadlock: early answer never came");
    assert_eq!(String::from_utf8_lossy(&rest), format!("read {total}\n"));
}

#[tokio::test]
async fn slow_upload_is_not_a_script_timeout() {
    let t = tree();
    let mut c = config();
    c.timeout = Some(Duration::from_secs(2));
    let a = app(&t.cgi, c);
    let Exchange {
        req,
        mut body,
        resp,
        mut deliveries,
        gone: _gone,
    } = exchange(
        &[
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/echo.py"),
            ("CONTENT_LENGTH", "6"),
        ],
        65536,
    );
    let client = async {
        body.send(Bytes::from_static(b"abc")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        body.send(Bytes::from_static(b"def")).await.unwrap();
        body.finish();
        collect(&mut deliveries).await
    };
    let work = async { tokio::join!(serve_request(&a, req, resp), client).1 };
    let ans = timeout(STEP, work).await.expect("timed out");
    assert_eq!((ans.status(), ans.text().as_str()), (200, "abcdef"));
}

/// Starts trickle.sh and returns its pid once the head is in.
async fn started_trickle(deliveries: &mut gatehouse_channel_request::DeliveryReceiver) -> u32 {
    loop {
        let d = deliveries.recv().await.expect("delivery");
        if let Output::Head(h) = d.output {
            return String::from_utf8_lossy(h.header("x-pid").expect("X-Pid"))
                .parse()
                .expect("pid");
        }
    }
}

#[tokio::test]
async fn dropping_the_app_future_kills_and_reaps() {
    let t = tree();
    let a = app(&t.cgi, config());
    let Exchange {
        req,
        body,
        resp,
        mut deliveries,
        gone: _gone,
    } = exchange(&[("PATH_INFO", "/trickle.sh")], 65536);
    body.finish();
    let pid = {
        let serving = serve_request(&a, req, resp);
        tokio::pin!(serving);
        let pid = tokio::select! {
            () = &mut serving => panic!("trickle.sh never ends by itself"),
            pid = started_trickle(&mut deliveries) => pid,
        };
        // Let some body flow, then drop the future mid-response (as a front end aborting the
        // request task does).
        let got_body = async {
            while !matches!(
                deliveries.recv().await.map(|d| d.output),
                Some(Output::Body(_))
            ) {}
        };
        tokio::select! {
            () = &mut serving => panic!("ended"),
            () = got_body => {}
        }
        assert!(group_alive(pid));
        pid
    };
    until_gone(pid).await;
}

#[tokio::test]
async fn client_gone_kills_and_reaps() {
    let t = tree();
    let a = app(&t.cgi, config());
    let Exchange {
        req,
        body,
        resp,
        mut deliveries,
        gone,
    } = exchange(&[("PATH_INFO", "/trickle.sh")], 65536);
    body.finish();
    let client = async {
        let pid = started_trickle(&mut deliveries).await;
        gone.cancel();
        pid
    };
    let work = async { tokio::join!(serve_request(&a, req, resp), client).1 };
    let pid = timeout(STEP, work)
        .await
        .expect("serve_request did not end when the client left");
    until_gone(pid).await;
}

#[tokio::test]
async fn concurrency_limit_queues_requests() {
    let t = tree();
    let marks = t.top.join("marks");
    std::fs::create_dir(&marks).unwrap();
    let mark_dir = marks.display().to_string();
    let mut c = config();
    c.max_children = 1;
    let a = app(&t.cgi, c);
    let vars = |q: &'static str| {
        vec![
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/hold.sh"),
            ("QUERY_STRING", q),
            ("MARKDIR", mark_dir.as_str()),
        ]
    };
    let first = exchange(&vars("first"), 65536);
    let second = exchange(&vars("second"), 65536);
    let (mut first_rx, mut second_rx) = (first.deliveries, second.deliveries);
    let (first_tx, second_tx) = (first.body, second.body);
    let client = async {
        wait_for_file_exists(&marks.join("first")).await;
        assert_eq!(a.running(), Some(1));
        // The second request waits for the slot; give it every chance to (wrongly) start.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !marks.join("second").exists(),
            "second script ran beside the first"
        );
        first_tx.finish();
        let first_answer = collect(&mut first_rx).await;
        second_tx.finish();
        let second_answer = collect(&mut second_rx).await;
        (first_answer, second_answer)
    };
    let work = async {
        tokio::join!(
            serve_request(&a, first.req, first.resp),
            serve_request(&a, second.req, second.resp),
            client
        )
        .2
    };
    let (one, two) = timeout(STEP, work).await.expect("timed out");
    assert_eq!((one.status(), one.text().as_str()), (200, "first\n"));
    assert_eq!((two.status(), two.text().as_str()), (200, "second\n"));
}

async fn wait_for_file_exists(path: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
