//! [`RecordCodec`]: FastCGI record framing as a `tokio_util::codec` `Decoder` and `Encoder`.
//!
//! The decoder reads the 8-byte header, checks it before buffering anything else (version,
//! fixed body sizes; `contentLength` and `paddingLength` cannot exceed 65535 and 255), waits
//! for the whole record, skips the padding and hands out the content without copying it.
//! Partial input is `Ok(None)`; the connection ending inside a record is
//! [`ProtocolError::Truncated`].

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{Error, ProtocolError};
use crate::record::{
    Payload, Record, RecordHeader, FCGI_HEADER_LEN, FCGI_MAX_CONTENT_LEN, FCGI_VERSION_1,
};

/// Decodes and encodes FastCGI records.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordCodec;

impl RecordCodec {
    /// A codec.
    pub fn new() -> Self {
        Self
    }
}

impl Decoder for RecordCodec {
    type Item = Record;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Record>, Error> {
        let Some(header) = RecordHeader::parse(src) else {
            return Ok(None);
        };
        check_header(&header, src)?;
        let total = header.record_len();
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(FCGI_HEADER_LEN);
        let content = src.split_to(usize::from(header.content_length)).freeze();
        src.advance(usize::from(header.padding_length));
        let payload = Payload::from_content(header.record_type, content).ok_or_else(|| {
            // check_header verified the fixed lengths, so this is unreachable in practice;
            // answer it as the protocol error it would be rather than panic.
            ProtocolError::BadContentLength {
                record_type: header.record_type,
                content_length: header.content_length,
                expected: header.record_type.fixed_content_length().unwrap_or(0),
            }
        })?;
        Ok(Some(Record::new(header.request_id, payload)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Record>, Error> {
        if let Some(record) = self.decode(src)? {
            return Ok(Some(record));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let needed = RecordHeader::parse(src).map(|h| h.record_len());
        Err(ProtocolError::Truncated {
            received: src.len(),
            needed,
        }
        .into())
    }
}

/// Checks what can be checked from the header alone, before the content is buffered.
fn check_header(header: &RecordHeader, src: &[u8]) -> Result<(), ProtocolError> {
    if header.version != FCGI_VERSION_1 {
        let mut bytes = [0; FCGI_HEADER_LEN];
        bytes.copy_from_slice(&src[..FCGI_HEADER_LEN]);
        return Err(ProtocolError::UnsupportedVersion { header: bytes });
    }
    if let Some(expected) = header.record_type.fixed_content_length() {
        if header.content_length != expected {
            return Err(ProtocolError::BadContentLength {
                record_type: header.record_type,
                content_length: header.content_length,
                expected,
            });
        }
    }
    Ok(())
}

impl Encoder<Record> for RecordCodec {
    type Error = Error;

    fn encode(&mut self, record: Record, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode(&record, dst)
    }
}

impl Encoder<&Record> for RecordCodec {
    type Error = Error;

    fn encode(&mut self, record: &Record, dst: &mut BytesMut) -> Result<(), Error> {
        if record.payload.content_len() > FCGI_MAX_CONTENT_LEN {
            return Err(Error::ApiMisuse("record content longer than 65535 bytes"));
        }
        record.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::record::{BeginRequestBody, RecordType, Role, FCGI_KEEP_CONN};

    /// Decodes `input` whole, split at every byte position, and one byte at a time, asserting
    /// that all three give the same records and the same final error.
    fn decode_every_way(input: &[u8]) -> (Vec<Record>, Option<String>) {
        let whole = decode_chunks(&[input]);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(decode_chunks(&[a, b]), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_chunks(&bytes), whole, "one byte at a time");
        whole
    }

    fn decode_chunks(chunks: &[&[u8]]) -> (Vec<Record>, Option<String>) {
        let mut codec = RecordCodec::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(r)) => out.push(r),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e.to_string())),
                }
            }
        }
        match codec.decode_eof(&mut buf) {
            Ok(Some(r)) => panic!("record left for eof: {r:?}"),
            Ok(None) => (out, None),
            Err(e) => (out, Some(e.to_string())),
        }
    }

    /// Example 2 of appendix B: a request whose PARAMS are split over two records, padded.
    const SPEC_EXAMPLE_2: &[u8] = b"\
        \x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\
        \x01\x04\x00\x01\x00\x14\x04\x00\x0b\x02SERVER_PORT80\x0b\x0eSER\x00\x00\x00\x00\
        \x01\x04\x00\x01\x00\x16\x02\x00VER_ADDR199.170.183.42\x00\x00\
        \x01\x04\x00\x01\x00\x00\x00\x00\
        \x01\x05\x00\x01\x00\x19\x07\x00quantity=100&item=3047936\x00\x00\x00\x00\x00\x00\x00\
        \x01\x05\x00\x01\x00\x00\x00\x00";

    #[test]
    fn spec_example_every_split() {
        let (records, err) = decode_every_way(SPEC_EXAMPLE_2);
        assert_eq!(err, None);
        let types: Vec<_> = records.iter().map(|r| r.payload.record_type()).collect();
        use RecordType::*;
        assert_eq!(types, [BeginRequest, Params, Params, Params, Stdin, Stdin]);
        assert!(records.iter().all(|r| r.request_id == 1));
        assert_eq!(
            records[0].payload,
            Payload::BeginRequest(BeginRequestBody {
                role: Role::Responder,
                flags: 0
            })
        );
        let params: Vec<u8> = records[1..4]
            .iter()
            .flat_map(|r| match &r.payload {
                Payload::Params(b) => b.to_vec(),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            &params[..],
            b"\x0b\x02SERVER_PORT80\x0b\x0eSERVER_ADDR199.170.183.42"
        );
        assert_eq!(
            records[4].payload,
            Payload::Stdin(Bytes::from("quantity=100&item=3047936"))
        );
        assert_eq!(records[5].payload, Payload::Stdin(Bytes::new()));
    }

    #[test]
    fn management_records() {
        // {FCGI_GET_VALUES, 0, FCGI_MAX_CONNS=""} then an unknown type 20 with 3 bytes.
        let input = b"\x01\x09\x00\x00\x00\x10\x00\x00\x0e\x00FCGI_MAX_CONNS\
                      \x01\x14\x00\x00\x00\x03\x05\x00abc\x00\x00\x00\x00\x00";
        let (records, err) = decode_every_way(input);
        assert_eq!(err, None);
        assert_eq!(
            records[0],
            Record::new(
                0,
                Payload::GetValues(Bytes::from_static(b"\x0e\x00FCGI_MAX_CONNS"))
            )
        );
        assert_eq!(
            records[1].payload,
            Payload::Other {
                record_type: 20,
                content: Bytes::from("abc")
            }
        );
    }

    #[test]
    fn maximal_record() {
        let mut input = vec![1, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0];
        input.extend(std::iter::repeat_n(b'x', 65535 + 255));
        let (records, err) = decode_chunks(&[&input]);
        assert_eq!(err, None);
        assert_eq!(records[0].request_id, 0xffff);
        let Payload::Stdin(b) = &records[0].payload else {
            panic!()
        };
        assert_eq!(b.len(), 65535);
    }

    #[test]
    fn bad_headers_are_errors_before_content() {
        let (_, err) = decode_every_way(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(err.unwrap().contains("looks like HTTP"));
        let (_, err) = decode_every_way(b"\x02\x01\x00\x01\x00\x08\x00\x00");
        assert!(err.unwrap().contains("version 2"));
        // A BEGIN_REQUEST announcing 9 bytes is refused at its header.
        let mut codec = RecordCodec::new();
        let mut buf = BytesMut::from(&b"\x01\x01\x00\x01\x00\x09\x00\x00"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(Error::Protocol(ProtocolError::BadContentLength {
                expected: 8,
                ..
            }))
        ));
        let (_, err) = decode_every_way(b"\x01\x02\x00\x01\x00\x01\x00\x00x");
        assert!(err
            .unwrap()
            .contains("FCGI_ABORT_REQUEST with contentLength 1"));
    }

    #[test]
    fn truncated_records() {
        let (recs, err) = decode_every_way(b"\x01\x05\x00\x01\x00\x04\x00\x00ab");
        assert!(recs.is_empty());
        assert!(err.unwrap().contains("10 of 12 bytes"));
        let (_, err) = decode_every_way(b"\x01\x05\x00");
        assert!(err.unwrap().contains("record header (3 bytes)"));
        let (_, err) = decode_every_way(b"\x01\x05\x00\x01\x00\x02\x01\x00ab");
        assert!(err.unwrap().contains("10 of 11 bytes"));
    }

    #[test]
    fn encode_matches_spec_layout() {
        let mut codec = RecordCodec::new();
        let mut out = BytesMut::new();
        let begin = BeginRequestBody {
            role: Role::Responder,
            flags: FCGI_KEEP_CONN,
        };
        codec
            .encode(Record::new(1, Payload::BeginRequest(begin)), &mut out)
            .unwrap();
        assert_eq!(
            &out[..],
            b"\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00"
        );
        let big = Record::new(1, Payload::Stdout(Bytes::from(vec![0; 65536])));
        assert!(codec.encode(&big, &mut out).is_err());
    }
}
