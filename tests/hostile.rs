//! End-to-end: what a hostile client tried against the daemon (issue 12, "findings of a hostile
//! client"), each a regression test: log lines forged with bytes from the request, transfer
//! codings we do not implement, a slow but steady download, a truncated request body, listeners
//! that held connection slots while idle, a crashing embedded interpreter.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::{require, TIMEOUT};

/// Sends `raw` on a fresh connection to `addr` and reads until the server closes it.
fn exchange(addr: &str, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(raw).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP answer.
fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// Fails when a log line starts with `FORGED`: a request byte ended a log line early.
fn assert_no_forged_line(d: &Daemon) {
    let log = d.log();
    assert!(
        !log.iter().any(|l| l.starts_with("FORGED")),
        "a request forged a log line:\n{}",
        log.join("\n")
    );
}

#[test]
fn request_bytes_cannot_forge_log_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let scripts = root.join("cgi");
    std::fs::create_dir(&scripts).expect("mkdir");
    support::cgi::set_mode(&root, 0o755);
    support::cgi::set_mode(&scripts, 0o755);
    // A file whose name holds a newline, not executable: refused with 403.
    let odd = scripts.join("odd\nFORGED.sh");
    std::fs::write(&odd, "#!/bin/sh\necho\n").expect("write");
    support::cgi::set_mode(&odd, 0o644);
    let sock = root.join("http.sock");
    let app = format!("cgi:{}", scripts.display());
    let unix = format!("unix:{}", sock.display());
    let d = Daemon::serve(&[&app, "--http", "127.0.0.1:0", "--http", &unix]);
    let addr = d
        .wait_listeners(2)
        .into_iter()
        .find(|l| l.addr.starts_with("127."))
        .expect("the TCP listener")
        .addr;

    let answer = exchange(
        &addr,
        b"GET /nosuch%0aFORGED HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&answer), 404, "{answer}");
    let line = d.wait_log("no script at");
    assert!(line.contains("nosuch\\nFORGED"), "{line}");

    let answer = exchange(
        &addr,
        b"GET /odd%0aFORGED.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&answer), 403, "{answer}");
    let line = d.wait_log("error=refused");
    assert!(line.contains("odd\\nFORGED.sh"), "{line}");

    // A unix-socket client names its own address: bind it to a name with a newline.
    let client = root.join("c\nFORGED");
    let script = format!(
        "import socket,sys\n\
         s=socket.socket(socket.AF_UNIX)\n\
         s.bind({client:?})\n\
         s.connect({sock:?})\n\
         s.sendall(b'GET /nosuch HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n\
         sys.stdout.write(s.recv(100).decode())\n",
        client = client.to_str().expect("utf-8"),
        sock = sock.to_str().expect("utf-8"),
    );
    let out = Command::new(require("python3", "python3"))
        .args(["-c", &script])
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 404"), "{text} {out:?}");
    d.wait_log_count("no script at", 2);
    assert_no_forged_line(&d);
}

#[test]
fn transfer_codings_other_than_chunked_get_501() {
    let d = Daemon::serve(&["echo", "--http", "127.0.0.1:0"]);
    let addr = d.listener("http");
    let chunked_body = "5\r\nhello\r\n0\r\n\r\n";
    let post = |te: &str| {
        let raw =
            format!("POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{te}\r\n{chunked_body}");
        exchange(&addr, raw.as_bytes())
    };
    // The one coding we implement, in any case.
    for te in [
        "Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding: Chunked\r\n",
    ] {
        let answer = post(te);
        assert_eq!(status_of(&answer), 200, "{te}: {answer}");
        assert!(answer.contains("\"body_len\":5"), "{te}: {answer}");
    }
    // RFC 9112 section 6.1: a coding we do not implement is 501, and the app is never called.
    let refused = [
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: identity, chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: x-custom;q=1, chunked\r\n",
    ];
    for (n, te) in refused.iter().enumerate() {
        let answer = post(te);
        assert_eq!(status_of(&answer), 501, "{te}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{te}: {answer}"
        );
        let lines = d.wait_log_count("answered with 501", n + 1);
        let line = lines.last().expect("a line");
        assert!(line.contains("peer=127.0.0.1:"), "{line}");
        assert!(line.contains("transfer coding"), "{line}");
    }
    // Still refused by the parser (chunked must come last): 400, no desync.
    let answer = post("Transfer-Encoding: chunked, identity\r\n");
    assert_eq!(status_of(&answer), 400, "{answer}");
}

/// How long the slow download tests keep reading; several times their idle timeout.
const SLOW_READ_FOR: Duration = Duration::from_secs(12);

/// Reads from `s` at about `rate` bytes per second for `how_long` (or until the server closes);
/// returns the bytes read and whether the server closed the connection.
fn read_slowly(s: &mut TcpStream, rate: usize, how_long: Duration) -> (usize, bool) {
    const STEP: Duration = Duration::from_millis(20);
    let per_step = (rate as f64 * STEP.as_secs_f64()) as usize;
    let start = Instant::now();
    let mut buf = vec![0; per_step];
    let mut total = 0;
    while start.elapsed() < how_long {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (total, true),
            Ok(n) => total += n,
        }
        std::thread::sleep(STEP);
    }
    (total, false)
}

#[test]
fn a_slow_but_steady_download_is_not_cut_and_a_stopped_one_is() {
    let tree = support::cgi::cgi_tree();
    let app = format!("cgi:{}", tree.www.display());
    let d = Daemon::serve(&[&app, "--http", "127.0.0.1:0", "--http-idle-timeout", "3s"]);
    let addr = d.listener("http");
    let get = b"GET /cgi-bin/big.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    // 100 KB/s over 12 s (four idle timeouts): 1.2 MB of the 50 MiB answer.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(get).expect("send");
    let (read, closed) = read_slowly(&mut s, 100_000, SLOW_READ_FOR);
    assert!(
        !closed,
        "a client reading steadily was cut after {read} bytes:\n{}",
        d.log().join("\n")
    );
    assert!(read > 500_000, "read only {read} bytes");
    assert_eq!(d.count_log("response bytes to be read"), 0);
    drop(s);

    // A client that stops reading is still cut, with one line naming it.
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(get).expect("send");
    let local = s.local_addr().expect("local addr").to_string();
    let line = d.wait_log("response bytes to be read");
    assert!(line.contains(&local), "{line}");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

#[test]
fn a_slow_but_steady_scgi_reader_is_not_cut_and_a_stopped_one_is() {
    let tree = support::cgi::cgi_tree();
    let app = format!("cgi:{}", tree.www.display());
    let d = Daemon::serve(&[&app, "--scgi", "127.0.0.1:0", "--scgi-idle-timeout", "3s"]);
    let addr = d.listener("scgi");
    let get = support::scgi::request_bytes(
        &[
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/cgi-bin/big.sh"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/cgi-bin/big.sh"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
        ],
        b"",
    );

    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(&get).expect("send");
    let (read, _) = read_slowly(&mut s, 100_000, SLOW_READ_FOR);
    assert!(read > 500_000, "read only {read} bytes");
    assert_eq!(
        d.count_log("peer made no progress"),
        0,
        "a steady reader was cut:\n{}",
        d.log().join("\n")
    );
    drop(s);

    let mut s = TcpStream::connect(&addr).expect("connect");
    s.write_all(&get).expect("send");
    let local = s.local_addr().expect("local addr").to_string();
    let line = d.wait_log("peer made no progress");
    assert!(line.contains(&local), "{line}");
}

/// Runs the binary as a CGI program with `app`: `CONTENT_LENGTH=100`, 10 body bytes, then EOF.
fn truncated_cgi_request(app: &str) -> support::cgi::CgiRun {
    let vars = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("REQUEST_METHOD", "POST"),
        ("SCRIPT_NAME", "/cgi-bin/gatehouse"),
        ("PATH_INFO", "/x"),
        ("QUERY_STRING", ""),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "192.0.2.7"),
        ("CONTENT_LENGTH", "100"),
    ];
    support::cgi::run_cgi(&["--cgi", app], &vars, b"0123456789")
}

