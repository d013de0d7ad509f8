//! Property tests of the sans-io parser: arbitrary bytes never panic it, and var sets
//! round-trip through `encode_packet` / `parse_head` at every split.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

use std::collections::BTreeMap;

use bytes::BytesMut;
use gatehouse_uwsgi::{encode_packet, parse_head, HEADER_LEN};
use proptest::prelude::*;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A valid vars block: `REQUEST_METHOD`, a `CONTENT_LENGTH`, then unique names (any bytes,
/// not `UWSGI_*`, no repeats) with values of any bytes.
fn var_set() -> impl Strategy<Value = (u64, Pairs)> {
    let name = proptest::collection::vec(any::<u8>(), 1..16);
    let value = proptest::collection::vec(any::<u8>(), 0..24);
    (
        0..10_000_000_000_000_000_000u64,
        proptest::collection::btree_map(name, value, 0..12),
    )
        .prop_map(|(len, extra): (u64, BTreeMap<Vec<u8>, Vec<u8>>)| {
            let mut pairs = vec![
                (b"REQUEST_METHOD".to_vec(), b"PUT".to_vec()),
                (b"CONTENT_LENGTH".to_vec(), len.to_string().into_bytes()),
            ];
            pairs.extend(extra.into_iter().filter(|(n, _)| {
                n != b"REQUEST_METHOD" && n != b"CONTENT_LENGTH" && !n.starts_with(b"UWSGI_")
            }));
            (len, pairs)
        })
}

fn encode(pairs: &Pairs) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_packet(
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
            prop_assert!(consumed >= HEADER_LEN && consumed - HEADER_LEN <= limit);
        }
    }

    #[test]
    fn var_sets_round_trip_at_every_split((len, pairs) in var_set(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let packet = encode(&pairs);
        let mut input = packet.clone();
        input.extend_from_slice(&tail);
        let (head, consumed) = parse_head(&input, 65535).unwrap().unwrap();
        prop_assert_eq!(consumed, packet.len());
        prop_assert_eq!(head.content_length, len);
        let got: Pairs = head.pairs().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        prop_assert_eq!(&got, &pairs);
        prop_assert_eq!(encode(&got), packet.clone());
        for cut in 0..packet.len() {
            prop_assert!(parse_head(&input[..cut], 65535).unwrap().is_none(), "prefix {}", cut);
        }
    }
}
