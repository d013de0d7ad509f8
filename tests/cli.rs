//! End-to-end: the command line. Usage errors are one line on stderr and exit 2; a listener
//! that cannot be made is one line and exit 1; `--help` explains. (What the daemon serves with
//! no listener option: tests/default_listeners.rs.)

mod support;

use std::process::Command;

use support::daemon::run;

fn gatehouse(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(args);
    let (status, out, err) = run(cmd);
    (status.code(), out, err)
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    for (args, says) in [
        (&["frobnicate"][..], "unknown app 'frobnicate'"),
        (&["wsgi:my-app"], "bad wsgi app spec"),
        (&["cgi:"], "needs a path"),
        (&["--mount", "api=echo"], "must start with '/'"),
        (&["--cgi", "--http", "127.0.0.1:0"], "cannot be used with"),
        (&["--scgi", "9000"], "bad address '9000'"),
        (&["--http-max-headers", "0"], "--http-max-headers"),
        (&["--fastcgi", "9000"], "bad address '9000'"),
        (&["--fastcgi", "localhost"], "no port"),
        (&["--fastcgi", "127.0.0.1:70000"], "0 to 65535"),
        (&["--fastcgi", "unix:"], "empty"),
        (&["--fastcgi", "fd:x"], "file descriptor"),
        (
            &["--fastcgi", "fd:5", "--fastcgi", "fd:5"],
            "fd:5 is given twice",
        ),
        (&["--socket-mode", "888"], "octal"),
        (&["--max-conns", "0"], "--max-conns"),
        (&["--idle-timeout", "soon"], "duration"),
        (&["--log-level", "loud=[["], "log level"),
        (&["--no-such-option"], "--no-such-option"),
        (&["hello", "echo"], "unexpected argument"),
    ] {
        let (code, out, err) = gatehouse(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: stdout {out:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.contains(says), "{args:?}: {err:?} should say {says:?}");
    }
}

#[test]
fn listeners_that_cannot_be_made_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = gatehouse(&["--fastcgi", &addr]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .contains(&format!("cannot listen on {addr}")),
        "{err}"
    );

    // stdin is /dev/null here: not a socket.
    let (code, _, err) = gatehouse(&["--fastcgi", "fd:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("fd 0 is not a socket"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/s.sock");
    let (code, _, err) = gatehouse(&["--fastcgi", &format!("unix:{}", missing.display())]);
    assert_eq!(code, Some(1), "{err}");
}

#[test]
fn help_explains_apps_addresses_and_signals() {
    let (code, out, _) = gatehouse(&["--help"]);
    assert_eq!(code, Some(0));
    for needle in [
        "Usage: gatehouse [OPTIONS] [APP]",
        "hello, echo or env",
        "--fastcgi <ADDR>",
        "unix:/path/to.sock",
        "fd:N",
        "[V6]:PORT",
        "--socket-mode",
        "--backlog",
        "FCGI_WEB_SERVER_ADDRS",
        "--max-conns",
        "--fastcgi-max-reqs",
        "--fastcgi-max-reqs-per-conn",
        "--workers",
        "--runtime-threads",
        "--max-requests",
        "--master",
        "--max-params-bytes",
        "--idle-timeout",
        "--drain-timeout",
        "--log-level",
        "RUST_LOG",
        "127.0.0.1:9000",
        "fastcgi_pass",
        "spawn-fcgi",
        "SIGTERM",
        "--scgi <ADDR>",
        "--http <ADDR>",
        "127.0.0.1:4000",
        "127.0.0.1:8000",
        "curl http://127.0.0.1:8000/",
        "scgi_pass",
        "--mount <PREFIX=APP>",
        "--cgi ",
        "GATEWAY_INTERFACE",
        "GATEHOUSE_APP",
        "wsgi:MODULE[:CALLABLE]",
        "cgi:PATH",
        "--threads",
        "--pythonpath",
        "--venv",
        "--cgi-timeout",
        "--cgi-extensions",
        "--scgi-max-header-bytes",
        "--http-idle-timeout",
    ] {
        assert!(out.contains(needle), "--help lacks {needle:?}:\n{out}");
    }
    let (code, out, _) = gatehouse(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("gatehouse "), "{out}");
}
