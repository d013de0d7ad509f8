//! End-to-end: a real nginx with `fastcgi_pass` to the built daemon, plain (one connection per
//! request) and with `fastcgi_keep_conn on` + an upstream keepalive pool; GET and POST to `echo`
//! with bodies of 0 B, 1 B, 64 KiB and 50 MiB, checked by length and SHA-256.

mod support;

use support::daemon::Daemon;
use support::http;
use support::nginx::Nginx;
use support::{body, sha256_hex};

/// Logs each accepted connection, so the tests can count them.
const COUNT_CONNECTIONS: &[&str] = &["--log-level", "info,gatehouse::serve=debug"];
const ACCEPTED: &str = "accepted a connection";

/// GET with no body, then POSTs of every size; returns how many requests were made.
fn echo_round_trips(port: u16, prefix: &str) -> usize {
    let get = http::request(
        port,
        "GET",
        &format!("{prefix}/echo/get?a=1&b=%20x"),
        &[("X-Test", "get")],
        b"",
    );
    assert_eq!(get.status, 200, "{}", get.text());
    assert_eq!(get.header("content-type"), Some("application/json"));
    let j = get.json();
    assert_eq!(j["method"], "GET");
    assert_eq!(j["path"], format!("{prefix}/echo/get"));
    assert_eq!(j["query"], "a=1&b=%20x");
    assert_eq!(j["headers"]["x-test"], "get");
    assert_eq!(j["body_len"], 0);
    assert_eq!(j["body_sha256"], sha256_hex(b""));

    let sizes = [0usize, 1, 64 * 1024, 50 * 1024 * 1024];
    for (seed, len) in sizes.into_iter().enumerate() {
        let data = body(len, seed as u64 + 100);
        let resp = http::request(
            port,
            "POST",
            &format!("{prefix}/echo/post?size={len}"),
            &[
                ("Content-Type", "application/octet-stream"),
                ("X-Test", "post"),
            ],
            &data,
        );
        assert_eq!(resp.status, 200, "POST of {len} bytes: {}", resp.text());
        let j = resp.json();
        assert_eq!(j["method"], "POST");
        assert_eq!(j["path"], format!("{prefix}/echo/post"));
        assert_eq!(j["query"], format!("size={len}"));
        assert_eq!(j["headers"]["x-test"], "post");
        assert_eq!(j["body_len"], len, "POST of {len} bytes");
        assert_eq!(j["body_sha256"], sha256_hex(&data), "POST of {len} bytes");
    }
    1 + sizes.len()
}

#[test]
fn hello_through_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::fastcgi_tcp("hello", &[]);
    let nginx = Nginx::start("fastcgi.conf.tmpl", &d.addr(), dir.path());
    for prefix in ["/plain/", "/keepalive/"] {
        let resp = http::request(nginx.port, "GET", prefix, &[], b"");
        assert_eq!(resp.status, 200, "{}", nginx.error_log());
        assert_eq!(resp.text(), "Hello, world!\n");
        assert_eq!(resp.header("content-type"), Some("text/plain"));
    }
}

#[test]
fn plain_fastcgi_pass_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::fastcgi_tcp("echo", COUNT_CONNECTIONS);
    let nginx = Nginx::start("fastcgi.conf.tmpl", &d.addr(), dir.path());
    let requests = echo_round_trips(nginx.port, "/plain");
    // Without fastcgi_keep_conn nginx leaves FCGI_KEEP_CONN unset: one connection per request,
    // each closed by the daemon after END_REQUEST.
    assert_eq!(d.count_log(ACCEPTED), requests, "{}", nginx.error_log());
}

#[test]
fn keep_conn_with_upstream_keepalive_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("gatehouse.sock");
    let d = Daemon::fastcgi_unix("echo", &sock, COUNT_CONNECTIONS);
    let nginx = Nginx::start("fastcgi.conf.tmpl", &d.addr(), dir.path());
    let requests = echo_round_trips(nginx.port, "/keepalive");
    // FCGI_KEEP_CONN set: the daemon keeps the connection and nginx reuses it.
    let accepted = d.count_log(ACCEPTED);
    assert!(
        (1..requests).contains(&accepted),
        "{requests} sequential requests over a keepalive upstream used {accepted} connections"
    );
    assert!(
        !nginx.error_log().contains("upstream prematurely closed"),
        "{}",
        nginx.error_log()
    );
}

#[test]
fn chunked_uploads_buffered_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::fastcgi_tcp("echo", &[]);
    let nginx = Nginx::start("fastcgi.conf.tmpl", &d.addr(), dir.path());
    let data = body(3 * 1024 * 1024 + 17, 42);
    // Buffered: nginx reads the whole chunked body, then sends it with its length.
    // Unbuffered: nginx streams it with an empty CONTENT_LENGTH; the empty STDIN ends it.
    for prefix in ["/plain", "/unbuffered"] {
        let resp = http::post_chunked(
            nginx.port,
            &format!("{prefix}/echo/chunked"),
            &data,
            100_000,
        );
        assert_eq!(
            resp.status,
            200,
            "{prefix}: {} {}",
            resp.text(),
            nginx.error_log()
        );
        let j = resp.json();
        assert_eq!(j["path"], format!("{prefix}/echo/chunked"));
        assert_eq!(j["body_len"], data.len(), "{prefix}");
        assert_eq!(j["body_sha256"], sha256_hex(&data), "{prefix}");
    }
}
