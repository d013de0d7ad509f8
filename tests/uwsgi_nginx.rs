//! End-to-end: a real nginx with `uwsgi_pass` (Debian's stock `uwsgi_params`) to the daemon's
//! uwsgi front end (fixtures/conf/nginx/uwsgi.conf.tmpl), over TCP and a unix socket:
//! - `hello`; GET to `echo` with a query and repeated headers; POST of 0 B, 1 B, 5 MiB and
//!   50 MiB checked by length and SHA-256, buffered and streamed (`uwsgi_request_buffering off`,
//!   `uwsgi_buffering off`);
//! - the Flask test app mounted at `/plain` (PATH_INFO only from nginx: the dispatcher splits
//!   it into SCRIPT_NAME and PATH_INFO): routes, JSON, form POST, a stream, 404, a raising route;
//! - uWSGI's magic variables (`UWSGI_FILE` naming a script that would leave a mark, `UWSGI_CHDIR`,
//!   ...): nothing loaded, nothing changed, not shown to the app;
//! - raw bad packets (unknown modifier1, vars over `--uwsgi-max-vars-bytes`, a var running past
//!   the block, a truncated packet, a datasize larger than what arrives): each refused with one
//!   log line naming the peer, then a good request is served.

mod support;
#[path = "support/wsgi.rs"]
mod wsgi_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use support::daemon::Daemon;
use support::http;
use support::nginx::Nginx;
use support::{body, sha256_hex, uwsgi};

const TEMPLATE: &str = "uwsgi.conf.tmpl";

/// nginx in front of `d`'s first uwsgi listener; `@EVIL@` names a file in `dir`.
fn nginx_for(d: &Daemon, dir: &Path) -> Nginx {
    let evil = evil_script(dir);
    let upstream = d.listener("uwsgi");
    Nginx::start_with(
        TEMPLATE,
        &[
            ("@UPSTREAM@", &upstream),
            ("@EVIL@", &evil.display().to_string()),
        ],
        dir,
    )
}

/// A Python file that leaves `<dir>/evil-ran` if anything ever runs it.
fn evil_script(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("evil.py");
    let mark = dir.join("evil-ran");
    let code = format!("open({:?}, 'w').write('ran')\n", mark.display().to_string());
    std::fs::write(&path, code).expect("write evil.py");
    path
}

fn echo_round_trips(port: u16, prefix: &str, sizes: &[usize]) {
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

    for (seed, &len) in sizes.iter().enumerate() {
        let data = body(len, seed as u64 + 700);
        let resp = http::request(
            port,
            "POST",
            &format!("{prefix}/echo/post?size={len}"),
            &[("Content-Type", "application/octet-stream")],
            &data,
        );
        let what = format!("{prefix}: POST of {len} bytes");
        assert_eq!(resp.status, 200, "{what}: {}", resp.text());
        let j = resp.json();
        assert_eq!(j["method"], "POST");
        assert_eq!(j["path"], format!("{prefix}/echo/post"));
        assert_eq!(j["body_len"], len, "{what}");
        assert_eq!(j["body_sha256"], sha256_hex(&data), "{what}");
    }
}

const MIB: usize = 1024 * 1024;

#[test]
fn hello_through_uwsgi_pass() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::serve(&["--uwsgi", "127.0.0.1:0"]);
    let nginx = nginx_for(&d, dir.path());
    let resp = http::request(nginx.port, "GET", "/plain/", &[], b"");
    assert_eq!(resp.status, 200, "{}", nginx.error_log());
    assert_eq!(resp.text(), "Hello, world!\n");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
}

#[test]
fn uwsgi_pass_over_tcp_buffered_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::serve(&["echo", "--uwsgi", "127.0.0.1:0"]);
    let nginx = nginx_for(&d, dir.path());
    echo_round_trips(nginx.port, "/plain", &[0, 1, 5 * MIB, 50 * MIB]);
    echo_round_trips(nginx.port, "/unbuffered", &[0, 1, 5 * MIB]);
    let log = nginx.error_log();
    assert!(!log.contains("upstream prematurely closed"), "{log}");
}

#[test]
fn uwsgi_pass_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("unix:{}", dir.path().join("uwsgi.sock").display());
    let d = Daemon::serve(&["echo", "--uwsgi", &addr]);
    assert_eq!(d.listener("uwsgi"), addr);
    let nginx = nginx_for(&d, dir.path());
    echo_round_trips(nginx.port, "/plain", &[0, 1, 5 * MIB]);
}

