//! Parity (issue 3): the same requests to `echo` through every way in, and the same answer from
//! each, field by field (`method`, `path`, `query`, `headers`, `body_len`, `body_sha256`).
//!
//! Ways in ([`Route`]): FastCGI, SCGI and HTTP directly (our clients standing in for a web server,
//! tests/support/parity/server.rs), the binary run as a CGI program, and nginx `fastcgi_pass`
//! (buffered and `fastcgi_request_buffering off`), `scgi_pass`, `uwsgi_pass` to `--uwsgi` and
//! `proxy_pass` to `--http`
//! (one nginx, fixtures/conf/nginx/parity.conf.tmpl).
//!
//! Every answer is compared with one oracle written from the specifications
//! (tests/support/parity/case.rs, which documents each header rule), so the routes agree with
//! each other exactly when each agrees with it. Where a route differs by design the oracle says
//! so for that route and checks the defined value; nothing is skipped silently:
//!
//! - CGI: the program's own `SCRIPT_NAME` is part of the path (`/cgi-bin/gatehouse/...`).
//! - nginx `fastcgi_pass`/`scgi_pass`/`uwsgi_pass`: `//` folded into `/` (`merge_slashes`).
//! - nginx `proxy_pass`: no `connection`, `transfer-encoding` or `expect`, plus
//!   `x-forwarded-for` (hop-by-hop fields belong to one connection; nginx answers
//!   `100-continue` itself).
//! - Chunked uploads: HTTP and FastCGI can stream a body of unknown length; SCGI and CGI need
//!   a length, so the web server buffers ([`chunked_uploads`]).
//! - HEAD: no body on any route, so the head is compared instead ([`head_requests`]).
//! - Targets climbing above the root or holding `%00`: 400 wherever the raw target is seen
//!   ([`rejected_targets`]).
//!
//! What this test found, fixed in the dispatcher so that every front end gives apps the same
//! request: `HTTP_PROXY` reached apps through FastCGI, SCGI and CGI (nginx passes a `Proxy`
//! header on); so did `HTTP_CONTENT_LENGTH`/`HTTP_CONTENT_TYPE` (RFC 3875 section 4.1.18 says
//! to drop them); HEAD answers carried a body over FastCGI, SCGI and CGI (RFC 3875 section
//! 4.3.2); and a path taken from a raw `REQUEST_URI` kept its `..` segments.
//!
//! No timing assertions; 20 MiB bodies go once per route ([`bodies`]).

mod support;

#[path = "support/parity/mod.rs"]
mod parity_support;

use parity_support::{rig, Case, Matrix, Rig, Route};
use support::body;

/// Methods, with a body where the method usually has one.
#[test]
fn methods() {
    let rig = Rig::start();
    let mut m = Matrix::new(&rig);
    for method in ["GET", "DELETE", "OPTIONS"] {
        m.run(&Case::new(method, "/m?x=1"), &Route::ALL);
    }
    for (seed, method) in [(1, "POST"), (2, "PUT"), (3, "PATCH")] {
        let case = Case::new(method, "/m?x=1").body(body(1000 + seed, seed as u64));
        m.run(&case, &Route::ALL);
    }
    m.finish();
}

/// Odd paths. CGI requires PATH_INFO decoded (RFC 3875 section 4.1.5: "not URL-encoded"), so
/// `%2F` is a `/` on every route (nginx decodes it into `$uri` too: the app cannot tell `/a%2Fb`
/// from `/a/b`). `..` and `.` segments are resolved by nginx and by our HTTP front end before
/// they become variables; a server that sends only the raw `REQUEST_URI` (the SCGI route)
/// leaves that to the dispatcher. Bytes that are not UTF-8 (`%FF`) reach the app as bytes
/// (`echo` shows U+FFFD). `//` is folded by nginx's `merge_slashes` only (see the oracle).
#[test]
fn odd_paths() {
    let rig = Rig::start();
    let mut m = Matrix::new(&rig);
    for target in [
        "/",
        "/a%20b",
        "/a%2Fb",
        "/x/../y",
        "/x/%2e%2e/y/./z",
        "/a/./b/.",
        "/dir/",
        "//a//b",
        "/caf%C3%A9/%E2%9C%93/%F0%9F%A6%80",
        "/%FF%FE",
        "/%7Euser/a+b;c=d,e",
    ] {
        m.run(&Case::new("GET", target), &Route::ALL);
    }
    m.finish();
}

