//! The driver end to end over `tokio::io::duplex`: a raw FastCGI client against
//! `serve_connection` with the test app. Time is paused: waits cost no real time.

#![allow(clippy::unwrap_used)] // reason: test helpers outside #[test] fns; a failed unwrap is a failed test

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::{begin, begin_role, params, request, settle, stdin, Harness};
use gatehouse_channel_request::Peer;
use gatehouse_fastcgi::conn::MAX_IDLE_RECORDS;
use gatehouse_fastcgi::record::{Payload, Record, UnknownTypeBody};
use gatehouse_fastcgi::{nv, Config, ProtocolStatus, Role};

fn keep_alive() -> Config {
    Config::default()
}

#[tokio::test(start_paused = true)]
async fn simple_request_without_keep_conn_closes_after_end_request() {
    let h = Harness::new(keep_alive());
    let (mut c, task) = h.connect();
    c.send(&request(1, false, &[("REQUEST_METHOD", "POST")], b"ping"))
        .await;
    let a = c.response(1).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.body(), b"ping");
    assert!(a.stdout_closed, "empty FCGI_STDOUT before FCGI_END_REQUEST");
    let end = a.end.unwrap();
    assert_eq!(
        (end.app_status, end.protocol_status),
        (0, ProtocolStatus::RequestComplete)
    );
    c.expect_closed().await;
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn keep_conn_serves_requests_in_turn_reusing_the_id() {
    let h = Harness::new(keep_alive());
    let (mut c, task) = h.connect();
    for i in 0..3 {
        let body = format!("body {i}");
        c.send(&request(1, true, &[], body.as_bytes())).await;
        let a = c.response(1).await;
        assert_eq!(a.body(), body.as_bytes());
    }
    settle().await;
    assert!(
        !task.is_finished(),
        "FCGI_KEEP_CONN set: the web server closes"
    );
    drop(c);
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn two_interleaved_requests_finish_out_of_order() {
    let h = Harness::new(keep_alive());
    let (mut c, _task) = h.connect();
    // Request 1 waits on the gate; request 2 echoes. Their records are interleaved.
    let mut p1 = params(1, &[("APP", "gate")]).into_iter();
    let mut p2 = params(2, &[("APP", "echo"), ("CONTENT_LENGTH", "6")]).into_iter();
    c.send(&[begin(1, true), begin(2, true)]).await;
    c.send(&[p2.next().unwrap(), p1.next().unwrap(), p1.next().unwrap()])
        .await;
    c.send(&[stdin(1, b""), p2.next().unwrap(), stdin(2, b"abc")])
        .await;
    c.send(&[stdin(2, b"def"), stdin(2, b"")]).await;
    let a2 = c.response(2).await;
    assert_eq!(a2.body(), b"abcdef");
    assert!(a2.others.is_empty(), "request 1 is still waiting");
    h.seen.gate.notify_one();
    let a1 = c.response(1).await;
    assert_eq!(a1.body(), b"gated");
    assert_eq!(h.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn abort_request_cancels_the_app_and_ends_the_request() {
    let h = Harness::new(keep_alive());
    let (mut c, _task) = h.connect();
    c.send(&request(7, true, &[("APP", "hang")], b"")).await;
    settle().await;
    assert_eq!(h.calls(), 1);
    c.send(&[Record::new(7, Payload::AbortRequest)]).await;
    let a = c.response(7).await;
    let end = a.end.unwrap();
    assert_eq!(end.protocol_status, ProtocolStatus::RequestComplete);
    assert_ne!(
        end.app_status, 0,
        "an aborted request does not report success"
    );
    settle().await;
    assert_eq!(
        h.seen.cancelled.load(Ordering::SeqCst),
        1,
        "the app's future was dropped"
    );
    // The id is inactive again: records for it are ignored, and it can begin anew.
    c.send(&[stdin(7, b"late")]).await;
    c.send(&request(7, true, &[], b"again")).await;
    assert_eq!(c.response(7).await.body(), b"again");
}

#[tokio::test(start_paused = true)]
async fn get_values_answers_known_names_only() {
    let cfg = Config {
        max_conns: 7,
        max_reqs: 50,
        max_reqs_per_conn: 20,
        ..Config::default()
    };
    let h = Harness::new(cfg);
    let (mut c, _task) = h.connect();
    let mut q = bytes::BytesMut::new();
    for name in [
        "FCGI_MAX_CONNS",
        "NOT_A_VARIABLE",
        "FCGI_MAX_REQS",
        "FCGI_MPXS_CONNS",
    ] {
        nv::put_pair(&mut q, name.as_bytes(), b"");
    }
    c.send(&[Record::new(0, Payload::GetValues(q.freeze()))])
        .await;
    let r = c.recv().await.unwrap();
    let Payload::GetValuesResult(content) = r.payload else {
        panic!("{r:?}")
    };
    assert_eq!(r.request_id, 0);
    let pairs = nv::parse_all(&content, 1000).unwrap();
    let got: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    assert_eq!(
        got,
        vec![
            (&b"FCGI_MAX_CONNS"[..], &b"7"[..]),
            (b"FCGI_MAX_REQS", b"20"),
            (b"FCGI_MPXS_CONNS", b"1")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_management_type_gets_unknown_type_and_connection_goes_on() {
    let h = Harness::new(keep_alive());
    let (mut c, _task) = h.connect();
    let odd = Record::new(
        0,
        Payload::Other {
            record_type: 42,
            content: Bytes::from("??"),
        },
    );
    c.send(&[odd]).await;
    let r = c.recv().await.unwrap();
    assert_eq!(
        r,
        Record::new(0, Payload::UnknownType(UnknownTypeBody { record_type: 42 }))
    );
    c.send(&request(1, true, &[], b"ok")).await;
    assert_eq!(c.response(1).await.body(), b"ok");
}

#[tokio::test(start_paused = true)]
async fn filter_and_unknown_roles_are_refused() {
    let h = Harness::new(keep_alive());
    let (mut c, _task) = h.connect();
    for (id, role) in [(2, Role::Filter), (3, Role::Other(99))] {
        c.send(&[begin_role(id, role, true)]).await;
        c.send(&params(id, &[])).await;
        c.send(&[stdin(id, b"")]).await;
        let a = c.response(id).await;
        assert!(a.stdout.is_empty() && !a.stdout_closed);
        assert_eq!(a.end.unwrap().protocol_status, ProtocolStatus::UnknownRole);
    }
    c.send(&request(4, true, &[], b"still here")).await;
    assert_eq!(c.response(4).await.body(), b"still here");
    assert_eq!(h.calls(), 1);
}

/// Bad input closes the connection before the app sees anything.
async fn assert_rejected(bytes: &[u8]) {
    let h = Harness::new(keep_alive());
    let (mut c, task) = h.connect();
    c.send_raw(bytes).await;
    c.expect_closed().await;
    task.await.unwrap();
    assert_eq!(h.calls(), 0, "input {:?}", bytes.escape_ascii().to_string());
    assert_eq!(h.server.stats().connection_errors, 1);
}

fn encode(records: &[Record]) -> Vec<u8> {
    use tokio_util::codec::Encoder;
    let mut out = bytes::BytesMut::new();
    for r in records {
        gatehouse_fastcgi::codec::RecordCodec::new()
            .encode(r, &mut out)
            .unwrap();
    }
    out.to_vec()
}

#[tokio::test(start_paused = true)]
async fn bad_input_closes_the_connection_and_the_app_never_sees_it() {
    assert_rejected(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").await;
    assert_rejected(b"\x02\x01\x00\x01\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00").await;
    // A request cut short: PARAMS announce 100 bytes, 10 arrive, then EOF... after the
    // client half-closes; and STDIN before the end of PARAMS.
    let mut stdin_early = encode(&[begin(1, true)]);
    stdin_early.extend(encode(&[stdin(1, b"x")]));
    stdin_early.extend(encode(&params(1, &[])));
    assert_rejected(&stdin_early).await;
    let mut dup = encode(&[begin(1, true), begin(1, true)]);
    dup.extend(encode(&params(1, &[])));
    assert_rejected(&dup).await;
    assert_rejected(&encode(&[Record::new(
        0,
        Payload::BeginRequest(gatehouse_fastcgi::record::BeginRequestBody {
            role: Role::Responder,
            flags: 1,
        }),
    )]))
    .await;
    let mut stdout_from_peer = encode(&[begin(1, true)]);
    stdout_from_peer.extend(encode(&[Record::new(1, Payload::Stdout(Bytes::from("x")))]));
    assert_rejected(&stdout_from_peer).await;
    assert_rejected(b"\x01\x01\x00\x01\x00\x07\x00\x00\x00\x01\x00\x00\x00\x00\x00").await;
}

#[tokio::test(start_paused = true)]
async fn truncated_record_at_eof_closes_without_dispatch() {
    let h = Harness::new(keep_alive());
    let (mut c, task) = h.connect();
    let mut bytes = encode(&[begin(1, true)]);
    bytes.extend_from_slice(b"\x01\x04\x00\x01\x00\x64\x00\x00partial");
    c.send_raw(&bytes).await;
    let (read, mut write) = tokio::io::split(c.io);
    use tokio::io::AsyncWriteExt;
    write.shutdown().await.unwrap();
    task.await.unwrap();
    drop(read);
    assert_eq!(h.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn content_length_mismatches_fail_the_request_not_the_connection() {
    let h = Harness::new(keep_alive());
    let (mut c, _task) = h.connect();
    c.send(&request(1, true, &[("CONTENT_LENGTH", "10")], b"short"))
        .await;
    let a = c.response(1).await;
    assert_eq!(a.status(), 400, "{:?}", String::from_utf8_lossy(&a.stdout));
    c.send(&request(2, true, &[("CONTENT_LENGTH", "3")], b"toolong"))
        .await;
    let a = c.response(2).await;
    assert_eq!(a.status(), 400);
    c.send(&request(3, true, &[("CONTENT_LENGTH", "x1")], b""))
        .await;
    let a = c.response(3).await;
    assert_eq!(a.status(), 400);
    assert_eq!(
        a.end.unwrap().protocol_status,
        ProtocolStatus::RequestComplete
    );
    assert_eq!(h.calls(), 2, "a bad CONTENT_LENGTH never reaches the app");
    c.send(&request(4, true, &[("CONTENT_LENGTH", "")], b"no length"))
        .await;
    assert_eq!(c.response(4).await.body(), b"no length");
}

#[tokio::test(start_paused = true)]
async fn body_streams_to_the_app_before_stdin_ends() {
    let h = Harness::new(keep_alive());
    let (mut c, _task) = h.connect();
    c.send(&[begin(1, true)]).await;
    c.send(&params(1, &[("APP", "first")])).await;
    c.send(&[stdin(1, b"early bytes")]).await;
    // The rest of STDIN has not been sent: the answer comes anyway.
    let a = c.response(1).await;
    assert_eq!(a.body(), b"early bytes");
    // Records for the finished request are ignored.
    c.send(&[stdin(1, b"more"), stdin(1, b"")]).await;
    c.send(&request(2, true, &[], b"next")).await;
    assert_eq!(c.response(2).await.body(), b"next");
}

#[tokio::test(start_paused = true)]
async fn slow_app_stops_reading_and_memory_stays_bounded() {
    let h = Harness::new(keep_alive());
    let (c, _task) = h.connect();
    let (mut rd, mut wr) = tokio::io::split(c.io);
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let total = 20 * 1024 * 1024;
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut head = encode(&[begin(1, true)]);
            head.extend(encode(&params(1, &[("APP", "hold")])));
            wr.write_all(&head).await.unwrap();
            let chunk = encode(&[stdin(1, &vec![b'b'; 65535])]);
            let mut left = total;
            while left > 0 {
                let n = left.min(65535);
                let rec = if n == 65535 {
                    chunk.clone()
                } else {
                    encode(&[stdin(1, &vec![b'b'; n])])
                };
                wr.write_all(&rec).await.unwrap();
                sent.fetch_add(n, Ordering::SeqCst);
                left -= n;
            }
            wr.write_all(&encode(&[stdin(1, b"")])).await.unwrap();
            wr
        })
    };
    settle().await;
    let buffered = sent.load(Ordering::SeqCst);
    assert!(
        buffered < 1024 * 1024,
        "{buffered} bytes accepted while the app does not read"
    );
    assert!(!writer.is_finished());
    h.seen.gate.notify_one();
    let _wr = writer.await.unwrap();
    let mut c = common_client(&mut rd);
    let a = c.response(1).await;
    assert_eq!(a.body(), total.to_string().as_bytes());
}

/// Two requests multiplexed on one connection: the app of request 1 does not read its body (it
/// waits on the gate), yet request 2's body, sent behind 600 KiB of request 1's, reaches its app
/// and is answered (FastCGI has no per-request flow control: request 1's chunks wait in its backlog
/// while reading goes on). A body much larger than the connection's backlog still stops
/// reading: memory stays bounded.
#[tokio::test(start_paused = true)]
async fn an_app_not_reading_its_body_does_not_stop_the_other_requests() {
    let h = Harness::new(keep_alive());
    let (c, _task) = h.connect();
    let (mut rd, mut wr) = tokio::io::split(c.io);
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let first = 600 * 1024;
    let total = 20 * 1024 * 1024;
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut head = encode(&[begin(1, true), begin(2, true)]);
            head.extend(encode(&params(1, &[("APP", "hold")])));
            head.extend(encode(&params(
                2,
                &[("APP", "echo"), ("CONTENT_LENGTH", "6")],
            )));
            wr.write_all(&head).await.unwrap();
            let mut left = total;
            let mut second_sent = false;
            while left > 0 {
                if !second_sent && total - left >= first {
                    let two = encode(&[stdin(2, b"abcdef"), stdin(2, b"")]);
                    wr.write_all(&two).await.unwrap();
                    second_sent = true;
                }
                let n = left.min(65535);
                wr.write_all(&encode(&[stdin(1, &vec![b'b'; n])]))
                    .await
                    .unwrap();
                sent.fetch_add(n, Ordering::SeqCst);
                left -= n;
            }
            wr.write_all(&encode(&[stdin(1, b"")])).await.unwrap();
            wr
        })
    };
    let mut c = common_client(&mut rd);
    let a2 = tokio::time::timeout(Duration::from_secs(60), c.response(2))
        .await
        .expect("request 2 waited for request 1's app to read its body");
    assert_eq!(a2.body(), b"abcdef");
    settle().await;
    let buffered = sent.load(Ordering::SeqCst);
    assert!(
        buffered < 3 * 1024 * 1024,
        "{buffered} bytes accepted while the app does not read"
    );
    assert!(!writer.is_finished());
    h.seen.gate.notify_one();
    let _wr = writer.await.unwrap();
    let a1 = c.response(1).await;
    assert_eq!(a1.body(), total.to_string().as_bytes());
}

#[tokio::test(start_paused = true)]
async fn slow_reader_makes_the_app_wait_and_memory_stays_bounded() {
    let h = Harness::new(keep_alive());
    let (mut c, _task) = h.connect();
    let size = 20 * 1024 * 1024;
    c.send(&request(
        1,
        true,
        &[("APP", "big"), ("SIZE", &size.to_string())],
        b"",
    ))
    .await;
    settle().await;
    let written = h.seen.written.load(Ordering::SeqCst);
    assert!(
        written < 1024 * 1024,
        "app wrote {written} bytes to a peer that reads nothing"
    );
    let a = c.response(1).await;
    assert_eq!(a.body().len(), size);
    assert!(
        a.records >= size / 65535,
        "STDOUT records hold at most 65535 bytes"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_connection_times_out() {
    let cfg = Config {
        idle_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let h = Harness::new(cfg);
    let (mut c, task) = h.connect();
    let started = tokio::time::Instant::now();
    c.expect_closed().await;
    task.await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(30));
    // A connection stalled inside a request's PARAMS times out too.
    let (mut c, task) = h.connect();
    c.send(&[begin(1, true)]).await;
    c.expect_closed().await;
    task.await.unwrap();
    assert_eq!(h.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn running_request_keeps_the_connection_open() {
    let cfg = Config {
        idle_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let h = Harness::new(cfg);
    let (mut c, task) = h.connect();
    c.send(&request(1, true, &[("APP", "gate")], b"")).await;
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert!(!task.is_finished(), "the app is working: not idle");
    h.seen.gate.notify_one();
    assert_eq!(c.response(1).await.body(), b"gated");
    c.expect_closed().await; // idle afterwards: closes after 30 s
}

#[tokio::test(start_paused = true)]
async fn panicking_app_gets_500_and_the_connection_goes_on() {
    let h = Harness::new(keep_alive());
    let (mut c, _task) = h.connect();
    c.send(&request(1, true, &[("APP", "panic")], b"")).await;
    assert_eq!(c.response(1).await.status(), 500);
    c.send(&request(1, true, &[], b"fine")).await;
    assert_eq!(c.response(1).await.body(), b"fine");
}

#[tokio::test(start_paused = true)]
async fn limits_answer_overloaded() {
    let cfg = Config {
        max_reqs_per_conn: 1,
        max_params_bytes: 100,
        ..Config::default()
    };
    let h = Harness::new(cfg);
    let (mut c, _task) = h.connect();
    c.send(&request(1, true, &[("APP", "gate")], b"")).await;
    c.send(&[begin(2, true)]).await;
    let a = c.response(2).await;
    assert_eq!(a.status(), 503);
    assert_eq!(a.end.unwrap().protocol_status, ProtocolStatus::Overloaded);
    h.seen.gate.notify_one();
    c.response(1).await;
    let long = "v".repeat(200);
    c.send(&request(3, true, &[("X", &long)], b"")).await;
    let a = c.response(3).await;
    assert_eq!(a.status(), 431);
    assert_eq!(a.end.unwrap().protocol_status, ProtocolStatus::Overloaded);
    c.send(&request(4, true, &[], b"ok")).await;
    assert_eq!(c.response(4).await.body(), b"ok");
    assert_eq!(h.server.stats().rejected, 2);
}

#[tokio::test(start_paused = true)]
async fn total_request_limit_spans_connections() {
    let cfg = Config {
        max_reqs: 1,
        ..Config::default()
    };
    let h = Harness::new(cfg);
    let (mut a, _t1) = h.connect();
    let (mut b, _t2) = h.connect();
    a.send(&request(1, true, &[("APP", "gate")], b"")).await;
    settle().await;
    b.send(&request(1, true, &[], b"")).await;
    assert_eq!(
        b.response(1).await.end.unwrap().protocol_status,
        ProtocolStatus::Overloaded
    );
    h.seen.gate.notify_one();
    a.response(1).await;
    settle().await;
    b.send(&request(1, true, &[], b"now")).await;
    assert_eq!(b.response(1).await.body(), b"now");
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_finishes_in_flight_refuses_new_then_closes() {
    let h = Harness::new(keep_alive());
    let (mut c, task) = h.connect();
    c.send(&request(1, true, &[("APP", "gate")], b"")).await;
    settle().await;
    h.shutdown.cancel();
    settle().await; // A BEGIN_REQUEST racing the shutdown may be taken or refused.
    c.send(&[begin(2, true)]).await;
    let a = c.response(2).await;
    assert_eq!(a.end.unwrap().protocol_status, ProtocolStatus::Overloaded);
    h.seen.gate.notify_one();
    assert_eq!(c.response(1).await.body(), b"gated");
    c.expect_closed().await;
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn peer_outside_web_server_addrs_is_refused() {
    let cfg = Config {
        web_server_addrs: Some(vec!["127.0.0.1".parse().unwrap()]),
        ..Config::default()
    };
    let h = Harness::new(cfg);
    let (mut c, task) = h.connect_as(Peer::Tcp("10.1.2.3:4000".parse().unwrap()));
    c.send(&request(1, true, &[], b"")).await;
    c.expect_closed().await;
    task.await.unwrap();
    assert_eq!(h.calls(), 0);
    let (mut c, _task) = h.connect_as(Peer::Tcp("127.0.0.1:4000".parse().unwrap()));
    c.send(&request(1, true, &[], b"allowed")).await;
    assert_eq!(c.response(1).await.body(), b"allowed");
}

#[tokio::test(start_paused = true)]
async fn flood_of_empty_records_closes_the_connection() {
    let h = Harness::new(keep_alive());
    let (mut c, task) = h.connect();
    let empties: Vec<Record> = (0..=MAX_IDLE_RECORDS).map(|_| stdin(9, b"")).collect();
    c.send(&empties).await;
    c.expect_closed().await;
    task.await.unwrap();
    assert_eq!(h.server.stats().connection_errors, 1);
}

#[tokio::test(start_paused = true)]
async fn peer_closing_aborts_running_requests() {
    let h = Harness::new(keep_alive());
    let (mut c, task) = h.connect();
    c.send(&request(1, true, &[("APP", "hang")], b"")).await;
    settle().await;
    drop(c);
    task.await.unwrap();
    settle().await;
    assert_eq!(h.seen.cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(h.server.stats().requests_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_serve_connection_aborts_its_requests() {
    let h = Harness::new(keep_alive());
    let (mut c, task) = h.connect();
    c.send(&request(1, true, &[("APP", "hang")], b"")).await;
    settle().await;
    task.abort();
    settle().await;
    assert_eq!(h.seen.cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(h.server.stats().requests_in_flight, 0);
    assert_eq!(h.server.stats().connections, 0);
}

fn common_client(rd: &mut tokio::io::ReadHalf<tokio::io::DuplexStream>) -> ReadClient<'_> {
    ReadClient {
        rd,
        buf: bytes::BytesMut::new(),
    }
}

/// A read-only client over the read half (the write half is busy in another task).
struct ReadClient<'a> {
    rd: &'a mut tokio::io::ReadHalf<tokio::io::DuplexStream>,
    buf: bytes::BytesMut,
}

impl ReadClient<'_> {
    async fn response(&mut self, id: u16) -> common::Answer {
        use tokio::io::AsyncReadExt;
        use tokio_util::codec::Decoder;
        let mut a = common::Answer::default();
        loop {
            let rec = loop {
                if let Some(r) = gatehouse_fastcgi::codec::RecordCodec::new()
                    .decode(&mut self.buf)
                    .unwrap()
                {
                    break r;
                }
                assert!(self.rd.read_buf(&mut self.buf).await.unwrap() > 0);
            };
            assert_eq!(rec.request_id, id);
            match rec.payload {
                Payload::Stdout(b) => a.stdout.extend_from_slice(&b),
                Payload::EndRequest(e) => {
                    a.end = Some(e);
                    return a;
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

/// Appendix B, example 1, byte for byte: a request with no stdin data and its response, then
/// the close (FCGI_KEEP_CONN unset), against a scripted peer that fails on any other byte.
#[tokio::test(start_paused = true)]
async fn spec_example_1_byte_exact() {
    let request: &[u8] = b"\
        \x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\
        \x01\x04\x00\x01\x00\x0f\x01\x00\x0b\x02SERVER_PORT80\x00\
        \x01\x04\x00\x01\x00\x00\x00\x00\
        \x01\x05\x00\x01\x00\x00\x00\x00";
    let head = "Status: 200 OK\r\nContent-Type: application/octet-stream\r\nX-Len: 0\r\n\r\n";
    let mut response = vec![1, 6, 0, 1, 0, head.len() as u8, 0, 0];
    response.extend_from_slice(head.as_bytes());
    response.extend_from_slice(b"\x01\x06\x00\x01\x00\x00\x00\x00");
    response.extend_from_slice(b"\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00");
    let io = tokio_test::io::Builder::new()
        .read(request)
        .write(&response)
        .build();
    let h = Harness::new(keep_alive());
    let server = h.server.clone();
    let shutdown = h.shutdown.clone();
    gatehouse_fastcgi::serve_connection(server, io, Peer::Unix(None), shutdown).await;
    assert_eq!(h.calls(), 1);
}

/// Section 6.3 over a real driver: Authorizer requests (with and without their empty
/// `FCGI_STDIN`, with content sent anyway) between management records and a Responder, on one
/// kept-alive connection. The answer bytes are the CGI head on `FCGI_STDOUT`, as a Responder's.
#[tokio::test(start_paused = true)]
async fn authorizer_requests_are_served_without_a_body() {
    let h = Harness::new(keep_alive());
    let (mut c, _task) = h.connect();
    let good = [
        ("APP", "authz"),
        ("HTTP_AUTHORIZATION", "Bearer good"),
        ("CONTENT_LENGTH", "5"),
    ];
    // No FCGI_STDIN at all (lighttpd's POST): answered anyway.
    c.send(&[begin_role(1, Role::Authorizer, true)]).await;
    c.send(&params(1, &good)).await;
    let a = c.response(1).await;
    assert_eq!(
        a.stdout,
        b"Status: 200 OK\r\nVariable-AUTH_USER: alice\r\nContent-Type: text/plain\r\n\r\n\
          role=AUTHORIZER body=0 length=-"
    );
    assert_eq!(
        a.end.unwrap().protocol_status,
        ProtocolStatus::RequestComplete
    );
    assert_eq!(a.end.unwrap().app_status, 0);
    // Its empty FCGI_STDIN after the end: the request is inactive, ignored.
    c.send(&[stdin(1, b"")]).await;

    let mut q = bytes::BytesMut::new();
    nv::put_pair(&mut q, b"FCGI_MPXS_CONNS", b"");
    c.send(&[Record::new(0, Payload::GetValues(q.freeze()))])
        .await;
    let r = c.recv().await.unwrap();
    assert_eq!(
        r.payload,
        Payload::GetValuesResult(Bytes::from_static(b"\x0f\x01FCGI_MPXS_CONNS1"))
    );

    // Denied, with STDIN content sent anyway (dropped: the app's body stays empty).
    c.send(&[begin_role(2, Role::Authorizer, true)]).await;
    c.send(&params(2, &[("APP", "authz")])).await;
    c.send(&[stdin(2, b"unwanted"), stdin(2, b"")]).await;
    let a = c.response(2).await;
    assert_eq!(
        a.stdout,
        b"Status: 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Type: text/plain\r\n\r\ndenied"
    );
    assert_eq!(
        a.end.unwrap().protocol_status,
        ProtocolStatus::RequestComplete
    );

    // A Responder on the same connection still gets its body, and FCGI_ROLE=RESPONDER.
    c.send(&request(3, true, &good, b"hello")).await;
    let a = c.response(3).await;
    assert_eq!(a.body(), b"role=RESPONDER body=5 length=5");
    assert_eq!(h.calls(), 3);
    assert_eq!(h.server.stats().connection_errors, 0);
}
