//! End-to-end: `--access-log` over the real binary, every front end.
//! - combined lines parsed with a strict regex, as a log analyser (GoAccess, AWStats) parses
//!   them: FastCGI through a real nginx (`fastcgi_pass`), SCGI, direct HTTP and CGI mode; the
//!   remote address is the client's (nginx's `REMOTE_ADDR`, the peer over HTTP), statuses and
//!   body byte counts as sent (a 404, a POST with a body, a HEAD);
//! - hostile bytes (`"`, `\`, control bytes, a newline) stay escaped on one line;
//! - `--access-log-format json`: every field present and typed, parsed with serde_json;
//! - `--workers 2`: N requests give exactly N lines;
//! - SIGUSR1 after a rename: new lines go to a new file at the path (one process and workers);
//! - `--log-format json` keeps the master/worker tags as fields.

mod support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;
use support::cgi::run_cgi;
use support::daemon::Daemon;
use support::nginx::Nginx;
use support::{free_port, http, scgi, wait_for};

/// The client address the tests connect from, so it cannot be mistaken for the front server's
/// (127.0.0.1).
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// nginx's `combined`, strictly: quoted fields hold no raw `"` (the escaping makes them `\x22`),
/// the date is `dd/Mon/yyyy:HH:MM:SS +0000`, status three digits, bytes a number.
const COMBINED: &str = r#"^(?P<remote>[^\s"]+) - (?P<user>[^\s"]+) \[(?P<day>\d{2})/(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/(?P<year>\d{4}):(?P<hour>\d{2}):(?P<min>\d{2}):(?P<sec>\d{2}) \+0000\] "(?P<method>[A-Z]+) (?P<uri>[^\s"]+) (?P<proto>HTTP/1\.[01])" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$"#;

/// One parsed combined line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    remote: String,
    user: String,
    method: String,
    uri: String,
    proto: String,
    status: u16,
    bytes: u64,
    referer: String,
    agent: String,
}

fn parse_combined(line: &str) -> Line {
    let re = Regex::new(COMBINED).expect("regex");
    assert!(
        line.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "a byte that is not printable ASCII in {line:?}"
    );
    let c = re
        .captures(line)
        .unwrap_or_else(|| panic!("not a combined line: {line:?}"));
    let day: u32 = c["day"].parse().expect("a number");
    let (hour, min, sec): (u32, u32, u32) = (
        c["hour"].parse().expect("a number"),
        c["min"].parse().expect("a number"),
        c["sec"].parse().expect("a number"),
    );
    assert!(
        (1..=31).contains(&day) && hour < 24 && min < 60 && sec < 61,
        "{line}"
    );
    assert!(c["year"].parse::<u32>().expect("a year") >= 2024, "{line}");
    Line {
        remote: c["remote"].to_owned(),
        user: c["user"].to_owned(),
        method: c["method"].to_owned(),
        uri: c["uri"].to_owned(),
        proto: c["proto"].to_owned(),
        status: c["status"].parse().expect("a number"),
        bytes: c["bytes"].parse().expect("a number"),
        referer: c["referer"].to_owned(),
        agent: c["agent"].to_owned(),
    }
}

/// The lines of the log at `path` (none while it does not exist).
fn lines(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "a partial line in {text:?}"
            );
            text.lines().map(str::to_owned).collect()
        }
        Err(_) => Vec::new(),
    }
}

