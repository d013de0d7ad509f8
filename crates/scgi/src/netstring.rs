//! The SCGI request head on the wire: a netstring of NUL-terminated name/value pairs.
//!
//! SCGI specification, section 3:
//!
//! ```text
//! headers ::= header*
//! header  ::= name NUL value NUL
//! name    ::= notnull+
//! value   ::= notnull*
//! notnull ::= <01> | <02> | <03> | ... | <ff>
//! NUL     ::= <00>
//! ```
//!
//! "The headers are sent encoded as a netstring": `<len>":"<headers>","`, where `<len>` is the
//! decimal length of `<headers>` without leading zeros. This module only frames and splits; the
//! rules on names (CONTENT_LENGTH first, SCGI=1, no duplicates) are in [`crate::head`].
//!
//! The grammar is written with nom; nom's types stay inside this module.

use std::ops::Range;

use bytes::{BufMut, BytesMut};
use nom::bytes::complete::{tag, take_till, take_while};
use nom::multi::many0;
use nom::sequence::{terminated, tuple};
use nom::IResult;

use crate::error::{Error, Excerpt, LimitError, PeerError};

/// Where the header block sits in the input, once the whole netstring is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Framed {
    /// The bytes between `:` and `,`.
    pub(crate) block: Range<usize>,
    /// The bytes of the whole netstring, `,` included.
    pub(crate) consumed: usize,
}

/// Finds the netstring at the start of `buf`.
///
/// `Ok(None)` means "more bytes needed". The announced length is checked against `limit` as soon
/// as its digits show it is too long, before any of the block is buffered.
pub(crate) fn frame(buf: &[u8], limit: usize) -> Result<Option<Framed>, Error> {
    let (digits, rest) = split_digits(buf);
    if digits.is_empty() {
        return match rest.first() {
            None => Ok(None),
            Some(_) => Err(PeerError::LengthNotDigits(Excerpt::new(rest)).into()),
        };
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return Err(PeerError::LengthLeadingZero.into());
    }
    // More digits may follow, which only makes the length larger: check the limit now.
    let announced = decimal(digits);
    if announced > limit as u64 {
        return Err(LimitError::HeaderBytes { announced, limit }.into());
    }
    let Some(&sep) = rest.first() else {
        return Ok(None);
    };
    if sep != b':' {
        return Err(PeerError::MissingColon(Excerpt::new(rest)).into());
    }
    let start = digits.len() + 1;
    // `announced <= limit`, a usize, so the sums below cannot overflow on any sane limit.
    let end = start.saturating_add(announced as usize);
    let Some(&comma) = buf.get(end) else {
        return Ok(None);
    };
    if comma != b',' {
        return Err(PeerError::MissingComma(Excerpt::new(&buf[end..])).into());
    }
    Ok(Some(Framed {
        block: start..end,
        consumed: end + 1,
    }))
}

/// The leading ASCII digits of `buf` and the rest.
fn split_digits(buf: &[u8]) -> (&[u8], &[u8]) {
    let parsed: IResult<&[u8], &[u8]> = take_while(|b: u8| b.is_ascii_digit())(buf);
    match parsed {
        Ok((rest, digits)) => (digits, rest),
        // `take_while` on complete input accepts zero bytes; it cannot fail.
        Err(_) => (&[], buf),
    }
}

/// The value of ASCII digits, saturating at `u64::MAX` (any such value is over every limit).
fn decimal(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

/// One `(name, value)` header, borrowed from the block.
pub(crate) type Pair<'a> = (&'a [u8], &'a [u8]);

/// One `name NUL value NUL` pair.
fn pair(input: &[u8]) -> IResult<&[u8], Pair<'_>> {
    tuple((
        terminated(take_till(|b| b == 0), tag(b"\0")),
        terminated(take_till(|b| b == 0), tag(b"\0")),
    ))(input)
}

/// Splits a complete header block into its `(name, value)` pairs, in order.
///
/// Empty values are allowed (`value ::= notnull*`), empty names are not.
pub(crate) fn pairs(block: &[u8]) -> Result<Vec<Pair<'_>>, PeerError> {
    let parsed: IResult<&[u8], Vec<Pair<'_>>> = many0(pair)(block);
    let (rest, pairs) = parsed.map_err(|_| PeerError::UnterminatedHeader(Excerpt::new(block)))?;
    if !rest.is_empty() {
        return Err(PeerError::UnterminatedHeader(Excerpt::new(rest)));
    }
    if pairs.iter().any(|(name, _)| name.is_empty()) {
        return Err(PeerError::EmptyName);
    }
    Ok(pairs)
}

