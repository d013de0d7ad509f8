//! End-to-end: sd_notify from a master (`--workers 2`), with `NOTIFY_SOCKET` pointing at a
//! datagram socket of the test that records each sender's pid (`SO_PASSCRED`, as systemd
//! does):
//!
//! - `READY=1` with the generation's worker pids once both workers serve; on SIGHUP
//!   `RELOADING=1` with `MONOTONIC_USEC`, then `READY=1` for generation 2 (and, for an app
//!   that no longer imports, `READY=1` with `STATUS=reload failed ...`); `STOPPING=1` on
//!   SIGTERM; every one of them sent by the master, which exits 0;
//! - `WATCHDOG_USEC` (no `WATCHDOG_PID`: the test cannot know the pid before the spawn) makes
//!   the master send `WATCHDOG=1`; the workers never get the variables;
//! - SIGUSR2: the new master sends `MAINPID=<its pid>` then `READY=1`, the old one exits 0, the
//!   new one serves on the same port and unix socket (whose file stays), and exits 0 on SIGTERM,
//!   removing the socket file.
//!
//! No durations are asserted; every wait is bounded by `support::TIMEOUT`.

mod support;
#[path = "support/workers.rs"]
mod workers_support;

use std::path::{Path, PathBuf};

use support::daemon::Daemon;
use support::systemd::{manager_vars_of, NotifyReceiver};
use support::{fcgi, fixtures, kill, wait_for};
use workers_support::{pid_list, ppid, serving_pids, try_get, wait_gone, Got};

/// The next message that is not a `WATCHDOG=1` ping or a bare `STATUS=` update, with its
/// sender; every message skipped must come from `from` too.
fn next_state(rx: &NotifyReceiver, from: u32) -> (String, u32) {
    loop {
        let (m, pid) = rx.recv_with_pid();
        if m != "WATCHDOG=1" && !m.starts_with("STATUS=") {
            return (m, pid);
        }
        assert_eq!(pid, from, "{m:?} came from pid {pid}");
    }
}

/// The next such message, which must come from `from`.
fn state_from(rx: &NotifyReceiver, from: u32) -> String {
    let (m, pid) = next_state(rx, from);
    assert_eq!(pid, from, "{m:?} came from pid {pid}, not {from}");
    m
}

/// `CLOCK_MONOTONIC` now, in microseconds (what `MONOTONIC_USEC=` counts).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    #[allow(unsafe_code, reason = "clock_gettime(2) has no safe wrapper in std")]
    // SAFETY: a pointer to a live timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0);
    let secs = u64::try_from(ts.tv_sec).expect("after boot");
    let nanos = u64::try_from(ts.tv_nsec).expect("0..1e9");
    secs * 1_000_000 + nanos / 1000
}

/// A copy of fixtures/apps/workers.py in `dir`, which the test may edit.
fn editable_app(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("app.py");
    let v1 = std::fs::read_to_string(fixtures().join("apps/workers.py")).expect("workers.py");
    assert!(v1.contains("VERSION = \"v1\""));
    std::fs::write(&path, &v1).expect("write app.py");
    (path, v1)
}

/// Writes `text` to a temporary file beside `path`, then renames it into place (as a deploy
/// does: a worker importing meanwhile never sees a half-written file).
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the new app");
    std::fs::rename(&tmp, path).expect("rename the new app into place");
}

/// A `GET /` over HTTP on a new connection to `addr`; it must succeed.
fn get(addr: &str) -> Got {
    let got = try_get(addr, "/").unwrap_or_else(|e| panic!("GET / failed: {e}"));
    assert_eq!(got.status, 200, "{got:?}");
    got
}

