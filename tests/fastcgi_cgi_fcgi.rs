//! End-to-end: `cgi-fcgi -bind -connect` (Debian libfcgi-bin, the FastCGI reference library's
//! client) against the built daemon over TCP and a unix socket. cgi-fcgi runs as a CGI program:
//! its environment becomes the PARAMS, its stdin the body, and the response comes out on stdout.

mod support;

use std::process::Command;

use support::daemon::Daemon;
use support::http::Response;
use support::{body, output_with_stdin, require, sha256_hex};

/// Runs one request through cgi-fcgi to `connect` (`host:port` or a socket path).
fn cgi_fcgi(connect: &str, vars: &[(&str, &str)], stdin: &[u8]) -> Response {
    let out = output_with_stdin(
        Command::new(require("cgi-fcgi", "libfcgi-bin"))
            .args(["-bind", "-connect", connect])
            .env_clear()
            .envs(vars.iter().copied()),
        stdin,
    );
    assert!(
        out.status.success(),
        "cgi-fcgi failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Response::parse_cgi(&out.stdout)
}

fn post_vars(len: &str) -> Vec<(&str, &str)> {
    vec![
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("REQUEST_METHOD", "POST"),
        ("SCRIPT_NAME", "/cgi"),
        ("PATH_INFO", "/post"),
        ("QUERY_STRING", "k=v"),
        ("CONTENT_TYPE", "application/octet-stream"),
        ("CONTENT_LENGTH", len),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("HTTP_X_FROM", "cgi-fcgi"),
    ]
}

#[test]
fn cgi_fcgi_over_tcp() {
    let d = Daemon::fastcgi_tcp("echo", &[]);
    let addr = d.addr();

    let get = cgi_fcgi(
        &addr,
        &[
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", "/x"),
            ("QUERY_STRING", ""),
        ],
        b"",
    );
    assert_eq!(get.status, 200, "{}", get.text());
    assert_eq!(get.json()["path"], "/x");

    for len in [0usize, 1, 65_536, 1_000_003] {
        let data = body(len, len as u64);
        let len_text = len.to_string();
        let resp = cgi_fcgi(&addr, &post_vars(&len_text), &data);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let j = resp.json();
        assert_eq!(j["method"], "POST");
        assert_eq!(j["path"], "/cgi/post");
        assert_eq!(j["query"], "k=v");
        assert_eq!(j["headers"]["x-from"], "cgi-fcgi");
        assert_eq!(j["body_len"], len);
        assert_eq!(j["body_sha256"], sha256_hex(&data));
    }
}

#[test]
fn cgi_fcgi_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("gh.sock");
    let _d = Daemon::fastcgi_unix("hello", &sock, &[]);
    let resp = cgi_fcgi(
        sock.to_str().unwrap(),
        &[
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", "/"),
            ("QUERY_STRING", ""),
        ],
        b"",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert_eq!(resp.text(), "Hello, world!\n");
}
