//! Property tests of the sans-io parser: arbitrary bytes never panic it, and header sets
//! round-trip through `encode_head` / `parse_head` at every split.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

use std::collections::BTreeMap;

use bytes::BytesMut;
use gatehouse_scgi::{encode_head, parse_head, BodyDecoder, BodyFrame, HeadDecoder};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A valid head: CONTENT_LENGTH first, SCGI=1, then unique names without NUL, values of any
/// non-NUL bytes (empty included). CONTENT_LENGTH stays below 10^19: the core's decimal parser
/// takes at most 19 digits (a longer body length is refused as absurd).
fn header_set() -> impl Strategy<Value = (u64, Pairs)> {
    let name = proptest::collection::vec(1u8..=255, 1..16);
    let value = proptest::collection::vec(1u8..=255, 0..24);
    (
        0..10_000_000_000_000_000_000u64,
        proptest::collection::btree_map(name, value, 0..12),
    )
        .prop_map(|(len, extra): (u64, BTreeMap<Vec<u8>, Vec<u8>>)| {
            let mut pairs = vec![
                (b"CONTENT_LENGTH".to_vec(), len.to_string().into_bytes()),
                (b"SCGI".to_vec(), b"1".to_vec()),
            ];
            pairs.extend(
                extra
                    .into_iter()
                    .filter(|(n, _)| n != b"CONTENT_LENGTH" && n != b"SCGI"),
            );
            (len, pairs)
        })
}

fn encode(pairs: &Pairs) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_head(
        pairs.iter().map(|(n, v)| (n.as_slice(), v.as_slice())),
        &mut out,
    );
    out.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512), limit in 0usize..1024) {
        if let Ok(Some((_, consumed))) = parse_head(&data, limit) {
            prop_assert!(consumed <= data.len());
        }
    }

    #[test]
    fn arbitrary_streams_through_the_decoders(data in proptest::collection::vec(any::<u8>(), 0..512), step in 1usize..64) {
        let mut buf = BytesMut::new();
        let mut head = HeadDecoder::new(256);
        let mut body: Option<BodyDecoder> = None;
        let (mut body_bytes, mut content_length) = (0u64, 0u64);
        'feed: for piece in data.chunks(step) {
            buf.extend_from_slice(piece);
            if body.is_none() {
                match head.decode(&mut buf) {
                    Ok(Some(h)) => {
                        content_length = h.content_length;
                        body = Some(BodyDecoder::new(h.content_length));
                    }
                    Ok(None) => continue,
                    Err(_) => break 'feed,
                }
            }
            if let Some(dec) = body.as_mut() {
                while let Ok(Some(frame)) = dec.decode(&mut buf) {
                    if let BodyFrame::Chunk(c) = frame {
                        body_bytes += c.len() as u64;
                    }
                }
                // Never a byte past CONTENT_LENGTH, none lost on the way.
                prop_assert_eq!(body_bytes + dec.remaining(), content_length);
            }
        }
        if let Some(dec) = body.as_mut() {
            let _ = dec.decode_eof(&mut buf);
        }
    }

    #[test]
    fn header_sets_round_trip((len, pairs) in header_set(), body in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut input = encode(&pairs);
        let head_len = input.len();
        input.extend_from_slice(&body);
        let (head, consumed) = parse_head(&input, 64 * 1024).unwrap().unwrap();
        prop_assert_eq!(consumed, head_len);
        prop_assert_eq!(head.content_length, len);
        let got: Pairs = head.pairs().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        prop_assert_eq!(&got, &pairs);
        for cut in 0..head_len {
            prop_assert!(matches!(parse_head(&input[..cut], 64 * 1024), Ok(None)), "prefix {}", cut);
        }
    }

    #[test]
    fn mutated_heads_never_panic((_, pairs) in header_set(), at in any::<prop::sample::Index>(), byte in any::<u8>(), insert in any::<bool>()) {
        let mut input = encode(&pairs);
        let i = at.index(input.len());
        if insert {
            input.insert(i, byte);
        } else {
            input[i] = byte;
        }
        if let Ok(Some((head, consumed))) = parse_head(&input, 64 * 1024) {
            let mut again = BytesMut::new();
            encode_head(head.pairs(), &mut again);
            prop_assert_eq!(&again[..], &input[..consumed]);
        }
    }
}
