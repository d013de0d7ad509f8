//! Helpers for the end-to-end WSGI tests (tests/wsgi_*.rs): the `wsgi:` app arguments of the
//! fixture apps, starting the daemon so that an app that cannot be imported (Flask missing)
//! fails the test with a clear message, record files the apps append to, the daemon's memory
//! from /proc, and a lenient raw HTTP/1.1 client that also reports truncated responses and can
//! hang up in the middle of one.
//!
//! Include it next to `mod support;` with `#[path = "support/wsgi.rs"] mod wsgi_support;`.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses its own part of the support code"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use crate::support::daemon::Daemon;
use crate::support::{fixtures, wait_for, TIMEOUT};

/// `wsgi:<abs path>/fixtures/apps/<file>` (the app's default callable).
pub fn app(file: &str) -> String {
    format!("wsgi:{}", fixtures().join("apps").join(file).display())
}

/// `wsgi:<abs path>/fixtures/apps/<file>:<callable>`.
pub fn callable(file: &str, callable: &str) -> String {
    format!("{}:{callable}", app(file))
}

/// `--mount PREFIX=wsgi:...<file>:<callable>` for every `(prefix, callable)`, as arguments.
pub fn mounts(file: &str, routes: &[(&str, &str)]) -> Vec<String> {
    routes
        .iter()
        .flat_map(|(prefix, name)| {
            [
                "--mount".to_owned(),
                format!("{prefix}={}", callable(file, name)),
            ]
        })
        .collect()
}

/// The `--mount` options of the `wsgiref.validate` test apps: fixtures/apps/wsgi_validated.py
/// (each wrapped in the validator) and the object checks of wsgi_e2e.py.
pub fn validator_mounts() -> Vec<String> {
    let validated = [
        ("/hello", "hello"),
        ("/form", "form"),
        ("/lines", "lines"),
        ("/writer", "writer"),
        ("/streamed", "streamed"),
        ("/no_content", "no_content"),
        ("/error_page", "error_page"),
        ("/file_response", "file_response"),
        ("/report", "report"),
    ];
    let mut m = mounts("wsgi_validated.py", &validated);
    m.extend(mounts("wsgi_e2e.py", &[("/objects", "validator_objects")]));
    m
}

/// Starts `gatehouse` with `args` (which name listeners with `--fastcgi` / `--http`) and waits
/// until every listener is announced. An app that cannot be loaded makes the daemon exit 2
/// before it listens: that fails here with the daemon's log and what to install.
pub fn start(args: &[String]) -> Daemon {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let listeners = args
        .iter()
        .filter(|a| matches!(**a, "--fastcgi" | "--scgi" | "--http" | "--uwsgi"))
        .count();
    assert!(
        listeners > 0,
        "wsgi_support::start needs listeners: {args:?}"
    );
    let mut d = Daemon::start(&args);
    if !d.started() {
        let status = d.wait_exit();
        panic!(
            "gatehouse {args:?} exited ({status}) before listening; its log:\n{}\n\
             (the Flask app needs Flask importable by the python3 gatehouse was built with: \
             `python3 -m pip install 'flask>=3,<4'`, which .ci/run does)",
            d.log().join("\n")
        );
    }
    d.wait_log_count("listening on ", listeners);
    d
}

/// The port of the daemon's first `protocol` listener on 127.0.0.1 (from its `listening on
/// <protocol> 127.0.0.1:PORT` log line).
pub fn port(d: &Daemon, protocol: &str) -> u16 {
    let mark = format!("listening on {protocol} ");
    let line = d.wait_log(&mark);
    let addr = line[line.find(&mark).expect("mark") + mark.len()..].trim();
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{protocol} listener {addr:?} is not HOST:PORT"))
}

/// Whether any line of the daemon's log contains `needle`.
pub fn logged(d: &Daemon, needle: &str) -> bool {
    d.count_log(needle) > 0
}

/// A file the fixture apps append a line to (`X-Record: <path>` request header, see
/// fixtures/apps/wsgi_cases.py) when they prove something happened: `close()` called, an
/// exception re-raised.
pub struct Record {
    path: PathBuf,
}

impl Record {
    /// A record file `name` in `dir` (not created: the app creates it).
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            path: dir.join(name),
        }
    }

    /// The path, as the `X-Record` header's value.
    pub fn header(&self) -> String {
        self.path.display().to_string()
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the file holds the line `line` (at most [`TIMEOUT`]); returns all lines.
    pub fn wait_line(&self, line: &str) -> Vec<String> {
        wait_for(&format!("{line:?} in {}", self.path.display()), || {
            let lines = self.lines();
            lines.iter().any(|l| l == line).then_some(lines)
        })
    }
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A response read leniently: to the end of input, whatever happened on the way.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    /// Header lines, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body ended as its framing says (the last chunk, or `Content-Length` bytes, or the
    /// end of input when neither is given); `false` when the connection was cut first.
    pub complete: bool,
}

