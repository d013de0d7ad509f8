//! Finding the request path the front end saw, whatever variables it sent.

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

/// The full request path the front end saw, from the first of:
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
pub fn full_path(env: &Env) -> Result<Vec<u8>, BadPath> {
    if let Some(doc) = env.get(env::DOCUMENT_URI).filter(|d| !d.is_empty()) {
        return Ok(doc.to_vec());
    }
    let joined = env.path();
    if !joined.is_empty() {
        return Ok(joined);
    }
    if let Some(uri) = env.get(env::REQUEST_URI).filter(|u| !u.is_empty()) {
        let raw = uri.split(|&b| b == b'?').next().unwrap_or_default();
        let decoded = percent_decode(raw);
        if decoded.contains(&0) {
            return Err(BadPath::Nul(raw.to_vec()));
        }
        return match remove_dot_segments(&decoded) {
            Some(path) => Ok(path.into_owned()),
            None => Err(BadPath::AboveRoot(raw.to_vec())),
        };
    }
    Ok(b"/".to_vec())
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