#[test]
fn ready_reloading_ready_stopping_all_from_the_master() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("notify.sock");
    let rx = NotifyReceiver::bind(&sock);
    let (app, v1) = editable_app(dir.path());
    let spec = format!("wsgi:{}", app.display());
    let mut d = Daemon::start_env(
        &[&spec, "--workers", "2", "--http", "127.0.0.1:0"],
        &[("NOTIFY_SOCKET", sock.to_str().unwrap())],
    );
    let master = d.pid();
    let addr = d.listener("http");

    let ready = state_from(&rx, master);
    let first = serving_pids(&d);
    let first_text: Vec<String> = first.iter().map(u32::to_string).collect();
    assert_eq!(
        ready,
        format!(
            "READY=1\nSTATUS=serving with 2 worker(s), generation 1 (pids {})",
            first_text.join(", ")
        )
    );
    for pid in &first {
        assert_eq!(ppid(*pid), master);
        assert_eq!(manager_vars_of(*pid), Vec::<String>::new(), "worker {pid}");
    }
    assert_eq!(get(&addr).version(), "v1");

    // A good reload (the size changes too: no stale bytecode cache may answer).
    replace_file(&app, &v1.replace("\"v1\"", "\"v2\"  # reloaded"));
    d.signal(libc::SIGHUP);
    let reloading = state_from(&rx, master);
    let usec: u64 = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("{reloading:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{reloading:?}"));
    assert!(usec > 0 && usec <= monotonic_usec(), "{usec}");
    let ready = state_from(&rx, master);
    let second = pid_list(&d.wait_log("reload: generation 2 ready ("), "pids ");
    let second_text: Vec<String> = second.iter().map(u32::to_string).collect();
    assert_eq!(
        ready,
        format!(
            "READY=1\nSTATUS=serving with 2 worker(s), generation 2 (pids {})",
            second_text.join(", ")
        )
    );
    for pid in &first {
        wait_gone(*pid);
    }
    let got = get(&addr);
    assert_eq!(got.version(), "v2");
    assert!(second.contains(&got.pid()), "{got:?} not from {second:?}");

    // A failed reload: generation 3 cannot import the app; generation 2 goes on.
    replace_file(&app, "raise RuntimeError('a broken edit, on purpose')\n");
    d.signal(libc::SIGHUP);
    assert!(state_from(&rx, master).starts_with("RELOADING=1\nMONOTONIC_USEC="));
    let failed = state_from(&rx, master);
    assert!(
        failed.starts_with("READY=1\nSTATUS=reload failed"),
        "{failed:?}"
    );
    assert_eq!(get(&addr).version(), "v2");

    d.signal(libc::SIGTERM);
    assert_eq!(state_from(&rx, master), "STOPPING=1");
    assert_eq!(d.wait_exit().code(), Some(0));
    for (m, pid) in rx.drain_with_pid() {
        assert_eq!(pid, master, "{m:?} came from pid {pid}");
    }
}

#[test]
fn watchdog_pings_come_from_the_master() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("notify.sock");
    let rx = NotifyReceiver::bind(&sock);
    // A ping every 100 ms at most; only their arrival and sender are checked.
    let mut d = Daemon::start_env(
        &["echo", "--workers", "2", "--http", "127.0.0.1:0"],
        &[
            ("NOTIFY_SOCKET", sock.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let master = d.pid();
    assert!(state_from(&rx, master).starts_with("READY=1\nSTATUS=serving with 2 worker(s)"));
    for pid in serving_pids(&d) {
        assert_eq!(manager_vars_of(pid), Vec::<String>::new(), "worker {pid}");
    }
    let mut pings = 0;
    while pings < 3 {
        let (m, pid) = rx.recv_with_pid();
        assert_eq!(pid, master, "{m:?} came from pid {pid}");
        if m == "WATCHDOG=1" {
            pings += 1;
        }
    }
    d.signal(libc::SIGTERM);
    assert_eq!(state_from(&rx, master), "STOPPING=1");
    assert_eq!(d.wait_exit().code(), Some(0));
}

/// Makes this test process the reaper of its orphaned descendants (`PR_SET_CHILD_SUBREAPER`):
/// the new master of a SIGUSR2 is the old master's child, and outlives it.
fn become_subreaper() {
    #[allow(unsafe_code, reason = "prctl(2) has no safe wrapper in std")]
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "prctl: {}", std::io::Error::last_os_error());
}

/// The exit status of `pid`, a process this (subreaper) test reaps once it exits.
fn reap(pid: u32) -> i32 {
    let raw = i32::try_from(pid).expect("pid fits i32");
    wait_for(&format!("process {pid} to exit"), || {
        let mut status = 0;
        #[allow(unsafe_code, reason = "waitpid(2) has no safe wrapper for a non-child")]
        // SAFETY: a pointer to a live c_int.
        let rc = unsafe { libc::waitpid(raw, &mut status, libc::WNOHANG) };
        assert!(rc >= 0, "waitpid: {}", std::io::Error::last_os_error());
        (rc == raw).then_some(status)
    })
}

/// SIGKILLs a process when dropped (a failed test leaves no new master behind).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill(self.0, libc::SIGKILL);
    }
}

