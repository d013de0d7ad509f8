//! The request head of a CGI invocation: the process environment as meta-variables
//! (RFC 3875 section 4.1), checked for what the body needs.
//!
//! "Meta-variables are passed to the script in identically named environment variables"
//! (RFC 3875 section 4.1). Every variable becomes part of the request's [`Env`], as bytes
//! (nothing promises UTF-8), so an app sees what a FastCGI or SCGI app would see plus the
//! process environment (`PATH`, `HOME`, ...) that the web server passes on.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use bytes::Bytes;
use gatehouse_channel_request::env::{percent_decode, GATEWAY_INTERFACE, REQUEST_METHOD};
use gatehouse_channel_request::Env;

use crate::error::Error;

/// The request's meta-variables, in the order given; a repeated name keeps its last value.
pub(crate) fn env_from_vars(vars: Vec<(OsString, OsString)>) -> Env {
    let mut env = Env::with_capacity(vars.len());
    for (name, value) in vars {
        env.set(Bytes::from(name.into_vec()), Bytes::from(value.into_vec()));
    }
    env
}

/// Checks what serving needs: a `REQUEST_METHOD`, and a `CONTENT_LENGTH` that is absent, empty
/// or a decimal number. Returns the body length: RFC 3875 section 4.2, "a request-body is
/// supplied with the request if the CONTENT_LENGTH is not NULL", so no `CONTENT_LENGTH` is no
/// body.
pub(crate) fn check(env: &Env) -> Result<u64, Error> {
    if env.get(REQUEST_METHOD).is_none_or(|m| m.is_empty()) {
        return Err(Error::MissingRequestMethod);
    }
    match env.content_length() {
        Ok(length) => Ok(length.unwrap_or(0)),
        Err(raw) => Err(Error::BadContentLength(raw.to_vec())),
    }
}

/// Whether `value` is a CGI/1.x `GATEWAY_INTERFACE` (RFC 3875 section 4.1.4:
/// `"CGI" "/" 1*digit "." 1*digit`, the name case-insensitive), major version 1.
pub fn is_cgi_gateway_interface(value: &OsStr) -> bool {
    let v = value.as_bytes();
    let Some(version) = v.get(4..).filter(|_| v[..4].eq_ignore_ascii_case(b"CGI/")) else {
        return false;
    };
    let Some((major, minor)) = version.split_first().and_then(|(&m, rest)| {
        let minor = rest.strip_prefix(b".")?;
        Some((m, minor))
    }) else {
        return false;
    };
    major == b'1' && !minor.is_empty() && minor.iter().all(u8::is_ascii_digit)
}

/// Whether this process looks like a CGI invocation: `GATEWAY_INTERFACE` is `CGI/1.x` in its
/// environment (every CGI/1.1 server sets it; RFC 3875 section 4.1.4).
pub fn is_cgi_environment() -> bool {
    std::env::var_os(GATEWAY_INTERFACE).is_some_and(|v| is_cgi_gateway_interface(&v))
}

/// The command-line arguments a web server may pass for `query` (RFC 3875 section 4.4, the
/// ISINDEX-style "search-string"): when the query holds no unencoded `=`, Apache's `mod_cgi`
/// splits it at `+` and passes the percent-decoded words as `argv[1..]`. `None` when the query
/// is empty or holds a `=` (then no argument comes from the query).
///
/// A binary whose command line names its app must ignore such arguments in CGI mode, or
/// `GET /cgi-bin/gatehouse?hello` would run the app `hello`:
///
/// ```
/// # use std::ffi::OsString;
/// let args: Vec<OsString> = vec!["hello".into(), "world".into()];
/// let from_query = gatehouse_cgi::isindex_args(b"hello+world");
/// assert_eq!(from_query.as_ref(), Some(&args)); // not ours: ignore them
/// ```
pub fn isindex_args(query: &[u8]) -> Option<Vec<OsString>> {
    if query.is_empty() || query.contains(&b'=') {
        return None;
    }
    let words = query
        .split(|&b| b == b'+')
        .filter(|w| !w.is_empty())
        .map(|w| OsString::from_vec(percent_decode(w)))
        .collect();
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(n, v)| (n.into(), v.into())).collect()
    }

    #[test]
    fn gateway_interface_versions() {
        for ok in ["CGI/1.1", "CGI/1.0", "cgi/1.1", "CGI/1.10"] {
            assert!(is_cgi_gateway_interface(OsStr::new(ok)), "{ok}");
        }
        for bad in [
            "", "CGI", "CGI/", "CGI/1", "CGI/1.", "CGI/2.0", "CGI/1.x", "FCGI/1.0", "CGI/11.1",
        ] {
            assert!(!is_cgi_gateway_interface(OsStr::new(bad)), "{bad}");
        }
        let non_utf8 = OsStr::from_bytes(b"CGI/1.\xff");
        assert!(!is_cgi_gateway_interface(non_utf8));
    }

    #[test]
    fn isindex_queries() {
        let words = |q: &[u8]| {
            isindex_args(q).map(|v| v.into_iter().map(OsString::into_vec).collect::<Vec<_>>())
        };
        assert_eq!(words(b"hello"), Some(vec![b"hello".to_vec()]));
        assert_eq!(
            words(b"a+b%20c+%ff+50%"),
            Some(vec![
                b"a".to_vec(),
                b"b c".to_vec(),
                vec![0xff],
                b"50%".to_vec()
            ])
        );
        assert_eq!(words(b"a=1"), None);
        assert_eq!(words(b"a+b=c"), None);
        assert_eq!(words(b""), None);
    }

    #[test]
    fn body_length_rules() {
        let env = env_from_vars(vars(&[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "12"),
        ]));
        assert_eq!(check(&env).unwrap(), 12);
        let env = env_from_vars(vars(&[("REQUEST_METHOD", "GET"), ("CONTENT_LENGTH", "")]));
        assert_eq!(check(&env).unwrap(), 0);
        let env = env_from_vars(vars(&[("REQUEST_METHOD", "GET")]));
        assert_eq!(check(&env).unwrap(), 0);
        let env = env_from_vars(vars(&[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "1e3"),
        ]));
        assert!(matches!(check(&env), Err(Error::BadContentLength(v)) if v == b"1e3"));
        let env = env_from_vars(vars(&[("REQUEST_METHOD", "")]));
        assert!(matches!(check(&env), Err(Error::MissingRequestMethod)));
        let env = env_from_vars(vars(&[("PATH", "/bin")]));
        assert!(matches!(check(&env), Err(Error::MissingRequestMethod)));
    }

    #[test]
    fn every_variable_as_bytes() {
        let mut v = vars(&[("REQUEST_METHOD", "GET"), ("X", "1"), ("X", "2")]);
        v.push((
            OsString::from("RAW"),
            OsString::from_vec(b"\xff\x00?".to_vec()),
        ));
        let env = env_from_vars(v);
        assert_eq!(env.len(), 3);
        assert_eq!(env.get("X").unwrap(), "2");
        assert_eq!(env.get("RAW").unwrap().as_ref(), b"\xff\x00?");
    }
}
