//! Name-value pairs (FastCGI 1.0 section 3.4): the content of `FCGI_PARAMS` streams and of
//! `FCGI_GET_VALUES` / `FCGI_GET_VALUES_RESULT` records.
//!
//! ```text
//!  nameLength (1 or 4 bytes) · valueLength (1 or 4 bytes) · nameData · valueData
//! ```
//!
//! "Lengths of 127 bytes and less can be encoded in one byte, while longer lengths are always
//! encoded in four bytes"; "the high-order bit of the first byte of a length indicates the
//! length's encoding". Both encodings are accepted for any length; we write the short one
//! whenever it fits. Parsing is streaming (nom): a pair cut short is `Ok(None)`, and a length
//! larger than the caller's limit is an error before any byte of it is awaited.

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::streaming::take;
use nom::number::streaming::{be_u32, be_u8};
use nom::IResult;

use crate::error::NvError;

/// The largest length the 1-byte encoding holds.
pub const NV_SHORT_MAX: usize = 127;
/// The largest length the 4-byte encoding holds (31 bits).
pub const NV_LONG_MAX: usize = 0x7fff_ffff;

/// One pair parsed from the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair<'a> {
    /// `nameData`.
    pub name: &'a [u8],
    /// `valueData`.
    pub value: &'a [u8],
    /// Bytes the pair used, lengths included.
    pub len: usize,
}

/// Parses the pair at the start of `input`: `Ok(None)` when more bytes are needed, an error
/// when a name or value is announced longer than `limit`.
pub fn parse_pair(input: &[u8], limit: usize) -> Result<Option<Pair<'_>>, NvError> {
    let lengths = match nv_lengths(input) {
        Ok(v) => v,
        Err(nom::Err::Incomplete(_)) => return Ok(None),
        // Every byte sequence is a valid length prefix: only Incomplete can happen.
        Err(_) => return Ok(None),
    };
    let (rest, (name_len, value_len)) = lengths;
    for length in [name_len, value_len] {
        if length as usize > limit {
            return Err(NvError::TooLong { length, limit });
        }
    }
    match nv_data(rest, name_len, value_len) {
        Ok((after, (name, value))) => Ok(Some(Pair {
            name,
            value,
            len: input.len() - after.len(),
        })),
        Err(_) => Ok(None),
    }
}

/// Parses a complete stream of pairs into `(name, value)` slices of `stream` (no copy).
/// A pair cut short at the end is [`NvError::Truncated`]; no name or value may exceed `limit`.
pub fn parse_all(stream: &Bytes, limit: usize) -> Result<Vec<(Bytes, Bytes)>, NvError> {
    pairs(stream, limit).collect()
}

/// The pairs of a complete stream one by one, as [`parse_all`] gives them, without
/// collecting them: after an error, nothing more.
pub fn pairs(stream: &Bytes, limit: usize) -> Pairs<'_> {
    Pairs {
        stream,
        at: 0,
        limit,
    }
}

/// Iterator over the pairs of a complete stream: see [`pairs`].
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    stream: &'a Bytes,
    at: usize,
    limit: usize,
}

impl Iterator for Pairs<'_> {
    type Item = Result<(Bytes, Bytes), NvError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.stream.get(self.at..).filter(|r| !r.is_empty())?;
        let item = match parse_pair(rest, self.limit) {
            Ok(Some(pair)) => {
                self.at += pair.len;
                return Some(Ok((
                    self.stream.slice_ref(pair.name),
                    self.stream.slice_ref(pair.value),
                )));
            }
            Ok(None) => Err(NvError::Truncated),
            Err(e) => Err(e),
        };
        self.at = self.stream.len();
        Some(item)
    }
}

/// Appends one pair, with 1-byte lengths where they fit.
///
/// Names and values longer than [`NV_LONG_MAX`] cannot be encoded; they are cut there (a
/// caller bug: nothing we send comes close).
pub fn put_pair(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    let name = &name[..name.len().min(NV_LONG_MAX)];
    let value = &value[..value.len().min(NV_LONG_MAX)];
    out.reserve(encoded_len(name, value));
    put_length(out, name.len());
    put_length(out, value.len());
    out.put_slice(name);
    out.put_slice(value);
}

/// The bytes [`put_pair`] appends.
pub fn encoded_len(name: &[u8], value: &[u8]) -> usize {
    let len_of = |n: usize| if n <= NV_SHORT_MAX { 1 } else { 4 };
    len_of(name.len()) + len_of(value.len()) + name.len() + value.len()
}

fn put_length(out: &mut BytesMut, len: usize) {
    if len <= NV_SHORT_MAX {
        out.put_u8(len as u8);
    } else {
        out.put_u32(len as u32 | 0x8000_0000);
    }
}

fn nv_length(input: &[u8]) -> IResult<&[u8], u32> {
    let (_, first) = be_u8(input)?;
    if first >> 7 == 0 {
        let (rest, b0) = be_u8(input)?;
        Ok((rest, u32::from(b0)))
    } else {
        let (rest, b) = be_u32(input)?;
        Ok((rest, b & 0x7fff_ffff))
    }
}

