//! End-to-end: the process model (`--workers N`, a master supervising N worker processes that
//! share its listeners), with the built binary and real clients, each test starting and
//! stopping its own daemon on loopback ports or unix sockets in temp dirs:
//!
//! - two workers share the load: requests on new connections (HTTP and FastCGI) are answered by
//!   two pids, both children of the master, neither the master; a kept-alive connection sticks
//!   to one worker;
//! - a worker killed by SIGKILL under load, and one whose app calls `os._exit(3)` mid-request,
//!   are replaced; only the killed worker's own connections fail;
//! - a crash loop at start-up (exit at import) makes the master give up with exit 1 after its
//!   retries; an import error exits 2 at once;
//! - SIGTERM: master and workers exit 0, a CGI script still running (`--drain-timeout 1s`) is
//!   killed with its process group, nothing is left;
//! - `--max-requests 5`: workers are replaced, new pids serve, no request fails (a draining
//!   worker still takes the first request of a connection it accepted);
//! - spawn-fcgi's listening socket on fd 0 shared by two workers;
//! - the binary run as a CGI program ignores `--workers`;
//! - the master killed by SIGKILL: its workers notice and exit, nothing keeps serving;
//! - one process (no master): SIGHUP is logged and ignored;
//! - `--max-worker-memory`: a worker that grows past it is replaced;
//! - `--worker-start-timeout`: a worker whose import hangs is killed, the master gives up;
//! - a second SIGTERM ends master and workers at once (143); the master removes its unix
//!   socket file when it exits.
//!
//! The app is fixtures/apps/workers.py, which answers the pid of the worker serving it. No
//! durations are asserted; every wait is bounded by `support::TIMEOUT`.

#[path = "support/cgi_e2e.rs"]
mod cgi_support;
mod support;
#[path = "support/workers.rs"]
mod workers_support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use support::cgi::{cgi_tree, run_cgi};
use support::daemon::Daemon;
use support::fcgi;
use support::{fixtures, kill, require, wait_for};
use workers_support::{
    failures, pid_app, ppid, ready_workers, serving_pids, try_get, wait_gone, Got, Load,
};

/// Client threads of the load tests: each has at most one connection open at a time.
const CLIENTS: usize = 4;
/// How many requests a test sends at most while it waits for an answer from some worker.
const MAX_TRIES: usize = 2000;