/// Waits until the log at `path` has `n` lines (the writer flushes within a second).
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    wait_for(&format!("{n} line(s) in {}", path.display()), || {
        let got = lines(path);
        assert!(got.len() <= n, "more lines than requests: {got:#?}");
        (got.len() == n).then_some(got)
    })
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    (dir, log)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// GET (with referer and user agent), a POST with a body, a HEAD and a 404 through a real
/// nginx: the lines name the client nginx saw, and the statuses and body sizes it delivered.
#[test]
fn fastcgi_through_nginx_combined() {
    let (dir, log) = temp();
    let d = Daemon::serve(&[
        "--mount",
        "/plain/echo=echo",
        "--fastcgi",
        "127.0.0.1:0",
        "--access-log",
        s(&log),
    ]);
    let nginx = Nginx::start("fastcgi.conf.tmpl", &d.listener("fastcgi"), dir.path());
    let get = http::request_from(
        CLIENT,
        nginx.port,
        "GET",
        "/plain/echo/a?x=1&y=%22",
        &[
            ("Referer", "http://example.org/from"),
            ("User-Agent", "probe/1.0 (test)"),
        ],
        b"",
    );
    assert_eq!(get.status, 200);
    let post = http::request_from(
        CLIENT,
        nginx.port,
        "POST",
        "/plain/echo/p",
        &[],
        &[7u8; 1000],
    );
    assert_eq!(post.status, 200);
    assert_eq!(post.json()["body_len"], 1000);
    let head = http::request_from(CLIENT, nginx.port, "HEAD", "/plain/echo/h", &[], b"");
    assert_eq!(head.status, 200);
    let missing = http::request_from(CLIENT, nginx.port, "GET", "/plain/nothing", &[], b"");
    assert_eq!(missing.status, 404);

    let got: Vec<Line> = wait_lines(&log, 4)
        .iter()
        .map(|l| parse_combined(l))
        .collect();
    let want = |method: &str, uri: &str, status, bytes: usize, referer: &str, agent: &str| Line {
        remote: CLIENT.to_string(),
        user: "-".into(),
        method: method.into(),
        uri: uri.into(),
        proto: "HTTP/1.1".into(),
        status,
        bytes: bytes as u64,
        referer: referer.into(),
        agent: agent.into(),
    };
    assert_eq!(
        got,
        vec![
            want(
                "GET",
                "/plain/echo/a?x=1&y=%22",
                200,
                get.body.len(),
                "http://example.org/from",
                "probe/1.0 (test)"
            ),
            want("POST", "/plain/echo/p", 200, post.body.len(), "-", "-"),
            want("HEAD", "/plain/echo/h", 200, 0, "-", "-"),
            want("GET", "/plain/nothing", 404, missing.body.len(), "-", "-"),
        ]
    );
}