fn nv_lengths(input: &[u8]) -> IResult<&[u8], (u32, u32)> {
    let (rest, name_len) = nv_length(input)?;
    let (rest, value_len) = nv_length(rest)?;
    Ok((rest, (name_len, value_len)))
}

fn nv_data(input: &[u8], name_len: u32, value_len: u32) -> IResult<&[u8], (&[u8], &[u8])> {
    let (rest, name) = take(name_len)(input)?;
    let (rest, value) = take(value_len)(rest)?;
    Ok((rest, (name, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pair from the spec's example in appendix B: `\013\002SERVER_PORT80`.
    const SPEC_PAIR: &[u8] = b"\x0b\x02SERVER_PORT80";

    fn parse_every_way(stream: &[u8]) -> Result<Vec<(Bytes, Bytes)>, NvError> {
        let whole = parse_all(&Bytes::copy_from_slice(stream), 1 << 20);
        // Every prefix that ends inside a pair asks for more, or parses the same pairs.
        let mut at = 0;
        while at < stream.len() {
            let pair = parse_pair(&stream[at..], 1 << 20);
            let Ok(Some(pair)) = pair else { break };
            for cut in 0..pair.len {
                assert_eq!(
                    parse_pair(&stream[at..at + cut], 1 << 20),
                    Ok(None),
                    "cut {cut}"
                );
            }
            at += pair.len;
        }
        whole
    }

    #[test]
    fn pairs_one_by_one_then_nothing_after_an_error() {
        let good = [SPEC_PAIR, b"\x01\x00A"].concat();
        let stream = Bytes::from([&good[..], b"\x05\x01ab"].concat());
        let mut it = pairs(&stream, 1 << 20);
        assert_eq!(
            it.next(),
            Some(Ok((Bytes::from("SERVER_PORT"), Bytes::from("80"))))
        );
        assert_eq!(it.next(), Some(Ok((Bytes::from("A"), Bytes::new()))));
        assert_eq!(it.next(), Some(Err(NvError::Truncated)));
        assert_eq!(it.next(), None);
        let all: Result<Vec<_>, _> = pairs(&Bytes::from(good), 1 << 20).collect();
        assert_eq!(all.unwrap().len(), 2);
        assert_eq!(pairs(&Bytes::new(), 10).next(), None);
    }

    #[test]
    fn one_byte_lengths_from_spec() {
        let pairs = parse_every_way(SPEC_PAIR).unwrap();
        assert_eq!(pairs, vec![(Bytes::from("SERVER_PORT"), Bytes::from("80"))]);
        let two = [SPEC_PAIR, b"\x0b\x0eSERVER_ADDR199.170.183.42"].concat();
        let pairs = parse_every_way(&two).unwrap();
        assert_eq!(pairs[1].1, Bytes::from("199.170.183.42"));
    }

    #[test]
    fn four_byte_lengths() {
        // FCGI_NameValuePair14: 1-byte name length, 4-byte value length of 200.
        let value = vec![b'v'; 200];
        let mut stream = vec![1, 0x80, 0, 0, 200, b'N'];
        stream.extend_from_slice(&value);
        let pairs = parse_every_way(&stream).unwrap();
        assert_eq!(pairs, vec![(Bytes::from("N"), Bytes::from(value.clone()))]);
        // FCGI_NameValuePair41 and 44, including a 4-byte encoding of a short length.
        let stream = [
            &[0x80, 0, 0, 2, 0][..],
            b"AB",
            &[0x80, 0, 0, 1, 0x80, 0, 0, 1],
            b"xy",
        ]
        .concat();
        let pairs = parse_every_way(&stream).unwrap();
        assert_eq!(pairs[0], (Bytes::from("AB"), Bytes::new()));
        assert_eq!(pairs[1], (Bytes::from("x"), Bytes::from("y")));
    }

    #[test]
    fn truncated_and_too_long() {
        assert_eq!(
            parse_every_way(b"\x0b\x02SERVER_PORT8"),
            Err(NvError::Truncated)
        );
        assert_eq!(parse_every_way(b"\x0b"), Err(NvError::Truncated));
        // A 2 GiB value is refused from its length alone.
        assert_eq!(
            parse_pair(&[1, 0xff, 0xff, 0xff, 0xff], 1000),
            Err(NvError::TooLong {
                length: 0x7fff_ffff,
                limit: 1000
            })
        );
        assert_eq!(parse_all(&Bytes::new(), 10), Ok(vec![]));
    }

    #[test]
    fn encode_round_trips_and_picks_short_lengths() {
        let mut out = BytesMut::new();
        put_pair(&mut out, b"SERVER_PORT", b"80");
        assert_eq!(&out[..], SPEC_PAIR);
        let long = vec![b'x'; 128];
        put_pair(&mut out, &long, b"");
        assert_eq!(out.len(), SPEC_PAIR.len() + encoded_len(&long, b""));
        assert_eq!(
            &out[SPEC_PAIR.len()..SPEC_PAIR.len() + 5],
            &[0x80, 0, 0, 128, 0]
        );
        let pairs = parse_all(&out.freeze(), 1000).unwrap();
        assert_eq!(pairs[1].0.len(), 128);
    }
}
