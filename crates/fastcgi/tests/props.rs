//! Property tests: encode/decode round trips, arbitrary bytes never panic the decoder, and
//! arbitrary record sequences never panic the connection core.

#![allow(clippy::unwrap_used)] // reason: test helpers outside #[test] fns; a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::Peer;
use gatehouse_fastcgi::codec::RecordCodec;
use gatehouse_fastcgi::conn::{Connection, Event};
use gatehouse_fastcgi::nv;
use gatehouse_fastcgi::record::{
    BeginRequestBody, EndRequestBody, Payload, ProtocolStatus, Record, RecordHeader, RecordType,
    Role, UnknownTypeBody, FCGI_VERSION_1,
};
use gatehouse_fastcgi::{Config, Server};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn content(max: usize) -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..=max),
    ]
    .prop_map(Bytes::from)
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<u16>(), any::<u8>()).prop_map(|(r, flags)| Payload::BeginRequest(
            BeginRequestBody {
                role: Role::from(r),
                flags
            }
        )),
        Just(Payload::AbortRequest),
        (any::<u32>(), any::<u8>()).prop_map(|(app_status, s)| Payload::EndRequest(
            EndRequestBody {
                app_status,
                protocol_status: ProtocolStatus::from(s)
            }
        )),
        content(65535).prop_map(Payload::Params),
        content(65535).prop_map(Payload::Stdin),
        content(65535).prop_map(Payload::Stdout),
        content(300).prop_map(Payload::Stderr),
        content(300).prop_map(Payload::Data),
        content(300).prop_map(Payload::GetValues),
        content(300).prop_map(Payload::GetValuesResult),
        any::<u8>().prop_map(|t| Payload::UnknownType(UnknownTypeBody { record_type: t })),
        (12u8.., content(300)).prop_map(|(record_type, content)| Payload::Other {
            record_type,
            content
        }),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (any::<u16>(), payload()).prop_map(|(id, p)| Record::new(id, p))
}

/// Encodes `record` with an explicit padding length (the encoder pads to 8 on its own).
fn encode_padded(record: &Record, padding: u8) -> Vec<u8> {
    let mut plain = BytesMut::new();
    RecordCodec::new().encode(record, &mut plain).unwrap();
    let header = RecordHeader::parse(&plain).unwrap();
    let len = usize::from(header.content_length);
    let mut out = RecordHeader {
        padding_length: padding,
        ..header
    }
    .to_bytes()
    .to_vec();
    out.extend_from_slice(&plain[8..8 + len]);
    out.extend(std::iter::repeat_n(0xAA, usize::from(padding)));
    out
}

