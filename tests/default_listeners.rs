//! End-to-end: what the daemon serves with no listener option.
//!
//! - Nothing inherited on fd 0 and no CGI environment: FastCGI on 127.0.0.1:9000, SCGI on
//!   127.0.0.1:4000 and HTTP on 127.0.0.1:8000, all three announced and answering `hello`.
//! - A listening socket on fd 0 (how spawn-fcgi and mod_fcgid start FastCGI programs): FastCGI
//!   on that socket, and nothing else.
//!
//! The default ports are fixed, so these tests run in a private network namespace
//! (`support::netns`, needs root as CI runs): there nothing else can hold the ports and nothing
//! outside is disturbed. Where namespaces are not allowed they use the host's loopback if the
//! three ports are free, and fail naming the busy port otherwise (a test that skips itself could
//! not fail). The choice of the plan itself is unit-tested in `src/listen.rs`.

mod support;

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use support::daemon::{Daemon, Listener};
use support::{fcgi, netns, require, scgi};

const DEFAULTS: [(&str, &str); 3] = [
    ("fastcgi", "127.0.0.1:9000"),
    ("scgi", "127.0.0.1:4000"),
    ("http", "127.0.0.1:8000"),
];

/// A loopback where the default ports are ours; says which.
fn isolate() -> &'static str {
    let Err(why) = netns::enter_private_network() else {
        return "in a private network namespace";
    };
    for (protocol, addr) in DEFAULTS {
        if let Err(e) = TcpListener::bind(addr) {
            panic!(
                "cannot test the default listeners: no private network namespace ({why}; run \
                 the tests as root) and {addr}, the default {protocol} address, is busy on this \
                 machine ({e}): stop what listens there"
            );
        }
    }
    "on the host's loopback"
}

fn hello_over_fastcgi() -> String {
    fcgi::call("127.0.0.1:9000", &fcgi::params("GET", "/", "", None), b"")
        .cgi()
        .text()
}

#[test]
fn no_options_serve_fastcgi_scgi_and_http_on_their_defaults() {
    let net = isolate();
    let mut d = Daemon::start(&[]);
    let want: Vec<Listener> = DEFAULTS
        .iter()
        .map(|(protocol, addr)| Listener {
            protocol: (*protocol).to_owned(),
            addr: (*addr).to_owned(),
        })
        .collect();
    assert_eq!(d.wait_listeners(3), want, "{net}");

    assert_eq!(hello_over_fastcgi(), "Hello, world!\n");

    let answer = scgi::call(
        "127.0.0.1:4000",
        &[("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/")],
        b"",
    );
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "Hello, world!\n")
    );

    // What a newcomer tries first.
    let out = Command::new(require("curl", "curl"))
        .args(["-sS", "--max-time", "60", "http://127.0.0.1:8000/"])
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, world!\n");

    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn a_listening_socket_on_fd_0_is_served_alone() {
    let net = isolate();
    let inherited = TcpListener::bind("127.0.0.1:9000").expect("bind 127.0.0.1:9000");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.stdin(Stdio::from(OwnedFd::from(inherited)));
    let mut d = Daemon::spawn(cmd, "gatehouse (socket on fd 0)");
    assert_eq!(
        d.wait_listeners(1)[0],
        Listener {
            protocol: "fastcgi".into(),
            addr: "fd:0 (tcp 127.0.0.1:9000)".into()
        }
    );
    // Answered: every listener was bound before the first request could be served.
    assert_eq!(hello_over_fastcgi(), "Hello, world!\n");
    if net.contains("namespace") {
        for addr in ["127.0.0.1:4000", "127.0.0.1:8000"] {
            let refused = TcpStream::connect(addr).map(drop).unwrap_err();
            assert_eq!(
                refused.kind(),
                std::io::ErrorKind::ConnectionRefused,
                "{addr}"
            );
        }
    }
    assert_eq!(d.stop().code(), Some(0));
    assert_eq!(d.count_log("listening on "), 1, "{:?}", d.log());
}
