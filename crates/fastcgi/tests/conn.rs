//! The sans-io connection alone: records and deliveries in, events and bytes out, with `now`
//! passed by hand. No socket, no runtime clock.

#![allow(clippy::unwrap_used)] // reason: test helpers outside #[test] fns; a failed unwrap is a failed test

mod common;

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{begin, begin_role, params, request, stdin, Seen, TestApp};
use gatehouse_channel_request::{
    delivery_queue, BodyError, CancellationToken, DeliveryReceiver, Peer, QueueChannel, Response,
    ResponseHead,
};
use gatehouse_fastcgi::conn::{Connection, Dispatch, Event, MAX_IDLE_RECORDS};
use gatehouse_fastcgi::record::{EndRequestBody, Payload, Record};
use gatehouse_fastcgi::response::MAX_IOVECS;
use gatehouse_fastcgi::{Config, Error, LimitError, ProtocolStatus, Role, Server};
use tokio_util::codec::Decoder;

fn server(config: Config) -> Arc<Server> {
    Server::new(Arc::new(TestApp(Arc::new(Seen::default()))), config)
}

fn feed(conn: &mut Connection, now: Instant, records: Vec<Record>) {
    for r in records {
        conn.handle_record(now, r);
    }
}

fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// Everything queued for the peer, as records.
fn written(conn: &mut Connection) -> Vec<Record> {
    let mut bytes = BytesMut::new();
    while conn.out_len() > 0 {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = conn.out().chunks_vectored(&mut slices);
        let len: usize = slices[..n].iter().map(|s| s.len()).sum();
        for s in &slices[..n] {
            bytes.extend_from_slice(s);
        }
        conn.out().advance(len);
    }
    let mut out = Vec::new();
    while let Some(r) = gatehouse_fastcgi::codec::RecordCodec::new()
        .decode(&mut bytes)
        .unwrap()
    {
        out.push(r);
    }
    assert!(bytes.is_empty());
    out
}

fn end_of(records: &[Record], id: u16) -> Option<EndRequestBody> {
    records.iter().find_map(|r| match r.payload {
        Payload::EndRequest(e) if r.request_id == id => Some(e),
        _ => None,
    })
}

fn dispatched(events: Vec<Event>) -> Dispatch {
    let mut found = None;
    for e in events {
        if let Event::Dispatch(d) = e {
            found = Some(d);
        }
    }
    found.expect("a Dispatch event")
}

#[test]
fn dispatch_when_params_end_then_body_events() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    conn.handle_record(now, begin(1, true));
    let p = params(1, &[("CONTENT_LENGTH", "5"), ("QUERY_STRING", "a=1")]);
    conn.handle_record(now, p[0].clone());
    assert!(
        events(&mut conn).is_empty(),
        "nothing before the end of FCGI_PARAMS"
    );
    conn.handle_record(now, p[1].clone());
    let d = dispatched(events(&mut conn));
    assert_eq!(d.content_length, Some(5));
    assert_eq!(d.env.len(), 3, "only FCGI_ROLE added to what the peer sent");
    assert_eq!(d.env.get_str("FCGI_ROLE"), Some("RESPONDER"));
    assert_eq!(d.env.query(), b"a=1");
    let tag = d.info.id;
    feed(
        &mut conn,
        now,
        vec![stdin(1, b"hel"), stdin(1, b"lo"), stdin(1, b"")],
    );
    let evs = events(&mut conn);
    assert!(matches!(&evs[0], Event::Stdin { tag: t, data } if *t == tag && data == "hel"));
    assert!(matches!(&evs[1], Event::Stdin { data, .. } if data == "lo"));
    assert!(matches!(&evs[2], Event::StdinEnd { error: None, .. }));
    assert_eq!(evs.len(), 3);
    assert!(written(&mut conn).is_empty());
}