fn decode_in_chunks(bytes: &[u8], chunk: usize) -> Vec<Record> {
    let mut codec = RecordCodec::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(r) = codec.decode(&mut buf).unwrap() {
            out.push(r);
        }
    }
    assert_eq!(codec.decode_eof(&mut buf).unwrap(), None);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn records_round_trip(recs in proptest::collection::vec((record(), any::<u8>()), 1..6), chunk in 1usize..70000) {
        let mut wire = Vec::new();
        for (r, padding) in &recs {
            wire.extend(encode_padded(r, *padding));
        }
        let want: Vec<Record> = recs.into_iter().map(|(r, _)| r).collect();
        prop_assert_eq!(&decode_in_chunks(&wire, wire.len()), &want);
        prop_assert_eq!(&decode_in_chunks(&wire, chunk), &want);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..64) {
        let mut codec = RecordCodec::new();
        let mut buf = BytesMut::new();
        let mut consumed = 0;
        let mut failed = false;
        'feed: for piece in bytes.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                let before = buf.len();
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => consumed += before - buf.len(),
                    Ok(None) => { prop_assert_eq!(buf.len(), before); break; }
                    Err(_) => { failed = true; break 'feed; }
                }
            }
        }
        if !failed {
            prop_assert_eq!(consumed + buf.len(), bytes.len());
            let eof = codec.decode_eof(&mut buf);
            prop_assert_eq!(eof.is_ok(), buf.is_empty());
        }
    }

    #[test]
    fn well_framed_garbage_decodes_or_fails_cleanly(version in any::<u8>(), t in any::<u8>(), id in any::<u16>(), body in proptest::collection::vec(any::<u8>(), 0..40), padding in any::<u8>()) {
        let header = RecordHeader {
            version,
            record_type: RecordType::from(t),
            request_id: id,
            content_length: body.len() as u16,
            padding_length: padding,
        };
        let mut wire = header.to_bytes().to_vec();
        wire.extend_from_slice(&body);
        wire.extend(std::iter::repeat_n(0, usize::from(padding)));
        let mut buf = BytesMut::from(&wire[..]);
        match RecordCodec::new().decode(&mut buf) {
            Ok(Some(r)) => {
                prop_assert_eq!(version, FCGI_VERSION_1);
                prop_assert_eq!(r.request_id, id);
                prop_assert_eq!(r.payload.record_type().as_u8(), t);
                prop_assert!(buf.is_empty());
            }
            Ok(None) => prop_assert!(false, "a whole record is never incomplete"),
            Err(_) => prop_assert!(version != FCGI_VERSION_1 || RecordType::from(t).fixed_content_length().is_some()),
        }
    }

    #[test]
    fn name_value_pairs_round_trip(pairs in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..300), proptest::collection::vec(any::<u8>(), 0..300)), 0..8)) {
        let mut out = BytesMut::new();
        for (n, v) in &pairs {
            nv::put_pair(&mut out, n, v);
        }
        let stream = out.freeze();
        let parsed = nv::parse_all(&stream, stream.len()).unwrap();
        let want: Vec<(Bytes, Bytes)> = pairs.into_iter().map(|(n, v)| (Bytes::from(n), Bytes::from(v))).collect();
        prop_assert_eq!(parsed, want);
    }

    #[test]
    fn arbitrary_record_sequences_never_panic_the_connection(recs in proptest::collection::vec(small_record(), 0..60)) {
        let cfg = Config { max_reqs_per_conn: 3, max_params_bytes: 64, ..Config::default() };
        let server = Server::new(Arc::new(common::TestApp(Arc::default())), cfg);
        let t0 = Instant::now();
        let mut conn = Connection::new(&server, Peer::Stdio, t0);
        let mut closed = 0;
        for (i, r) in recs.into_iter().enumerate() {
            conn.handle_record(t0 + Duration::from_millis(i as u64), r);
            prop_assert!(conn.active_requests() <= 3);
            while let Some(e) = conn.poll_event() {
                if let Event::Close { .. } = e { closed += 1; }
            }
        }
        prop_assert!(closed <= 1);
        prop_assert_eq!(closed == 1, !conn.wants_read());
    }
}

/// Records a web server could send (and some it should not), on a few ids, with small content.
fn small_record() -> impl Strategy<Value = Record> {
    let p = prop_oneof![
        (0u16..4, any::<bool>()).prop_map(|(r, keep)| Payload::BeginRequest(BeginRequestBody {
            role: Role::from(r),
            flags: u8::from(keep)
        })),
        Just(Payload::AbortRequest),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|v| Payload::Params(Bytes::from(v))),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|v| Payload::Stdin(Bytes::from(v))),
        Just(Payload::GetValues(Bytes::from_static(
            b"\x0e\x00FCGI_MAX_CONNS"
        ))),
        Just(Payload::Data(Bytes::from_static(b"d"))),
        Just(Payload::Stdout(Bytes::new())),
        (12u8..).prop_map(|t| Payload::Other {
            record_type: t,
            content: Bytes::new()
        }),
    ];
    (0u16..4, p).prop_map(|(id, p)| Record::new(id, p))
}
