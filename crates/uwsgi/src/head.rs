//! The rules of a uwsgi request's vars, turning a framed vars block into the request's CGI
//! meta-variables.
//!
//! - `CONTENT_LENGTH` gives the body length; absent or empty (nginx's stock `uwsgi_params`
//!   send `$content_length`, empty for a GET) means no body.
//! - A repeated `HTTP_*` name (nginx before 1.23 sends one var per request header line) is
//!   joined in order with `", "` (`"; "` for `HTTP_COOKIE`), as the SCGI and FastCGI front
//!   ends do; any other repeated name is refused.
//! - uWSGI's *magic variables* (every name starting with `UWSGI_`: `UWSGI_FILE`,
//!   `UWSGI_SCRIPT`, `UWSGI_CHDIR`, `UWSGI_APPID`, `UWSGI_SCHEME`, `UWSGI_SETENV`, ...) tell
//!   uWSGI itself to load code, change directory, set its environment: exposed, that made the
//!   uwsgi protocol a remote-code-execution door. They are **dropped**: never acted on, never
//!   passed to the app (so no app can mistake them for its own), and named in one `debug` log
//!   line. The scheme comes from `HTTPS` (stock `uwsgi_params`: `uwsgi_param HTTPS $https
//!   if_not_empty`).
//! - No `SCRIPT_NAME` is needed: stock `uwsgi_params` send `PATH_INFO` only, and the
//!   dispatcher splits the path at the app's mount.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use bytes::Bytes;
use gatehouse_channel_request::env::{parse_decimal, CONTENT_LENGTH, REQUEST_METHOD};
use gatehouse_channel_request::Env;

use crate::error::{Error, Excerpt, PeerError};
use crate::packet::{self, Pair, HEADER_LEN};

/// The prefix of uWSGI's magic variables, which are dropped.
pub const MAGIC_PREFIX: &[u8] = b"UWSGI_";

/// A parsed and checked request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Every var as a CGI meta-variable, in the peer's order, the magic ones left out.
    pub env: Env,
    /// The body length `CONTENT_LENGTH` announces (0 when absent or empty).
    pub content_length: u64,
    /// The names of the magic variables dropped, for the log line.
    pub dropped: Vec<Bytes>,
}

/// Parses the request packet at the start of `buf`: sans-io, for any split of the input.
///
/// Returns `Ok(Some((head, consumed)))` once the header and the whole vars block are there (the
/// body starts at `buf[consumed..]`), `Ok(None)` when more bytes are needed, or the error that
/// makes the input a bad request. `modifier1` and `max_vars_bytes` are checked on the first
/// 4 bytes, before the vars are buffered.
pub fn parse_head(
    buf: &[u8],
    max_vars_bytes: usize,
) -> Result<Option<(RequestHead, usize)>, Error> {
    let Some(framed) = packet::frame(buf, max_vars_bytes)? else {
        return Ok(None);
    };
    let block = Bytes::copy_from_slice(&buf[HEADER_LEN..framed.consumed]);
    Ok(Some((RequestHead::from_block(&block)?, framed.consumed)))
}

impl RequestHead {
    /// Checks a complete vars block and builds the head. Values share `block`'s memory (except
    /// joined repeats).
    pub fn from_block(block: &Bytes) -> Result<Self, PeerError> {
        let pairs = packet::pairs(block)?;
        let (env, dropped) = build_env(block, pairs)?;
        if !env.contains(REQUEST_METHOD) {
            return Err(PeerError::MissingMethod);
        }
        let content_length = match env.get(CONTENT_LENGTH) {
            None => 0,
            Some(v) if v.is_empty() => 0,
            Some(v) => {
                parse_decimal(v).ok_or_else(|| PeerError::BadContentLength(Excerpt::new(v)))?
            }
        };
        Ok(Self {
            env,
            content_length,
            dropped,
        })
    }

    /// The head as `(name, value)` pairs in wire order, for [`crate::encode_packet`].
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.env.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }
}

