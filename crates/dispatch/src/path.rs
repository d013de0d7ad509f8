//! Finding the request path the front end saw, whatever variables it sent, and the part of it
//! the front server itself has already mounted us at.

use std::fmt;

use gatehouse_channel_request::env::{self, percent_decode, remove_dot_segments, Env};

/// A raw `REQUEST_URI` whose path cannot be an app's path: the request is answered 400, as the
/// HTTP front end answers the same target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPath {
    /// `%00` in the path: no CGI variable can hold it safely.
    Nul(Vec<u8>),
    /// A `..` segment climbs above the root.
    AboveRoot(Vec<u8>),
}

impl BadPath {
    /// The raw `REQUEST_URI` path, for the log line.
    pub fn raw(&self) -> &[u8] {
        match self {
            Self::Nul(raw) | Self::AboveRoot(raw) => raw,
        }
    }
}

impl fmt::Display for BadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nul(raw) => write!(f, "NUL byte in REQUEST_URI path {}", raw.escape_ascii()),
            Self::AboveRoot(raw) => {
                write!(
                    f,
                    "REQUEST_URI path {} climbs above the root",
                    raw.escape_ascii()
                )
            }
        }
    }
}

impl std::error::Error for BadPath {}

/// The request path the front end saw, and where the front server split it.
///
/// `full[..front_len]` is the *front prefix*: the leading part of the path the front server
/// itself maps to us (an nginx `location ~ ^/prefixed(/.*)$` passing `PATH_INFO $1`, Apache's
/// `ScriptAlias` of a CGI program, a lighttpd `fastcgi.server` prefix). RFC 3875 section 4.1.13
/// makes that part `SCRIPT_NAME` ("a URI path ... which could identify the CGI script") and
/// PEP 3333 the application's root, so the dispatcher never gives an app less: the
/// app's `SCRIPT_NAME` is at least the front prefix, the rest of the path its `PATH_INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    /// The whole path (see [`request_path`]), never empty.
    pub full: Vec<u8>,
    /// Length of the front prefix at the start of `full` (0 when the front server made no split
    /// to honour).
    pub front_len: usize,
}

impl RequestPath {
    /// The front prefix (empty when there is none).
    pub fn front(&self) -> &[u8] {
        &self.full[..self.front_len]
    }
}

/// The full request path, from the first of:
///
/// 1. `DOCUMENT_URI` (nginx's stock params send it: the normalised URI, however the config
///    sets `SCRIPT_NAME` and `PATH_INFO`; fcgiwrap-style configs send both as `$uri`, so
///    joining them would double the path);
/// 2. `SCRIPT_NAME` + `PATH_INFO` when either is non-empty (Apache, lighttpd, our own CGI and
///    HTTP front ends);
/// 3. the path of `REQUEST_URI` (the SCGI specification's example sends only that): the raw
///    request target, so it is made what the others already are: percent-decoded (RFC 3875
///    section 4.1.5) with its dot segments removed (RFC 3986 section 5.2.4), exactly as the
///    HTTP front end treats a target; a `%00` or a climb above the root is a [`BadPath`];
/// 4. `/`.
///
/// And the front prefix, taken from the front server's own split only when that split is
/// consistent with the path (a `PATH_INFO` not of RFC 3875's form `"/" path` never is):
///
/// - with `DOCUMENT_URI`: when it ends with a non-empty `PATH_INFO`, the prefix is
///   `DOCUMENT_URI` without it (possibly empty). nginx's `SCRIPT_NAME` is not used: its stock
///   params send `$fastcgi_script_name`, the whole path unless `fastcgi_split_path_info`
///   matched, whatever `PATH_INFO` a config adds;
/// - without it: when both `SCRIPT_NAME` and `PATH_INFO` are non-empty, the prefix is
///   `SCRIPT_NAME` (Apache mod_cgi and mod_proxy_fcgi with `proxy-fcgi-pathinfo`, lighttpd,
///   our CGI front end). A `SCRIPT_NAME` alone is no split: nginx-like clients send the whole
///   path there;
/// - otherwise none: stock `fastcgi_params` (no `PATH_INFO`), fcgiwrap style (`PATH_INFO` =
///   `DOCUMENT_URI`), `scgi_params`, our HTTP front end (`SCRIPT_NAME` empty).
pub fn request_path(env: &Env) -> Result<RequestPath, BadPath> {
    let path_info = env.path_info();
    let split = path_info.starts_with(b"/");
    if let Some(doc) = env.get(env::DOCUMENT_URI).filter(|d| !d.is_empty()) {
        let front_len = if split && doc.ends_with(path_info) {
            doc.len() - path_info.len()
        } else {
            0
        };
        return Ok(RequestPath {
            full: doc.to_vec(),
            front_len,
        });
    }
    let joined = env.path();
    if !joined.is_empty() {
        let script_name = env.script_name();
        let front_len = if split { script_name.len() } else { 0 };
        return Ok(RequestPath {
            full: joined,
            front_len,
        });
    }
    let full = match env.get(env::REQUEST_URI).filter(|u| !u.is_empty()) {
        Some(uri) => from_request_uri(uri)?,
        None => b"/".to_vec(),
    };
    Ok(RequestPath { full, front_len: 0 })
}

