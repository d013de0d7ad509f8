//! End-to-end: a real nginx with `scgi_pass` (Debian's stock `scgi_params`) to the daemon's SCGI
//! front end, over TCP and a unix socket: `hello`, then GET and POST to `echo` with bodies of
//! 0 B, 1 B, 64 KiB and 20 MiB checked by length and SHA-256, repeated request headers, and a
//! direct SCGI request with a bad head. (Not `scgi_request_buffering off`: nginx then sends a
//! wrong CONTENT_LENGTH, see fixtures/conf/nginx/scgi.conf.tmpl.)

mod support;

use support::daemon::Daemon;
use support::http;
use support::nginx::Nginx;
use support::{body, scgi, sha256_hex};

/// nginx's address for the daemon's first SCGI listener.
fn upstream(d: &Daemon) -> String {
    d.listener("scgi")
}

fn echo_round_trips(port: u16, prefix: &str) {
    let get = http::request(
        port,
        "GET",
        &format!("{prefix}/echo/get?a=1&b=%20x"),
        &[("X-Test", "get"), ("X-Twice", "1"), ("X-Twice", "2")],
        b"",
    );
    assert_eq!(get.status, 200, "{}", get.text());
    assert_eq!(get.header("content-type"), Some("application/json"));
    let j = get.json();
    assert_eq!(j["method"], "GET");
    assert_eq!(j["path"], format!("{prefix}/echo/get"));
    assert_eq!(j["query"], "a=1&b=%20x");
    assert_eq!(j["headers"]["x-test"], "get");
    assert_eq!(j["headers"]["x-twice"], "1, 2");
    assert_eq!(j["body_len"], 0);

    for (seed, len) in [0usize, 1, 64 * 1024, 20 * 1024 * 1024]
        .into_iter()
        .enumerate()
    {
        let data = body(len, seed as u64 + 500);
        let resp = http::request(
            port,
            "POST",
            &format!("{prefix}/echo/post?size={len}"),
            &[("Content-Type", "application/octet-stream")],
            &data,
        );
        assert_eq!(
            resp.status,
            200,
            "{prefix}: POST of {len} bytes: {}",
            resp.text()
        );
        let j = resp.json();
        assert_eq!(j["method"], "POST");
        assert_eq!(j["path"], format!("{prefix}/echo/post"));
        assert_eq!(j["body_len"], len, "{prefix}: POST of {len} bytes");
        assert_eq!(
            j["body_sha256"],
            sha256_hex(&data),
            "{prefix}: POST of {len} bytes"
        );
    }
}

#[test]
fn hello_through_scgi_pass() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::serve(&["--scgi", "127.0.0.1:0"]);
    let nginx = Nginx::start("scgi.conf.tmpl", &upstream(&d), dir.path());
    let resp = http::request(nginx.port, "GET", "/plain/", &[], b"");
    assert_eq!(resp.status, 200, "{}", nginx.error_log());
    assert_eq!(resp.text(), "Hello, world!\n");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
}

#[test]
fn scgi_pass_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::serve(&["echo", "--scgi", "127.0.0.1:0"]);
    let nginx = Nginx::start("scgi.conf.tmpl", &upstream(&d), dir.path());
    echo_round_trips(nginx.port, "/plain");
    assert!(
        !nginx.error_log().contains("upstream prematurely closed"),
        "{}",
        nginx.error_log()
    );
}

#[test]
fn scgi_pass_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("scgi.sock");
    let addr = format!("unix:{}", sock.display());
    let d = Daemon::serve(&["echo", "--scgi", &addr]);
    assert_eq!(upstream(&d), addr);
    let nginx = Nginx::start("scgi.conf.tmpl", &addr, dir.path());
    echo_round_trips(nginx.port, "/plain");
}

#[test]
fn a_bad_head_gets_400_and_the_daemon_carries_on() {
    let d = Daemon::serve(&["echo", "--scgi", "127.0.0.1:0"]);
    let addr = upstream(&d);
    // Without SCGI=1: refused with a 400, one log line naming the peer.
    let mut raw = std::net::TcpStream::connect(&addr).unwrap();
    let peer = raw.local_addr().unwrap().to_string();
    std::io::Write::write_all(&mut raw, b"21:CONTENT_LENGTH\x000\x00X\x00y\x00,").unwrap();
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut raw, &mut answer).unwrap();
    let resp = http::Response::parse_cgi(&answer);
    assert_eq!(resp.status, 400, "{}", resp.text());
    let line = d.wait_log(&peer);
    assert!(line.contains("WARN"), "{line}");
    // The next request is served.
    let ok = scgi::call(
        &addr,
        &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/x?y")],
        b"",
    );
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["path"], "/x");
}
