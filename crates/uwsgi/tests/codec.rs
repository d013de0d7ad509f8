//! Codec vectors: packets as nginx sends them, fed to the decoders and to the sans-io
//! connection split at every byte position and one byte at a time; the same events every time.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::{Peer, Protocol, RequestInfo};
use gatehouse_uwsgi::{
    encode_packet, parse_head, Close, Config, Connection, Event, HeadDecoder, Linger,
};
use tokio_util::codec::Decoder;

/// nginx 1.22 with Debian's stock `uwsgi_params`, a POST with a repeated header.
fn nginx_post(body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    let pairs: [(&str, &str); 12] = [
        ("QUERY_STRING", "a=1"),
        ("REQUEST_METHOD", "POST"),
        ("CONTENT_TYPE", "text/plain"),
        ("CONTENT_LENGTH", &len),
        ("REQUEST_URI", "/echo?a=1"),
        ("PATH_INFO", "/echo"),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("HTTP_X_TWICE", "1"),
        ("HTTP_X_TWICE", "2"),
        ("UWSGI_FILE", "/tmp/evil.py"),
    ];
    let mut out = BytesMut::new();
    encode_packet(
        pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        &mut out,
    );
    out.extend_from_slice(body);
    out.to_vec()
}

/// What a connection core said, in a comparable form.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    path: Vec<u8>,
    twice: Vec<u8>,
    magic_passed: bool,
    body: Vec<u8>,
    body_end: bool,
    close: Option<Close>,
    transmitted: Vec<u8>,
}

fn info() -> RequestInfo {
    RequestInfo::new(Protocol::Uwsgi, Peer::Stdio)
}

/// Feeds `input` in pieces cut at `cuts`, then the end of input.
fn run(input: &[u8], pieces: &[&[u8]], config: Config) -> Seen {
    let now = Instant::now();
    let mut conn = Connection::new(info(), config, now);
    let mut buf = BytesMut::new();
    let mut seen = Seen {
        path: vec![],
        twice: vec![],
        magic_passed: false,
        body: vec![],
        body_end: false,
        close: None,
        transmitted: vec![],
    };
    let mut collect = |conn: &mut Connection| {
        while let Some(e) = conn.poll_event() {
            match e {
                Event::Request(head) => {
                    seen.path = head.env.path_info().to_vec();
                    seen.twice = head.env.get_or_empty("HTTP_X_TWICE").to_vec();
                    seen.magic_passed = head.env.contains("UWSGI_FILE");
                }
                Event::Body(c) => seen.body.extend_from_slice(&c),
                Event::BodyEnd => seen.body_end = true,
                Event::Transmit(b) => seen.transmitted.extend_from_slice(&b),
                Event::Close(c) => seen.close = Some(c),
            }
        }
    };
    assert_eq!(pieces.concat(), input);
    for piece in pieces {
        buf.extend_from_slice(piece);
        conn.handle_input(now, &mut buf);
        collect(&mut conn);
    }
    if conn.wants_input() {
        conn.handle_eof(now, &mut buf);
        collect(&mut conn);
    }
    seen
}

