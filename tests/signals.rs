//! End-to-end: what SIGTERM and SIGINT do. The first stops accepting, lets requests in flight
//! finish (at most --drain-timeout) and exits 0; a second one exits at once.
//!
//! A request is made "in flight" deterministically: BEGIN_REQUEST, PARAMS and half the body, then
//! FCGI_GET_VALUES on the same connection. The daemon handles records in order, so its
//! GET_VALUES_RESULT proves it has started the request.

mod support;

use support::daemon::Daemon;
use support::fcgi::{self, Client};
use support::sha256_hex;

/// Starts a request for 10 body bytes, sends 5, and waits until the daemon has taken it.
fn half_sent_request(addr: &str) -> Client {
    let mut c = Client::connect(addr);
    let mut wire = fcgi::begin(1, fcgi::RESPONDER, fcgi::KEEP_CONN);
    wire.extend(fcgi::stream(
        fcgi::PARAMS,
        1,
        &fcgi::nv_pairs(&[
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/slow"),
            ("CONTENT_LENGTH", "10"),
        ]),
    ));
    wire.extend(fcgi::record(fcgi::STDIN, 1, b"01234"));
    wire.extend(fcgi::record(
        fcgi::GET_VALUES,
        0,
        &fcgi::nv_pairs(&[("FCGI_MPXS_CONNS", "")]),
    ));
    c.send(&wire);
    let rec = c.read_record().expect("GET_VALUES_RESULT");
    assert_eq!(rec.ty, fcgi::GET_VALUES_RESULT, "{rec:?}");
    c
}

#[test]
fn sigterm_drains_the_request_in_flight_then_exits_0() {
    let mut d = Daemon::fastcgi_tcp("echo", &[]);
    let addr = d.addr();
    let mut c = half_sent_request(&addr);

    d.signal(libc::SIGTERM);
    d.wait_log("received SIGTERM: stopped accepting");
    assert!(
        Client::try_connect(&addr).is_err(),
        "the listener must be closed while draining"
    );
    assert!(
        d.is_running(),
        "the daemon must wait for the request in flight"
    );

    let mut rest = fcgi::record(fcgi::STDIN, 1, b"56789");
    rest.extend(fcgi::record(fcgi::STDIN, 1, b""));
    c.send(&rest);
    let answer = c.answer(1);
    let j = answer.cgi().json();
    assert_eq!(j["path"], "/slow");
    assert_eq!(j["body_len"], 10);
    assert_eq!(j["body_sha256"], sha256_hex(b"0123456789"));

    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    d.wait_log("all connections finished");
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut d = Daemon::fastcgi_tcp("echo", &[]);
    let _c = half_sent_request(&d.addr());
    d.signal(libc::SIGINT);
    d.wait_log("received SIGINT: stopped accepting");
    d.signal(libc::SIGTERM);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status}");
}

#[test]
fn drain_timeout_bounds_the_wait() {
    let mut d = Daemon::fastcgi_tcp("echo", &["--drain-timeout", "200ms"]);
    let mut c = half_sent_request(&d.addr());
    d.signal(libc::SIGTERM);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    d.wait_log("drain timeout (200ms) reached with 1 connection(s) still open");
    // The cut request never got an answer as if its body were whole.
    while let Some(rec) = c.read_record() {
        assert!(
            !String::from_utf8_lossy(&rec.content).contains("body_len"),
            "{rec:?}"
        );
    }
}

#[test]
fn sigint_with_nothing_in_flight_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("idle.sock");
    let mut d = Daemon::fastcgi_unix("hello", &sock, &[]);
    assert!(sock.exists());
    d.signal(libc::SIGINT);
    assert_eq!(d.wait_exit().code(), Some(0));
    assert!(
        !sock.exists(),
        "the daemon removes the socket file it created"
    );
}

#[test]
fn idle_kept_alive_connections_do_not_hold_up_shutdown() {
    let mut d = Daemon::fastcgi_tcp("hello", &["--drain-timeout", "10m"]);
    let mut c = Client::connect(&d.addr());
    c.send(&fcgi::request(
        1,
        fcgi::KEEP_CONN,
        &fcgi::params("GET", "/", "", None),
        b"",
    ));
    assert_eq!(c.answer(1).cgi().text(), "Hello, world!\n");
    // The connection is open and idle, as in nginx's upstream keepalive pool.
    d.signal(libc::SIGTERM);
    assert!(
        c.closed_by_peer(),
        "an idle connection is closed on shutdown"
    );
    assert_eq!(d.wait_exit().code(), Some(0));
    d.wait_log("all connections finished");
}

#[test]
fn sigusr1_is_ignored_and_sigquit_stops_gracefully() {
    let mut d = Daemon::fastcgi_tcp("hello", &[]);
    d.signal(libc::SIGUSR1);
    d.wait_log("received SIGUSR1: logs go to stderr, nothing to reopen; ignored");
    assert!(d.is_running(), "SIGUSR1 must not end the daemon");
    let addr = d.addr();
    assert!(Client::try_connect(&addr).is_ok(), "still serving");
    // nginx's graceful stop (`nginx -s quit`): the same drain as SIGTERM, exit 0.
    d.signal(libc::SIGQUIT);
    d.wait_log("received SIGQUIT: stopped accepting");
    assert_eq!(d.wait_exit().code(), Some(0));
}
