//! End to end with a real peer: nginx `scgi_pass` to an SCGI listener in this test process
//! serving the built-in `echo` app behind a `Dispatcher`.
//!
//! nginx runs in the foreground as our child, configured in a temp dir (pid, logs, temp paths
//! there too), listening on a unix socket in that dir; the SCGI listener is on an ephemeral
//! loopback port. The stock `/etc/nginx/scgi_params` is included as is, so the request carries
//! what a default nginx sends (`REQUEST_URI`, no `SCRIPT_NAME`/`PATH_INFO`). nginx missing fails
//! the test: CI installs it.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_channel_request::{
    AppError, Application, BoxFuture, CancellationToken, Peer, Request, Response, ResponseHead,
};
use gatehouse_dispatch::{builtin, Dispatcher};
use gatehouse_scgi::{serve_connection, Config, Duplicates, Server};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

const NGINX: &str = "/usr/sbin/nginx";
const SCGI_PARAMS: &str = "/etc/nginx/scgi_params";
/// The longest any wait may take before the test fails (a loaded 2-core machine is slow).
const PATIENCE: Duration = Duration::from_secs(60);

/// nginx, killed and reaped when dropped.
struct Nginx {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with its files in `dir` (created; one nginx per dir).
    fn start(dir: &Path, scgi_port: u16) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        assert!(
            Path::new(NGINX).is_file(),
            "{NGINX} is missing: this test needs nginx (apt-get install nginx; .ci/run does)"
        );
        assert!(
            Path::new(SCGI_PARAMS).is_file(),
            "{SCGI_PARAMS} is missing (package nginx-common)"
        );
        let d = dir.display();
        let socket = dir.join("nginx.sock");
        let conf = format!(
            "user root;
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 16m;
    server {{
        listen unix:{socket};
        location / {{
            include {SCGI_PARAMS};
            scgi_pass 127.0.0.1:{scgi_port};
        }}
    }}
}}
",
            socket = socket.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {NGINX}: {e}"));
        let mut nginx = Self {
            child,
            socket,
            dir: dir.to_owned(),
        };
        nginx.wait_ready();
        nginx
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("nginx exited ({status}):\n{}", self.error_log());
            }
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves SCGI with `echo` on an ephemeral loopback port until `stop` is cancelled.
async fn scgi_listener(stop: CancellationToken, config: Config) -> u16 {
    let echo = builtin::by_name("echo").unwrap();
    serve_app(Arc::new(Dispatcher::single(echo)), stop, config).await
}

/// Serves SCGI with `app` on an ephemeral loopback port until `stop` is cancelled.
async fn serve_app(app: Arc<dyn Application>, stop: CancellationToken, config: Config) -> u16 {
    let server = Server::new(app, config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => {
                    let (stream, addr) = accepted.unwrap();
                    let conn = serve_connection(server.clone(), stream, Peer::Tcp(addr), stop.clone());
                    tokio::spawn(conn);
                }
            }
        }
    });
    port
}

/// One HTTP/1.0 exchange with nginx: status code, headers, body.
async fn http(
    nginx: &Nginx,
    method: &str,
    target: &str,
    extra: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = UnixStream::connect(&nginx.socket).await.unwrap();
    let head = format!(
        "{method} {target} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .expect("nginx answers")
        .unwrap();
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&out)));
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, out[end + 4..].to_vec())
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_scgi_pass_to_echo() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let port = scgi_listener(stop.clone(), Config::default()).await;
    let nginx = Nginx::start(dir.path(), port);

    let (status, head, body) = http(&nginx, "GET", "/some/path?x=1&y", "X-Test: v\r\n", b"").await;
    assert_eq!(status, 200, "{head}\n{}", nginx.error_log());
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "x=1&y");
    assert_eq!(v["headers"]["x-test"], "v");
    assert_eq!(v["body_len"], 0);

    let mib: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    for body in [&b""[..], b"x", &mib] {
        let (status, head, answer) = http(
            &nginx,
            "POST",
            "/upload",
            "Content-Type: application/octet-stream\r\n",
            body,
        )
        .await;
        assert_eq!(status, 200, "{head}\n{}", nginx.error_log());
        let v: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/upload");
        assert_eq!(v["body_len"], body.len(), "body of {} bytes", body.len());
        assert_eq!(
            v["body_sha256"],
            sha256_hex(body),
            "body of {} bytes",
            body.len()
        );
    }
    stop.cancel();
}

