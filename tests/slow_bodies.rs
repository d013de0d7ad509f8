//! Slow request bodies are bounded (issue 12): a client sending its body one byte at a time
//! never goes idle, so `--http-idle-timeout` alone never cuts it; `--http-body-timeout` plus
//! `--http-body-min-rate` (Apache's `mod_reqtimeout` rule) does, with one log line naming the
//! peer, while a body that comes at a normal pace is untouched.
//!
//! No timing assertions beyond generous bounds: the slow client is cut well within 30 s of a
//! 2 s grace at 100 bytes/s, on a loaded machine too.

mod support;

#[path = "support/wsgi.rs"]
mod wsgi_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::{body, http, sha256_hex};

#[test]
fn a_trickling_body_is_cut_and_a_normal_one_is_not() {
    let d = Daemon::serve(&[
        "echo",
        "--http",
        "127.0.0.1:0",
        "--http-body-timeout",
        "2s",
        "--http-body-min-rate",
        "100",
    ]);
    let port = wsgi_support::port(&d, "http");

    // One byte every 300 ms: 3 bytes/s, far below 100; never idle for 60 s.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    slow.write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .expect("head");
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(30) {
        if slow.write_all(b"x").is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if d.count_log("slower than the minimum rate") > 0 {
            cut = true;
            break;
        }
    }
    assert!(cut, "a 3 bytes/s body was not cut within 30 s");
    let line = d.wait_log("slower than the minimum rate");
    assert!(line.contains("127.0.0.1:"), "no peer in {line}");
    // The connection is closed: reading ends (maybe after an error answer).
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);

    // A 2 MiB body at full speed, and a chunked one, are untouched.
    let sent = body(2 << 20, 5);
    let r = http::request(port, "POST", "/fast", &[], &sent);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_sha256"], sha256_hex(&sent));
    let r = http::post_chunked(port, "/chunked", &sent, 65536);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], sent.len());
}
