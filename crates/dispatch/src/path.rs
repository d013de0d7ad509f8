//! Finding the request path the front end saw, whatever variables it sent.

use gatehouse_channel_request::env::{self, percent_decode, Env};

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
}
