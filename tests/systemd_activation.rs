//! End-to-end: systemd socket activation, with the real `systemd-socket-activate` passing the
//! sockets (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`) as a `.socket` unit does: each socket
//! served by the protocol its name names when no listener option is given, `systemd:NAME`
//! otherwise, and the errors of `systemd:NAME`. With `--workers 2`, the master takes the
//! sockets and its workers serve them (two pids, children of the master, none of the
//! activation variables in their environment), also after a SIGHUP reload of an edited app.

mod support;
#[path = "support/workers.rs"]
mod workers_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use support::daemon::run;
use support::fcgi;
use support::fixtures;
use support::http;
use support::systemd::{environ_app, manager_vars_of, socket_activate};
use workers_support::{pid_app, pid_list, ppid, serving_pids, try_get, wait_gone, Got};

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
        d.count_log("is not fastcgi, scgi, http or uwsgi: serving FastCGI"),
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

/// A `workers.py` answer (`VERSION PID`) over FastCGI on a new connection to `addr`.
fn fastcgi_get(addr: &str, path: &str) -> Got {
    let answer = fcgi::call(addr, &fcgi::params("GET", path, "", None), b"");
    let r = answer.cgi();
    Got {
        status: r.status,
        body: r.text(),
    }
}

/// A `GET path` over HTTP on a new connection to port `port`; it must get an answer.
fn http_get(port: u16, path: &str) -> Got {
    try_get(&format!("127.0.0.1:{port}"), path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Sends requests with `send` (each on a new connection, each a `200`) until answers from two
/// pids came; returns them.
fn two_pids(mut send: impl FnMut() -> Got) -> BTreeSet<u32> {
    let mut seen = BTreeSet::new();
    for _ in 0..2000 {
        let got = send();
        assert_eq!(got.status, 200, "{got:?}");
        seen.insert(got.pid());
        if seen.len() == 2 {
            return seen;
        }
    }
    panic!("only pids {seen:?} answered");
}

#[test]
fn workers_serve_both_named_sockets_without_the_activation_variables() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let unix = format!("unix:{}", sock.display());
    let environ = format!("/environ={}", environ_app(dir.path()));
    let app = pid_app();
    let (mut d, port) = socket_activate(
        &[sock.to_str().unwrap(), "tcp"],
        "fastcgi:http",
        &[&app, "--mount", &environ, "--workers", "2"],
        &[],
    );
    // The first connection wakes the tool; it waits in the backlog until a worker accepts it.
    let first = fastcgi_get(&unix, "/");
    assert_eq!(first.status, 200, "{first:?}");
    let master = d.pid();
    let workers: BTreeSet<u32> = serving_pids(&d).into_iter().collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    d.wait_log("systemd socket fd:3 named 'fastcgi': serving fastcgi");
    d.wait_log("systemd socket fd:4 named 'http': serving http");
    for pid in &workers {
        assert_ne!(*pid, master);
        assert_eq!(ppid(*pid), master, "worker {pid} is the master's child");
        assert_eq!(manager_vars_of(*pid), Vec::<String>::new(), "worker {pid}");
    }

    assert_eq!(
        two_pids(|| fastcgi_get(&unix, "/")),
        workers,
        "over FastCGI"
    );
    assert_eq!(two_pids(|| http_get(port, "/")), workers, "over HTTP");

    // The apps in the workers never see the activation variables.
    let over_http = http_get(port, "/environ");
    assert!(over_http.body.starts_with("env=none "), "{over_http:?}");
    let over_fastcgi = fastcgi_get(&unix, "/environ");
    assert!(
        over_fastcgi.body.starts_with("env=none "),
        "{over_fastcgi:?}"
    );

    assert_eq!(d.stop().code(), Some(0));
    assert!(sock.exists(), "the socket file is the socket manager's");
}

/// Writes `text` to a temporary file beside `path`, then renames it into place.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the new app");
    std::fs::rename(&tmp, path).expect("rename the new app into place");
}

#[test]
fn a_reload_keeps_serving_on_the_inherited_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let unix = format!("unix:{}", sock.display());
    let app = dir.path().join("app.py");
    let v1 = std::fs::read_to_string(fixtures().join("apps/workers.py")).expect("workers.py");
    assert!(v1.contains("VERSION = \"v1\""));
    std::fs::write(&app, &v1).expect("write app.py");
    let spec = format!("wsgi:{}", app.display());
    let (mut d, port) = socket_activate(
        &[sock.to_str().unwrap(), "tcp"],
        "fastcgi:http",
        &[&spec, "--workers", "2"],
        &[],
    );
    assert_eq!(fastcgi_get(&unix, "/").version(), "v1");
    assert_eq!(http_get(port, "/").version(), "v1");
    let first = serving_pids(&d);

    // The size changes too, so no stale bytecode cache can answer for v2.
    replace_file(&app, &v1.replace("\"v1\"", "\"v2\"  # reloaded"));
    d.signal(libc::SIGHUP);
    let second = pid_list(&d.wait_log("reload: generation 2 ready ("), "pids ");
    for pid in &first {
        wait_gone(*pid);
    }
    // Only the new generation is left: every answer on both sockets is v2 from one of it.
    for _ in 0..4 {
        for got in [fastcgi_get(&unix, "/"), http_get(port, "/")] {
            assert_eq!(got.status, 200, "{got:?}");
            assert_eq!(got.version(), "v2", "{got:?}");
            assert!(second.contains(&got.pid()), "{got:?} not from {second:?}");
        }
    }
    let answered = two_pids(|| http_get(port, "/"));
    assert_eq!(answered, second.iter().copied().collect(), "generation 2");
    assert_eq!(d.stop().code(), Some(0));
    assert!(sock.exists(), "the socket file is the socket manager's");
}