/// A master with `--workers 2` serving `app` over HTTP on a loopback port, plus `extra`; waits
/// until both workers are ready. Returns the daemon, its HTTP address and the worker pids.
fn two_workers(app: &str, extra: &[&str]) -> (Daemon, String, Vec<u32>) {
    let mut args = vec![app, "--workers", "2", "--http", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let d = Daemon::start(&args);
    let addr = d.listener("http");
    let pids = serving_pids(&d);
    assert_eq!(pids.len(), 2, "{pids:?}");
    (d, addr, pids)
}

/// Sends requests from `send` until `done` says the pids seen so far are enough (at most
/// [`MAX_TRIES`]); every request must succeed. Returns the pids seen.
fn pids_until(
    mut send: impl FnMut() -> u32,
    done: impl Fn(&BTreeSet<u32>) -> bool,
) -> BTreeSet<u32> {
    let mut seen = BTreeSet::new();
    for _ in 0..MAX_TRIES {
        seen.insert(send());
        if done(&seen) {
            return seen;
        }
    }
    panic!("after {MAX_TRIES} requests, only pids {seen:?} answered");
}

/// A `workers.py` answer over HTTP on a new connection; it must succeed.
fn http_pid(addr: &str) -> u32 {
    let got = try_get(addr, "/").unwrap_or_else(|e| panic!("GET / failed: {e}"));
    assert_eq!(got.status, 200, "{got:?}");
    got.pid()
}

/// The pid in the `(pid P, ...` of a master log line.
fn pid_in(line: &str) -> u32 {
    let at = line.find("(pid ").expect("(pid ") + "(pid ".len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("pid")
}

/// Waits until a worker other than `old` is ready in `slot`, and returns its pid.
fn replacement(d: &Daemon, slot: u16, old: &[u32]) -> u32 {
    wait_for(&format!("a new worker {slot} to be ready"), || {
        ready_workers(d)
            .into_iter()
            .find(|(s, pid, _)| *s == slot && !old.contains(pid))
            .map(|(_, pid, _)| pid)
    })
}

/// The slot (K in `worker K`) of a worker pid, from its `starting` line.
fn slot_of(d: &Daemon, pid: u32) -> u16 {
    let line = d.wait_log(&format!("(pid {pid}, generation "));
    let at = line.find("worker ").expect("worker K") + "worker ".len();
    line[at..]
        .split(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("slot")
}

/// Connections opened all at once, as nginx fills its upstream keepalive pool, are spread over
/// the workers. Before the connection table, the worker that accepted the first one took nearly
/// all (8/0 and 7/1 were the common splits: the other worker got ~5 % of them). The spreading
/// is bounded in time (a worker waits at most 5 ms for another), so on a loaded machine a burst
/// can still land on one worker: the test asks for the less used worker to get at least one in
/// eight of the 40 connections of five bursts.
#[test]
fn bursts_of_kept_alive_connections_are_spread_over_the_workers() {
    use std::io::{Read, Write};

    let (mut d, addr, first) = two_workers(&pid_app(), &[]);
    let mut splits = Vec::new();
    let mut total = std::collections::BTreeMap::<u32, usize>::new();
    for _ in 0..5 {
        let mut conns: Vec<std::net::TcpStream> = (0..8)
            .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
            .collect();
        let mut count = std::collections::BTreeMap::<u32, usize>::new();
        for c in &mut conns {
            c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("send");
            let mut buf = [0u8; 512];
            let n = c.read(&mut buf).expect("read");
            let text = String::from_utf8_lossy(&buf[..n]);
            let pid: u32 = text
                .rsplit("v1 ")
                .next()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or_else(|| panic!("no pid in {text:?}"));
            assert!(first.contains(&pid), "{pid} is not a worker");
            *count.entry(pid).or_default() += 1;
            *total.entry(pid).or_default() += 1;
        }
        splits.push(count.values().copied().collect::<Vec<_>>());
    }
    eprintln!("connections per worker, five bursts of 8: {splits:?}");
    let fewest = first
        .iter()
        .map(|p| total.get(p).copied().unwrap_or(0))
        .min();
    assert!(
        fewest >= Some(5),
        "the less used worker got {fewest:?} of 40 connections: {splits:?}"
    );
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn two_workers_share_the_load() {
    let mut args = vec![pid_app()];
    args.extend(
        [
            "--workers",
            "2",
            "--http",
            "127.0.0.1:0",
            "--fastcgi",
            "127.0.0.1:0",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Daemon::start(&args);
    let (http, fastcgi) = (d.listener("http"), d.listener("fastcgi"));
    let workers: BTreeSet<u32> = serving_pids(&d).into_iter().collect();
    let master = d.pid();
    for pid in &workers {
        assert_ne!(*pid, master, "the master serves no requests");
        assert_eq!(ppid(*pid), master, "worker {pid} is a child of the master");
    }

    let over_http = pids_until(|| http_pid(&http), |seen| seen.len() == 2);
    assert_eq!(over_http, workers, "HTTP answers come from both workers");
    let over_fastcgi = pids_until(
        || {
            let answer = fcgi::call(&fastcgi, &fcgi::params("GET", "/", "", None), b"");
            let r = answer.cgi();
            assert_eq!(r.status, 200, "{}", r.text());
            r.text()
                .split_whitespace()
                .nth(1)
                .expect("pid")
                .parse()
                .expect("pid")
        },
        |seen| seen.len() == 2,
    );
    assert_eq!(
        over_fastcgi, workers,
        "FastCGI answers come from both workers"
    );

    // A kept-alive connection belongs to the worker that accepted it.
    let mut conn = support::http::Conn::connect(&http);
    let stuck: BTreeSet<String> = (0..10)
        .map(|_| conn.send("GET", "/", &[], b"").text())
        .collect();
    assert_eq!(
        stuck.len(),
        1,
        "one keep-alive connection, one worker: {stuck:?}"
    );

    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn a_worker_killed_under_load_is_replaced() {
    let (mut d, addr, pids) = two_workers(&pid_app(), &[]);
    let victim = pids[0];
    let slot = slot_of(&d, victim);
    let load = Load::start(&addr, "/", CLIENTS);
    load.wait_for(
        "an answer from the worker to kill",
        |o| matches!(&o.result, Ok(g) if g.pid() == victim),
    );

    kill(victim, libc::SIGKILL);
    d.wait_log(&format!(
        "worker {slot} (pid {victim}, generation 1) was killed by signal 9 (SIGKILL) while serving; starting a new one"
    ));
    let new = replacement(&d, slot, &pids);
    // Requests started from here on began after the replacement was ready: none may fail.
    load.set_phase(1);
    load.wait_for("an answer from the replacement", |o| {
        o.phase == 1 && matches!(&o.result, Ok(g) if g.pid() == new)
    });
    load.wait_more(20);
    let outcomes = load.stop();

    let failed = failures(&outcomes);
    eprintln!(
        "{} requests, {} failed: {failed:?}",
        outcomes.len(),
        failed.len()
    );
    // Only connections the killed worker had accepted can fail, and each client thread has
    // at most one connection open: at most CLIENTS failures, all before the replacement.
    assert!(
        failed.len() <= CLIENTS,
        "{} of {} requests failed (at most {CLIENTS} may: the killed worker's connections): {failed:?}",
        failed.len(),
        outcomes.len()
    );
    assert!(
        failed.iter().all(|o| o.phase == 0),
        "a request started after the replacement was ready failed: {failed:?}"
    );
    assert!(
        ppid(new) == d.pid(),
        "the replacement is a child of the master"
    );
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn a_worker_that_exits_mid_request_is_replaced() {
    let (mut d, addr, pids) = two_workers(&pid_app(), &[]);
    let failed = try_get(&addr, "/exit");
    assert!(
        failed.is_err(),
        "the request that killed its worker got {failed:?}"
    );
    let line = d.wait_log("exited with status 3 while serving; starting a new one");
    let dead = pid_in(&line);
    assert!(pids.contains(&dead), "{line}");
    let new = replacement(&d, slot_of(&d, dead), &pids);

    let survivor = pids
        .iter()
        .copied()
        .find(|p| *p != dead)
        .expect("the other worker");
    let seen = pids_until(|| http_pid(&addr), |seen| seen.contains(&new));
    assert!(!seen.contains(&dead), "the dead worker answered: {seen:?}");
    assert!(seen.iter().all(|p| *p == new || *p == survivor), "{seen:?}");
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn a_crash_loop_at_start_up_makes_the_master_exit_1() {
    let app = format!(
        "wsgi:{}",
        fixtures().join("apps/exit_at_import.py").display()
    );
    let mut d = Daemon::start(&[&app, "--workers", "2", "--http", "127.0.0.1:0"]);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(1), "{status}");
    d.wait_log("failed to start 5 times in a row");
    assert!(
        d.count_log("starting it again in") >= 4,
        "the master retried"
    );
    assert_eq!(d.count_log("; serving"), 0);
    for line in d.log().iter().filter(|l| l.contains(") starting")) {
        wait_gone(pid_in(line));
    }
}

#[test]
fn a_worker_that_never_gets_ready_is_killed_after_the_start_timeout() {
    let app = format!(
        "wsgi:{}",
        fixtures().join("apps/hang_at_import.py").display()
    );
    let mut d = Daemon::start(&[
        &app,
        "--workers",
        "2",
        "--worker-start-timeout",
        "1s",
        "--http",
        "127.0.0.1:0",
    ]);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(1), "{status}");
    d.wait_log("did not become ready within --worker-start-timeout; killing it");
    d.wait_log("failed to start 5 times in a row; the last one was killed by signal 9 (SIGKILL)");
    for line in d.log().iter().filter(|l| l.contains(") starting")) {
        wait_gone(pid_in(line));
    }
}

#[test]
fn a_second_sigterm_stops_master_and_workers_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("script.pid");
    // A CGI script that never answers keeps its worker draining (--drain-timeout 1h).
    let app = format!("cgi:{}", fixtures().join("cgi-bin").display());
    let args = [
        app.as_str(),
        "--workers",
        "2",
        "--drain-timeout",
        "1h",
        "--cgi-env",
        "PIDFILE",
        "--http",
        "127.0.0.1:0",
    ];
    let mut d = Daemon::start_env(&args, &[("PIDFILE", pid_file.to_str().expect("utf-8"))]);
    let http = d.listener("http");
    let workers = serving_pids(&d);
    let slow = std::thread::spawn(move || try_get(&http, "/sleep.sh"));
    let script: u32 = wait_for("sleep.sh to write its pid", || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    d.signal(libc::SIGTERM);
    d.wait_log("received SIGTERM: stopping 2 worker(s)");
    d.wait_log("waiting for 1 open connection(s)");
    assert!(d.is_running(), "a worker is still draining");
    d.signal(libc::SIGTERM);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(143), "{status}");
    d.wait_log("received SIGTERM again");
    for pid in &workers {
        wait_gone(*pid);
    }
    let answer = slow.join().expect("client thread");
    assert!(
        !matches!(&answer, Ok(g) if g.status == 200),
        "the cut request got a 200: {answer:?}"
    );
    // Exiting at once leaves the script's own process group behind (README): not ours to keep.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{script}")])
        .status();
}

#[test]
fn the_master_ignores_sigusr1_and_stops_gracefully_on_sigquit() {
    let (mut d, addr, first) = two_workers(&pid_app(), &[]);
    d.signal(libc::SIGUSR1);
    d.wait_log("received SIGUSR1: logs go to stderr, nothing to reopen; ignored");
    assert!(
        first.contains(&http_pid(&addr)),
        "still served by the same workers"
    );
    d.signal(libc::SIGQUIT);
    d.wait_log("received SIGQUIT: stopping 2 worker(s)");
    assert_eq!(d.wait_exit().code(), Some(0));
    for pid in &first {
        d.wait_log(&format!("(pid {pid}, generation 1) exited with status 0"));
    }
}

#[test]
fn the_master_removes_its_unix_socket_file_when_it_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("gh.sock");
    let addr = format!("unix:{}", sock.display());
    let mut d = Daemon::start(&[&pid_app(), "--workers", "2", "--fastcgi", &addr]);
    serving_pids(&d);
    assert!(sock.exists());
    assert_eq!(d.stop().code(), Some(0));
    assert!(!sock.exists(), "the socket file is removed");
}

#[test]
fn an_import_error_makes_the_master_exit_2_at_once() {
    let app = format!(
        "wsgi:{}",
        fixtures().join("apps/raise_at_import.py").display()
    );
    let mut d = Daemon::start(&[&app, "--workers", "2", "--http", "127.0.0.1:0"]);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(2), "{status}");
    d.wait_log("RuntimeError: raise_at_import.py cannot be imported, on purpose");
    d.wait_log("the app cannot start");
    assert_eq!(
        d.count_log("starting it again"),
        0,
        "an import error is not retried"
    );
    for line in d.log().iter().filter(|l| l.contains(") starting")) {
        wait_gone(pid_in(line));
    }
}

#[test]
fn sigterm_stops_everything_including_a_running_cgi_script() {
    let tree = cgi_tree();
    let pid_file = tree.top.join("script.pid");
    let app = format!("cgi:{}", tree.cgi_bin.display());
    let args = [
        app.as_str(),
        "--workers",
        "2",
        "--drain-timeout",
        "1s",
        "--cgi-env",
        "PIDFILE",
        "--http",
        "127.0.0.1:0",
    ];
    let mut d = Daemon::start_env(&args, &[("PIDFILE", pid_file.to_str().expect("utf-8"))]);
    let addr = d.listener("http");
    let workers = serving_pids(&d);

    // sleep.sh never answers and ignores SIGTERM (so does its child `sleep`).
    let client = std::thread::spawn(move || try_get(&addr, "/sleep.sh"));
    let script: u32 = wait_for("sleep.sh to write its pid", || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    let runner = ppid(script);
    assert!(
        workers.contains(&runner),
        "the script runs under a worker: {runner}"
    );

    d.signal(libc::SIGTERM);
    let status = d.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    for pid in &workers {
        d.wait_log(&format!("(pid {pid}, generation 1) exited with status 0"));
    }
    d.wait_log("all workers exited; master exiting");
    let answer = client.join().expect("client thread");
    assert!(
        !matches!(&answer, Ok(g) if g.status == 200),
        "the cut script got a 200: {answer:?}"
    );
    // Nothing is left: neither the script and its child nor any worker.
    cgi_support::wait_group_gone(script);
    for pid in &workers {
        cgi_support::wait_group_gone(*pid);
    }
}

/// `--max-requests 5 --workers 2`: at least 20 requests, one after another on new connections,
/// until a replacement answers; the replaced workers exit 0; no request may fail.
#[test]
fn max_requests_replaces_workers_and_no_request_fails() {
    let (mut d, addr, first) = two_workers(&pid_app(), &["--max-requests", "5"]);
    let mut results = Vec::new();
    let mut seen = BTreeSet::new();
    while results.len() < 20 || seen.iter().all(|p| first.contains(p)) {
        assert!(
            results.len() < MAX_TRIES,
            "no replacement answered: {seen:?}"
        );
        let result = try_get(&addr, "/");
        if let Ok(got) = &result {
            assert_eq!(got.status, 200, "{got:?}");
            seen.insert(got.pid());
        }
        results.push(result);
    }
    d.wait_log("reached --max-requests: starting its replacement");
    // `stopping worker K (pid P): replaced`, once its replacement is ready.
    d.wait_log("): replaced");
    let replaced: Vec<u32> = d
        .log()
        .iter()
        .filter(|l| l.contains("stopping worker ") && l.ends_with("): replaced"))
        .map(|l| pid_in(l))
        .collect();
    for pid in &replaced {
        assert!(first.contains(pid) || seen.contains(pid), "{pid}");
        d.wait_log(&format!("(pid {pid}, generation 1) exited with status 0"));
    }
    for pid in seen.iter().filter(|p| !first.contains(p)) {
        assert_eq!(
            ppid(*pid),
            d.pid(),
            "replacement {pid} is a child of the master"
        );
    }
    let failed: Vec<&Result<Got, String>> = results.iter().filter(|r| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        results.len()
    );
    assert_eq!(d.stop().code(), Some(0));
}

/// `--max-worker-memory 160M`: a worker that grows past it (64 MiB a `/grow`) is replaced, the
/// replacement first; it exits 0, a new pid serves, no request failed.
#[test]
fn max_worker_memory_replaces_a_worker_that_grows() {
    let (mut d, addr, first) = two_workers(&pid_app(), &["--max-worker-memory", "160M"]);
    assert_eq!(
        d.count_log("it will not be replaced for its memory"),
        0,
        "fresh workers fit"
    );
    let mut tries = 0;
    while d.count_log("over --max-worker-memory") == 0 {
        tries += 1;
        assert!(tries <= 40, "no worker was found over the limit");
        let got = try_get(&addr, "/grow").unwrap_or_else(|e| panic!("GET /grow failed: {e}"));
        assert_eq!(got.status, 200, "{got:?}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let line = d.wait_log("over --max-worker-memory");
    let big = pid_in(&line);
    assert!(first.contains(&big), "{line}");
    d.wait_log(&format!("(pid {big}): replaced"));
    d.wait_log(&format!("(pid {big}, generation 1) exited with status 0"));
    let pids = pids_until(
        || http_pid(&addr),
        |seen| seen.iter().any(|p| !first.contains(p)),
    );
    assert!(!pids.contains(&big), "{pids:?}");
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn spawn_fcgi_socket_on_fd_0_is_shared_by_two_workers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("spawned.sock");
    let mut cmd = Command::new(require("spawn-fcgi", "spawn-fcgi"));
    // -n: spawn-fcgi binds, puts the socket on fd 0 and execs the daemon in place.
    cmd.arg("-n")
        .arg("-s")
        .arg(&sock)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_gatehouse"))
        .arg(pid_app())
        .args(["--workers", "2"])
        .stdin(Stdio::null());
    let mut d = Daemon::spawn(cmd, "spawn-fcgi gatehouse");
    assert_eq!(
        d.wait_listening(1)[0],
        format!("fd:0 (unix:{})", sock.display())
    );
    let workers: BTreeSet<u32> = serving_pids(&d).into_iter().collect();
    let addr = format!("unix:{}", sock.display());
    let seen = pids_until(
        || {
            let answer = fcgi::call(&addr, &fcgi::params("GET", "/", "", None), b"");
            let text = answer.cgi().text();
            text.split_whitespace()
                .nth(1)
                .expect("pid")
                .parse()
                .expect("pid")
        },
        |seen| seen.len() == 2,
    );
    assert_eq!(seen, workers);
    for pid in &seen {
        assert_eq!(ppid(*pid), d.pid());
    }
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn cgi_mode_answers_one_request_whatever_workers_says() {
    let vars = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", "/cgi-bin/gatehouse"),
        ("PATH_INFO", "/x"),
        ("QUERY_STRING", "a=1"),
    ];
    for args in [&["--workers", "2", "echo"][..], &["--master", "echo"][..]] {
        let run = run_cgi(args, &vars, b"");
        assert!(run.status.success(), "{args:?}: {}", run.stderr);
        let resp = run.response();
        assert_eq!(resp.status, 200, "{args:?}");
        let j = resp.json();
        assert_eq!(j["path"], "/cgi-bin/gatehouse/x", "{args:?}");
        assert_eq!(j["query"], "a=1", "{args:?}");
    }
}

#[test]
fn workers_exit_when_the_master_is_killed() {
    let (mut d, addr, workers) = two_workers(&pid_app(), &[]);
    http_pid(&addr);
    d.signal(libc::SIGKILL);
    let status = d.wait_exit();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    for pid in &workers {
        wait_gone(*pid);
    }
    d.wait_log_count(
        "received no master (its control socket closed): stopped accepting",
        2,
    );
    assert!(
        try_get(&addr, "/").is_err(),
        "nothing may serve once the master and its workers are gone"
    );
}

#[test]
fn one_process_logs_and_ignores_sighup() {
    let mut d = Daemon::serve(&[&pid_app(), "--http", "127.0.0.1:0"]);
    let addr = d.listener("http");
    assert_eq!(http_pid(&addr), d.pid(), "one process serves by itself");
    d.signal(libc::SIGHUP);
    d.wait_log("received SIGHUP: reloading needs a master process");
    assert!(d.is_running());
    assert_eq!(http_pid(&addr), d.pid());
    assert_eq!(d.stop().code(), Some(0));
}
