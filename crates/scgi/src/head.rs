//! The rules of an SCGI request head (section 3), turning a framed header block into the
//! request's CGI meta-variables.
//!
//! "Duplicate names are not allowed in the headers. The first header must have the name
//! `CONTENT_LENGTH` and a value that is a nonempty sequence of ASCII digits giving the length of
//! the body in decimal. The `CONTENT_LENGTH` header must always be present, even if its value is
//! `0`. There must also always be a header with the name `SCGI` and a value of `1`."

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use bytes::Bytes;
use gatehouse_channel_request::env::{parse_decimal, CONTENT_LENGTH};
use gatehouse_channel_request::Env;

use crate::error::{Error, Excerpt, PeerError};
use crate::netstring::{self, Pair};

/// The `SCGI` header name.
pub const SCGI: &str = "SCGI";
/// The only `SCGI` header value the specification defines.
pub const SCGI_VERSION: &[u8] = b"1";

/// What to do with a header name that appears twice in a head.
///
/// The specification forbids duplicates, but nginx before 1.23 (Debian 12 ships 1.22) sends one
/// `HTTP_*` pair per request header line: a repeated header (or the several `cookie` fields an
/// HTTP/2 browser sends) arrives as a duplicate name. nginx 1.23 and later join them itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Duplicates {
    /// Refuse the request: "Duplicate names are not allowed in the headers" (section 3).
    Reject,
    /// Join the values of a repeated `HTTP_*` name in order, with `", "` (RFC 9110 section 5.3),
    /// or `"; "` for `HTTP_COOKIE` (RFC 9113 section 8.2.3), as nginx 1.23 does. Any other
    /// repeated name is still refused. The default: users run Debian's nginx 1.22, and the
    /// FastCGI and HTTP front ends give the app the same joined value.
    #[default]
    JoinHttpHeaders,
}

/// A parsed and checked request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Every header as a CGI meta-variable, in the peer's order (`CONTENT_LENGTH` and `SCGI`
    /// included).
    pub env: Env,
    /// The body length `CONTENT_LENGTH` announces.
    pub content_length: u64,
}

/// Parses the request head at the start of `buf`: sans-io, for any split of the input.
/// Duplicate names are refused ([`Duplicates::Reject`]).
///
/// Returns `Ok(Some((head, consumed)))` once the whole netstring is there (`consumed` counts it,
/// the `,` included; the body starts at `buf[consumed..]`), `Ok(None)` when more bytes are
/// needed, or the error that makes the input a bad request. `max_header_bytes` limits the
/// netstring's announced length and is enforced before the block is buffered.
pub fn parse_head(
    buf: &[u8],
    max_header_bytes: usize,
) -> Result<Option<(RequestHead, usize)>, Error> {
    let Some(framed) = netstring::frame(buf, max_header_bytes)? else {
        return Ok(None);
    };
    let bytes = Bytes::copy_from_slice(&buf[..framed.consumed]);
    let head = RequestHead::from_block(&bytes.slice(framed.block), Duplicates::Reject)?;
    Ok(Some((head, framed.consumed)))
}

impl RequestHead {
    /// Checks a complete header block (the netstring's content) and builds the head. Values
    /// share `block`'s memory (except joined duplicates).
    pub fn from_block(block: &Bytes, duplicates: Duplicates) -> Result<Self, PeerError> {
        let pairs = netstring::pairs(block)?;
        let content_length = check_content_length(&pairs)?;
        check_scgi(&pairs)?;
        let env = build_env(block, pairs, duplicates)?;
        Ok(Self {
            env,
            content_length,
        })
    }

    /// The head as `(name, value)` pairs in wire order, for [`crate::encode_head`].
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.env.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }
}