/// Appends `pairs` as an SCGI head netstring: the client side of [`crate::parse_head`].
///
/// The caller is responsible for the rules of section 3 (CONTENT_LENGTH first, SCGI=1, no
/// duplicate names, no NUL inside names or values); this only encodes.
pub fn encode_head<'a, I>(pairs: I, out: &mut BytesMut)
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let pairs: Vec<(&[u8], &[u8])> = pairs.into_iter().collect();
    let len: usize = pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let prefix = len.to_string();
    out.reserve(prefix.len() + len + 2);
    out.put_slice(prefix.as_bytes());
    out.put_u8(b':');
    for (name, value) in pairs {
        out.put_slice(name);
        out.put_u8(0);
        out.put_slice(value);
        out.put_u8(0);
    }
    out.put_u8(b',');
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1024;

    #[test]
    fn frames_the_spec_example() {
        let input = b"70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00\
REQUEST_URI\x00/deepthought\x00,What is the answer to life?";
        let f = frame(input, LIMIT).unwrap().unwrap();
        assert_eq!(f.block, 3..73);
        assert_eq!(&input[f.consumed..], b"What is the answer to life?");
        let p = pairs(&input[f.block]).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[3], (&b"REQUEST_URI"[..], &b"/deepthought"[..]));
    }

    #[test]
    fn prefixes_ask_for_more() {
        for input in [&b""[..], b"1", b"12", b"12:", b"3:a\x00b", b"0"] {
            assert!(matches!(frame(input, LIMIT), Ok(None)), "{input:?}");
        }
    }

    #[test]
    fn length_errors() {
        let err = |input: &[u8]| frame(input, LIMIT).unwrap_err().to_string();
        assert!(err(b"GET / HTTP/1.1\r\n").contains("not a number: \"GET / HTTP/1.1\\r\\n\""));
        assert!(err(b":x,").contains("not a number"));
        assert!(err(b"01:a,").contains("leading zero"));
        assert!(err(b"00").contains("leading zero"));
        assert!(err(b"12x").contains("not followed by ':'"));
        assert!(err(b"1:ab").contains("not followed by ','"));
        assert!(err(b"99999999999999999999999999:").contains("limit"));
        // Too long is known from the digits alone, before the colon.
        assert!(matches!(
            frame(b"1025", LIMIT),
            Err(Error::Limit(LimitError::HeaderBytes {
                announced: 1025,
                ..
            }))
        ));
        assert!(matches!(frame(b"1024", LIMIT), Ok(None)));
    }

    #[test]
    fn empty_netstring_frames() {
        assert_eq!(
            frame(b"0:,", LIMIT).unwrap(),
            Some(Framed {
                block: 2..2,
                consumed: 3
            })
        );
    }

    #[test]
    fn pair_errors() {
        assert_eq!(pairs(b"").unwrap(), vec![]);
        assert_eq!(
            pairs(b"A\x00\x00").unwrap(),
            vec![(&b"A"[..], &b""[..])],
            "empty values are allowed"
        );
        assert_eq!(pairs(b"\x00v\x00"), Err(PeerError::EmptyName));
        assert!(matches!(
            pairs(b"A\x00v"),
            Err(PeerError::UnterminatedHeader(_))
        ));
        assert!(matches!(
            pairs(b"A\x00v\x00B"),
            Err(PeerError::UnterminatedHeader(_))
        ));
    }

    #[test]
    fn encode_frames_back() {
        let mut out = BytesMut::new();
        let pairs_in: [(&[u8], &[u8]); 2] = [(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")];
        encode_head(pairs_in, &mut out);
        assert_eq!(&out[..], b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,");
        let f = frame(&out, LIMIT).unwrap().unwrap();
        assert_eq!(f.consumed, out.len());
        assert_eq!(pairs(&out[f.block]).unwrap(), pairs_in.to_vec());
    }
}