/// Targets no app may see: a `..` above the root (raw or `%2e%2e`) and `%00`. nginx answers 400
/// itself (nothing reaches gatehouse), and so must every front end that sees the raw target:
/// HTTP, and SCGI when `REQUEST_URI` is the only path it gets (the dispatcher). The FastCGI and
/// CGI routes are left out: their stand-in web server, like nginx, would have refused the
/// request before making PATH_INFO, so there is no defined input to send.
#[test]
fn rejected_targets() {
    let rig = Rig::start();
    let mut m = Matrix::new(&rig);
    let routes = [
        Route::Http,
        Route::Scgi,
        Route::NginxFastCgi,
        Route::NginxFastCgiStreamed,
        Route::NginxScgi,
        Route::NginxProxy,
        Route::NginxUwsgi,
    ];
    for target in ["/../x", "/a/%2e%2e/%2E%2E/x", "/a%00b", "/a/../../b?q"] {
        let case = Case::new("GET", target);
        for route in routes {
            let reply = rig.send(route, &case);
            if reply.status != 400 {
                m.fail(format!(
                    "GET {target} via {route}: status {}, want 400: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                ));
            }
        }
    }
    m.finish();
}

/// Empty and odd queries go through raw (RFC 3875 section 4.1.7: "URL-encoded").
#[test]
fn odd_queries() {
    let rig = Rig::start();
    let mut m = Matrix::new(&rig);
    for target in [
        "/q",
        "/q?",
        "/q?a=1&a=2",
        "/q?%zz",
        "/q?a=b=c",
        "/q?caf%C3%A9=%E2%9C%93&sp=a+b%20c",
        "/q?x?y",
    ] {
        m.run(&Case::new("GET", target), &Route::ALL);
    }
    m.finish();
}

/// Header rules (documented on the oracle): repeated fields joined, `_` names dropped, `Proxy`
/// never `HTTP_PROXY`, `Content-*` only as CONTENT_*, a long value, an empty value.
#[test]
fn header_rules() {
    let rig = Rig::start();
    let mut m = Matrix::new(&rig);
    let long: String = (0..8192)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let cases = [
        Case::new("GET", "/h")
            .header("X-Dup", "a")
            .header("X-Dup", "b")
            .labelled("repeated X-Dup"),
        Case::new("GET", "/h")
            .header("Cookie", "a=1")
            .header("Cookie", "b=2")
            .labelled("repeated Cookie"),
        Case::new("GET", "/h")
            .header("X_Under", "spoof")
            .header("X-Other", "kept")
            .labelled("underscore in a name"),
        Case::new("GET", "/h")
            .header("Proxy", "http://evil.test:3128")
            .labelled("Proxy (httpoxy)"),
        Case::new("GET", "/h")
            .header("X-Long", &long)
            .labelled("8 KiB value"),
        Case::new("GET", "/h")
            .header("X-Empty", "")
            .header("X-Mixed-CASE", "  Value With Spaces  ")
            .labelled("empty value, mixed case, padding"),
        Case::new("POST", "/h")
            .body(b"{}".to_vec())
            .labelled("Content-Type and Content-Length"),
    ];
    for case in &cases {
        m.run(case, &Route::ALL);
    }
    m.finish();
}

/// Bodies of 0 B, 1 B, 1 MiB and 20 MiB (random bytes, checked by length and SHA-256).
#[test]
fn bodies() {
    let rig = Rig::start();
    let mut m = Matrix::new(&rig);
    for (seed, len) in [0usize, 1, 1 << 20, 20 << 20].into_iter().enumerate() {
        let case = Case::new("POST", "/b").body(body(len, 100 + seed as u64));
        m.run(&case.labelled(&format!("POST {len} B")), &Route::ALL);
    }
    m.finish();
}

/// A chunked upload without `Content-Length`. Every route gets the same body; what differs is
/// only how it travels (see [`Route`]): HTTP directly and nginx unbuffered stream it without
/// a length (FastCGI: no CONTENT_LENGTH, the empty FCGI_STDIN ends it), nginx buffered routes
/// send a length, SCGI and CGI need one. Then the defined behaviour of a CGI request with a
/// body on stdin but no CONTENT_LENGTH: no body (RFC 3875 section 4.2).
#[test]
fn chunked_uploads() {
    let rig = Rig::start();
    let mut m = Matrix::new(&rig);
    let case = Case::new("POST", "/c?chunked")
        .body(body((1 << 20) + 3, 300))
        .chunked();
    m.run(&case, &Route::ALL);
    m.run(
        &Case::new("PUT", "/c").body(Vec::new()).chunked(),
        &Route::ALL,
    );

    let no_length = Case::new("POST", "/c").body(body(1000, 301));
    let reply = rig::run_cgi(&no_length, false);
    let j: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    if reply.status != 200 || j["body_len"] != 0 {
        m.fail(format!(
            "CGI without CONTENT_LENGTH must see no body (RFC 3875 section 4.2): {} {j}",
            reply.status
        ));
    }
    m.finish();
}

/// `Expect: 100-continue`: every HTTP hop answers `100 Continue` before the body is sent (our
/// client waits for it); the field reaches the app as `HTTP_EXPECT` except through
/// `proxy_pass`, where nginx answers it itself.
#[test]
fn expect_continue() {
    let rig = Rig::start();
    let mut m = Matrix::new(&rig);
    let case = Case::new("PUT", "/e")
        .body(body(200_000, 400))
        .expect_continue();
    m.run(&case, &Route::ALL);
    let chunked = Case::new("POST", "/e")
        .body(body(70_000, 401))
        .chunked()
        .expect_continue();
    m.run(&chunked, &Route::ALL);
    m.finish();
}

/// HEAD: no body on any route (RFC 9110 section 9.3.2 for HTTP; RFC 3875 section 4.3.2 for CGI:
/// "The script MUST NOT provide a response message-body for a HEAD request"), and the head
/// of the answer GET would get: 200, `application/json`, and the `Content-Length` of the GET
/// answer with `"HEAD"` for `"GET"` (one byte more).
#[test]
fn head_requests() {
    let rig = Rig::start();
    let mut m = Matrix::new(&rig);
    for target in ["/head", "/head?a=b"] {
        let get = Case::new("GET", target)
            .header("X-Dup", "a")
            .header("X-Dup", "b");
        let head = get.clone().with_method("HEAD");
        for route in Route::ALL {
            let g = rig.send(route, &get);
            let h = rig.send(route, &head);
            let want_len = (g.body.len() + 1).to_string();
            let ok = h.status == 200
                && h.header("content-type") == Some("application/json")
                && h.header("content-length") == Some(want_len.as_str())
                && h.body.is_empty();
            if !ok {
                m.fail(format!(
                    "HEAD {target} via {route}: status {}, content-type {:?}, content-length {:?} \
                     (want {want_len}), {} body bytes",
                    h.status,
                    h.header("content-type"),
                    h.header("content-length"),
                    h.body.len()
                ));
            }
        }
    }
    m.finish();
}