/// The pid in a `workers.py` answer over FastCGI on a new connection to `addr`.
fn fastcgi_pid(addr: &str) -> u32 {
    let answer = fcgi::call(addr, &fcgi::params("GET", "/", "", None), b"");
    let r = answer.cgi();
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    text.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?}"))
}

/// A master given SIGUSR2 and replaced: what the test sees once the old master exited.
struct Upgraded {
    /// The old master (exited 0); its log goes on with the new master's lines.
    d: Daemon,
    rx: NotifyReceiver,
    old: u32,
    new: u32,
    /// The HTTP address and the unix socket (`unix:PATH`) both masters served.
    http: String,
    unix: String,
    sock: PathBuf,
    /// The notifications queued when the old master had exited, after the new `READY=1`.
    after_ready: Vec<(String, u32)>,
    _dir: tempfile::TempDir,
    _guard: KillOnDrop,
}

/// Starts a master (`--workers 2`, HTTP on a loopback port, FastCGI on a unix socket) with a
/// `NOTIFY_SOCKET`, sends it SIGUSR2, and checks the hand-over: `MAINPID=<new pid>` from the new
/// master, then its `READY=1`; the old master exits 0, its workers too.
fn start_and_upgrade() -> Upgraded {
    become_subreaper();
    let dir = tempfile::tempdir().expect("temp dir");
    let notify = dir.path().join("notify.sock");
    let rx = NotifyReceiver::bind(&notify);
    let sock = dir.path().join("app.sock");
    let unix = format!("unix:{}", sock.display());
    let app = workers_support::pid_app();
    let args = [
        &app,
        "--workers",
        "2",
        "--http",
        "127.0.0.1:0",
        "--fastcgi",
        &unix,
    ];
    let mut d = Daemon::start_env(&args, &[("NOTIFY_SOCKET", notify.to_str().expect("UTF-8"))]);
    let old = d.pid();
    let http = d.listener("http");
    assert!(state_from(&rx, old).starts_with("READY=1\nSTATUS=serving with 2 worker(s)"));
    let old_workers = serving_pids(&d);

    d.signal(libc::SIGUSR2);
    let line = d.wait_log("received SIGUSR2: started a new master (pid ");
    let logged: u32 = line
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let guard = KillOnDrop(logged);

    let (mainpid, new) = next_state(&rx, old);
    assert_eq!(mainpid, format!("MAINPID={new}"), "sent by the new master");
    assert_eq!(new, logged);
    let ready = state_from(&rx, new);
    assert!(
        ready.starts_with("READY=1\nSTATUS=serving with 2 worker(s), generation 1 (pids "),
        "{ready:?}"
    );
    assert_eq!(d.wait_exit().code(), Some(0), "the old master exits 0");
    for pid in &old_workers {
        wait_gone(*pid);
    }
    let after_ready = rx.drain_with_pid();
    Upgraded {
        d,
        rx,
        old,
        new,
        http,
        unix,
        sock,
        after_ready,
        _dir: dir,
        _guard: guard,
    }
}

#[test]
fn sigusr2_new_master_sends_mainpid_then_ready_and_serves() {
    let u = start_and_upgrade();
    assert!(
        u.sock.exists(),
        "the unix socket file stays for the new master"
    );
    // The new master serves on the same port and socket, through workers of its own.
    for _ in 0..4 {
        let pid = get(&u.http).pid();
        assert_eq!(ppid(pid), u.new, "HTTP answered by {pid}");
        let pid = fastcgi_pid(&u.unix);
        assert_eq!(ppid(pid), u.new, "FastCGI answered by {pid}");
    }
    kill(u.new, libc::SIGTERM);
    assert_eq!(state_from(&u.rx, u.new), "STOPPING=1");
    let status = reap(u.new);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the new master's wait status: {status:#x}"
    );
    u.d.wait_log_count("all workers exited; master exiting", 2);
    assert!(!u.sock.exists(), "the new master removes its socket file");
}

/// Once the new master has sent `MAINPID=`, it is the service's main process: the old one must
/// not notify anything more. Its `STOPPING=1`, taken from any process of the service under
/// `NotifyAccess=all` (which `MAINPID=` from a non-main process needs), would make systemd stop
/// the service, new master included.
#[test]
fn the_old_master_is_silent_after_mainpid() {
    let u = start_and_upgrade();
    let from_old: Vec<&(String, u32)> = u.after_ready.iter().filter(|(_, p)| *p == u.old).collect();
    assert!(
        from_old.is_empty(),
        "the old master {} notified after MAINPID={}: {from_old:?}",
        u.old,
        u.new
    );
}