fn respond(tag: u64) -> DeliveryReceiver {
    let (tx, rx) = delivery_queue();
    let mut resp = Response::new(QueueChannel::new(
        tag,
        tx,
        1 << 20,
        CancellationToken::new(),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let head = ResponseHead::new(201).with_header("X-A", "b").unwrap();
        resp.send_head(head).await.unwrap();
        resp.write(Bytes::from_static(b"body")).await.unwrap();
        resp.finish().await.unwrap();
    });
    rx
}

/// Hands the connection the whole answer of [`respond`] for request `tag`.
fn answer(conn: &mut Connection, now: Instant, tag: u64) {
    let mut rx = respond(tag);
    while let Ok(d) = rx.try_recv() {
        conn.handle_delivery(now, d);
    }
}

#[test]
fn app_outputs_become_stdout_and_end_request() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    feed(&mut conn, now, request(3, false, &[], b""));
    let d = dispatched(events(&mut conn));
    let mut rx = respond(d.info.id);
    while let Ok(delivery) = rx.try_recv() {
        conn.handle_delivery(now, delivery);
    }
    let recs = written(&mut conn);
    assert_eq!(
        recs[0].payload,
        Payload::Stdout(Bytes::from("Status: 201 Created\r\nX-A: b\r\n\r\nbody")),
        "head and small body coalesced in one record"
    );
    assert_eq!(recs[1].payload, Payload::Stdout(Bytes::new()));
    let end = end_of(&recs, 3).unwrap();
    assert_eq!(
        (end.app_status, end.protocol_status),
        (0, ProtocolStatus::RequestComplete)
    );
    let evs = events(&mut conn);
    assert!(matches!(evs[0], Event::Ended { tag } if tag == d.info.id));
    assert!(
        matches!(evs[1], Event::Close { linger: false }),
        "FCGI_KEEP_CONN unset; the peer sent the whole request: no lingering"
    );
    assert!(!conn.wants_read());
}

#[test]
fn tags_are_unique_when_ids_are_reused() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    feed(&mut conn, now, request(1, true, &[], b""));
    let first = dispatched(events(&mut conn)).info.id;
    feed(&mut conn, now, vec![Record::new(1, Payload::AbortRequest)]);
    feed(&mut conn, now, request(1, true, &[], b""));
    let evs = events(&mut conn);
    assert!(matches!(evs[0], Event::Cancel { tag } if tag == first));
    let second = dispatched(evs).info.id;
    assert_ne!(first, second);
    // A late output of the cancelled request is dropped, not sent as request 1's.
    let mut rx = respond(first);
    while let Ok(delivery) = rx.try_recv() {
        conn.handle_delivery(now, delivery);
    }
    let recs = written(&mut conn);
    assert_eq!(
        recs.len(),
        2,
        "only the abort's empty STDOUT and END_REQUEST: {recs:?}"
    );
}

#[test]
fn abort_during_params_ends_the_request_without_dispatch() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    feed(
        &mut conn,
        now,
        vec![begin(4, true), Record::new(4, Payload::AbortRequest)],
    );
    assert!(events(&mut conn).is_empty());
    let recs = written(&mut conn);
    assert_eq!(recs.len(), 1);
    let end = end_of(&recs, 4).unwrap();
    assert_eq!(end.protocol_status, ProtocolStatus::RequestComplete);
    assert_eq!(srv.stats().requests_in_flight, 0, "the slot was released");
    // Its remaining records are ignored.
    feed(&mut conn, now, params(4, &[("A", "b")]));
    assert!(events(&mut conn).is_empty() && written(&mut conn).is_empty());
}

#[test]
fn records_for_inactive_ids_are_ignored() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    feed(
        &mut conn,
        now,
        vec![stdin(5, b"x"), Record::new(5, Payload::AbortRequest)],
    );
    feed(&mut conn, now, params(5, &[("A", "b")]));
    assert!(events(&mut conn).is_empty());
    assert!(written(&mut conn).is_empty());
    assert!(conn.wants_read() && conn.error().is_none());
}

