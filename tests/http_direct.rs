//! End-to-end: the HTTP/1.1 front end (`--http`) with clients straight on it: curl (GET, POST,
//! a chunked upload, a unix socket) and a raw client (keep-alive, pipelining, HEAD,
//! `Connection: close`), to `echo` and `env`; the httpoxy and underscore-header rules.

mod support;

use std::process::{Command, Stdio};

use support::daemon::Daemon;
use support::http::{Conn, Response};
use support::{body, require, sha256_hex};

/// Logs each accepted connection, so the tests can count them.
const COUNT_CONNECTIONS: &str = "info,gatehouse::serve=debug";
const ACCEPTED: &str = "accepted a connection";

/// Runs curl with `args`; returns its stdout, failing the test if curl fails.
fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new(require("curl", "curl"))
        .args(["-sS", "--fail-with-body", "--max-time", "120"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

#[test]
fn curl_get_post_and_chunked_upload() {
    let d = Daemon::serve(&["echo", "--http", "127.0.0.1:0"]);
    let base = format!("http://{}", d.listener("http"));

    let j = json(&curl(&[
        "-H",
        "X-Test: get",
        &format!("{base}/a/b%20c?x=1&y=%20"),
    ]));
    assert_eq!(j["method"], "GET");
    assert_eq!(j["path"], "/a/b c");
    assert_eq!(j["query"], "x=1&y=%20");
    assert_eq!(j["headers"]["x-test"], "get");
    assert_eq!(j["body_len"], 0);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.bin");
    let data = body(5 * 1024 * 1024 + 3, 7);
    std::fs::write(&file, &data).unwrap();
    let at_file = format!("@{}", file.display());
    for chunked in [false, true] {
        let mut args = vec![
            "--data-binary",
            &at_file,
            "-H",
            "Content-Type: application/x",
        ];
        if chunked {
            args.extend(["-H", "Transfer-Encoding: chunked"]);
        }
        let url = format!("{base}/upload");
        args.push(&url);
        let j = json(&curl(&args));
        assert_eq!(j["method"], "POST", "chunked: {chunked}");
        assert_eq!(j["body_len"], data.len(), "chunked: {chunked}");
        assert_eq!(j["body_sha256"], sha256_hex(&data), "chunked: {chunked}");
    }
}

#[test]
fn curl_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("http.sock");
    let addr = format!("unix:{}", sock.display());
    let _d = Daemon::serve(&["env", "--http", &addr]);
    let text = curl(&[
        "--unix-socket",
        sock.to_str().unwrap(),
        "http://gatehouse.test/some/where?q",
    ]);
    let text = String::from_utf8_lossy(&text);
    for line in [
        "REQUEST_METHOD=GET",
        "SCRIPT_NAME=",
        "PATH_INFO=/some/where",
        "QUERY_STRING=q",
        "SERVER_NAME=gatehouse.test",
        "HTTP_HOST=gatehouse.test",
        "GATEWAY_INTERFACE=CGI/1.1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}

fn check_echo(resp: &Response, method: &str, path: &str, data: &[u8]) {
    assert_eq!(resp.status, 200, "{}", resp.text());
    let j = resp.json();
    assert_eq!(j["method"], method);
    assert_eq!(j["path"], path);
    assert_eq!(j["body_len"], data.len());
    assert_eq!(j["body_sha256"], sha256_hex(data));
}

#[test]
fn keep_alive_pipelining_and_head_on_one_connection() {
    let d = Daemon::serve(&[
        "echo",
        "--http",
        "127.0.0.1:0",
        "--log-level",
        COUNT_CONNECTIONS,
    ]);
    let mut c = Conn::connect(&d.listener("http"));
    check_echo(&c.send("GET", "/one", &[], b""), "GET", "/one", b"");
    let big = body(1024 * 1024, 3);
    check_echo(&c.send("POST", "/two", &[], &big), "POST", "/two", &big);
    let head = c.send("HEAD", "/three", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    // Two requests in one write: answered in order.
    c.send_raw(
        b"POST /p1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
          GET /p2 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    check_echo(&c.read(false), "POST", "/p1", b"abc");
    check_echo(&c.read(false), "GET", "/p2", b"");

    let last = c.send("GET", "/last", &[("Connection", "close")], b"");
    check_echo(&last, "GET", "/last", b"");
    assert!(c.closed_by_peer());
    assert_eq!(d.count_log(ACCEPTED), 1, "{:?}", d.log());
}

#[test]
fn proxy_and_underscore_headers_never_reach_the_app() {
    let d = Daemon::serve(&["echo", "--mount", "/env=env", "--http", "127.0.0.1:0"]);
    let mut c = Conn::connect(&d.listener("http"));
    let headers = [
        ("Proxy", "http://attacker.test:3128"),
        ("X_User", "spoofed"),
        ("X-User", "alice"),
        ("X-Twice", "1"),
        ("X-Twice", "2"),
    ];
    let resp = c.send("GET", "/", &headers, b"");
    let j = resp.json();
    let names: Vec<&String> = j["headers"].as_object().unwrap().keys().collect();
    assert!(!names.iter().any(|n| *n == "proxy"), "{names:?}");
    assert_eq!(j["headers"]["x-user"], "alice");
    assert_eq!(j["headers"]["x-twice"], "1, 2");

    let env = c.send("GET", "/env", &headers, b"").text();
    assert!(!env.contains("HTTP_PROXY"), "{env}");
    assert!(!env.contains("spoofed"), "{env}");
    assert!(env.lines().any(|l| l == "HTTP_X_USER=alice"), "{env}");
}
