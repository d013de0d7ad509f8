//! Support for the end-to-end tests: start the built `gatehouse` binary and real peers (nginx,
//! lighttpd, cgi-fcgi, spawn-fcgi, curl) on loopback ports or unix sockets in temp dirs, talk
//! FastCGI and HTTP to them, run the binary as a CGI program, and stop them all at the end.
//!
//! Rules the tests follow: a peer missing from the machine fails the test (CI installs them all);
//! no timing assertions; readiness is polled, never slept for; every wait has a generous timeout
//! (the tests run on a loaded 2-core machine).
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses its own part of the support code"
)]

pub mod cgi;
pub mod daemon;
pub mod fcgi;
pub mod http;
pub mod lighttpd;
pub mod netns;
pub mod nginx;
pub mod scgi;
pub mod systemd;
pub mod uwsgi;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long any single wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// Polls `probe` until it returns `Some`, failing the test after [`TIMEOUT`].
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The path of a program the test needs. Missing programs fail the test loudly: `.ci/run`
/// installs every one of them.
pub fn require(program: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .into_iter()
        .map(PathBuf::from),
    );
    for dir in dirs {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{program}` is not installed: this end-to-end test needs it. \
         Install it with `apt-get install {debian_package}` (.ci/run does)."
    );
}

/// A free loopback TCP port (bound, then released; a peer given it binds it next).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Sends `sig` to process `pid`.
pub fn kill(pid: u32, sig: i32) {
    let pid = i32::try_from(pid).expect("pid fits i32");
    #[allow(unsafe_code, reason = "kill(2) has no safe wrapper in std")]
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, sig) };
    assert!(
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH),
        "kill({pid}, {sig}) failed: {}",
        std::io::Error::last_os_error()
    );
}

/// Stops a peer server we started: SIGTERM, at most [`TIMEOUT`] to exit, then SIGKILL; reaped.
/// No panics: this runs from `Drop`, maybe while a failed test unwinds.
pub fn stop_child(child: &mut std::process::Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    kill(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + TIMEOUT;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` as a web server runs a CGI program: `input` on its stdin (written from a thread,
/// since the program may answer before it reads everything; closed after it), stdout and stderr
/// collected.
pub fn output_with_stdin(cmd: &mut std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for the program");
    writer.join().expect("stdin writer");
    out
}

/// A deterministic pseudo-random body of `len` bytes (xorshift), different for each `seed`.
pub fn body(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The directory of the binary under test (`target/<profile>`).
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
        .parent()
        .expect("binary has a parent dir")
        .to_owned()
}

/// The fixtures directory of the repository.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}
