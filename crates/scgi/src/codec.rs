//! Framing of one SCGI request: `tokio_util::codec` decoders for the head, then the body.
//!
//! ```text
//!   bytes ──► HeadDecoder ──► RequestHead ──► BodyDecoder ──► Chunk* End ──► (discard)
//! ```
//!
//! Two decoders, not one with a state, so the driver cannot mix them up: [`HeadDecoder`] yields
//! the head once; [`BodyDecoder`] then yields exactly `CONTENT_LENGTH` bytes as chunks (each as
//! large as what the socket gave), [`BodyFrame::End`], and afterwards silently discards anything
//! the peer sends (SCGI has one request per connection; bytes past the body are not ours to
//! read, and are never handed to the app).

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::error::{Error, PeerError};
use crate::head::{Duplicates, RequestHead};
use crate::netstring;

/// Decodes the request head.
#[derive(Debug, Clone)]
pub struct HeadDecoder {
    max_header_bytes: usize,
    duplicates: Duplicates,
}

impl HeadDecoder {
    /// A decoder that refuses header blocks longer than `max_header_bytes`; repeated names as
    /// [`Duplicates::default`] says.
    pub fn new(max_header_bytes: usize) -> Self {
        Self {
            max_header_bytes,
            duplicates: Duplicates::default(),
        }
    }

    /// Sets what to do with repeated names.
    pub fn with_duplicates(mut self, duplicates: Duplicates) -> Self {
        self.duplicates = duplicates;
        self
    }
}

impl Decoder for HeadDecoder {
    type Item = RequestHead;
    type Error = Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RequestHead>, Error> {
        let Some(framed) = netstring::frame(buf, self.max_header_bytes)? else {
            // At most the digits, `:`, the limit and `,` are ever buffered: `frame` refuses a
            // longer announced length as soon as its digits are in.
            return Ok(None);
        };
        let netstring = buf.split_to(framed.consumed).freeze();
        match RequestHead::from_block(&netstring.slice(framed.block), self.duplicates) {
            Ok(head) => Ok(Some(head)),
            Err(e) => {
                // Consume nothing that is rejected (a copy, on this error path only).
                let mut restored = BytesMut::with_capacity(netstring.len() + buf.len());
                restored.extend_from_slice(&netstring);
                restored.extend_from_slice(buf);
                *buf = restored;
                Err(e.into())
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<RequestHead>, Error> {
        match self.decode(buf)? {
            Some(head) => Ok(Some(head)),
            // Closed before sending anything: not a request, not an error.
            None if buf.is_empty() => Ok(None),
            None => Err(PeerError::TruncatedHead {
                received: buf.len(),
            }
            .into()),
        }
    }
}

/// What the body decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFrame {
    /// Body bytes (never empty, never past `CONTENT_LENGTH`).
    Chunk(bytes::Bytes),
    /// All `CONTENT_LENGTH` bytes arrived. Yielded once.
    End,
}

/// Decodes exactly `CONTENT_LENGTH` body bytes.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    expected: u64,
    received: u64,
    ended: bool,
    discarded: u64,
}

impl BodyDecoder {
    /// A decoder for a body of `content_length` bytes.
    pub fn new(content_length: u64) -> Self {
        Self {
            expected: content_length,
            received: 0,
            ended: false,
            discarded: 0,
        }
    }

    /// Body bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.expected - self.received
    }

    /// Whether [`BodyFrame::End`] was yielded.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Bytes the peer sent after the body (discarded).
    pub fn discarded(&self) -> u64 {
        self.discarded
    }
}

