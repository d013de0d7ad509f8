//! Framing of one uwsgi request: `tokio_util::codec` decoders for the packet, then the body.
//!
//! ```text
//!   bytes ──► HeadDecoder ──► RequestHead ──► BodyDecoder ──► Chunk* End ──► (discard)
//! ```
//!
//! Two decoders, not one with a state, as in the SCGI crate: [`HeadDecoder`] yields the head
//! once; [`BodyDecoder`] then yields exactly `CONTENT_LENGTH` bytes as chunks (each as large as
//! what the socket gave), [`BodyFrame::End`], and afterwards silently discards anything the
//! peer sends (one request per connection: bytes past the body are never handed to the app).

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::error::{Error, PeerError};
use crate::head::RequestHead;
use crate::packet::{self, HEADER_LEN};

/// Decodes the request packet (header and vars).
#[derive(Debug, Clone)]
pub struct HeadDecoder {
    max_vars_bytes: usize,
}

impl HeadDecoder {
    /// A decoder that refuses vars blocks longer than `max_vars_bytes`.
    pub fn new(max_vars_bytes: usize) -> Self {
        Self { max_vars_bytes }
    }
}

impl Decoder for HeadDecoder {
    type Item = RequestHead;
    type Error = Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RequestHead>, Error> {
        // At most the header and `max_vars_bytes` are ever buffered: `frame` refuses a larger
        // `datasize` as soon as the 4 header bytes are in.
        let Some(framed) = packet::frame(buf, self.max_vars_bytes)? else {
            return Ok(None);
        };
        let packet = buf.split_to(framed.consumed).freeze();
        match RequestHead::from_block(&packet.slice(HEADER_LEN..)) {
            Ok(head) => Ok(Some(head)),
            Err(e) => {
                // Consume nothing that is rejected (a copy, on this error path only).
                let mut restored = BytesMut::with_capacity(packet.len() + buf.len());
                restored.extend_from_slice(&packet);
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

/// Decodes exactly `CONTENT_LENGTH` body bytes (the same as the SCGI crate's).
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
    use super::*;

    #[test]
    fn rejected_head_is_not_consumed() {
        let input = &b"\x00\x04\x00\x00\x00\x00\x00\x00body"[..];
        let mut buf = BytesMut::from(input);
        assert!(HeadDecoder::new(1024).decode(&mut buf).is_err());
        assert_eq!(&buf[..], input);
    }

    #[test]
    fn empty_body_ends_at_once_then_discards() {
        let mut dec = BodyDecoder::new(0);
        let mut buf = BytesMut::from(&b"junk"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(BodyFrame::End));
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        assert_eq!(dec.discarded(), 4);
        assert_eq!(dec.decode_eof(&mut buf).unwrap(), None);
    }

    #[test]
    fn eof_inside_the_packet_or_body() {
        let mut buf = BytesMut::from(&b"\x00\x09\x00"[..]);
        let err = HeadDecoder::new(1024).decode_eof(&mut buf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed request: connection closed after 3 bytes of the packet"
        );
        let mut dec = BodyDecoder::new(5);
        let mut buf = BytesMut::from(&b"ab"[..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Ok(Some(BodyFrame::Chunk(_)))
        ));
        let err = dec.decode_eof(&mut buf).unwrap_err().to_string();
        assert!(err.contains("after 2 of 5 body bytes"), "{err}");
    }
}