/// `CONTENT_LENGTH` must come first and be a non-empty run of ASCII digits.
fn check_content_length(pairs: &[Pair<'_>]) -> Result<u64, PeerError> {
    let Some(&(first, value)) = pairs.first() else {
        return Err(PeerError::MissingContentLength);
    };
    if first != CONTENT_LENGTH.as_bytes() {
        let present = pairs.iter().any(|(n, _)| *n == CONTENT_LENGTH.as_bytes());
        return Err(if present {
            PeerError::ContentLengthNotFirst(Excerpt::new(first))
        } else {
            PeerError::MissingContentLength
        });
    }
    parse_decimal(value).ok_or_else(|| PeerError::BadContentLength(Excerpt::new(value)))
}

/// A name's values in order: the first, and any repeats [`Duplicates`] lets through.
struct Values<'a> {
    first: &'a [u8],
    more: Vec<&'a [u8]>,
}

/// The [`Env`] of the pairs, refusing or joining repeated names. A map, not a scan: a 64 KiB
/// block can hold 20 000 pairs.
fn build_env(
    block: &Bytes,
    pairs: Vec<Pair<'_>>,
    duplicates: Duplicates,
) -> Result<Env, PeerError> {
    let mut index: HashMap<&[u8], usize> = HashMap::with_capacity(pairs.len());
    let mut vars: Vec<(&[u8], Values<'_>)> = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        match index.entry(name) {
            Entry::Vacant(slot) => {
                slot.insert(vars.len());
                let values = Values {
                    first: value,
                    more: Vec::new(),
                };
                vars.push((name, values));
            }
            Entry::Occupied(slot) => {
                let joinable =
                    duplicates == Duplicates::JoinHttpHeaders && name.starts_with(b"HTTP_");
                if !joinable {
                    return Err(PeerError::DuplicateName(Excerpt::new(name)));
                }
                vars[*slot.get()].1.more.push(value);
            }
        }
    }
    let mut env = Env::with_capacity(vars.len());
    for (name, values) in vars {
        let value = if values.more.is_empty() {
            block.slice_ref(values.first)
        } else {
            let sep: &[u8] = if name == b"HTTP_COOKIE" { b"; " } else { b", " };
            let mut joined = values.first.to_vec();
            for more in values.more {
                joined.extend_from_slice(sep);
                joined.extend_from_slice(more);
            }
            Bytes::from(joined)
        };
        env.push_unchecked(block.slice_ref(name), value);
    }
    Ok(env)
}