impl Decoder for BodyDecoder {
    type Item = BodyFrame;
    type Error = Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BodyFrame>, Error> {
        if self.ended {
            self.discarded += buf.len() as u64;
            buf.clear();
            return Ok(None);
        }
        let remaining = self.remaining();
        if remaining == 0 {
            self.ended = true;
            return Ok(Some(BodyFrame::End));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let take = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        self.received += take as u64;
        Ok(Some(BodyFrame::Chunk(buf.split_to(take).freeze())))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BodyFrame>, Error> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if self.ended => Ok(None),
            None => Err(PeerError::ShortBody {
                expected: self.expected,
                received: self.received,
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::encode_head;

    fn request(body: &[u8]) -> Vec<u8> {
        let len = body.len().to_string();
        let mut out = BytesMut::new();
        let pairs: [(&[u8], &[u8]); 3] = [
            (b"CONTENT_LENGTH", len.as_bytes()),
            (b"SCGI", b"1"),
            (b"REQUEST_METHOD", b"POST"),
        ];
        encode_head(pairs, &mut out);
        out.extend_from_slice(body);
        out.to_vec()
    }

    /// Feeds `input` in pieces of `step` bytes, then the end of input, as a read loop would,
    /// and collects what the decoders yield.
    fn run(input: &[u8], step: usize) -> Result<(RequestHead, Vec<u8>, bool), String> {
        let mut buf = BytesMut::new();
        let mut head_dec = HeadDecoder::new(1024);
        let mut state: Option<(RequestHead, BodyDecoder)> = None;
        let (mut body, mut ended) = (Vec::new(), false);
        let mut pieces = input.chunks(step.max(1));
        loop {
            let piece = pieces.next();
            let eof = piece.is_none();
            buf.extend_from_slice(piece.unwrap_or_default());
            if state.is_none() {
                let got = if eof {
                    head_dec.decode_eof(&mut buf)
                } else {
                    head_dec.decode(&mut buf)
                };
                match got.map_err(|e| e.to_string())? {
                    Some(h) => {
                        let dec = BodyDecoder::new(h.content_length);
                        state = Some((h, dec));
                    }
                    None if eof => return Err("eof before head".into()),
                    None => continue,
                }
            }
            let Some((_, dec)) = state.as_mut() else {
                continue;
            };
            loop {
                let got = if eof {
                    dec.decode_eof(&mut buf)
                } else {
                    dec.decode(&mut buf)
                };
                match got.map_err(|e| e.to_string())? {
                    Some(BodyFrame::Chunk(c)) => body.extend_from_slice(&c),
                    Some(BodyFrame::End) => ended = true,
                    None => break,
                }
            }
            if eof {
                let (head, _) = state.ok_or("no head")?;
                return Ok((head, body, ended));
            }
        }
    }

    #[test]
    fn every_step_size_gives_the_same_request() {
        let mut input = request(b"hello, body");
        input.extend_from_slice(b"trailing junk");
        for step in 1..=input.len() {
            let (head, body, ended) = run(&input, step).unwrap();
            assert_eq!(head.env.method(), b"POST");
            assert_eq!(body, b"hello, body", "step {step}");
            assert!(ended);
        }
    }

    #[test]
    fn rejected_head_is_not_consumed() {
        // Found by the decode_stream fuzz target: a framed but invalid block was dropped.
        let input = &b"24:CONTENT_LENGTX\x000\x00SCGI\x001\x00,body"[..];
        let mut buf = BytesMut::from(input);
        assert!(HeadDecoder::new(1024).decode(&mut buf).is_err());
        assert_eq!(&buf[..], input);
    }

    #[test]
    fn empty_body_ends_at_once() {
        let mut dec = BodyDecoder::new(0);
        let mut buf = BytesMut::from(&b"junk"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(BodyFrame::End));
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert_eq!(dec.discarded(), 4);
        assert!(buf.is_empty());
        assert_eq!(dec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn chunks_stop_at_content_length() {
        let mut dec = BodyDecoder::new(3);
        let mut buf = BytesMut::from(&b"abcdef"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Some(BodyFrame::Chunk(Bytes::from_static(b"abc")))
        );
        assert_eq!(dec.remaining(), 0);
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(BodyFrame::End));
        assert!(dec.is_ended());
    }

    #[test]
    fn eof_errors() {
        let input = request(b"0123456789");
        for cut in 1..input.len() {
            let got = run(&input[..cut], 3).unwrap_err();
            let head_len = input.len() - 10;
            if cut < head_len {
                assert!(
                    got.contains(&format!("after {cut} bytes of the head")),
                    "{got}"
                );
            } else {
                let want = format!("after {} of 10 body bytes", cut - head_len);
                assert!(got.contains(&want), "{got}");
            }
        }
        assert_eq!(run(b"", 1).unwrap_err(), "eof before head");
    }
}
