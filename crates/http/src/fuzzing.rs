//! Entry points for the cargo-fuzz targets in `crates/http/fuzz` (built only with
//! `cfg(fuzzing)`). Each asserts an invariant, not merely the absence of a panic.

use std::net::SocketAddr;

use gatehouse_channel_request::Peer;
use http::request::Parts;

use crate::env::request_env;

/// Turns a request head (as hyper would hand it over) into CGI variables, asserting that when
/// it is accepted
/// - every variable name is unique, and `HTTP_*` names are upper-case letters, digits and `_`;
/// - no value holds a NUL (an environment value cannot), nor CR or LF but for the decoded
///   `PATH_INFO`;
/// - `PATH_INFO` is empty or starts with `/` (or is the `*` of `OPTIONS *`), and has no `.` or `..` segment left (nothing
///   climbs out of a mount point), nor a NUL;
/// - `REQUEST_METHOD` is the method, `QUERY_STRING` the query, `CONTENT_LENGTH` the length
///   hyper framed the body with.
pub fn request_to_env(parts: &Parts, content_length: Option<u64>) {
    let peer = Peer::Tcp(SocketAddr::from(([192, 0, 2, 1], 40000)));
    let local = Some(SocketAddr::from(([127, 0, 0, 1], 8000)));
    let Ok(env) = request_env(parts, content_length, &peer, local) else {
        return;
    };
    let mut names: Vec<&[u8]> = env.iter().map(|(n, _)| &n[..]).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "a variable name twice");
    for (name, value) in env.iter() {
        if let Some(rest) = name.strip_prefix(b"HTTP_") {
            assert!(
                !rest.is_empty()
                    && rest
                        .iter()
                        .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "header variable name {name:?}"
            );
        }
        // PATH_INFO is percent-decoded (RFC 3875 section 4.1.5, and nginx's `$uri`): a `%0A`
        // is a byte of the path, legal in an environment value. Nothing else decodes.
        let forbidden: &[u8] = if &name[..] == b"PATH_INFO" {
            b"\0"
        } else {
            b"\0\r\n"
        };
        assert!(
            !value.iter().any(|b| forbidden.contains(b)),
            "{name:?} = {value:?}"
        );
    }
    let path = env.path_info();
    let asterisk = parts.uri == "*" && path == b"*"; // OPTIONS * (RFC 9112 section 3.2.4)
    assert!(
        path.is_empty() || path[0] == b'/' || asterisk,
        "PATH_INFO {path:?}"
    );
    for segment in path.split(|&b| b == b'/').skip(1) {
        assert!(segment != b".." && segment != b".", "PATH_INFO {path:?}");
    }
    assert_eq!(env.method(), parts.method.as_str().as_bytes());
    assert_eq!(env.query(), parts.uri.query().unwrap_or("").as_bytes());
    assert_eq!(
        env.get_str("CONTENT_LENGTH").map(str::to_owned),
        content_length.map(|n| n.to_string())
    );
}
