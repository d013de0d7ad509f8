//! One request of the parity matrix, described once and sent through every way in, and the
//! answer `echo` must give for it: the oracle every front end is checked against.
//!
//! The oracle is written from the specifications, not from our code: `path` is the request
//! path percent-decoded (RFC 3875 section 4.1.5: PATH_INFO is "not URL-encoded") with dot
//! segments removed (RFC 3986 section 5.2.4, what nginx and every web server do before a path
//! becomes CGI variables); `query` is the raw query (section 4.1.7: "URL-encoded"); `headers`
//! are the request's header fields as `HTTP_*` variables (section 4.1.18) with the rules below.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::route::Route;

/// How the body travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body and no framing header (GET, DELETE, OPTIONS, HEAD).
    None,
    /// `Content-Length` (also for an empty body).
    Length,
    /// `Transfer-Encoding: chunked`, no `Content-Length`.
    Chunked,
}

/// One request.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the report calls it.
    pub label: String,
    pub method: &'static str,
    /// The raw request target: path and optional `?query`, exactly as the client sends it.
    pub target: String,
    /// Header fields in order (repeats allowed). The clients add `Host: localhost`,
    /// `Connection: close`, the framing header and `Expect` themselves.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Send `Expect: 100-continue` and wait for the interim response before the body.
    pub expect_continue: bool,
    body_sha256: String,
}

impl Case {
    /// A request without a body.
    pub fn new(method: &'static str, target: &str) -> Self {
        Self {
            label: format!("{method} {target}"),
            method,
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            framing: Framing::None,
            expect_continue: false,
            body_sha256: crate::support::sha256_hex(b""),
        }
    }

    /// Adds a header field (repeat the call for a repeated field).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Gives the request `body`, framed by `Content-Length` (or chunked, see [`Case::chunked`]),
    /// with `Content-Type: application/octet-stream`.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body_sha256 = crate::support::sha256_hex(&body);
        self.body = body;
        self.framing = Framing::Length;
        self.header("Content-Type", "application/octet-stream")
    }

    /// Sends the body with `Transfer-Encoding: chunked` instead of `Content-Length`.
    pub fn chunked(mut self) -> Self {
        self.framing = Framing::Chunked;
        self
    }

    /// Sends `Expect: 100-continue`.
    pub fn expect_continue(mut self) -> Self {
        self.expect_continue = true;
        self
    }

    /// The same request with another method.
    pub fn with_method(mut self, method: &'static str) -> Self {
        self.label = format!("{method} {}", self.target);
        self.method = method;
        self
    }

    /// Renames the case in the report.
    pub fn labelled(mut self, label: &str) -> Self {
        self.label = label.to_owned();
        self
    }

    /// The raw path (before `?`).
    pub fn raw_path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The raw query (after the first `?`; empty when there is none or it is empty).
    pub fn raw_query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    /// The path as CGI variables carry it: percent-decoded, dot segments removed (as `echo`
    /// shows it: invalid UTF-8 replaced by U+FFFD).
    pub fn cgi_path(&self) -> String {
        let decoded = percent_decode(self.raw_path().as_bytes());
        String::from_utf8_lossy(&remove_dot_segments(&decoded)).into_owned()
    }

    /// The answer `echo` must give through `route`.
    pub fn expected(&self, route: Route) -> Value {
        let path = match route {
            // The CGI program's own URL path is part of the path an app sees (RFC 3875
            // section 4.1.13, SCRIPT_NAME): the dispatcher mounts the app there.
            Route::Cgi => format!("{}{}", super::CGI_SCRIPT_NAME, self.cgi_path()),
            // nginx's `merge_slashes on` (its default) folds `//` into `/` in `$uri`, which its
            // stock params send as DOCUMENT_URI (and SCRIPT_NAME). Empty segments are part of a
            // path (RFC 3986 section 3.3), so nobody else folds them, and `proxy_pass` without a
            // URI part passes the client's target on as it came.
            Route::NginxFastCgi
            | Route::NginxFastCgiStreamed
            | Route::NginxScgi
            | Route::NginxUwsgi => merge_slashes(&self.cgi_path()),
            _ => self.cgi_path(),
        };
        json!({
            "method": self.method,
            "path": path,
            "query": self.raw_query(),
            "headers": self.expected_headers(route),
            "body_len": self.body.len(),
            "body_sha256": self.body_sha256,
        })
    }

    /// The `headers` object: every field of the request lower-cased, repeated fields joined,
    /// with these rules (each one checked, none skipped):
    ///
    /// - a name holding `_` never arrives: nginx drops it (`ignore_invalid_headers`), so does
    ///   our HTTP front end, and our stand-in web servers do what nginx does (`X_A` and `X-A`
    ///   would both be `HTTP_X_A`: a client could spoof a variable);
    /// - `Proxy` never becomes `proxy` (httpoxy, CVE-2016-5385): nginx passes it as
    ///   `HTTP_PROXY`, so the FastCGI, SCGI and CGI front ends must drop it;
    /// - `Content-Length` and `Content-Type` are `CONTENT_LENGTH` and `CONTENT_TYPE`, never
    ///   `HTTP_*` (RFC 3875 section 4.1.18: fields "available to the script in other
    ///   meta-variables" are removed), although nginx sends both forms;
    /// - repeated fields are joined with `", "` (RFC 9110 section 5.3), `Cookie` with `"; "`
    ///   (RFC 6265 section 5.4), whether the web server joined them or sent each one;
    /// - `Host` is `localhost` on every way in: the clients send that, and Debian's
    ///   `fastcgi_params`/`scgi_params` send `HTTP_HOST $host`, which drops a port;
    /// - the hop-by-hop fields (RFC 9110 section 7.6.1) and `Expect` differ by design through
    ///   nginx's `proxy_pass` only: see [`Route::NginxProxy`].
    fn expected_headers(&self, route: Route) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        out.insert("host".into(), "localhost".into());
        for (name, value) in &self.headers {
            let name = name.to_ascii_lowercase();
            if name.contains('_')
                || matches!(name.as_str(), "proxy" | "content-length" | "content-type")
            {
                continue;
            }
            let sep = if name == "cookie" { "; " } else { ", " };
            out.entry(name)
                .and_modify(|v| {
                    v.push_str(sep);
                    v.push_str(value.trim());
                })
                .or_insert_with(|| value.trim().to_owned());
        }
        if route == Route::NginxProxy {
            // proxy_pass talks to our HTTP listener over its own connection: it sets the
            // hop-by-hop `Connection` itself (empty here: not sent), frames the body it buffered
            // with `Content-Length` (no `Transfer-Encoding`), answers `Expect: 100-continue`
            // itself and does not forward it, and adds `X-Forwarded-For` (our config, as
            // Debian's proxy_params).
            out.insert("x-forwarded-for".into(), "127.0.0.1".into());
            return out;
        }
        // Everyone else passes the client's hop-by-hop fields on as HTTP_* (nginx's fastcgi and
        // scgi and uwsgi modules do; so does our HTTP front end, and the stand-in servers copy nginx).
        out.insert("connection".into(), "close".into());
        if self.framing == Framing::Chunked {
            out.insert("transfer-encoding".into(), "chunked".into());
        }
        if self.expect_continue {
            out.insert("expect".into(), "100-continue".into());
        }
        out
    }
}

