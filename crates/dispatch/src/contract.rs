//! What every app can rely on, whichever front end carried the request: the variables a front
//! server may pass on that no app should see are gone, whatever that server was.
//!
//! The HTTP front end never produces them; nginx's `fastcgi_pass` and `scgi_pass` (and CGI
//! servers that copy every header) do, so without this an app would answer the same request
//! differently through FastCGI, SCGI or CGI than over HTTP (tests/parity.rs).

use bytes::Bytes;
use gatehouse_channel_request::env::{CONTENT_LENGTH, CONTENT_TYPE};
use gatehouse_channel_request::Env;

/// `HTTP_PROXY`: what a `Proxy` request header becomes under RFC 3875 section 4.1.18.
pub(crate) const HTTP_PROXY: &str = "HTTP_PROXY";

/// Removes, and returns the names of:
///
/// - `HTTP_PROXY`: programs and libraries read it as their outgoing proxy, so a client's
///   `Proxy` header would redirect the app's own requests (httpoxy, CVE-2016-5385). nginx 1.22
///   passes the header on to FastCGI and SCGI as this variable.
/// - `HTTP_CONTENT_LENGTH` and `HTTP_CONTENT_TYPE`, when `CONTENT_LENGTH` / `CONTENT_TYPE` is
///   set: RFC 3875 section 4.1.18, the server "SHOULD remove any header fields ... that are
///   available to the script in other meta-variables, such as 'Content-Length' and
///   'Content-Type'". nginx sends both forms. Kept when the CGI variable is absent: then the
///   field is the only place the value is.
pub(crate) fn remove_shadowing_vars(env: &mut Env) -> Vec<Bytes> {
    let mut removed = Vec::new();
    let mut drop = |env: &mut Env, name: &'static str| {
        if env.remove(name).is_some() {
            removed.push(Bytes::from_static(name.as_bytes()));
        }
    };
    drop(env, HTTP_PROXY);
    if env.contains(CONTENT_LENGTH) {
        drop(env, "HTTP_CONTENT_LENGTH");
    }
    if env.contains(CONTENT_TYPE) {
        drop(env, "HTTP_CONTENT_TYPE");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> Env {
        pairs.iter().map(|&(n, v)| (n.into(), v.into())).collect()
    }

    fn names(env: &Env) -> Vec<&str> {
        env.iter()
            .map(|(n, _)| std::str::from_utf8(n).unwrap())
            .collect()
    }

    #[test]
    fn drops_proxy_and_shadowed_content_fields() {
        let mut e = env(&[
            ("CONTENT_LENGTH", "3"),
            ("CONTENT_TYPE", "text/plain"),
            ("HTTP_PROXY", "http://evil.test:3128"),
            ("HTTP_CONTENT_LENGTH", "3"),
            ("HTTP_CONTENT_TYPE", "text/plain"),
            ("HTTP_X_OTHER", "kept"),
        ]);
        let removed = remove_shadowing_vars(&mut e);
        assert_eq!(
            removed,
            ["HTTP_PROXY", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"]
        );
        assert_eq!(
            names(&e),
            ["CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_X_OTHER"]
        );
    }

    #[test]
    fn keeps_a_content_field_that_is_the_only_copy() {
        let mut e = env(&[
            ("HTTP_CONTENT_TYPE", "text/plain"),
            ("HTTP_CONTENT_LENGTH", "3"),
            ("CONTENT_LENGTH", ""),
        ]);
        assert_eq!(remove_shadowing_vars(&mut e), ["HTTP_CONTENT_LENGTH"]);
        assert_eq!(names(&e), ["HTTP_CONTENT_TYPE", "CONTENT_LENGTH"]);
        let mut nothing = env(&[("HTTP_PROXYX", "1"), ("REQUEST_METHOD", "GET")]);
        assert!(remove_shadowing_vars(&mut nothing).is_empty());
        assert_eq!(nothing.len(), 2);
    }
}
