//! End-to-end: unix socket listeners. A socket file left by a dead process is replaced, a live
//! one is an error (exit 1, the other process untouched), a file that is not a socket is never
//! deleted, `--socket-mode` is applied, and the daemon removes its socket file when it exits.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use support::daemon::{run, Daemon};
use support::fcgi;

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("stale.sock");
    // A listener that went away without removing its file, as after a crash.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());

    let mut d = Daemon::fastcgi_unix("hello", &sock, &["--socket-mode", "600"]);
    d.wait_log("replacing a stale socket file");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let addr = format!("unix:{}", sock.display());
    let answer = fcgi::call(&addr, &fcgi::params("GET", "/", "", None), b"");
    assert_eq!(answer.cgi().text(), "Hello, world!\n");

    assert_eq!(d.stop().code(), Some(0));
    assert!(!sock.exists(), "the daemon removes its socket file on exit");
}

#[test]
fn a_live_socket_is_an_error_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("live.sock");
    let live = std::os::unix::net::UnixListener::bind(&sock).unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["--fastcgi", &format!("unix:{}", sock.display())]);
    let (status, _, err) = run(cmd);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("another process is listening on it"), "{err}");

    // The other process's socket still works.
    let _client = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    assert!(live.accept().is_ok());
}

#[test]
fn a_file_that_is_not_a_socket_is_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, b"keep me").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["--fastcgi", &format!("unix:{}", path.display())]);
    let (status, _, err) = run(cmd);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn several_listeners_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("both.sock");
    let unix = format!("unix:{}", sock.display());
    let d = Daemon::start(&["echo", "--fastcgi", "127.0.0.1:0", "--fastcgi", &unix]);
    let addrs = d.wait_listening(2);
    assert!(addrs.contains(&unix), "{addrs:?}");
    for addr in &addrs {
        let answer = fcgi::call(addr, &fcgi::params("GET", "/both", "", None), b"");
        assert_eq!(answer.cgi().json()["path"], "/both");
    }
}
