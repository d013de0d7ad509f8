//! `run` as a process: the `gatehouse-cgi-echo` example started with a CGI environment built
//! with `env_clear().envs(..)`, checking stdout, the exit code and the one stderr line.
//! (The example is built by `cargo test`; see `tests/lighttpd.rs`.)

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn echo_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let path = me
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/gatehouse-cgi-echo");
    assert!(
        path.is_file(),
        "{} is missing: `cargo build -p gatehouse-cgi --example gatehouse-cgi-echo`",
        path.display()
    );
    path
}

fn cgi(vars: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(echo_binary())
        .env_clear()
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REMOTE_ADDR", "203.0.113.9")
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The program may exit without reading all of it: a broken pipe here is fine.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn answers_and_exits_zero() {
    let out = cgi(
        &[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_LENGTH", "3"),
            ("PATH_INFO", "/p"),
        ],
        b"abcdef",
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("Status: 200 OK\r\n"), "{stdout}");
    assert!(stdout.contains("\"body_len\":3"), "{stdout}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_content_length_is_400_and_one_stderr_line() {
    let out = cgi(
        &[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "ten")],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "an answer was written");
    assert!(out.stdout.starts_with(b"Status: 400 Bad Request\r\n"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("remote_addr=203.0.113.9"), "{stderr}");
    assert!(
        stderr.contains("CONTENT_LENGTH is not a number: \"ten\""),
        "{stderr}"
    );
}

#[test]
fn short_stdin_is_400_and_one_stderr_line() {
    let out = cgi(
        &[("REQUEST_METHOD", "PUT"), ("CONTENT_LENGTH", "100")],
        b"only this",
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.starts_with(b"Status: 400 Bad Request\r\n"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("ended after 9 of 100 body bytes"),
        "{stderr}"
    );
}

#[test]
fn missing_method_is_500() {
    let out = cgi(&[], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(out
        .stdout
        .starts_with(b"Status: 500 Internal Server Error\r\n"));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("REQUEST_METHOD is not set"), "{stderr}");
}
