//! End-to-end: `--user`, `--group` and `--socket-owner` (the tests run as root). The daemon binds
//! as root, then runs as the user: every thread's ids in /proc, the apps built after the drop,
//! requests (and a CGI script) served as that user; unknown names and impossible combinations exit 2 with one line.
//! With `--workers 2`, the master drops before any worker starts: master and workers all run
//! as the user, and `--socket-owner` applies to the socket the workers share.

mod support;
#[path = "support/workers.rs"]
mod workers_support;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use support::daemon::{run, Daemon};
use support::fcgi;
use support::http;
use workers_support::{ppid, serving_pids};

/// `Uid:`/`Gid:`/`Groups:` of every thread of `pid`.
fn thread_ids(pid: u32) -> Vec<(String, String, String)> {
    let mut all = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("list threads") {
        let task = task.expect("a thread").path();
        let status = std::fs::read_to_string(task.join("status")).expect("thread status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {status}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        all.push((field("Uid:"), field("Gid:"), field("Groups:")));
    }
    all
}

fn require_root() {
    let uid = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    assert_eq!(
        uid, 0,
        "these tests drop privileges, so they must run as root (.ci/run does)"
    );
}

/// A directory (readable by everyone) with a CGI script printing the uid it runs as.
fn whoami_scripts() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("whoami.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nuid=%s\\n' \"$(id -u)\"\n",
    )
    .expect("write the script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

#[test]
fn user_nobody_after_binding() {
    require_root();
    let scripts = whoami_scripts();
    let cgi = format!("/cgi=cgi:{}", scripts.path().display());
    let d = Daemon::serve(&[
        "echo",
        "--mount",
        &cgi,
        "--user",
        "nobody",
        "--http",
        "127.0.0.1:0",
    ]);
    let addr = d.listener("http");
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let resp = http::request(port, "GET", "/served", &[], b"");
    assert_eq!(resp.json()["path"], "/served");
    let who = http::request(port, "GET", "/cgi/whoami.sh", &[], b"");
    assert_eq!(who.text().trim(), "uid=65534", "{}", who.text());

    let ids = thread_ids(d.pid());
    assert!(ids.len() > 1, "the runtime's threads exist: {ids:?}");
    for (uid, gid, groups) in &ids {
        assert_eq!(uid, "65534 65534 65534 65534", "{ids:?}");
        assert_eq!(gid, "65534 65534 65534 65534", "{ids:?}");
        assert_eq!(groups, "", "no supplementary groups left: {ids:?}");
    }
    // The apps were built after the drop: no app code ran as root.
    let log = d.log();
    let dropped = log
        .iter()
        .position(|l| l.contains("--user nobody: now running as uid 65534 gid 65534"))
        .expect("the drop is logged");
    let built = log
        .iter()
        .position(|l| l.contains("serving echo at /"))
        .expect("the app is logged");
    assert!(dropped < built, "{log:#?}");
}

#[test]
fn group_alone_and_numeric_ids() {
    require_root();
    let d = Daemon::serve(&["echo", "--group", "65534", "--http", "127.0.0.1:0"]);
    d.listener("http");
    for (uid, gid, groups) in thread_ids(d.pid()) {
        assert_eq!(uid, "0 0 0 0");
        assert_eq!(gid, "65534 65534 65534 65534");
        assert_eq!(groups, "");
    }
    let d = Daemon::serve(&[
        "echo",
        "--user",
        "65534",
        "--group",
        "0",
        "--http",
        "127.0.0.1:0",
    ]);
    d.listener("http");
    for (uid, gid, _) in thread_ids(d.pid()) {
        assert_eq!(uid, "65534 65534 65534 65534");
        assert_eq!(gid, "0 0 0 0");
    }
}

/// `--socket-owner nobody:nogroup --socket-mode 660` on a unix socket, with `extra` options:
/// owner and mode set before it listens, requests answered, the file removed at exit (the
/// process that made it stays root).
fn socket_owner_scenario(extra: &[&str]) {
    require_root();
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("owned.sock");
    let addr = format!("unix:{}", sock.display());
    let mut args = vec!["echo"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--fastcgi",
        &addr,
        "--socket-owner",
        "nobody:nogroup",
        "--socket-mode",
        "660",
    ]);
    let mut d = Daemon::serve(&args);
    if !extra.is_empty() {
        serving_pids(&d);
    }
    let meta = std::fs::symlink_metadata(&sock).expect("socket file");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (65534, 65534, 0o660)
    );
    let answer = fcgi::call(&addr, &fcgi::params("GET", "/owned", "", None), b"");
    assert_eq!(answer.cgi().json()["path"], "/owned");
    assert_eq!(d.stop().code(), Some(0));
    assert!(
        !sock.exists(),
        "removed at exit (the binding process stayed root)"
    );
}

