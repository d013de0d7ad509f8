//! Entry points for the cargo-fuzz targets in `crates/scgi/fuzz/` (compiled only with
//! `--cfg fuzzing`). Each asserts an invariant, not just the absence of a panic.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::codec::{BodyDecoder, BodyFrame, HeadDecoder};
use crate::head::parse_head;
use crate::netstring::encode_head;
use crate::server::DEFAULT_MAX_HEADER_BYTES;

/// `parse_head` on arbitrary bytes, with the default limit and a tiny one. When a head parses,
/// re-encoding it gives back exactly the consumed bytes (the SCGI encoding of a header list is
/// unique), parsing that gives the same head, and every shorter prefix asks for more bytes.
pub fn parse_head_round_trip(data: &[u8]) {
    for limit in [DEFAULT_MAX_HEADER_BYTES, 32] {
        let Ok(Some((head, consumed))) = parse_head(data, limit) else {
            continue;
        };
        assert!(consumed <= data.len());
        let mut encoded = BytesMut::new();
        encode_head(head.pairs(), &mut encoded);
        assert_eq!(&encoded[..], &data[..consumed], "re-encoding differs");
        match parse_head(&encoded, limit) {
            Ok(Some((again, n))) => assert!(again == head && n == consumed, "reparse differs"),
            other => panic!("re-encoded head does not parse: {other:?}"),
        }
        for cut in 0..consumed {
            assert!(
                matches!(parse_head(&data[..cut], limit), Ok(None)),
                "prefix of {cut} bytes of a valid head is not incomplete"
            );
        }
    }
}

/// The two decoders over `data[1..]` fed in pieces of `data[0]` bytes (at least 1), then the
/// end of input: every byte is accounted for exactly once (consumed by the head, handed out as
/// body, discarded after the body, or left in the buffer when decoding stopped), and the body
/// handed out never exceeds `CONTENT_LENGTH`.
pub fn decode_stream_accounting(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let mut stream = Stream::default();
    let mut fed = 0u64;
    let mut ok = true;
    for piece in input.chunks(usize::from(step.max(1))) {
        stream.buf.extend_from_slice(piece);
        fed += piece.len() as u64;
        ok = stream.decode(false).is_ok();
        if !ok {
            break;
        }
    }
    if ok {
        let _ = stream.decode(true);
    }
    let accounted = stream.head_bytes + stream.body + stream.discarded + stream.buf.len() as u64;
    assert_eq!(accounted, fed, "consumed + rest != len");
    if let Some(limit) = stream.content_length {
        assert!(stream.body <= limit, "body past CONTENT_LENGTH");
    }
}

/// What the decoders made of the input so far.
#[derive(Default)]
struct Stream {
    buf: BytesMut,
    body_dec: Option<BodyDecoder>,
    content_length: Option<u64>,
    head_bytes: u64,
    body: u64,
    discarded: u64,
}

impl Stream {
    fn decode(&mut self, eof: bool) -> Result<(), crate::Error> {
        if self.body_dec.is_none() {
            let mut head_dec = HeadDecoder::new(DEFAULT_MAX_HEADER_BYTES);
            let before = self.buf.len();
            let got = if eof {
                head_dec.decode_eof(&mut self.buf)?
            } else {
                head_dec.decode(&mut self.buf)?
            };
            let Some(head) = got else {
                return Ok(());
            };
            self.head_bytes = (before - self.buf.len()) as u64;
            self.content_length = Some(head.content_length);
            self.body_dec = Some(BodyDecoder::new(head.content_length));
        }
        let Some(dec) = self.body_dec.as_mut() else {
            return Ok(());
        };
        loop {
            let got = if eof {
                dec.decode_eof(&mut self.buf)?
            } else {
                dec.decode(&mut self.buf)?
            };
            match got {
                Some(BodyFrame::Chunk(c)) => self.body += c.len() as u64,
                Some(BodyFrame::End) => {}
                None => break,
            }
        }
        self.discarded = dec.discarded();
        Ok(())
    }
}