/// SCGI: `REMOTE_ADDR` from the front server, `REMOTE_USER`, a POST body, a 404, a HEAD; and
/// hostile bytes in the URI and the user agent stay escaped, each request on one line.
#[test]
fn scgi_combined_and_hostile_bytes() {
    let (_dir, log) = temp();
    let d = Daemon::serve(&[
        "--mount",
        "/echo=echo",
        "--scgi",
        "127.0.0.1:0",
        "--access-log",
        s(&log),
    ]);
    let addr = d.listener("scgi");
    let base = |method: &'static str, uri: &'static str| {
        vec![
            ("REQUEST_METHOD", method),
            ("REQUEST_URI", uri),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REMOTE_ADDR", "198.51.100.7"),
        ]
    };
    let mut h = base("POST", "/echo/post?q=1");
    h.push(("REMOTE_USER", "alice"));
    h.push(("HTTP_USER_AGENT", "agent/2"));
    let post = scgi::call(&addr, &h, b"0123456789");
    assert_eq!(post.status, 200);
    assert_eq!(post.json()["body_len"], 10);
    let missing = scgi::call(&addr, &base("GET", "/nope"), b"");
    assert_eq!(missing.status, 404);
    let head = scgi::call(&addr, &base("HEAD", "/echo/h"), b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let mut h = base("GET", "/echo/a\"b\\c\x01\n127.0.0.1-forged");
    h.push(("HTTP_USER_AGENT", "x\" \"y\r\nz"));
    h.push(("HTTP_REFERER", "\x7f\u{e9}"));
    let hostile = scgi::call(&addr, &h, b"");

    let text = wait_lines(&log, 4);
    let got: Vec<Line> = text.iter().map(|l| parse_combined(l)).collect();
    assert_eq!(got[0].remote, "198.51.100.7");
    assert_eq!(got[0].user, "alice");
    assert_eq!(
        (
            got[0].method.as_str(),
            got[0].uri.as_str(),
            got[0].status,
            got[0].bytes
        ),
        ("POST", "/echo/post?q=1", 200, post.body.len() as u64)
    );
    assert_eq!(got[0].agent, "agent/2");
    assert_eq!(
        (got[1].status, got[1].bytes),
        (404, missing.body.len() as u64)
    );
    assert_eq!(
        (got[2].method.as_str(), got[2].status, got[2].bytes),
        ("HEAD", 200, 0)
    );
    // nginx's escaping: `"` \x22, `\` \x5C, control bytes and bytes >= 0x7f as \xHH.
    assert_eq!(got[3].uri, r"/echo/a\x22b\x5Cc\x01\x0A127.0.0.1-forged");
    assert_eq!(
        (got[3].status, got[3].bytes),
        (hostile.status, hostile.body.len() as u64)
    );
    assert_eq!(got[3].agent, r"x\x22 \x22y\x0D\x0Az");
    assert_eq!(got[3].referer, r"\x7F\xC3\xA9");
}

/// Direct HTTP: the remote is the TCP peer; 200, POST, HEAD and 404 as sent.
#[test]
fn http_direct_combined() {
    let (_dir, log) = temp();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _d = Daemon::serve(&[
        "--mount",
        "/echo=echo",
        "--http",
        &listen,
        "--access-log",
        s(&log),
    ]);
    let get = http::request_from(
        CLIENT,
        port,
        "GET",
        "/echo/x?a=b",
        &[("User-Agent", "ua \"quoted\"")],
        b"",
    );
    let post = http::request_from(CLIENT, port, "POST", "/echo/y", &[], &[1u8; 4096]);
    let head = http::request_from(CLIENT, port, "HEAD", "/echo/z", &[], b"");
    let missing = http::request_from(CLIENT, port, "GET", "/missing", &[], b"");
    assert_eq!(
        (get.status, post.status, head.status, missing.status),
        (200, 200, 200, 404)
    );
    let got: Vec<Line> = wait_lines(&log, 4)
        .iter()
        .map(|l| parse_combined(l))
        .collect();
    for l in &got {
        assert_eq!(l.remote, CLIENT.to_string(), "{l:?}");
    }
    assert_eq!(
        (got[0].uri.as_str(), got[0].bytes),
        ("/echo/x?a=b", get.body.len() as u64)
    );
    assert_eq!(got[0].agent, r"ua \x22quoted\x22");
    assert_eq!(
        (got[1].method.as_str(), got[1].bytes),
        ("POST", post.body.len() as u64)
    );
    assert_eq!((got[2].method.as_str(), got[2].bytes), ("HEAD", 0));
    assert_eq!(
        (got[3].status, got[3].bytes),
        (404, missing.body.len() as u64)
    );
}

/// CGI mode: one request per process, its line written before the process exits.
#[test]
fn cgi_mode_combined() {
    let (_dir, log) = temp();
    let vars = |method: &'static str, len: &'static str| {
        vec![
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_METHOD", method),
            ("SCRIPT_NAME", "/cgi-bin/gatehouse"),
            ("PATH_INFO", "/x"),
            ("QUERY_STRING", "k=v"),
            ("SERVER_PROTOCOL", "HTTP/1.0"),
            ("REMOTE_ADDR", "203.0.113.5"),
            ("CONTENT_LENGTH", len),
            ("HTTP_USER_AGENT", "cgi-client"),
        ]
    };
    let args = ["--cgi", "echo", "--access-log", s(&log)];
    let get = run_cgi(&args, &vars("GET", ""), b"");
    assert!(get.status.success(), "{}", get.stderr);
    // No wait: the line is there once the process exited.
    let first = lines(&log);
    assert_eq!(first.len(), 1, "{first:?}");
    let post = run_cgi(&args, &vars("POST", "5"), b"hello");
    assert!(post.status.success(), "{}", post.stderr);
    let got: Vec<Line> = lines(&log).iter().map(|l| parse_combined(l)).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].remote, "203.0.113.5");
    assert_eq!(
        (got[0].uri.as_str(), got[0].proto.as_str()),
        ("/cgi-bin/gatehouse/x?k=v", "HTTP/1.0")
    );
    assert_eq!(
        (got[0].status, got[0].bytes),
        (200, get.response().body.len() as u64)
    );
    assert_eq!(
        (got[1].method.as_str(), got[1].bytes),
        ("POST", post.response().body.len() as u64)
    );
    assert_eq!(got[1].agent, "cgi-client");

    // Stdout is the response: `-` is refused, nothing is answered.
    let refused = run_cgi(
        &["--cgi", "echo", "--access-log", "-"],
        &vars("GET", ""),
        b"",
    );
    assert_eq!(refused.status.code(), Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--access-log -"),
        "{}",
        refused.stderr
    );
}