#[test]
fn body_longer_than_content_length_fails_once_and_drops_the_rest() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    feed(&mut conn, now, vec![begin(1, true)]);
    feed(&mut conn, now, params(1, &[("CONTENT_LENGTH", "4")]));
    events(&mut conn);
    feed(
        &mut conn,
        now,
        vec![
            stdin(1, b"abc"),
            stdin(1, b"def"),
            stdin(1, b"ghi"),
            stdin(1, b""),
        ],
    );
    let evs = events(&mut conn);
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert!(matches!(&evs[1], Event::Stdin { data, .. } if data == "def"));
    assert!(matches!(
        &evs[2],
        Event::StdinEnd {
            error: Some(BodyError::Long { expected: 4 }),
            ..
        }
    ));
}

#[test]
fn keep_conn_unset_waits_for_the_other_multiplexed_requests() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    feed(&mut conn, now, request(1, false, &[], b""));
    feed(&mut conn, now, request(2, true, &[], b""));
    let evs = events(&mut conn);
    let tags: Vec<u64> = evs
        .into_iter()
        .filter_map(|e| match e {
            Event::Dispatch(d) => Some(d.info.id),
            _ => None,
        })
        .collect();
    for delivery in std::iter::from_fn({
        let mut rx = respond(tags[0]);
        move || rx.try_recv().ok()
    }) {
        conn.handle_delivery(now, delivery);
    }
    let evs = events(&mut conn);
    assert!(
        !evs.iter().any(|e| matches!(e, Event::Close { .. })),
        "request 2 still runs"
    );
    // A new request is refused while the connection drains.
    feed(&mut conn, now, vec![begin(3, true)]);
    assert_eq!(
        end_of(&written(&mut conn), 3).unwrap().protocol_status,
        ProtocolStatus::Overloaded
    );
    for delivery in std::iter::from_fn({
        let mut rx = respond(tags[1]);
        move || rx.try_recv().ok()
    }) {
        conn.handle_delivery(now, delivery);
    }
    let evs = events(&mut conn);
    assert!(matches!(evs.last(), Some(Event::Close { linger: true })));
}

#[test]
fn idle_timer_runs_only_while_every_request_waits_for_the_peer() {
    let cfg = Config {
        idle_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let srv = server(cfg);
    let t0 = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, t0);
    assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(10)));
    let t1 = t0 + Duration::from_secs(3);
    feed(&mut conn, t1, vec![begin(1, true)]);
    assert_eq!(
        conn.poll_timeout(),
        Some(t1 + Duration::from_secs(10)),
        "waiting for params"
    );
    feed(&mut conn, t1, params(1, &[]));
    assert!(conn.poll_timeout().is_some(), "waiting for the body");
    feed(&mut conn, t1, vec![stdin(1, b"")]);
    assert_eq!(conn.poll_timeout(), None, "the app works: not idle");
    conn.handle_timeout(t1 + Duration::from_secs(3600));
    assert!(conn.wants_read());
}

#[test]
fn idle_timeout_with_a_stalled_request_is_a_connection_error() {
    let srv = server(Config::default());
    let t0 = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, t0);
    feed(&mut conn, t0, vec![begin(1, true)]);
    let deadline = conn.poll_timeout().unwrap();
    conn.handle_timeout(deadline - Duration::from_millis(1));
    assert!(conn.wants_read(), "not yet");
    conn.handle_timeout(deadline);
    assert!(matches!(
        conn.error(),
        Some(Error::Limit(LimitError::IdleTimeout(_)))
    ));
    assert!(matches!(
        events(&mut conn)[..],
        [Event::Close { linger: true }]
    ));
    assert_eq!(srv.stats().requests_in_flight, 0);
}