impl Raw {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// A request head: `METHOD target HTTP/1.1`, `Host`, `Connection: close`, the `headers` as
/// they are (raw bytes: repeated names, non-ASCII values), and `Content-Length` when there is
/// a body or the method usually has one.
pub fn request_bytes(
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n")
        .into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Sends `request` to `127.0.0.1:port` and reads the answer to the end of input.
pub fn exchange(port: u16, request: &[u8]) -> Raw {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    let writer = {
        let mut s = s.try_clone().expect("clone socket");
        let request = request.to_vec();
        // The server may answer before it reads all of a big body: send from a thread.
        std::thread::spawn(move || {
            let _ = s.write_all(&request);
        })
    };
    let mut data = Vec::new();
    if let Err(e) = s.read_to_end(&mut data) {
        // A reset after the answer (the server closed with unread input) still leaves it read.
        assert!(
            e.kind() == std::io::ErrorKind::ConnectionReset && !data.is_empty(),
            "reading from 127.0.0.1:{port}: {e}"
        );
    }
    writer.join().expect("request writer");
    parse(data)
}

/// `GET target` with `headers`.
pub fn get(port: u16, target: &str, headers: &[(&str, &str)]) -> Raw {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    exchange(port, &request_bytes("GET", target, &headers, b""))
}

/// `POST target` with `content_type` and `body`.
pub fn post(port: u16, target: &str, content_type: &str, body: &[u8]) -> Raw {
    let headers: [(&str, &[u8]); 1] = [("Content-Type", content_type.as_bytes())];
    exchange(port, &request_bytes("POST", target, &headers, body))
}

fn parse(mut data: Vec<u8>) -> Raw {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&data)));
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut rest = data.split_off(end + 4);
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let (body, complete) =
        if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            dechunk(&rest)
        } else if let Some(len) = find("content-length") {
            let len: usize = len.parse().expect("content-length");
            let complete = rest.len() >= len;
            rest.truncate(len);
            (rest, complete)
        } else {
            (rest, true)
        };
    Raw {
        status,
        headers,
        body,
        complete,
    }
}

/// The chunked body of `data` and whether its last chunk arrived.
fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return (body, false);
        };
        let size = String::from_utf8_lossy(&data[..eol]);
        let hex = size.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("chunk size {size:?}"));
        data = &data[eol + 2..];
        if n == 0 {
            return (body, true);
        }
        if data.len() < n {
            body.extend_from_slice(data);
            return (body, false);
        }
        body.extend_from_slice(&data[..n]);
        data = data.get(n + 2..).unwrap_or_default();
    }
}

/// Sends `GET target` with `headers`, reads until at least `at_least` bytes (head included)
/// have arrived, then hangs up in the middle of the response. Returns what was read.
pub fn hang_up_after(
    port: u16,
    target: &str,
    headers: &[(&str, &str)],
    at_least: usize,
) -> Vec<u8> {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    s.write_all(&request_bytes("GET", target, &headers, b""))
        .expect("send request");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < at_least {
        let n = s.read(&mut buf).expect("read the response");
        assert!(
            n > 0,
            "the response ended after {} bytes: {:?}",
            got.len(),
            String::from_utf8_lossy(&got[..got.len().min(400)])
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// A `multipart/form-data` body (RFC 7578) with one text field and one file; returns the
/// content type and the body.
pub fn multipart(note: &str, filename: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "gatehouse-e2e-boundary-5c2e91";
    let mut body = Vec::with_capacity(content.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n{note}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The requests fixtures/apps/echo.py must answer exactly as the built-in `echo` does, each
/// target under `prefix`: a GET with a query, POSTs with and without a body, repeated headers,
/// non-ASCII and non-UTF-8 header values, a percent-encoded path.
pub fn echo_requests(prefix: &str) -> Vec<Vec<u8>> {
    let payload = crate::support::body(200_000, 9);
    let at = |target: &str| format!("{prefix}{target}");
    vec![
        request_bytes(
            "GET",
            &at("/echo/get?a=1&b=%20x&c"),
            &[("X-Test", b"get")],
            b"",
        ),
        request_bytes(
            "POST",
            &at("/echo/post?size=200000"),
            &[
                ("Content-Type", b"application/octet-stream"),
                ("X-Test", b"post"),
            ],
            &payload,
        ),
        request_bytes("POST", &at("/"), &[("Content-Type", b"text/plain")], b""),
        request_bytes(
            "GET",
            &at("/dup"),
            &[
                ("X-Dup", b"one"),
                ("X-Dup", b"two"),
                ("Accept", b"a/b"),
                ("Accept", b"c/d"),
            ],
            b"",
        ),
        request_bytes(
            "GET",
            &at("/caf%C3%A9/x?q=%C3%A9"),
            &[("X-Utf8", "café ☕".as_bytes()), ("X-Latin1", b"caf\xe9")],
            b"",
        ),
    ]
}

/// Checks that fixtures/apps/echo.py answered `got` where the built-in `echo` answered `want`
/// for `request`: the same status, content type and JSON bytes.
pub fn assert_same_echo(want: &Raw, got: &Raw, request: &[u8]) {
    let shown = String::from_utf8_lossy(&request[..request.len().min(200)]).into_owned();
    assert_eq!(want.status, 200, "built-in echo, {shown}: {}", want.text());
    assert_eq!(got.status, 200, "echo.py, {shown}: {}", got.text());
    assert_eq!(
        got.header("content-type"),
        want.header("content-type"),
        "{shown}"
    );
    assert_eq!(
        got.text(),
        want.text(),
        "{shown}\n(left: echo.py, right: the built-in echo)"
    );
}

/// Running the binary as a web server runs a CGI program: the CGI tests' helper.
#[allow(
    unused_imports,
    reason = "only tests/wsgi_cgi.rs runs the binary as a CGI program"
)]
pub use crate::support::cgi::{run_cgi, CgiRun};