/// Checks one JSON line: every field present with its type.
fn check_json(v: &Value, protocol: &str) {
    let time = v["time"].as_str().expect("time is a string");
    let rfc3339 = Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
        .expect("regex");
    assert!(rfc3339.is_match(time), "time {time}");
    for key in ["remote_addr", "method", "uri", "server_protocol", "end"] {
        assert!(v[key].is_string(), "{key} in {v}");
    }
    assert_eq!(v["protocol"], protocol);
    for key in [
        "status",
        "bytes_sent",
        "request_bytes",
        "duration_us",
        "request_id",
    ] {
        assert!(v[key].is_u64(), "{key} in {v}");
    }
    for key in [
        "app",
        "worker",
        "remote_user",
        "referer",
        "user_agent",
        "host",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert!(v["app"].is_string() || v["app"].is_null(), "{v}");
}

#[test]
fn json_format() {
    let (_dir, log) = temp();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _d = Daemon::serve(&[
        "--mount",
        "/echo=echo",
        "--http",
        &listen,
        "--access-log",
        s(&log),
        "--access-log-format",
        "json",
    ]);
    let post = http::request_from(
        CLIENT,
        port,
        "POST",
        "/echo/j?a=%22",
        &[("User-Agent", "j\"son")],
        &[9u8; 333],
    );
    assert_eq!(post.status, 200);
    let missing = http::request_from(CLIENT, port, "GET", "/none", &[], b"");
    let got: Vec<Value> = wait_lines(&log, 2)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for v in &got {
        check_json(v, "http");
        assert_eq!(v["remote_addr"], CLIENT.to_string());
        assert_eq!(v["worker"], Value::Null, "one process");
    }
    let (p, m) = (&got[0], &got[1]);
    assert_eq!(p["method"], "POST");
    assert_eq!(p["uri"], "/echo/j?a=%22");
    assert_eq!(p["status"], 200);
    assert_eq!(p["bytes_sent"], post.body.len());
    assert_eq!(p["request_bytes"], 333);
    assert_eq!(p["app"], "/echo");
    assert_eq!(p["user_agent"], "j\"son");
    assert_eq!(p["end"], "finished");
    assert_eq!(m["status"], 404);
    assert_eq!(m["bytes_sent"], missing.body.len());
    assert_eq!(m["app"], Value::Null, "no mount served it");
    assert_ne!(p["request_id"], m["request_id"]);
}

/// With two workers: N requests, exactly N lines (each worker appends to the one file), each
/// naming its worker.
#[test]
fn workers_log_every_request_once() {
    let (_dir, log) = temp();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut d = Daemon::serve(&[
        "echo",
        "--workers",
        "2",
        "--http",
        &listen,
        "--access-log",
        s(&log),
        "--access-log-format",
        "json",
    ]);
    d.wait_log_count("ready in", 2);
    const N: usize = 60;
    for i in 0..N {
        let r = http::request_from(CLIENT, port, "GET", &format!("/n/{i}"), &[], b"");
        assert_eq!(r.status, 200);
    }
    // Stopping writes what waits: then the count is final.
    assert!(d.stop().success());
    let got: Vec<Value> = lines(&log)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(got.len(), N);
    let mut uris: Vec<String> = got
        .iter()
        .map(|v| {
            check_json(v, "http");
            let w = v["worker"].as_u64().expect("worker number");
            assert!((1..=2).contains(&w), "{v}");
            v["uri"].as_str().unwrap().to_owned()
        })
        .collect();
    uris.sort();
    let mut want: Vec<String> = (0..N).map(|i| format!("/n/{i}")).collect();
    want.sort();
    assert_eq!(uris, want);
}

/// logrotate's way: rename the log, SIGUSR1, and the next lines go to a new file at the path
/// (the old one keeps what was written before). With and without workers.
#[test]
fn sigusr1_reopens_the_log() {
    for workers in ["1", "2"] {
        let (_dir, log) = temp();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut d = Daemon::serve(&[
            "echo",
            "--workers",
            workers,
            "--http",
            &listen,
            "--access-log",
            s(&log),
        ]);
        let n: usize = workers.parse().unwrap();
        if n > 1 {
            d.wait_log_count("ready in", n);
        }
        for i in 0..5 {
            assert_eq!(
                http::request_from(CLIENT, port, "GET", &format!("/old/{i}"), &[], b"").status,
                200
            );
        }
        wait_lines(&log, 5);
        let rotated = log.with_extension("log.1");
        std::fs::rename(&log, &rotated).unwrap();
        d.signal(libc::SIGUSR1);
        d.wait_log_count("access log reopened", n);
        for i in 0..7 {
            assert_eq!(
                http::request_from(CLIENT, port, "GET", &format!("/new/{i}"), &[], b"").status,
                200
            );
        }
        assert!(d.stop().success());
        let old = lines(&rotated);
        let new = lines(&log);
        assert_eq!(old.len(), 5, "{old:#?}");
        assert_eq!(new.len(), 7, "{new:#?}");
        assert!(old
            .iter()
            .all(|l| parse_combined(l).uri.starts_with("/old/")));
        assert!(new
            .iter()
            .all(|l| parse_combined(l).uri.starts_with("/new/")));
        assert_eq!(
            d.count_log("WARN") + d.count_log("ERROR"),
            0,
            "workers={workers}"
        );
    }
}

/// `--log-format json`: the daemon's own log is one JSON object a line, and the master's and
/// workers' lines say which process wrote them.
#[test]
fn log_format_json_keeps_the_process_tags() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut d = Daemon::start(&[
        "echo",
        "--workers",
        "2",
        "--http",
        &listen,
        "--log-format",
        "json",
    ]);
    d.wait_log_count("ready in", 2);
    assert_eq!(http::request(port, "GET", "/", &[], b"").status, 200);
    assert!(d.stop().success());
    let parsed: Vec<Value> = d
        .log()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let master = parsed.iter().filter(|v| v["process"] == "master").count();
    assert!(master > 0, "no master line");
    let mut workers: Vec<u64> = parsed
        .iter()
        .filter(|v| v["process"] == "worker")
        .map(|v| v["worker"].as_u64().expect("worker number"))
        .collect();
    workers.sort();
    workers.dedup();
    assert_eq!(workers, vec![1, 2]);
    for v in &parsed {
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{v}"
        );
    }
}

/// A log that cannot be opened stops the start with one clear line (exit 1), in one process
/// and before a master starts any worker.
#[test]
fn an_unopenable_log_is_a_clear_error() {
    for workers in ["1", "2"] {
        let mut d = Daemon::start(&[
            "echo",
            "--workers",
            workers,
            "--http",
            "127.0.0.1:0",
            "--access-log",
            "/nonexistent-dir/access.log",
        ]);
        let status = d.wait_exit();
        assert_eq!(status.code(), Some(1), "workers={workers}");
        let log = d.log().join("\n");
        assert!(
            log.contains(
                "cannot open the access log /nonexistent-dir/access.log: No such file or directory"
            ),
            "{log}"
        );
        assert!(!log.contains("worker 1"), "a worker was started: {log}");
    }
}
