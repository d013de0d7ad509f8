//! Entry points for the cargo-fuzz targets in `crates/uwsgi/fuzz/` (compiled only with
//! `--cfg fuzzing`). Each asserts an invariant, not just the absence of a panic.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use gatehouse_channel_request::{Peer, Protocol, RequestInfo};

use crate::conn::{Connection, Event};
use crate::head::parse_head;
use crate::packet::encode_packet;
use crate::server::{Config, DEFAULT_MAX_VARS_BYTES};

/// `parse_head` on arbitrary bytes, with the default limit and a tiny one. When a head parses,
/// re-encoding it (magic variables and repeats aside) parses to the same env, and every
/// shorter prefix asks for more bytes.
pub fn parse_head_round_trip(data: &[u8]) {
    for limit in [DEFAULT_MAX_VARS_BYTES, 32] {
        let Ok(Some((head, consumed))) = parse_head(data, limit) else {
            continue;
        };
        assert!(consumed <= data.len());
        let mut encoded = BytesMut::new();
        encode_packet(head.pairs(), &mut encoded);
        match parse_head(&encoded, DEFAULT_MAX_VARS_BYTES) {
            Ok(Some((again, n))) => {
                assert!(n == encoded.len(), "re-encoded length differs");
                assert!(
                    again.env == head.env && again.dropped.is_empty(),
                    "reparse differs"
                );
                assert_eq!(again.content_length, head.content_length);
            }
            other => panic!("re-encoded head does not parse: {other:?}"),
        }
        for cut in 0..consumed {
            assert!(
                matches!(parse_head(&data[..cut], limit), Ok(None) | Err(_)),
                "prefix of {cut} bytes"
            );
            if cut >= 4 {
                assert!(
                    matches!(parse_head(&data[..cut], limit), Ok(None)),
                    "prefix {cut}"
                );
            }
        }
    }
}

/// The sans-io connection over `data[1..]` fed in pieces of `data[0]` bytes, then the end of
/// input: it ends with exactly one `Close`, hands out at most `CONTENT_LENGTH` body bytes,
/// starts at most one request, and never asks for input once closed.
pub fn connection_events(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let start = Instant::now();
    let info = RequestInfo::new(Protocol::Uwsgi, Peer::Stdio);
    let mut conn = Connection::new(info, Config::default(), start);
    let mut buf = BytesMut::new();
    let mut seen = Counts::default();
    for piece in input.chunks(usize::from(step.max(1))) {
        if !conn.wants_input() {
            break;
        }
        buf.extend_from_slice(piece);
        conn.handle_input(start, &mut buf);
        seen.drain(&mut conn);
    }
    if conn.wants_input() {
        conn.handle_eof(start, &mut buf);
        seen.drain(&mut conn);
    }
    if seen.closes == 0 {
        // Still running (the body was complete) or waiting: the header deadline ends it.
        conn.handle_timeout(start + Duration::from_secs(3600));
        conn.handle_app_gone();
        seen.drain(&mut conn);
    }
    let Counts {
        requests,
        body,
        closes,
        expected,
    } = seen;
    assert!(
        requests <= 1 && body <= expected,
        "{requests} requests, {body}/{expected}"
    );
    assert_eq!(closes, 1, "one close");
    assert!(!conn.wants_input());
}

/// What a connection's events added up to.
#[derive(Default)]
struct Counts {
    requests: usize,
    body: u64,
    closes: usize,
    expected: u64,
}

impl Counts {
    fn drain(&mut self, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Request(head) => {
                    self.requests += 1;
                    self.expected = head.content_length;
                }
                Event::Body(chunk) => self.body += chunk.len() as u64,
                Event::Close(_) => self.closes += 1,
                Event::BodyEnd | Event::Transmit(_) => {}
            }
        }
    }
}
