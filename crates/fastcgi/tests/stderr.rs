//! An app's diagnostic output (`Output::Stderr`) through the sans-io connection: `FCGI_STDERR`
//! records (FastCGI 1.0 section 5.3) that pass a held response, close with an empty record
//! before `FCGI_END_REQUEST`, and are dropped once the request has ended.

#![allow(clippy::unwrap_used)] // reason: test helpers outside #[test] fns; a failed unwrap is a failed test

mod common;

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use common::{begin, params, request, stdin, Harness, Seen, TestApp};
use gatehouse_channel_request::{
    delivery_queue, CancellationToken, DeliveryReceiver, Peer, QueueChannel, Response,
    ResponseHead, StderrSender,
};
use gatehouse_fastcgi::conn::{Connection, Event};
use gatehouse_fastcgi::record::{Payload, Record, RecordType};
use gatehouse_fastcgi::response::MAX_IOVECS;
use gatehouse_fastcgi::{Config, Server};
use tokio_util::codec::Decoder;

fn connection(now: Instant) -> Connection {
    let srv = Server::new(
        Arc::new(TestApp(Arc::new(Seen::default()))),
        Config::default(),
    );
    Connection::new(&srv, Peer::Stdio, now)
}

fn feed(conn: &mut Connection, now: Instant, records: Vec<Record>) {
    for r in records {
        conn.handle_record(now, r);
    }
}

/// The tag of the request the records dispatched.
fn dispatched_tag(conn: &mut Connection) -> u64 {
    std::iter::from_fn(|| conn.poll_event())
        .find_map(|e| match e {
            Event::Dispatch(d) => Some(d.info.id),
            _ => None,
        })
        .expect("a Dispatch event")
}

/// Everything queued for the peer, as `(type, content)`, written a few bytes at a time.
fn written(conn: &mut Connection) -> Vec<(RecordType, Bytes)> {
    let mut bytes = BytesMut::new();
    while conn.out_len() > 0 {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = conn.out().chunks_vectored(&mut slices);
        let take = slices[..n][0].len().min(5);
        bytes.extend_from_slice(&slices[0][..take]);
        conn.out().advance(take);
    }
    let mut out = Vec::new();
    let mut codec = gatehouse_fastcgi::codec::RecordCodec::new();
    while let Some(r) = codec.decode(&mut bytes).unwrap() {
        let kind = r.payload.record_type();
        let content = match r.payload {
            Payload::Stdout(b) | Payload::Stderr(b) => b,
            Payload::EndRequest(_) => Bytes::new(),
            other => panic!("unexpected {other:?}"),
        };
        out.push((kind, content));
    }
    assert!(bytes.is_empty());
    out
}

/// A response channel for request `tag` that forwards stderr, as the FastCGI driver makes it.
fn channel(tag: u64) -> (DeliveryReceiver, Response, StderrSender) {
    let (tx, rx) = delivery_queue();
    let chan = QueueChannel::new(tag, tx, 1 << 20, CancellationToken::new()).with_stderr();
    let resp = Response::new(chan);
    let stderr = resp.stderr().unwrap();
    (rx, resp, stderr)
}

fn deliver_all(conn: &mut Connection, now: Instant, rx: &mut DeliveryReceiver) {
    while let Ok(delivery) = rx.try_recv() {
        conn.handle_delivery(now, delivery);
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn stderr_passes_a_held_response_and_closes_before_end_request() {
    let t0 = Instant::now();
    let mut conn = connection(t0);
    let mut recs = vec![begin(1, true)];
    recs.extend(params(1, &[]));
    recs.push(stdin(1, b"abc"));
    feed(&mut conn, t0, recs);
    let tag = dispatched_tag(&mut conn);
    let (mut rx, mut resp, stderr) = channel(tag);
    let rt = rt();
    rt.block_on(async {
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        stderr
            .send(Bytes::from_static(b"warn: one\n"))
            .await
            .unwrap();
    });
    deliver_all(&mut conn, t0, &mut rx);
    // The head is held (the body still arrives); the stderr went out on its own.
    let first = written(&mut conn);
    assert_eq!(
        first,
        [(RecordType::Stderr, Bytes::from_static(b"warn: one\n"))]
    );
    feed(&mut conn, t0, vec![stdin(1, b"")]);
    rt.block_on(async {
        resp.write(Bytes::from_static(b"body")).await.unwrap();
        stderr.send(Bytes::from_static(b"warn: two")).await.unwrap();
        resp.finish().await.unwrap();
        // After the end: dropped, never written after FCGI_END_REQUEST.
        stderr.send(Bytes::from_static(b"too late")).await.unwrap();
    });
    deliver_all(&mut conn, t0, &mut rx);
    let rest = written(&mut conn);
    let want = [
        (
            RecordType::Stdout,
            Bytes::from("Status: 200 OK\r\n\r\nbody"),
        ),
        (RecordType::Stderr, Bytes::from("warn: two")),
        (RecordType::Stdout, Bytes::new()),
        (RecordType::Stderr, Bytes::new()),
        (RecordType::EndRequest, Bytes::new()),
    ];
    assert_eq!(rest, want);
}

#[test]
fn without_stderr_no_stderr_record() {
    let t0 = Instant::now();
    let mut conn = connection(t0);
    feed(&mut conn, t0, request(2, true, &[], b""));
    let tag = dispatched_tag(&mut conn);
    let (mut rx, mut resp, _stderr) = channel(tag);
    rt().block_on(async {
        resp.send_full(200, "text/plain", "ok").await.unwrap();
    });
    deliver_all(&mut conn, t0, &mut rx);
    let types: Vec<_> = written(&mut conn).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        [
            RecordType::Stdout,
            RecordType::Stdout,
            RecordType::EndRequest
        ]
    );
}

#[test]
fn abort_request_after_stderr_closes_the_stderr_stream() {
    let t0 = Instant::now();
    let mut conn = connection(t0);
    feed(&mut conn, t0, request(3, true, &[], b""));
    let tag = dispatched_tag(&mut conn);
    let (mut rx, _resp, stderr) = channel(tag);
    rt().block_on(async {
        stderr.send(Bytes::from_static(b"dying")).await.unwrap();
    });
    deliver_all(&mut conn, t0, &mut rx);
    feed(&mut conn, t0, vec![Record::new(3, Payload::AbortRequest)]);
    let want = [
        (RecordType::Stderr, Bytes::from("dying")),
        (RecordType::Stdout, Bytes::new()),
        (RecordType::Stderr, Bytes::new()),
        (RecordType::EndRequest, Bytes::new()),
    ];
    assert_eq!(written(&mut conn), want);
}

#[tokio::test(start_paused = true)]
async fn the_driver_hands_apps_a_stderr_sender() {
    let h = Harness::new(Config::default());
    let (mut client, _task) = h.connect();
    client
        .send(&request(1, false, &[("APP", "stderr")], b""))
        .await;
    let mut got = Vec::new();
    while let Some(r) = client.recv().await {
        let kind = r.payload.record_type();
        let content = match r.payload {
            Payload::Stdout(b) | Payload::Stderr(b) => b,
            _ => Bytes::new(),
        };
        got.push((kind, content));
    }
    assert_eq!(got[0], (RecordType::Stderr, Bytes::from("complaint\n")));
    let tail: Vec<_> = got[got.len() - 3..].iter().map(|(t, _)| *t).collect();
    assert_eq!(
        tail,
        [
            RecordType::Stdout,
            RecordType::Stderr,
            RecordType::EndRequest
        ],
        "{got:?}"
    );
    assert_eq!(got[got.len() - 2].1, Bytes::new());
}