#[test]
fn flask_routes_mounted_behind_uwsgi_pass() {
    let dir = tempfile::tempdir().unwrap();
    let flask = format!("/plain={}", wsgi_support::app("flask_app.py"));
    let d = wsgi_support::start(&[
        "--uwsgi".to_owned(),
        "127.0.0.1:0".into(),
        "--mount".into(),
        flask,
    ]);
    let nginx = nginx_for(&d, dir.path());
    let n = nginx.port;
    use wsgi_support::{get, post};
    let r = get(n, "/plain/", &[]);
    assert_eq!(r.status, 200, "{}", nginx.error_log());
    assert_eq!(r.text(), "hello from flask\n");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));

    let r = get(n, "/plain/json?name=gate%20house", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"items": [1, 2, 3], "name": "gate house"})
    );
    let r = post(
        n,
        "/plain/json",
        "application/json",
        br#"{"a": [1, "two"]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"received": {"a": [1, "two"]}, "kind": "dict"})
    );
    let form = b"name=Ada+Lovelace&lang=python&lang=rust&empty=";
    let r = post(n, "/plain/form", "application/x-www-form-urlencoded", form);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["fields"],
        serde_json::json!({"name": ["Ada Lovelace"], "lang": ["python", "rust"], "empty": [""]})
    );
    let r = get(n, "/plain/stream?n=2000", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.complete, "stream cut short");
    let want: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    assert_eq!(r.text(), want);

    assert_eq!(get(n, "/plain/nowhere", &[]).status, 404);
    let r = get(n, "/plain/boom", &[]);
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        !r.text().contains("flask-route-secret-marker"),
        "{}",
        r.text()
    );
    d.wait_log("RuntimeError: flask-route-secret-marker");
    assert_eq!(get(n, "/plain/", &[]).status, 200, "still serving");
}

#[test]
fn magic_variables_never_load_or_change_anything() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::serve(&["echo", "--mount", "/magic=env", "--uwsgi", "127.0.0.1:0"]);
    let nginx = nginx_for(&d, dir.path());
    let r = http::request(nginx.port, "GET", "/magic/x?q=1", &[], b"");
    assert_eq!(r.status, 200, "{}", nginx.error_log());
    let env = r.text();
    assert!(env.contains("REQUEST_METHOD=GET\n"), "{env}");
    assert!(
        env.contains("PATH_INFO=/x\n"),
        "dispatcher split at the mount: {env}"
    );
    assert!(env.contains("SCRIPT_NAME=/magic\n"), "{env}");
    assert!(
        !env.contains("UWSGI_"),
        "magic variables reach the app: {env}"
    );
    assert!(!env.contains("GATEHOUSE_EVIL"), "{env}");
    assert!(
        !env.contains("HTTPS=on"),
        "UWSGI_SCHEME changed the scheme: {env}"
    );
    assert!(!dir.path().join("evil-ran").exists(), "UWSGI_FILE was run");
    // The daemon is unchanged: the next request still reaches echo at /.
    let r = http::request(nginx.port, "GET", "/plain/after", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/plain/after");
    assert!(!dir.path().join("evil-ran").exists(), "UWSGI_FILE was run");
}

/// Sends `bytes` from a fresh connection, half-closes unless `hold_open`, and returns the
/// answer and the client's address (what the log line must name).
fn raw(addr: &str, bytes: &[u8], hold_open: bool) -> (Vec<u8>, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(support::TIMEOUT)).expect("timeout");
    let peer = s.local_addr().expect("local addr").to_string();
    s.write_all(bytes).expect("send");
    if !hold_open {
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    (answer, peer)
}

#[test]
fn bad_packets_are_refused_and_the_daemon_carries_on() {
    let d = Daemon::serve(&[
        "echo",
        "--uwsgi",
        "127.0.0.1:0",
        "--uwsgi-max-vars-bytes",
        "1024",
        "--uwsgi-header-timeout",
        "2s",
    ]);
    let addr = d.listener("uwsgi");
    let good = uwsgi::request_bytes(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/ok")], b"");
    let mut modifier5 = good.clone();
    modifier5[0] = 5;
    let mut overrun = uwsgi::header(0, 4, 0);
    overrun.extend_from_slice(b"\x09\x00ab");
    let mut too_long = uwsgi::header(0, 2000, 0);
    too_long.extend_from_slice(&[0; 2000]);
    let mut short = uwsgi::header(0, 100, 0);
    short.extend_from_slice(&uwsgi::vars(&[("REQUEST_METHOD", "GET")]));
    let cases: [(&str, Vec<u8>, bool, &str); 5] = [
        ("modifier1 5", modifier5, false, "modifier1 5"),
        ("overrun", overrun, false, "runs past the vars block"),
        (
            "over the limit",
            too_long,
            false,
            "vars block of 2000 bytes, limit 1024",
        ),
        (
            "truncated",
            good[..7].to_vec(),
            false,
            "closed after 7 bytes of the packet",
        ),
        (
            "datasize past what arrives",
            short,
            true,
            "no complete packet within 2s",
        ),
    ];
    for (what, bytes, hold_open, reason) in cases {
        let (answer, peer) = raw(&addr, &bytes, hold_open);
        let line = d.wait_log(&format!("peer={peer}"));
        assert!(
            line.contains("WARN") && line.contains(reason),
            "{what}: {line}"
        );
        assert_eq!(d.count_log(&format!("peer={peer}")), 1, "{what}: one line");
        if !answer.is_empty() {
            assert_eq!(uwsgi::parse(&answer).status, 400, "{what}");
        }
        let ok = uwsgi::call(
            &addr,
            &[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/ok")],
            b"",
        );
        assert_eq!(ok.status, 200, "after {what}");
        assert_eq!(ok.json()["path"], "/ok");
    }
}
