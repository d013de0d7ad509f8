//! End-to-end: systemd socket activation, with the real `systemd-socket-activate` passing the
//! sockets (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`) as a `.socket` unit does: each socket
//! served by the protocol its name names when no listener option is given, `systemd:NAME`
//! otherwise, and the errors of `systemd:NAME`.

mod support;

use std::process::Command;

use support::daemon::run;
use support::fcgi;
use support::http;
use support::systemd::{environ_app, socket_activate};

#[test]
fn each_socket_serves_the_protocol_its_name_names() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let app = environ_app(dir.path());
    let (mut d, port) = socket_activate(
        &[sock.to_str().unwrap(), "tcp"],
        "fastcgi:http",
        &["echo", "--mount", &format!("/environ={app}")],
        &[],
    );
    // The first connection makes the tool exec gatehouse; it waits in the backlog meanwhile.
    let answer = fcgi::call(
        &format!("unix:{}", sock.display()),
        &fcgi::params("GET", "/activated", "", None),
        b"",
    );
    assert_eq!(answer.cgi().json()["path"], "/activated");
    let resp = http::request(port, "GET", "/over-http", &[], b"");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["path"], "/over-http");

    let listeners = d.wait_listeners(2);
    let got: Vec<(&str, &str)> = listeners
        .iter()
        .map(|l| (l.protocol.as_str(), l.addr.as_str()))
        .collect();
    let unix = format!("fd:3 (unix:{})", sock.display());
    let tcp = format!("fd:4 (tcp 127.0.0.1:{port})");
    assert_eq!(got, [("fastcgi", unix.as_str()), ("http", tcp.as_str())]);
    d.wait_log("systemd socket fd:3 named 'fastcgi': serving fastcgi");
    d.wait_log("systemd socket fd:4 named 'http': serving http");

    // The app never sees the activation variables: gone from our environment at start-up.
    let resp = http::request(port, "GET", "/environ", &[], b"");
    assert_eq!(resp.status, 200);
    assert!(resp.text().starts_with("env=none "), "{}", resp.text());

    assert!(d.stop().success());
    assert!(
        sock.exists(),
        "the socket file is the socket manager's, not ours"
    );
}

#[test]
fn unnamed_and_unknown_names_serve_fastcgi() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.sock");
    let b = dir.path().join("b.sock");
    let (mut d, _) = socket_activate(
        &[a.to_str().unwrap(), b.to_str().unwrap()],
        "unknown:frontdoor",
        &["echo"],
        &[],
    );
    for (sock, path) in [(&a, "/a"), (&b, "/b")] {
        let answer = fcgi::call(
            &format!("unix:{}", sock.display()),
            &fcgi::params("GET", path, "", None),
            b"",
        );
        assert_eq!(answer.cgi().json()["path"], path);
    }
    let listeners = d.wait_listeners(2);
    assert!(
        listeners.iter().all(|l| l.protocol == "fastcgi"),
        "{listeners:?}"
    );
    assert_eq!(
        d.count_log("is not fastcgi, scgi or http: serving FastCGI"),
        1,
        "one line for the unrecognised name, none for `unknown`"
    );
    assert!(d.stop().success());
}

#[test]
fn systemd_name_picks_the_sockets_of_that_name() {
    let dir = tempfile::tempdir().unwrap();
    let spare = dir.path().join("spare.sock");
    let own = dir.path().join("own.sock");
    let own_addr = format!("unix:{}", own.display());
    let (mut d, port) = socket_activate(
        &["tcp", spare.to_str().unwrap()],
        "web:spare",
        &["echo", "--http", "systemd:web", "--fastcgi", &own_addr],
        &[],
    );
    let resp = http::request(port, "GET", "/named", &[], b"");
    assert_eq!(resp.json()["path"], "/named");
    let listeners = d.wait_listeners(2);
    assert_eq!(listeners[0].protocol, "fastcgi");
    assert_eq!(listeners[0].addr, own_addr);
    assert_eq!(listeners[1].protocol, "http");
    assert_eq!(listeners[1].addr, format!("fd:3 (tcp 127.0.0.1:{port})"));
    d.wait_log("systemd passed socket fd:4 named 'spare', and no listener uses it");
    let answer = fcgi::call(&own_addr, &fcgi::params("GET", "/own", "", None), b"");
    assert_eq!(answer.cgi().json()["path"], "/own");
    assert!(d.stop().success());
}

#[test]
fn systemd_name_that_matches_nothing_names_what_was_passed() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let (mut d, _) = socket_activate(
        &[sock.to_str().unwrap()],
        "fastcgi",
        &["echo", "--http", "systemd:web"],
        &[],
    );
    // Wake the tool: gatehouse starts, finds no socket named web, exits 2.
    let _ = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(2));
    let line = d.wait_log("error:");
    assert!(line.contains("systemd:web"), "{line}");
    assert!(line.contains("names passed: fastcgi"), "{line}");
}

#[test]
fn systemd_name_without_activation_is_a_usage_error() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    // LISTEN_PID of another process: not for us, as sd_listen_fds says.
    cmd.args(["echo", "--fastcgi", "systemd:fastcgi"])
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1");
    let (status, _, err) = run(cmd);
    assert_eq!(status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--fastcgi systemd:fastcgi"), "{err}");
    assert!(err.contains("not socket-activated"), "{err}");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["echo", "--http", "systemd:a:b"]);
    let (status, _, err) = run(cmd);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("FileDescriptorName"), "{err}");
}