#[test]
fn socket_owner_before_listening() {
    socket_owner_scenario(&[]);
}

#[test]
fn impossible_identities_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cgi = format!("cgi:{}", dir.path().display());
    for (args, says) in [
        (
            vec!["--user", "no-such-user-gatehouse", "--http", "127.0.0.1:0"],
            "--user no-such-user-gatehouse: unknown user",
        ),
        (
            vec![
                "--group",
                "no-such-group-gatehouse",
                "--http",
                "127.0.0.1:0",
            ],
            "unknown group",
        ),
        (
            vec![
                "--socket-owner",
                "no-such-user-gatehouse",
                "--http",
                "127.0.0.1:0",
            ],
            "--socket-owner no-such-user-gatehouse: unknown user",
        ),
        (
            vec![
                "--user",
                "nobody",
                "--cgi-user",
                "nobody",
                &cgi,
                "--http",
                "127.0.0.1:0",
            ],
            "--cgi-user",
        ),
        (vec!["--user", "", "--http", "127.0.0.1:0"], "not a user"),
        (
            vec!["--socket-owner", ":", "--http", "127.0.0.1:0"],
            "USER:GROUP",
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.args(&args);
        let (status, out, err) = run(cmd);
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err} should say {says:?}");
    }
}

#[test]
fn not_root_cannot_become_someone_else() {
    require_root();
    // setpriv (util-linux) runs the binary as nobody from the start.
    let setpriv = support::require("setpriv", "util-linux");
    let mut cmd = Command::new(&setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["echo", "--user", "root", "--http", "127.0.0.1:0"]);
    let (status, _, err) = run(cmd);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("needs gatehouse to start as root"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Naming who we already are is allowed: nothing to drop.
    let mut cmd = Command::new(&setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["echo", "--user", "nobody", "--http", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null());
    let d = Daemon::spawn(cmd, "gatehouse as nobody");
    d.listener("http");
    d.wait_log("already running as uid 65534");
}

/// Asserts every thread of `pid` runs as 65534:65534 with no supplementary groups.
fn assert_nobody(pid: u32, what: &str) {
    let ids = thread_ids(pid);
    for (uid, gid, groups) in &ids {
        assert_eq!(uid, "65534 65534 65534 65534", "{what} {pid}: {ids:?}");
        assert_eq!(gid, "65534 65534 65534 65534", "{what} {pid}: {ids:?}");
        assert_eq!(groups, "", "{what} {pid}: no supplementary groups: {ids:?}");
    }
}

/// A CGI app (WSGI cannot run as nobody here: the CPython lives under /root).
#[test]
fn user_nobody_with_workers_master_and_workers_all_nobody() {
    require_root();
    let scripts = whoami_scripts();
    let app = format!("cgi:{}", scripts.path().display());
    let mut d = Daemon::serve(&[
        &app,
        "--workers",
        "2",
        "--user",
        "nobody",
        "--http",
        "127.0.0.1:0",
    ]);
    let addr = d.listener("http");
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let workers = serving_pids(&d);
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert_nobody(d.pid(), "master");
    for pid in &workers {
        assert_eq!(ppid(*pid), d.pid(), "worker {pid} is the master's child");
        assert_nobody(*pid, "worker");
    }
    let who = http::request(port, "GET", "/whoami.sh", &[], b"");
    assert_eq!(who.status, 200, "{}", who.text());
    assert_eq!(who.text().trim(), "uid=65534", "{}", who.text());

    // The master dropped before it started any worker.
    let log = d.log();
    let dropped = log
        .iter()
        .position(|l| l.contains("--user nobody: now running as uid 65534 gid 65534"))
        .expect("the drop is logged");
    let first_worker = log
        .iter()
        .position(|l| l.contains("[master]") && l.contains(") starting"))
        .expect("a worker start is logged");
    assert!(dropped < first_worker, "{log:#?}");
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn socket_owner_with_workers() {
    socket_owner_scenario(&["--workers", "2"]);
}