/// The rule for a request body shorter than its `CONTENT_LENGTH`, on every front end: the
/// body's error is the app's to see. An app that does not read its body is answered as it
/// answers; one that reads it gets the error, and the request is answered `400`, with one log
/// line naming the peer. Run many times: it used to depend on whether the app answered before
/// stdin's end was read.
#[test]
fn a_truncated_body_in_cgi_mode_is_answered_the_same_every_time() {
    let hello = format!(
        "wsgi:{}",
        support::fixtures().join("apps/hello.py").display()
    );
    for run in 0..20 {
        let got = truncated_cgi_request(&hello);
        assert_eq!(got.status.code(), Some(0), "run {run}: {}", got.stderr);
        let resp = got.response();
        assert_eq!(
            resp.status, 200,
            "run {run}: an app that does not read its body: {}",
            got.stderr
        );
        assert_eq!(resp.text(), "Hello, world!\n", "run {run}");
        // Logged when the end of stdin was read before the answer was out (usually: CPython
        // takes longer to answer than stdin takes to end), never more than once.
        let lines: Vec<&str> = got.stderr.lines().collect();
        assert!(lines.len() <= 1, "run {run}: {}", got.stderr);
        if let Some(line) = lines.first() {
            assert!(
                line.contains("ended after 10 of 100 body bytes"),
                "run {run}: {line}"
            );
            assert!(line.contains("192.0.2.7"), "run {run}: {line}");
        }
    }
    for run in 0..20 {
        let got = truncated_cgi_request("echo");
        assert_eq!(got.status.code(), Some(0), "run {run}: {}", got.stderr);
        assert_eq!(
            got.response().status,
            400,
            "run {run}: an app that reads its body: {}",
            got.stderr
        );
        assert!(
            got.stderr.contains("ended after 10 of 100 body bytes"),
            "run {run}: {}",
            got.stderr
        );
        assert_eq!(got.stderr.lines().count(), 1, "run {run}: {}", got.stderr);
    }
}