/// `SCGI` must be present with the value `1`.
fn check_scgi(pairs: &[Pair<'_>]) -> Result<(), PeerError> {
    match pairs.iter().find(|(n, _)| *n == SCGI.as_bytes()) {
        None => Err(PeerError::MissingScgi),
        Some((_, v)) if *v == SCGI_VERSION => Ok(()),
        Some((_, v)) => Err(PeerError::BadScgiVersion(Excerpt::new(v))),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::encode_head;
    use crate::error::LimitError;

    const LIMIT: usize = 64 * 1024;

    fn encoded(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_head(
            pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &mut out,
        );
        out.to_vec()
    }

    /// The error's variant without the peer bytes it quotes (a prefix quotes fewer of them).
    pub(crate) fn kind(e: &Error) -> String {
        let variant = |debug: String| {
            let end = debug.find(['(', ' ', '{']).unwrap_or(debug.len());
            debug[..end].to_string()
        };
        match e {
            Error::Peer(p) => format!("peer:{}", variant(format!("{p:?}"))),
            Error::Limit(l) => format!("limit:{}", variant(format!("{l:?}"))),
            other => variant(format!("{other:?}")),
        }
    }

    type Parsed = Result<Option<(RequestHead, usize)>, String>;

    /// Parses `input` whole, then every prefix (each must ask for more or fail the same way),
    /// then one byte more at a time as a growing buffer would. Errors are returned as text.
    fn parse_every_split(input: &[u8]) -> Parsed {
        let whole = parse_head(input, LIMIT);
        let whole_kind = whole.as_ref().err().map(kind);
        for cut in 0..input.len() {
            match parse_head(&input[..cut], LIMIT) {
                Ok(None) => {}
                Ok(some) => assert_eq!(whole.as_ref().ok(), Some(&some), "prefix of {cut} bytes"),
                Err(e) => assert_eq!(Some(kind(&e)), whole_kind, "prefix of {cut} bytes"),
            }
        }
        let mut grown = Vec::new();
        let mut answer = Ok(None);
        for &b in input {
            grown.push(b);
            answer = parse_head(&grown, LIMIT);
            if !matches!(answer, Ok(None)) {
                break;
            }
        }
        match (&answer, &whole) {
            (Ok(a), Ok(w)) => assert_eq!(a, w, "one byte at a time"),
            (a, _) => assert_eq!(a.as_ref().err().map(kind), whole_kind, "one byte at a time"),
        }
        whole.map_err(|e| e.to_string())
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        let input = encoded(pairs);
        parse_every_split(&input).unwrap_err()
    }

    #[test]
    fn spec_example() {
        let input = b"70:CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00\
REQUEST_URI\x00/deepthought\x00,What is the answer to life?";
        let (head, used) = parse_every_split(input).unwrap().unwrap();
        assert_eq!(used, 74);
        assert_eq!(head.content_length, 27);
        assert_eq!(head.env.method(), b"POST");
        assert_eq!(head.env.get("REQUEST_URI").unwrap(), "/deepthought");
        assert_eq!(head.env.get("SCGI").unwrap(), "1");
        assert_eq!(head.env.content_length(), Ok(Some(27)));
    }

    #[test]
    fn nginx_captures() {
        let get = include_bytes!("../fixtures/captures/nginx-get.bin");
        let (head, used) = parse_every_split(get).unwrap().unwrap();
        assert_eq!(used, get.len());
        assert_eq!(head.content_length, 0);
        assert_eq!(head.env.method(), b"GET");
        assert_eq!(head.env.get("REQUEST_URI").unwrap(), "/app/hello?x=1");
        assert_eq!(
            head.env.get("CONTENT_TYPE").unwrap(),
            "",
            "nginx sends empty values"
        );
        assert_eq!(head.env.header("user-agent").unwrap(), "capture");

        let post = include_bytes!("../fixtures/captures/nginx-post.bin");
        let (head, used) = parse_every_split(post).unwrap().unwrap();
        assert_eq!(&post[used..], b"hello body");
        assert_eq!(head.content_length, 10);
        assert_eq!(head.env.get("CONTENT_TYPE").unwrap(), "text/plain");
    }

    #[test]
    fn nginx_like_head_with_empty_values() {
        let input = encoded(&[
            ("CONTENT_LENGTH", "0"),
            ("SCGI", "1"),
            ("REQUEST_METHOD", "GET"),
            ("CONTENT_TYPE", ""),
            ("HTTP_X_A", "\u{e9}t\u{e9}"),
        ]);
        let (head, used) = parse_every_split(&input).unwrap().unwrap();
        assert_eq!(used, input.len());
        assert_eq!(head.content_length, 0);
        assert_eq!(head.env.get("CONTENT_TYPE").unwrap(), "");
        let again: Vec<_> = head.pairs().collect();
        let mut out = BytesMut::new();
        encode_head(again, &mut out);
        assert_eq!(&out[..], &input[..], "re-encoding gives the same bytes");
    }

    #[test]
    fn rule_violations() {
        let base = [("CONTENT_LENGTH", "3"), ("SCGI", "1")];
        assert!(err(&[("SCGI", "1")]).contains("no CONTENT_LENGTH"));
        assert!(err(&[]).contains("no CONTENT_LENGTH"));
        assert!(err(&[("SCGI", "1"), ("CONTENT_LENGTH", "0")]).contains("first header is \"SCGI\""));
        assert!(err(&[("CONTENT_LENGTH", ""), ("SCGI", "1")]).contains("not a number: \"\""));
        assert!(err(&[("CONTENT_LENGTH", "-1"), ("SCGI", "1")]).contains("not a number"));
        assert!(err(&[("CONTENT_LENGTH", " 1"), ("SCGI", "1")]).contains("not a number"));
        assert!(
            err(&[("CONTENT_LENGTH", "18446744073709551616"), ("SCGI", "1")])
                .contains("not a number")
        );
        assert!(err(&[("CONTENT_LENGTH", "0")]).contains("no SCGI header"));
        assert!(err(&[("CONTENT_LENGTH", "0"), ("SCGI", "2")]).contains("SCGI header is \"2\""));
        let dup = [base[0], base[1], ("HTTP_X", "a"), ("HTTP_X", "b")];
        assert!(err(&dup).contains("duplicate header \"HTTP_X\""));
        let dup_cl = [base[0], base[1], ("CONTENT_LENGTH", "3")];
        assert!(err(&dup_cl).contains("duplicate header \"CONTENT_LENGTH\""));
    }

    #[test]
    fn duplicates_joined_on_request() {
        let input = encoded(&[
            ("CONTENT_LENGTH", "0"),
            ("SCGI", "1"),
            ("HTTP_X", "a"),
            ("HTTP_COOKIE", "c=1"),
            ("HTTP_Y", "y"),
            ("HTTP_X", "b"),
            ("HTTP_COOKIE", "d=2"),
            ("HTTP_X", ""),
        ]);
        let f = netstring::frame(&input, LIMIT).unwrap().unwrap();
        let block = Bytes::copy_from_slice(&input[f.block]);
        assert!(RequestHead::from_block(&block, Duplicates::Reject).is_err());
        let head = RequestHead::from_block(&block, Duplicates::JoinHttpHeaders).unwrap();
        let vars: Vec<_> = head.pairs().skip(2).collect();
        assert_eq!(
            vars,
            [
                (&b"HTTP_X"[..], &b"a, b, "[..]),
                (b"HTTP_COOKIE", b"c=1; d=2"),
                (b"HTTP_Y", b"y")
            ]
        );
        let dup_method = encoded(&[
            ("CONTENT_LENGTH", "0"),
            ("SCGI", "1"),
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_METHOD", "POST"),
        ]);
        let f = netstring::frame(&dup_method, LIMIT).unwrap().unwrap();
        let block = Bytes::copy_from_slice(&dup_method[f.block]);
        assert!(matches!(
            RequestHead::from_block(&block, Duplicates::JoinHttpHeaders),
            Err(PeerError::DuplicateName(_))
        ));
    }

    #[test]
    fn framing_violations() {
        let cases: [(&[u8], &str); 5] = [
            (
                b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;",
                "not followed by ','",
            ),
            (b"24;", "not followed by ':'"),
            (b"024:", "leading zero"),
            (b"POST / HTTP/1.1\r\n", "not a number"),
            (b"5:A\x00bcd,", "not NUL-terminated"),
        ];
        for (input, want) in cases {
            let got = parse_every_split(input).unwrap_err();
            assert!(got.contains(want), "{input:?}: {got}");
        }
    }

    #[test]
    fn limit_is_checked_before_buffering() {
        let input = b"65537:CONTENT_LENGTH";
        assert!(matches!(
            parse_head(&input[..5], LIMIT),
            Err(Error::Limit(LimitError::HeaderBytes { .. }))
        ));
        assert!(parse_every_split(input)
            .unwrap_err()
            .contains("limit exceeded"));
        // A block of exactly the limit is accepted.
        // 24 bytes of CONTENT_LENGTH and SCGI, 3 of "F\0" and the final NUL.
        let filler = "x".repeat(LIMIT - 24 - 3);
        let input = encoded(&[("CONTENT_LENGTH", "0"), ("SCGI", "1"), ("F", &filler)]);
        assert!(parse_head(&input, LIMIT).unwrap().is_some());
        assert!(parse_head(&input, LIMIT - 1).is_err());
    }
}