/// Every split in two, and one byte at a time, give the same result as one piece.
fn every_split(input: &[u8], config: &Config) -> Seen {
    let whole = run(input, &[input], config.clone());
    for cut in 0..=input.len() {
        let (a, b) = input.split_at(cut);
        assert_eq!(run(input, &[a, b], config.clone()), whole, "split at {cut}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(input, &bytes, config.clone()), whole, "byte at a time");
    whole
}

#[test]
fn nginx_post_at_every_split() {
    let input = nginx_post(b"hello, body");
    let seen = every_split(&input, &Config::default());
    assert_eq!(seen.path, b"/echo");
    assert_eq!(seen.twice, b"1, 2");
    assert!(!seen.magic_passed, "UWSGI_FILE must be dropped");
    assert_eq!(seen.body, b"hello, body");
    assert!(seen.body_end);
    // The app never answered: the end of input after the body is a half-close, nothing closes.
    assert_eq!(seen.close, None);
}

#[test]
fn bytes_past_the_body_never_reach_the_app() {
    let mut input = nginx_post(b"abc");
    input.extend_from_slice(b"junk after the body");
    let seen = every_split(&input, &Config::default());
    assert_eq!(seen.body, b"abc");
}

#[test]
fn bad_packets_at_every_split() {
    let cases: [(&str, Vec<u8>); 4] = [
        ("unknown modifier1", b"\x05\x04\x00\x00abcd".to_vec()),
        ("overrun", b"\x00\x04\x00\x00\x09\x00ab".to_vec()),
        ("empty key", b"\x00\x04\x00\x00\x00\x00\x00\x00".to_vec()),
        ("over the limit", b"\x00\x00\x10\x00".to_vec()),
    ];
    let config = Config {
        max_vars_bytes: 1024,
        ..Config::default()
    };
    for (what, input) in cases {
        let seen = every_split(&input, &config);
        assert_eq!(seen.close, Some(Close::Graceful), "{what}");
        assert!(
            seen.transmitted
                .starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
            "{what}: {:?}",
            seen.transmitted.escape_ascii().to_string()
        );
        assert!(seen.path.is_empty(), "{what}: no request started");
    }
}

#[test]
fn truncated_packets_and_bodies() {
    let input = nginx_post(b"0123456789");
    let head_len = input.len() - 10;
    for cut in 1..input.len() {
        let seen = run(&input[..cut], &[&input[..cut]], Config::default());
        assert!(seen.close.is_some(), "cut at {cut}: closed");
        if cut < head_len {
            assert!(seen.path.is_empty(), "cut at {cut}");
        } else {
            assert!(!seen.body_end, "cut at {cut}");
        }
        assert!(
            seen.transmitted.starts_with(b"HTTP/1.1 400"),
            "cut at {cut}"
        );
    }
    let silent = run(b"", &[], Config::default());
    assert_eq!(
        (silent.close, silent.transmitted.len()),
        (Some(Close::Quiet), 0)
    );
}

#[test]
fn header_decoder_refuses_before_buffering() {
    let mut buf = BytesMut::from(&b"\x00\xff\xff\x00"[..]);
    let err = HeadDecoder::new(100)
        .decode(&mut buf)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "limit exceeded: vars block of 65535 bytes, limit 100");
    assert_eq!(parse_head(b"\x00\x05\x00", 100).unwrap(), None);
}

#[test]
fn deadlines_are_values() {
    let now = Instant::now();
    let config = Config {
        header_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let mut conn = Connection::new(info(), config, now);
    let deadline = conn.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(3));
    conn.handle_timeout(now + Duration::from_secs(1));
    assert!(conn.poll_event().is_none(), "not yet");
    // A datasize larger than what arrives: the packet never completes.
    let mut buf = BytesMut::from(&b"\x00\x64\x00\x00\x0e\x00REQUEST"[..]);
    conn.handle_input(now, &mut buf);
    assert!(conn.poll_event().is_none());
    conn.handle_timeout(deadline);
    let Some(Event::Transmit(answer)) = conn.poll_event() else {
        panic!("answered")
    };
    assert!(answer.starts_with(b"HTTP/1.1 400"));
    assert!(matches!(
        conn.poll_event(),
        Some(Event::Close(Close::Graceful))
    ));
    assert_eq!(conn.linger(), Linger::UntilEof);
    assert!(!conn.wants_input());
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn shutdown_grace_closes_a_silent_connection_quietly() {
    let now = Instant::now();
    let mut conn = Connection::new(info(), Config::default(), now);
    conn.handle_shutdown(now);
    let grace = conn.poll_timeout().unwrap();
    assert!(grace < now + Config::default().header_timeout);
    conn.handle_timeout(grace);
    assert!(matches!(
        conn.poll_event(),
        Some(Event::Close(Close::Quiet))
    ));
    let _ = Bytes::new();
}
