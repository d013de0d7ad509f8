//! Entry points for the cargo-fuzz targets in `crates/fastcgi/fuzz` (built only with
//! `cfg(fuzzing)`). Each asserts an invariant, not merely the absence of a panic.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::RecordCodec;
use crate::nv;
use crate::record::{Record, FCGI_HEADER_LEN};

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