/// The same rule behind SCGI: `CONTENT_LENGTH: 100`, 10 body bytes, then the peer's half-close.
#[test]
fn a_truncated_scgi_body_is_answered_the_same_every_time() {
    let d = Daemon::serve(&[
        "--mount",
        "/h=hello",
        "--mount",
        "/e=echo",
        "--scgi",
        "127.0.0.1:0",
        // The short body is logged at debug: an SCGI peer closing inside the body is what a
        // front server does when its own client leaves mid-upload (tests/client_gone.rs).
        "--log-level",
        "debug",
    ]);
    let addr = d.listener("scgi");
    let call = |path: &str| {
        let mut bytes = support::scgi::request_bytes(
            &[
                ("REQUEST_METHOD", "POST"),
                ("REQUEST_URI", path),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
            ],
            &[b'x'; 100],
        );
        bytes.truncate(bytes.len() - 90);
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        s.write_all(&bytes).expect("send");
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        support::http::Response::parse_cgi(&out)
    };
    for run in 0..20 {
        let resp = call("/h");
        assert_eq!(
            resp.status, 200,
            "run {run}: an app that does not read its body"
        );
        assert_eq!(resp.text(), "Hello, world!\n", "run {run}");
        let resp = call("/e");
        assert_eq!(resp.status, 400, "run {run}: an app that reads its body");
    }
    // One (debug) line for each request whose short body was seen (every one whose app reads
    // it), naming the peer.
    let lines = d.wait_log_count("after 10 of 100", 20);
    assert!(
        lines.iter().all(|l| l.contains("peer=127.0.0.1:")),
        "{lines:?}"
    );
}