/// Many requests at once through nginx (bounded: 16 clients x 8 requests), each body checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_concurrent_requests() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let port = scgi_listener(stop.clone(), Config::default()).await;
    let nginx = Arc::new(Nginx::start(dir.path(), port));
    let mut clients = Vec::new();
    for client in 0..16usize {
        let nginx = nginx.clone();
        clients.push(tokio::spawn(async move {
            for round in 0..8usize {
                let len = (client * 7919 + round * 104_729) % 200_000;
                let body: Vec<u8> = (0..len).map(|i| (i * 31 + client) as u8).collect();
                let target = format!("/c{client}/r{round}");
                let (status, head, answer) = http(&nginx, "PUT", &target, "", &body).await;
                assert_eq!(status, 200, "{head}");
                let v: Value = serde_json::from_slice(&answer).unwrap();
                assert_eq!(v["path"], target);
                assert_eq!(v["body_len"], len);
                assert_eq!(v["body_sha256"], sha256_hex(&body));
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    stop.cancel();
}

/// Streams 100 000 bytes after its head (no Content-Length), then fails unless told not to.
struct Streams {
    fail: bool,
}

impl Application for Streams {
    fn call<'a>(
        &'a self,
        _: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let head = ResponseHead::new(200).with_header("Content-Type", "text/plain")?;
            resp.send_head(head).await?;
            resp.write(Bytes::from(vec![b'p'; 100_000])).await?;
            if self.fail {
                return Err("broken midway".into());
            }
            Ok(())
        })
    }
}

/// An HTTP/1.1 GET through nginx; the raw answer (chunked, as nginx has no length to send).
async fn http11_raw(nginx: &Nginx) -> Vec<u8> {
    let mut stream = UnixStream::connect(&nginx.socket).await.unwrap();
    let head = "GET /stream HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // nginx may close with a reset itself after a failed upstream: keep what arrived.
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .expect("nginx answers");
    out
}

/// An app failing after its head reaches nginx as a failed upstream (we reset the TCP
/// connection), so the client never sees the end of the chunked body; a good one ends cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_sees_an_aborted_response() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    for fail in [false, true] {
        let app = Arc::new(Streams { fail });
        let port = serve_app(app, stop.clone(), Config::default()).await;
        let nginx = Nginx::start(&dir.path().join(format!("fail-{fail}")), port);
        let out = http11_raw(&nginx).await;
        assert!(
            out.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{}",
            nginx.error_log()
        );
        let complete = out.ends_with(b"\r\n0\r\n\r\n");
        assert_eq!(complete, !fail, "fail={fail}\n{}", nginx.error_log());
        if fail {
            let log = nginx.error_log();
            assert!(
                log.contains("reset by peer") || log.contains("prematurely"),
                "{log}"
            );
        }
    }
    stop.cancel();
}

/// A repeated request header: nginx before 1.23 (Debian 12 has 1.22) sends it as a repeated
/// `HTTP_*` name, which the specification forbids (400 by default); nginx 1.23+ joins it.
/// `Duplicates::JoinHttpHeaders`, the default, accepts both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_repeated_request_header() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let dup = "X-Dup: a\r\nX-Dup: b\r\n";

    let strict_config = Config {
        duplicates: Duplicates::Reject,
        ..Config::default()
    };
    let strict = Nginx::start(dir.path(), scgi_listener(stop.clone(), strict_config).await);
    let (status, head, body) = http(&strict, "GET", "/dup", dup, b"").await;
    match status {
        400 => assert!(String::from_utf8_lossy(&body).contains("Bad Request")),
        200 => {
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                v["headers"]["x-dup"], "a, b",
                "nginx joined the header itself"
            );
        }
        _ => panic!("{head}\n{}", strict.error_log()),
    }
    drop(strict);

    // The default joins.
    let nginx = Nginx::start(
        &dir.path().join("joining"),
        scgi_listener(stop.clone(), Config::default()).await,
    );
    let (status, head, body) = http(&nginx, "GET", "/dup", dup, b"").await;
    assert_eq!(status, 200, "{head}\n{}", nginx.error_log());
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["headers"]["x-dup"], "a, b");
    stop.cancel();
}