/// The full request path alone (see [`request_path`]).
pub fn full_path(env: &Env) -> Result<Vec<u8>, BadPath> {
    request_path(env).map(|p| p.full)
}

/// The path of a raw `REQUEST_URI`, decoded and normalised as the HTTP front end does it.
fn from_request_uri(uri: &[u8]) -> Result<Vec<u8>, BadPath> {
    let raw = uri.split(|&b| b == b'?').next().unwrap_or_default();
    let decoded = percent_decode(raw);
    if decoded.contains(&0) {
        return Err(BadPath::Nul(raw.to_vec()));
    }
    match remove_dot_segments(&decoded) {
        Some(path) => Ok(path.into_owned()),
        None => Err(BadPath::AboveRoot(raw.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> Env {
        pairs.iter().map(|&(n, v)| (n.into(), v.into())).collect()
    }

    fn path(pairs: &[(&'static str, &'static str)]) -> Result<String, BadPath> {
        full_path(&env(pairs)).map(|p| String::from_utf8(p).unwrap())
    }

    #[test]
    fn prefers_script_name_and_path_info() {
        let e = env(&[
            ("SCRIPT_NAME", "/a"),
            ("PATH_INFO", "/b"),
            ("REQUEST_URI", "/x"),
        ]);
        assert_eq!(full_path(&e).unwrap(), b"/a/b");
    }

    #[test]
    fn falls_back_to_document_uri_then_request_uri() {
        let e = env(&[
            ("SCRIPT_NAME", ""),
            ("DOCUMENT_URI", "/d"),
            ("REQUEST_URI", "/r"),
        ]);
        assert_eq!(full_path(&e).unwrap(), b"/d");
        assert_eq!(
            path(&[("REQUEST_URI", "/a%20b/c?x=%20")]).unwrap(),
            "/a b/c"
        );
        assert_eq!(path(&[]).unwrap(), "/");
    }

    fn front(pairs: &[(&'static str, &'static str)]) -> (String, String) {
        let p = request_path(&env(pairs)).unwrap();
        let front = String::from_utf8(p.front().to_vec()).unwrap();
        (front, String::from_utf8(p.full).unwrap())
    }

    fn pair(front: &str, full: &str) -> (String, String) {
        (front.to_owned(), full.to_owned())
    }

    #[test]
    fn front_prefix_only_from_a_consistent_split() {
        // DOCUMENT_URI ending with PATH_INFO: the rest is the front prefix, SCRIPT_NAME unused.
        let regex = [
            ("SCRIPT_NAME", "/p/r/x"),
            ("PATH_INFO", "/r/x"),
            ("DOCUMENT_URI", "/p/r/x"),
        ];
        assert_eq!(front(&regex), pair("/p", "/p/r/x"));
        // PATH_INFO = DOCUMENT_URI (fcgiwrap style): an empty prefix.
        let doubled = [("PATH_INFO", "/r/x"), ("DOCUMENT_URI", "/r/x")];
        assert_eq!(front(&doubled), pair("", "/r/x"));
        // Not its end, not RFC 3875's form, empty: no prefix, the path is DOCUMENT_URI.
        for path_info in ["/y", "x", "r/x", ""] {
            let e = [("PATH_INFO", path_info), ("DOCUMENT_URI", "/r/x")];
            assert_eq!(front(&e), pair("", "/r/x"), "{path_info:?}");
        }
        // Without DOCUMENT_URI: SCRIPT_NAME when PATH_INFO follows it.
        let cgi = [("SCRIPT_NAME", "/cgi-bin/g"), ("PATH_INFO", "/x")];
        assert_eq!(front(&cgi), pair("/cgi-bin/g", "/cgi-bin/g/x"));
        assert_eq!(front(&[("SCRIPT_NAME", "/a/b")]), pair("", "/a/b"));
        assert_eq!(front(&[("PATH_INFO", "/a/b")]), pair("", "/a/b"));
        assert_eq!(
            front(&[("SCRIPT_NAME", "/a"), ("PATH_INFO", "b")]),
            pair("", "/ab")
        );
        // Only REQUEST_URI, or nothing: no prefix.
        assert_eq!(front(&[("REQUEST_URI", "/a/b?q")]), pair("", "/a/b"));
        assert_eq!(front(&[("PATH_INFO", "/x"), ("REQUEST_URI", "/x")]).0, "");
        assert_eq!(front(&[]), pair("", "/"));
    }

    #[test]
    fn request_uri_is_normalised_like_an_http_target() {
        assert_eq!(path(&[("REQUEST_URI", "/x/../y?q=/../")]).unwrap(), "/y");
        assert_eq!(path(&[("REQUEST_URI", "/x/%2e%2e/y/./z")]).unwrap(), "/y/z");
        assert_eq!(path(&[("REQUEST_URI", "/a%2Fb/")]).unwrap(), "/a/b/");
        assert_eq!(
            path(&[("REQUEST_URI", "/x/../../etc?q")]),
            Err(BadPath::AboveRoot(b"/x/../../etc".to_vec()))
        );
        assert_eq!(
            path(&[("REQUEST_URI", "/a%00b")]),
            Err(BadPath::Nul(b"/a%00b".to_vec()))
        );
        // The variables a server decoded itself are its business: taken as they are.
        assert_eq!(path(&[("PATH_INFO", "/x/../y")]).unwrap(), "/x/../y");
    }
}
