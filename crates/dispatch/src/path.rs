//! Finding the request path the front end saw, whatever variables it sent.

use gatehouse_channel_request::env::{self, Env};

/// The full request path the front server saw, from the first of:
///
/// 1. `DOCUMENT_URI` (nginx's stock params send it: the normalised URI, however the config
///    sets `SCRIPT_NAME` and `PATH_INFO`; fcgiwrap-style configs send both as `$uri`, so
///    joining them would double the path);
/// 2. `SCRIPT_NAME` + `PATH_INFO` when either is non-empty (Apache, lighttpd, our own CGI and
///    HTTP front ends);
/// 3. the percent-decoded path of `REQUEST_URI` (nginx's stock `scgi_params`);
/// 4. `/`.
pub fn full_path(env: &Env) -> Vec<u8> {
    if let Some(doc) = env.get(env::DOCUMENT_URI).filter(|d| !d.is_empty()) {
        return doc.to_vec();
    }
    let joined = env.path();
    if !joined.is_empty() {
        return joined;
    }
    if let Some(uri) = env.get(env::REQUEST_URI).filter(|u| !u.is_empty()) {
        let path = uri.split(|&b| b == b'?').next().unwrap_or_default();
        return percent_decode(path);
    }
    b"/".to_vec()
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is kept as is.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> Env {
        pairs.iter().map(|&(n, v)| (n.into(), v.into())).collect()
    }

    #[test]
    fn prefers_script_name_and_path_info() {
        let e = env(&[
            ("SCRIPT_NAME", "/a"),
            ("PATH_INFO", "/b"),
            ("REQUEST_URI", "/x"),
        ]);
        assert_eq!(full_path(&e), b"/a/b");
    }

    #[test]
    fn falls_back_to_document_uri_then_request_uri() {
        let e = env(&[
            ("SCRIPT_NAME", ""),
            ("DOCUMENT_URI", "/d"),
            ("REQUEST_URI", "/r"),
        ]);
        assert_eq!(full_path(&e), b"/d");
        let e = env(&[("REQUEST_URI", "/a%20b/c?x=%20")]);
        assert_eq!(full_path(&e), b"/a b/c");
        assert_eq!(full_path(&env(&[])), b"/");
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode(b"%41%4a%zz%4"), b"AJ%zz%4");
        assert_eq!(percent_decode(b"%"), b"%");
        assert_eq!(percent_decode(b"a%2Fb"), b"a/b");
    }
}