/// With `--max-conns 1` and two listeners, an idle listener must not hold the only connection
/// slot: each protocol is answered in turn, and nothing says the limit was reached. A
/// connection over the limit still waits (and is served once the slot is free).
fn one_slot_two_listeners(extra: &[&str], over_limit: bool) {
    let mut args = vec![
        "echo",
        "--max-conns",
        "1",
        "--http",
        "127.0.0.1:0",
        "--fastcgi",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let d = Daemon::serve(&args);
    let http = d.listener("http");
    let fastcgi = d.listener("fastcgi");
    let get = b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let params = |path: &str| {
        vec![
            ("REQUEST_METHOD".to_owned(), "GET".to_owned()),
            ("SCRIPT_NAME".to_owned(), String::new()),
            ("PATH_INFO".to_owned(), path.to_owned()),
            ("REQUEST_URI".to_owned(), path.to_owned()),
            ("SERVER_PROTOCOL".to_owned(), "HTTP/1.1".to_owned()),
        ]
    };
    for round in 0..3 {
        let answer = exchange(&http, get);
        assert_eq!(status_of(&answer), 200, "round {round}: {answer}");
        if round == 0 {
            // One connection so far: nothing can have waited for the slot. (Later, a
            // connection may come a moment before the previous one has given its slot back.)
            assert_eq!(
                d.count_log("connection limit"),
                0,
                "an idle listener took the slot:\n{}",
                d.log().join("\n")
            );
        }
        let answer = support::fcgi::call(&fastcgi, &params("/y"), b"");
        assert_eq!(answer.cgi().status, 200, "round {round}");
    }
    if !over_limit {
        return;
    }
    // Over the limit: a kept-alive HTTP connection holds the slot; a FastCGI request waits for
    // it, with a log line, and is answered once it is free.
    let mut held = support::http::Conn::connect(&http);
    let first = held.send("GET", "/held", &[], b"");
    assert_eq!(first.status, 200);
    let fastcgi_addr = fastcgi.clone();
    let waiting =
        std::thread::spawn(move || support::fcgi::call(&fastcgi_addr, &params("/z"), b""));
    d.wait_log("connection limit (--max-conns) reached");
    drop(held);
    let answer = waiting.join().expect("the FastCGI client");
    assert_eq!(answer.cgi().status, 200);
}

#[test]
fn an_idle_listener_holds_no_connection_slot() {
    one_slot_two_listeners(&[], true);
}

#[test]
fn an_idle_shared_listener_holds_no_connection_slot() {
    // Each worker has its own limit, so which one takes a connection decides whether it waits:
    // only the idle case is checked.
    one_slot_two_listeners(&["--workers", "2"], false);
}

#[test]
fn a_segfaulting_app_logs_its_python_stack_and_its_worker_is_replaced() {
    let app = format!(
        "wsgi:{}",
        support::fixtures().join("apps/segfault.py").display()
    );
    let mut d = Daemon::serve(&[&app, "--workers", "2", "--http", "127.0.0.1:0"]);
    let addr = d.listener("http");
    d.wait_log_count(") ready in ", 2);
    let get = |path: &str| {
        exchange(
            &addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    };
    let answer = get("/segv");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    // faulthandler's report, on the daemon's stderr (the log), with the app's frame in it.
    d.wait_log("Fatal Python error: Segmentation fault");
    let frame = d.wait_log("in crash_here");
    assert!(frame.contains("segfault.py"), "{frame}");
    d.wait_log("was killed by signal 11 (SIGSEGV) while serving; starting a new one");
    d.wait_log_count(") ready in ", 3);
    for _ in 0..4 {
        let answer = get("/");
        assert_eq!(status_of(&answer), 200, "{answer}");
        assert!(answer.ends_with("alive\n"), "{answer}");
    }
    assert_eq!(d.stop().code(), Some(0));
}