#[test]
fn peer_closing_cancels_running_requests() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    feed(&mut conn, now, request(1, true, &[], b""));
    feed(&mut conn, now, vec![begin(2, true)]);
    let tag = dispatched(events(&mut conn)).info.id;
    conn.handle_read_closed(now, None);
    let evs = events(&mut conn);
    assert!(
        matches!(evs[..], [Event::Cancel { tag: t }, Event::Close { linger: false }] if t == tag)
    );
    assert_eq!(conn.active_requests(), 0);
}

#[test]
fn shutdown_refuses_new_requests_and_closes_when_idle() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    feed(&mut conn, now, request(1, true, &[], b""));
    let tag = dispatched(events(&mut conn)).info.id;
    conn.handle_shutdown(now);
    assert!(events(&mut conn).is_empty());
    feed(&mut conn, now, vec![begin(2, true)]);
    let recs = written(&mut conn);
    assert_eq!(
        end_of(&recs, 2).unwrap().protocol_status,
        ProtocolStatus::Overloaded
    );
    answer(&mut conn, now, tag);
    let evs = events(&mut conn);
    assert!(matches!(
        evs[..],
        [Event::Ended { .. }, Event::Close { linger: true }]
    ));
}

#[test]
fn shutdown_before_the_first_request_still_takes_it() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    // Accepted, then shut down before its web server's request was read: closing now would
    // lose the request (nginx does not retry a fresh connection).
    conn.handle_shutdown(now);
    assert!(events(&mut conn).is_empty(), "no close yet");
    let grace = conn.poll_timeout().unwrap();
    assert_eq!(
        grace,
        now + gatehouse_channel_request::SHUTDOWN_FIRST_REQUEST_GRACE
    );
    feed(&mut conn, now, request(1, true, &[], b""));
    let tag = dispatched(events(&mut conn)).info.id;
    // A second request on it is refused: the connection is draining.
    feed(&mut conn, now, vec![begin(2, true)]);
    let recs = written(&mut conn);
    assert_eq!(
        end_of(&recs, 2).unwrap().protocol_status,
        ProtocolStatus::Overloaded
    );
    answer(&mut conn, now, tag);
    let evs = events(&mut conn);
    assert!(
        matches!(evs[..], [Event::Ended { .. }, Event::Close { .. }]),
        "{evs:?}"
    );
}

#[test]
fn shutdown_of_an_idle_kept_alive_connection_still_takes_one_request() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    // One request answered on a kept-alive connection (FCGI_KEEP_CONN): then it is idle.
    feed(&mut conn, now, request(1, true, &[], b""));
    let tag = dispatched(events(&mut conn)).info.id;
    answer(&mut conn, now, tag);
    events(&mut conn);
    written(&mut conn);
    // Shut down between requests: nginx may be writing the next one into it right now.
    conn.handle_shutdown(now);
    assert!(events(&mut conn).is_empty(), "no close yet");
    feed(&mut conn, now, request(1, true, &[], b""));
    let tag = dispatched(events(&mut conn)).info.id;
    answer(&mut conn, now, tag);
    let evs = events(&mut conn);
    assert!(
        matches!(evs[..], [Event::Ended { .. }, Event::Close { .. }]),
        "answered, then closed: {evs:?}"
    );
}

#[test]
fn shutdown_closes_a_connection_that_sends_nothing_after_the_grace() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    conn.handle_shutdown(now);
    let grace = conn.poll_timeout().unwrap();
    conn.handle_timeout(grace - Duration::from_millis(1));
    assert!(events(&mut conn).is_empty(), "still waiting");
    conn.handle_timeout(grace);
    let evs = events(&mut conn);
    assert!(
        matches!(evs[..], [Event::Close { linger: false }]),
        "{evs:?}"
    );
}

