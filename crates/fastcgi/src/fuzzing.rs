//! Entry points for the cargo-fuzz targets in `crates/fastcgi/fuzz` (built only with
//! `cfg(fuzzing)`). Each asserts an invariant, not merely the absence of a panic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gatehouse_channel_request::{AppError, Application, BoxFuture, Peer, Request, Response};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::RecordCodec;
use crate::config::Config;
use crate::conn::{Connection, Event};
use crate::nv;
use crate::record::{Record, FCGI_HEADER_LEN};
use crate::server::Server;

/// Decodes `data` as a stream of records, asserting for every record that
/// - the bytes it consumed plus the bytes left equal the bytes offered (consumed + rest == len),
///   and it consumed at least a header;
/// - encoding it and decoding the result gives the same record (decode(encode(x)) == x);
/// - decoding the same bytes in two pieces, split at a position taken from the input, gives
///   the same records and the same outcome.
pub fn record_decoder(data: &[u8]) {
    let whole = decode_stream(&[data]);
    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) * data.len() / 256);
    let (a, b) = data.split_at(cut);
    assert_eq!(decode_stream(&[a, b]), whole, "split at {cut}");
}

fn decode_stream(chunks: &[&[u8]]) -> (Vec<Record>, bool) {
    let mut codec = RecordCodec::new();
    let mut buf = BytesMut::new();
    let mut records = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(record)) => {
                    let consumed = before - buf.len();
                    assert!(consumed >= FCGI_HEADER_LEN);
                    assert_eq!(consumed + buf.len(), before);
                    assert_round_trip(&record);
                    records.push(record);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) must not consume");
                    break;
                }
                Err(_) => return (records, false),
            }
        }
    }
    let ok = codec.decode_eof(&mut buf).is_ok();
    (records, ok)
}

fn assert_round_trip(record: &Record) {
    let mut out = BytesMut::new();
    RecordCodec::new()
        .encode(record, &mut out)
        .expect("a decoded record always encodes");
    let again = RecordCodec::new()
        .decode(&mut out)
        .expect("our encoding decodes")
        .expect("our encoding is complete");
    assert_eq!(&again, record);
    assert!(out.is_empty(), "encoding left {} extra bytes", out.len());
}

/// Parses `data` as a name-value stream; when it parses, re-encodes every pair and asserts
/// that the encoding parses to the same pairs.
pub fn name_value_pairs(data: &[u8]) {
    let stream = bytes::Bytes::copy_from_slice(data);
    let Ok(pairs) = nv::parse_all(&stream, data.len()) else {
        return;
    };
    let mut out = BytesMut::new();
    for (name, value) in &pairs {
        nv::put_pair(&mut out, name, value);
    }
    assert!(out.len() <= data.len(), "shortest encoding is never longer");
    let again = nv::parse_all(&out.freeze(), data.len()).expect("our encoding parses");
    assert_eq!(again, pairs);
}

/// An app that is never called: the sans-io core does not run apps.
struct NoApp;

impl Application for NoApp {
    fn call<'a>(&'a self, _: Request, _: &'a mut Response) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Feeds `data` as a peer's bytes to a [`Connection`] with small limits, with time advancing
/// one second per record, and asserts that
/// - the connection never holds more active requests than `max_reqs_per_conn`, nor more
///   request slots than `max_reqs`;
/// - it asks to close at most once, and wants no input after that;
/// - every `Stdin`/`StdinEnd`/`Cancel`/`Ended` event names a request dispatched before;
/// - the bytes it writes are well-formed records.
pub fn connection(data: &[u8]) {
    let cfg = Config {
        max_reqs_per_conn: 4,
        max_reqs: 6,
        max_params_bytes: 256,
        idle_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let server = Server::new(Arc::new(NoApp), cfg);
    let t0 = Instant::now();
    let mut conn = Connection::new(&server, Peer::Stdio, t0);
    let mut buf = BytesMut::from(data);
    let mut checker = EventChecker::default();
    let mut step = 0u64;
    loop {
        let now = t0 + Duration::from_secs(step);
        step += 1;
        match RecordCodec::new().decode_eof(&mut buf) {
            Ok(Some(record)) => {
                let was_open = conn.wants_read();
                conn.handle_record(now, record);
                assert!(was_open || !conn.wants_read(), "reopened after close");
            }
            Ok(None) => {
                conn.handle_read_closed(now, None);
                break;
            }
            Err(e) => {
                conn.handle_read_closed(now, Some(e));
                break;
            }
        }
        assert!(conn.active_requests() <= 4);
        assert!(server.stats().requests_in_flight <= 6);
        checker.drain(&mut conn);
        conn.handle_timeout(now);
        checker.drain(&mut conn);
    }
    checker.drain(&mut conn);
    assert!(!conn.wants_read(), "the end of input closes the connection");
    assert_eq!(checker.closes, 1);
    assert_well_formed_output(&mut conn);
}

#[derive(Default)]
struct EventChecker {
    live: std::collections::HashSet<u64>,
    closes: usize,
}

impl EventChecker {
    fn drain(&mut self, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Dispatch(d) => assert!(self.live.insert(d.info.id), "tag reused"),
                Event::Stdin { tag, data } => {
                    assert!(self.live.contains(&tag));
                    assert!(!data.is_empty());
                }
                Event::StdinEnd { tag, .. } => assert!(self.live.contains(&tag)),
                Event::Cancel { tag } | Event::Ended { tag } => {
                    assert!(self.live.remove(&tag), "unknown or ended tag {tag}");
                }
                Event::Close { .. } => self.closes += 1,
            }
        }
        assert!(self.closes <= 1, "closed twice");
    }
}

fn assert_well_formed_output(conn: &mut Connection) {
    let mut bytes = BytesMut::new();
    while conn.out_len() > 0 {
        let mut slices = [std::io::IoSlice::new(&[]); crate::response::MAX_IOVECS];
        let n = conn.out().chunks_vectored(&mut slices);
        let mut len = 0;
        for s in &slices[..n] {
            bytes.extend_from_slice(s);
            len += s.len();
        }
        conn.out().advance(len);
    }
    while !bytes.is_empty() {
        let record = RecordCodec::new().decode(&mut bytes);
        assert!(
            matches!(record, Ok(Some(_))),
            "our output does not decode: {record:?}"
        );
    }
}