/// `%XX` decoded; a `%` without two hex digits after it stays as it is (as nginx does).
pub fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let pair = raw
            .get(i + 1)
            .copied()
            .and_then(hex)
            .zip(raw.get(i + 2).copied().and_then(hex));
        match (raw[i], pair) {
            (b'%', Some((h, l))) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Runs of `/` folded into one, as nginx's `merge_slashes` does.
pub fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// RFC 3986 section 5.2.4 for an absolute path (the test's paths never climb above `/`).
pub fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut out: Vec<&[u8]> = Vec::new();
    let segments: Vec<&[u8]> = path[1..].split(|&b| b == b'/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.into_iter().enumerate() {
        match seg {
            b"." => {}
            b".." => {
                out.pop().expect("test paths stay below /");
            }
            s => out.push(s),
        }
        if i == last && (seg == b"." || seg == b"..") {
            out.push(b"");
        }
    }
    let mut joined = Vec::new();
    for seg in out {
        joined.push(b'/');
        joined.extend_from_slice(seg);
    }
    if joined.is_empty() {
        joined.push(b'/');
    }
    joined
}

#[test]
fn oracle_paths() {
    let p = |t: &str| Case::new("GET", t).cgi_path();
    assert_eq!(p("/a%20b"), "/a b");
    assert_eq!(p("/a%2Fb"), "/a/b");
    assert_eq!(p("/x/../y"), "/y");
    assert_eq!(p("/x/%2e%2e/y/./z/"), "/y/z/");
    assert_eq!(p("/caf%C3%A9?q"), "/café");
    assert_eq!(p("/%zz"), "/%zz");
    assert_eq!(p("/%FF"), "/\u{FFFD}");
    assert_eq!(p("//a//b/"), "//a//b/");
    assert_eq!(merge_slashes("//a//b/"), "/a/b/");
    assert_eq!(p("/"), "/");
    assert_eq!(Case::new("GET", "/?").raw_query(), "");
    assert_eq!(Case::new("GET", "/?a=b=c?d").raw_query(), "a=b=c?d");
}