#[test]
fn flood_of_management_records_is_cut_off() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    for i in 0..MAX_IDLE_RECORDS {
        conn.handle_record(now, Record::new(0, Payload::GetValues(Bytes::new())));
        if i % 100 == 0 {
            written(&mut conn);
        }
    }
    assert!(conn.wants_read());
    // Useful records reset the budget.
    feed(&mut conn, now, vec![begin(1, true)]);
    conn.handle_record(now, Record::new(0, Payload::GetValues(Bytes::new())));
    assert!(conn.wants_read());
    for _ in 0..MAX_IDLE_RECORDS {
        conn.handle_record(now, stdin(9, b""));
    }
    assert!(matches!(
        conn.error(),
        Some(Error::Limit(LimitError::RecordFlood { .. }))
    ));
}

/// A head and `early` from request `tag`'s app, response left open (the `Response` is
/// returned: dropping it would abort).
fn respond_early(tag: u64) -> (DeliveryReceiver, Response) {
    let (tx, rx) = delivery_queue();
    let mut resp = Response::new(QueueChannel::new(
        tag,
        tx,
        1 << 20,
        CancellationToken::new(),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        resp.write(Bytes::from_static(b"early")).await.unwrap();
    });
    (rx, resp)
}

#[test]
fn a_response_held_while_its_body_arrives_goes_out_after_the_hold_timeout() {
    use gatehouse_fastcgi::config::RESPONSE_HOLD_TIMEOUT as HOLD;
    let cfg = Config {
        idle_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let srv = server(cfg);
    let t0 = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, t0);
    let mut recs = vec![begin(1, true)];
    recs.extend(params(1, &[("CONTENT_LENGTH", "10")]));
    recs.push(stdin(1, b"abc"));
    feed(&mut conn, t0, recs);
    let d = dispatched(events(&mut conn));
    let (mut rx, _resp) = respond_early(d.info.id);
    while let Ok(delivery) = rx.try_recv() {
        conn.handle_delivery(t0, delivery);
    }
    assert_eq!(conn.out_len(), 0, "held: the body is still arriving");
    assert_eq!(conn.poll_timeout(), Some(t0 + HOLD));
    assert_eq!(conn.poll_hold_timeout(), Some(t0 + HOLD));
    // More body: the request's input progressed, the deadline moves.
    let t1 = t0 + HOLD / 2;
    feed(&mut conn, t1, vec![stdin(1, b"def")]);
    assert_eq!(conn.poll_timeout(), Some(t1 + HOLD));
    conn.handle_timeout(t0 + HOLD);
    assert_eq!(conn.out_len(), 0, "not yet");
    conn.handle_timeout(t1 + HOLD);
    let recs = written(&mut conn);
    assert_eq!(
        recs[0].payload,
        Payload::Stdout(Bytes::from("Status: 200 OK\r\n\r\nearly")),
        "head and body leave together, in one record"
    );
    assert_eq!(conn.poll_hold_timeout(), None);
    assert_eq!(
        conn.poll_timeout(),
        Some(t1 + Duration::from_secs(10)),
        "only the idle timer is left"
    );
    assert!(conn.wants_read());
}

#[test]
fn a_held_response_goes_out_when_the_body_ends() {
    let srv = server(Config::default());
    let t0 = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, t0);
    let mut recs = vec![begin(1, true)];
    recs.extend(params(1, &[]));
    recs.push(stdin(1, b"abc"));
    feed(&mut conn, t0, recs);
    let d = dispatched(events(&mut conn));
    let (mut rx, _resp) = respond_early(d.info.id);
    while let Ok(delivery) = rx.try_recv() {
        conn.handle_delivery(t0, delivery);
    }
    assert_eq!(
        conn.out_len(),
        0,
        "held: no CONTENT_LENGTH, the body ends at the empty record"
    );
    feed(&mut conn, t0, vec![stdin(1, b"")]);
    let recs = written(&mut conn);
    assert_eq!(
        recs[0].payload,
        Payload::Stdout(Bytes::from("Status: 200 OK\r\n\r\nearly"))
    );
    assert_eq!(conn.poll_hold_timeout(), None);
}

