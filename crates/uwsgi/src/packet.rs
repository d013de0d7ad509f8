//! The uwsgi packet on the wire: a 4-byte header, then (for modifier1 0) the vars block.
//!
//! uWSGI documentation, "The uwsgi Protocol":
//!
//! ```text
//! struct uwsgi_packet_header {
//!     uint8_t modifier1;
//!     uint16_t datasize;   // little endian: the size of the vars block (body excluded)
//!     uint8_t modifier2;
//! };
//! vars  ::= var*                          (exactly datasize bytes)
//! var   ::= key_size:u16le key val_size:u16le val
//! ```
//!
//! "modifier1 0, modifier2 0: Standard WSGI request followed by the HTTP request body". This
//! module only frames and splits; the rules on names (`CONTENT_LENGTH`, the magic `UWSGI_*`
//! variables, repeated headers) are in [`crate::head`]. The grammar is written with nom; nom's
//! types stay inside this module.

use bytes::{BufMut, BytesMut};
use nom::bytes::complete::take;
use nom::number::complete::{le_u16, u8 as byte};
use nom::sequence::tuple;
use nom::IResult;

use crate::error::{Error, Excerpt, LimitError, PeerError};

/// The length of the packet header.
pub const HEADER_LEN: usize = 4;
/// `modifier1` of a WSGI (or any HTTP) request: a vars block, then the body.
pub const MODIFIER1_WSGI: u8 = 0;
/// The largest vars block a packet can announce (`datasize` is 16 bits).
pub const MAX_DATASIZE: usize = u16::MAX as usize;

/// The 4-byte packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// What the packet carries; only [`MODIFIER1_WSGI`] is served.
    pub modifier1: u8,
    /// The size of the vars block.
    pub datasize: u16,
    /// A sub-type; 0 for a WSGI request, not checked (uWSGI ignores it for modifier1 0).
    pub modifier2: u8,
}

impl PacketHeader {
    /// The header at the start of `buf`, `None` if fewer than [`HEADER_LEN`] bytes are there.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let parsed: IResult<&[u8], (u8, u16, u8)> = tuple((byte, le_u16, byte))(buf);
        let (_, (modifier1, datasize, modifier2)) = parsed.ok()?;
        Some(Self {
            modifier1,
            datasize,
            modifier2,
        })
    }

    /// Appends the header's 4 bytes.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.modifier1);
        out.put_u16_le(self.datasize);
        out.put_u8(self.modifier2);
    }
}

/// Where a complete WSGI packet sits in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framed {
    /// The vars block is `buf[HEADER_LEN..consumed]`.
    pub(crate) consumed: usize,
}

/// Finds the packet at the start of `buf`: `Ok(None)` means "more bytes needed". `modifier1`
/// and `datasize` are checked as soon as the header is in, before the vars are buffered.
pub(crate) fn frame(buf: &[u8], max_vars_bytes: usize) -> Result<Option<Framed>, Error> {
    let Some(header) = PacketHeader::parse(buf) else {
        return Ok(None);
    };
    if header.modifier1 != MODIFIER1_WSGI {
        return Err(PeerError::UnknownModifier1 {
            modifier1: header.modifier1,
            modifier2: header.modifier2,
        }
        .into());
    }
    let announced = usize::from(header.datasize);
    if announced > max_vars_bytes {
        let limit = max_vars_bytes;
        return Err(LimitError::VarsBytes { announced, limit }.into());
    }
    let consumed = HEADER_LEN + announced;
    Ok((buf.len() >= consumed).then_some(Framed { consumed }))
}

/// One `(key, value)` of a vars block.
pub(crate) type Pair<'a> = (&'a [u8], &'a [u8]);

/// Splits a complete vars block into its pairs, in order.
pub(crate) fn pairs(block: &[u8]) -> Result<Vec<Pair<'_>>, PeerError> {
    // The smallest var is 4 bytes (two empty lengths): no more pairs than that can fit.
    let mut out = Vec::with_capacity(block.len() / 16);
    let mut rest = block;
    while !rest.is_empty() {
        let parsed: IResult<&[u8], Pair<'_>> = tuple((sized, sized))(rest);
        let Ok((next, (key, value))) = parsed else {
            return Err(PeerError::VarOverrun(Excerpt::new(rest)));
        };
        if key.is_empty() {
            return Err(PeerError::EmptyKey);
        }
        out.push((key, value));
        rest = next;
    }
    Ok(out)
}

/// `size:u16le` then `size` bytes.
fn sized(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (input, len) = le_u16(input)?;
    take(len)(input)
}

/// Appends a WSGI request packet (header and vars) for `pairs`, as a front server sends it.
/// Keys and values longer than 65535 bytes are cut (a front server refuses them); the
/// `datasize` saturates at 65535 if the block is longer (the packet is then not valid).
pub fn encode_packet<'a>(pairs: impl IntoIterator<Item = Pair<'a>>, out: &mut BytesMut) {
    let start = out.len();
    PacketHeader {
        modifier1: MODIFIER1_WSGI,
        datasize: 0,
        modifier2: 0,
    }
    .encode(out);
    for (key, value) in pairs {
        for part in [key, value] {
            let part = &part[..part.len().min(MAX_DATASIZE)];
            out.put_u16_le(part.len() as u16); // Cut to 16 bits just above.
            out.extend_from_slice(part);
        }
    }
    let datasize = u16::try_from(out.len() - start - HEADER_LEN).unwrap_or(u16::MAX);
    out[start + 1..start + 3].copy_from_slice(&datasize.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_little_endian() {
        let h = PacketHeader::parse(&[0, 0x34, 0x12, 7]).unwrap();
        assert_eq!(h.datasize, 0x1234);
        assert_eq!((h.modifier1, h.modifier2), (0, 7));
        assert_eq!(PacketHeader::parse(&[0, 1, 2]), None);
        let mut out = BytesMut::new();
        h.encode(&mut out);
        assert_eq!(&out[..], [0, 0x34, 0x12, 7]);
    }

    #[test]
    fn encode_then_split() {
        let mut out = BytesMut::new();
        encode_packet([(&b"A"[..], &b"xy"[..]), (b"EMPTY", b"")], &mut out);
        assert_eq!(
            &out[..],
            b"\x00\x10\x00\x00\x01\x00A\x02\x00xy\x05\x00EMPTY\x00\x00"
        );
        let framed = frame(&out, 100).unwrap().unwrap();
        assert_eq!(framed.consumed, out.len());
        let pairs = pairs(&out[HEADER_LEN..]).unwrap();
        assert_eq!(pairs, [(&b"A"[..], &b"xy"[..]), (b"EMPTY", b"")]);
    }

    #[test]
    fn checks_before_buffering() {
        let err = frame(&[5, 0, 0, 0], 100).unwrap_err().to_string();
        assert!(err.contains("modifier1 5"), "{err}");
        let err = frame(&[0, 0xff, 0xff, 0], 100).unwrap_err().to_string();
        assert!(err.contains("65535 bytes, limit 100"), "{err}");
        assert_eq!(frame(&[0, 10, 0, 0, 1], 100).unwrap(), None);
    }

    #[test]
    fn overruns_and_empty_keys() {
        assert!(matches!(
            pairs(b"\x05\x00ab"),
            Err(PeerError::VarOverrun(_))
        ));
        assert!(matches!(
            pairs(b"\x01\x00a\x05"),
            Err(PeerError::VarOverrun(_))
        ));
        assert_eq!(pairs(b"\x00\x00\x00\x00"), Err(PeerError::EmptyKey));
        assert_eq!(pairs(b"").unwrap(), []);
    }
}
