//! End-to-end: sd_notify. The daemon started with `NOTIFY_SOCKET` pointing at a datagram socket
//! of the test (a path, or `@name` in the abstract namespace) sends `READY=1` with a `STATUS=`
//! line once it serves, watchdog pings when `WATCHDOG_USEC` asks, and `STOPPING=1` on SIGTERM;
//! apps do not see the variables.

mod support;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use support::daemon::Daemon;
use support::http;
use support::systemd::{environ_app, NotifyReceiver};

fn start(notify_socket: &str, app: &str, extra_env: &[(&str, &str)]) -> Daemon {
    let mut env = vec![("NOTIFY_SOCKET", notify_socket)];
    env.extend_from_slice(extra_env);
    Daemon::start_env(
        &[
            "echo",
            "--mount",
            &format!("/environ={app}"),
            "--http",
            "127.0.0.1:0",
        ],
        &env,
    )
}

#[test]
fn ready_then_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let rx = NotifyReceiver::bind(&path);
    // WATCHDOG_USEC of 2 s: a ping every second at most; only its arrival is checked.
    let mut d = start(
        path.to_str().unwrap(),
        &environ_app(dir.path()),
        &[("WATCHDOG_USEC", "2000000")],
    );

    let ready = rx.recv_state();
    let addr = d.listener("http");
    assert_eq!(ready, format!("READY=1\nSTATUS=serving http on {addr}"));
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let resp = http::request(port, "GET", "/environ", &[], b"");
    assert!(resp.text().starts_with("env=none "), "{}", resp.text());
    while rx.recv() != "WATCHDOG=1" {}

    d.signal(libc::SIGTERM);
    assert_eq!(rx.recv_state(), "STOPPING=1");
    assert!(d.wait_exit().success());
}

#[test]
fn abstract_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("gatehouse-e2e-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let rx = NotifyReceiver::from_socket(UnixDatagram::bind_addr(&addr).unwrap());
    let mut d = start(&format!("@{name}"), &environ_app(dir.path()), &[]);
    assert!(rx
        .recv_state()
        .starts_with("READY=1\nSTATUS=serving http on 127.0.0.1:"));
    d.signal(libc::SIGTERM);
    assert_eq!(rx.recv_state(), "STOPPING=1");
    assert!(d.wait_exit().success());
}

#[test]
fn a_notify_socket_nobody_reads_is_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("nobody.sock");
    let mut d = start(gone.to_str().unwrap(), &environ_app(dir.path()), &[]);
    d.wait_log("cannot notify systemd (READY=1)");
    let port: u16 = d
        .listener("http")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(http::request(port, "GET", "/x", &[], b"").status, 200);
    assert!(d.stop().success());
}