/// Starts an Authorizer request (section 6.3) as lighttpd sends it: params with
/// `FCGI_KEEP_CONN` unset, no `CONTENT_LENGTH`; returns its dispatch after checking that its
/// body ended with it.
fn authorizer(conn: &mut Connection, now: Instant, pairs: &[(&str, &str)]) -> Dispatch {
    conn.handle_record(now, begin_role(1, Role::Authorizer, false));
    feed(conn, now, params(1, pairs));
    let mut evs = events(conn).into_iter();
    let Some(Event::Dispatch(d)) = evs.next() else {
        panic!("a Dispatch first");
    };
    assert!(
        matches!(evs.next(), Some(Event::StdinEnd { tag, error: None }) if tag == d.info.id),
        "the body ends at dispatch"
    );
    assert!(evs.next().is_none());
    d
}

#[test]
fn an_authorizer_is_dispatched_without_a_body_and_answered_like_a_responder() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    let pairs = [
        ("CONTENT_LENGTH", "11"),
        ("HTTP_CONTENT_LENGTH", "11"),
        ("FCGI_ROLE", "RESPONDER"),
        ("HTTP_AUTHORIZATION", "Bearer good"),
    ];
    let d = authorizer(&mut conn, now, &pairs);
    assert_eq!(d.content_length, Some(0));
    assert_eq!(
        d.env.get_str("FCGI_ROLE"),
        Some("AUTHORIZER"),
        "ours, not the peer's"
    );
    assert_eq!(d.env.get("CONTENT_LENGTH"), None);
    assert_eq!(d.env.get_str("HTTP_CONTENT_LENGTH"), Some("11"));
    assert_eq!(d.env.len(), 3);
    assert_eq!(
        conn.poll_timeout(),
        None,
        "no FCGI_STDIN awaited: the app works"
    );
    // Content sent anyway never reaches the app.
    feed(&mut conn, now, vec![stdin(1, b"hello")]);
    assert!(events(&mut conn).is_empty());
    answer(&mut conn, now, d.info.id);
    let recs = written(&mut conn);
    assert_eq!(
        recs[0].payload,
        Payload::Stdout(Bytes::from("Status: 201 Created\r\nX-A: b\r\n\r\nbody")),
        "not held: there is no body to wait for"
    );
    let end = end_of(&recs, 1).unwrap();
    assert_eq!(
        (end.app_status, end.protocol_status),
        (0, ProtocolStatus::RequestComplete)
    );
    let evs = events(&mut conn);
    assert!(matches!(evs[0], Event::Ended { .. }));
    assert!(
        matches!(evs[1], Event::Close { linger: true }),
        "FCGI_STDIN did not end: the peer may still send it"
    );
    assert_eq!(srv.stats().connection_errors, 0);
}

#[test]
fn an_authorizer_whose_empty_stdin_came_closes_without_lingering() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    let d = authorizer(&mut conn, now, &[("REQUEST_METHOD", "GET")]);
    // lighttpd's GET: the empty FCGI_STDIN right behind the params; no second StdinEnd.
    feed(&mut conn, now, vec![stdin(1, b"")]);
    assert!(events(&mut conn).is_empty());
    answer(&mut conn, now, d.info.id);
    assert!(end_of(&written(&mut conn), 1).is_some());
    let evs = events(&mut conn);
    assert!(matches!(evs[1], Event::Close { linger: false }));
}

#[test]
fn filter_is_still_an_unknown_role() {
    let srv = server(Config::default());
    let now = Instant::now();
    let mut conn = Connection::new(&srv, Peer::Stdio, now);
    conn.handle_record(now, begin_role(1, Role::Filter, true));
    feed(&mut conn, now, params(1, &[]));
    assert!(events(&mut conn).is_empty(), "never dispatched");
    let end = end_of(&written(&mut conn), 1).unwrap();
    assert_eq!(end.protocol_status, ProtocolStatus::UnknownRole);
}
