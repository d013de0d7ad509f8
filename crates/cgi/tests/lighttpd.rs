//! End to end with a real peer: lighttpd `mod_cgi` runs the `gatehouse-cgi-echo` example (the
//! `echo` app through `gatehouse_cgi::run`) once per request.
//!
//! lighttpd runs in the foreground as our child, configured in a temp dir and listening on a
//! unix socket there. lighttpd missing fails the test (CI installs it). The example binary is
//! built by `cargo test` / `cargo nextest run` before the tests run (examples are built to check
//! they compile); a run limited to `--test lighttpd` must build it first:
//! `cargo build -p gatehouse-cgi --example gatehouse-cgi-echo`.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const LIGHTTPD: &str = "/usr/sbin/lighttpd";
/// The longest any wait may take before the test fails (a loaded 2-core machine is slow).
const PATIENCE: Duration = Duration::from_secs(60);

/// The example binary, next to this test binary's `deps/` directory.
fn echo_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let profile_dir = me.parent().and_then(Path::parent).unwrap();
    let path = profile_dir.join("examples").join("gatehouse-cgi-echo");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p gatehouse-cgi --example gatehouse-cgi-echo` \
         (plain `cargo test -p gatehouse-cgi` builds it)",
        path.display()
    );
    path
}

/// lighttpd, killed and reaped when dropped.
struct Lighttpd {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl Lighttpd {
    fn start(dir: &Path, program: &Path) -> Self {
        assert!(
            Path::new(LIGHTTPD).is_file(),
            "{LIGHTTPD} is missing: this test needs lighttpd (apt-get install lighttpd; .ci/run does)"
        );
        let www = dir.join("www");
        let uploads = dir.join("uploads");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::create_dir_all(&uploads).unwrap();
        std::os::unix::fs::symlink(program, www.join("echo.cgi")).unwrap();
        let socket = dir.join("lighttpd.sock");
        let conf = format!(
            r#"server.document-root = "{www}"
server.bind = "{socket}"
server.errorlog = "{dir}/error.log"
server.upload-dirs = ( "{uploads}" )
server.modules = ( "mod_cgi" )
cgi.assign = ( ".cgi" => "" )
server.max-request-size = 16384
"#,
            www = www.display(),
            socket = socket.display(),
            dir = dir.display(),
            uploads = uploads.display(),
        );
        let conf_path = dir.join("lighttpd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(LIGHTTPD)
            .arg("-D")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {LIGHTTPD}: {e}"));
        let mut me = Self {
            child,
            socket,
            dir: dir.to_owned(),
        };
        me.wait_ready();
        me
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("lighttpd exited ({status}):\n{}", self.error_log());
            }
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "lighttpd did not start:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Lighttpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.0 exchange: status code, head, body.
async fn http(
    server: &Lighttpd,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = UnixStream::connect(&server.socket).await.unwrap();
    let head = format!(
        "{method} {target} HTTP/1.0\r\nHost: localhost\r\nX-Test: v\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .expect("lighttpd answers")
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
async fn lighttpd_mod_cgi_runs_echo() {
    let dir = tempfile::tempdir().unwrap();
    let server = Lighttpd::start(dir.path(), &echo_binary());

    let (status, head, body) = http(&server, "GET", "/echo.cgi/extra/path?x=1&y", b"").await;
    assert_eq!(status, 200, "{head}\n{}", server.error_log());
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/echo.cgi/extra/path");
    assert_eq!(v["query"], "x=1&y");
    assert_eq!(v["headers"]["x-test"], "v");
    assert_eq!(v["body_len"], 0);

    let mib: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    for body in [&b""[..], b"x", &mib] {
        let (status, head, answer) = http(&server, "POST", "/echo.cgi", body).await;
        assert_eq!(status, 200, "{head}\n{}", server.error_log());
        let v: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/echo.cgi");
        assert_eq!(v["body_len"], body.len(), "body of {} bytes", body.len());
        assert_eq!(
            v["body_sha256"],
            sha256_hex(body),
            "body of {} bytes",
            body.len()
        );
    }
}
