//! End-to-end: the daemon started the way web servers start FastCGI programs, with its listening
//! socket on fd 0 (`FCGI_LISTENSOCK_FILENO`): by `spawn-fcgi` (unix and TCP), and by a parent that
//! passes a socket as stdin. Also FCGI_WEB_SERVER_ADDRS (spec section 3.2).

mod support;

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use support::daemon::Daemon;
use support::fcgi::{self, Client};
use support::{free_port, require};

fn spawn_fcgi(where_: &[&str], env: &[(&str, &str)]) -> Daemon {
    let mut cmd = Command::new(require("spawn-fcgi", "spawn-fcgi"));
    // -n: no fork; spawn-fcgi binds, puts the socket on fd 0 and execs the daemon in place.
    cmd.arg("-n")
        .args(where_)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("echo")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    Daemon::spawn(cmd, "spawn-fcgi gatehouse")
}

fn hello_request(addr: &str) -> fcgi::Answer {
    fcgi::call(addr, &fcgi::params("GET", "/spawned", "", None), b"")
}

#[test]
fn spawn_fcgi_unix_socket_on_fd_0() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("spawned.sock");
    let mut d = spawn_fcgi(&["-s", sock.to_str().unwrap()], &[]);
    let listening = d.wait_listening(1);
    assert_eq!(listening[0], format!("fd:0 (unix:{})", sock.display()));
    let answer = hello_request(&format!("unix:{}", sock.display()));
    assert_eq!(answer.cgi().json()["path"], "/spawned");
    assert!(d.stop().success());
    // The socket file belongs to spawn-fcgi's caller: the daemon leaves it alone.
    assert!(sock.exists());
}

#[test]
fn spawn_fcgi_tcp_on_fd_0_with_web_server_addrs() {
    for _attempt in 0..5 {
        let port = free_port().to_string();
        let mut d = spawn_fcgi(
            &["-a", "127.0.0.1", "-p", &port],
            &[("FCGI_WEB_SERVER_ADDRS", "192.0.2.7, 127.0.0.1")],
        );
        if !d.started() {
            continue; // the port was taken between free_port() and spawn-fcgi's bind
        }
        let listening = d.wait_listening(1);
        assert_eq!(listening[0], format!("fd:0 (tcp 127.0.0.1:{port})"));
        let answer = hello_request(&format!("127.0.0.1:{port}"));
        assert_eq!(answer.cgi().json()["path"], "/spawned");
        assert!(d.stop().success());
        return;
    }
    panic!("spawn-fcgi could not bind a free port in 5 attempts");
}

#[test]
fn web_server_addrs_refuse_other_peers() {
    // 192.0.2.0/24 is TEST-NET-1: never a loopback peer.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["hello", "--fastcgi", "127.0.0.1:0"])
        .env("FCGI_WEB_SERVER_ADDRS", "192.0.2.7")
        .stdin(Stdio::null());
    let d = Daemon::spawn(cmd, "gatehouse");
    let mut c = Client::connect(&d.addr());
    let _ = c.try_send(&fcgi::request(
        1,
        0,
        &fcgi::params("GET", "/", "", None),
        b"",
    ));
    assert!(
        c.closed_by_peer(),
        "a peer outside FCGI_WEB_SERVER_ADDRS must be refused"
    );
    d.wait_log("connection refused");

    // The flag overrides the environment.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args([
        "hello",
        "--fastcgi",
        "127.0.0.1:0",
        "--web-server-addrs",
        "127.0.0.1",
    ])
    .env("FCGI_WEB_SERVER_ADDRS", "192.0.2.7")
    .stdin(Stdio::null());
    let d = Daemon::spawn(cmd, "gatehouse");
    let answer = hello_request(&d.addr());
    assert_eq!(answer.cgi().text(), "Hello, world!\n");
}

#[test]
fn listening_socket_passed_as_stdin() {
    // Detected on fd 0 without any flag (a unix socket)...
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inherited.sock");
    let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.arg("echo").stdin(Stdio::from(OwnedFd::from(unix)));
    let mut d = Daemon::spawn(cmd, "gatehouse");
    assert_eq!(
        d.wait_listening(1)[0],
        format!("fd:0 (unix:{})", path.display())
    );
    let answer = hello_request(&format!("unix:{}", path.display()));
    assert_eq!(answer.cgi().json()["path"], "/spawned");
    assert!(d.stop().success());

    // ...and named explicitly with --fastcgi fd:0 (a TCP socket).
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["echo", "--fastcgi", "fd:0"])
        .stdin(Stdio::from(OwnedFd::from(tcp)));
    let mut d = Daemon::spawn(cmd, "gatehouse");
    assert_eq!(d.wait_listening(1)[0], format!("fd:0 (tcp {addr})"));
    let answer = hello_request(&addr.to_string());
    assert_eq!(answer.cgi().json()["path"], "/spawned");
    assert!(d.stop().success());
}