/// The [`Env`] of the pairs and the magic names dropped. A map, not a scan: a 64 KiB block can
/// hold 16 000 pairs.
fn build_env(block: &Bytes, pairs: Vec<Pair<'_>>) -> Result<(Env, Vec<Bytes>), PeerError> {
    let mut index: HashMap<&[u8], usize> = HashMap::with_capacity(pairs.len());
    let mut vars: Vec<(&[u8], Vec<&[u8]>)> = Vec::with_capacity(pairs.len());
    let mut dropped = Vec::new();
    for (name, value) in pairs {
        if name.starts_with(MAGIC_PREFIX) {
            dropped.push(block.slice_ref(name));
            continue;
        }
        match index.entry(name) {
            Entry::Vacant(slot) => {
                slot.insert(vars.len());
                vars.push((name, vec![value]));
            }
            Entry::Occupied(slot) if name.starts_with(b"HTTP_") => {
                vars[*slot.get()].1.push(value);
            }
            Entry::Occupied(_) => return Err(PeerError::DuplicateName(Excerpt::new(name))),
        }
    }
    let mut env = Env::with_capacity(vars.len());
    for (name, values) in vars {
        let value = match values.as_slice() {
            [one] => block.slice_ref(one),
            many => {
                let sep: &[u8] = if name == b"HTTP_COOKIE" { b"; " } else { b", " };
                Bytes::from(many.join(sep))
            }
        };
        env.push_unchecked(block.slice_ref(name), value);
    }
    Ok((env, dropped))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::packet::encode_packet;

    fn encoded(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_packet(
            pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &mut out,
        );
        out.to_vec()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<RequestHead, String> {
        let input = encoded(pairs);
        match parse_head(&input, 65535) {
            Ok(Some((head, n))) if n == input.len() => Ok(head),
            Ok(other) => Err(format!("{other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn nginx_stock_params() {
        let head = parse(&[
            ("QUERY_STRING", "a=1"),
            ("REQUEST_METHOD", "GET"),
            ("CONTENT_TYPE", ""),
            ("CONTENT_LENGTH", ""),
            ("PATH_INFO", "/x"),
            ("HTTP_HOST", "h"),
        ])
        .unwrap();
        assert_eq!(head.content_length, 0);
        assert_eq!(head.env.path_info(), b"/x");
        assert_eq!(head.env.len(), 6);
        assert!(head.dropped.is_empty());
        let post = parse(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "12")]).unwrap();
        assert_eq!(post.content_length, 12);
    }

    #[test]
    fn repeated_headers_join_others_refused() {
        let head = parse(&[
            ("REQUEST_METHOD", "GET"),
            ("HTTP_X_A", "1"),
            ("HTTP_COOKIE", "a=1"),
            ("HTTP_X_A", "2"),
            ("HTTP_COOKIE", "b=2"),
        ])
        .unwrap();
        assert_eq!(head.env.get("HTTP_X_A").unwrap(), "1, 2");
        assert_eq!(head.env.get("HTTP_COOKIE").unwrap(), "a=1; b=2");
        let err = parse(&[("REQUEST_METHOD", "GET"), ("REQUEST_METHOD", "PUT")]).unwrap_err();
        assert!(err.contains("duplicate var \"REQUEST_METHOD\""), "{err}");
    }

    #[test]
    fn magic_variables_are_dropped() {
        let head = parse(&[
            ("UWSGI_FILE", "/tmp/evil.py"),
            ("REQUEST_METHOD", "GET"),
            ("UWSGI_CHDIR", "/"),
            ("UWSGI_FILE", "/again"),
        ])
        .unwrap();
        assert_eq!(head.env.len(), 1);
        assert_eq!(head.dropped, ["UWSGI_FILE", "UWSGI_CHDIR", "UWSGI_FILE"]);
    }

    #[test]
    fn bad_heads() {
        let cl = parse(&[("REQUEST_METHOD", "GET"), ("CONTENT_LENGTH", "-1")]).unwrap_err();
        assert!(
            cl.contains("CONTENT_LENGTH is not a number: \"-1\""),
            "{cl}"
        );
        let m = parse(&[("PATH_INFO", "/")]).unwrap_err();
        assert!(m.contains("no REQUEST_METHOD"), "{m}");
    }
}
