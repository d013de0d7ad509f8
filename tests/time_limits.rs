//! End-to-end: the time limits, over the built daemon's HTTP front end.
//! - `--request-timeout` on WSGI apps (fixtures/apps/time_limits.py): a request spinning in
//!   Python and one blocked in `time.sleep` get 504, the log carries the thread's traceback
//!   (file and function names), and the next request is served: by the same thread (freed by
//!   the exception) or by a replacement thread (bounded by `--threads`; a request queued past
//!   its deadline is answered 504 without running); a response already begun is cut; with
//!   `--workers 2` the worker with the stuck thread is recycled and requests keep being served;
//! - `--slow-log-timeout`: the traceback of a slow request is logged once, and it completes;
//! - `--request-timeout` on a CGI script: 504, its process group killed, a log line naming it;
//! - issue 12: requests that queue and whose clients leave give their queue places back.
//!
//! No timing assertions: every step waits for the log line or the answer that proves it.

mod support;
#[path = "support/workers.rs"]
mod workers_support;
#[path = "support/wsgi.rs"]
mod wsgi_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::cgi::write_program;
use support::daemon::Daemon;
use support::{fixtures, wait_for, TIMEOUT};
use workers_support::{serving_pids, try_get, wait_gone};

/// The fixture app, `wsgi:<abs path>`.
fn app() -> String {
    wsgi_support::app("time_limits.py")
}

/// The fixture's absolute path, as tracebacks name it.
fn app_file() -> String {
    fixtures().join("apps/time_limits.py").display().to_string()
}

/// A daemon serving the fixture with `extra` options over HTTP; its address.
fn serve(extra: &[&str]) -> (Daemon, String) {
    let app = app();
    let mut args = vec![app.as_str(), "--http", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let d = Daemon::start(&args);
    let addr = d.listener("http");
    (d, addr)
}

fn get(addr: &str, target: &str) -> workers_support::Got {
    try_get(addr, target).unwrap_or_else(|e| panic!("GET {target}: {e}"))
}

/// The multi-line log record that starts with the first line containing `start`: from that
/// line to the one ending it with the record's fields (`request_id=`), waiting for them.
fn record(d: &Daemon, start: &str) -> String {
    record_with(d, start, "")
}

/// The first complete record starting with a line containing `start` that contains `needle`
/// (waits for one).
fn record_with(d: &Daemon, start: &str, needle: &str) -> String {
    wait_for(&format!("a {start:?} record with {needle:?}"), || {
        let log = d.log();
        let mut from = 0;
        while let Some(at) = log[from..].iter().position(|l| l.contains(start)) {
            let at = from + at;
            let end = at + log[at..].iter().position(|l| l.contains("request_id="))?;
            let text = log[at..=end].join("\n");
            if text.contains(needle) {
                return Some(text);
            }
            from = end + 1;
        }
        None
    })
}

/// Waits until some log line contains one of `needles`; returns the one found.
fn wait_any(d: &Daemon, needles: &[&'static str]) -> &'static str {
    wait_for(&format!("one of {needles:?} in the log"), || {
        needles.iter().copied().find(|n| d.count_log(n) > 0)
    })
}

const TIMED_OUT: &str = "wsgi request still running after the request timeout";
const REPLACED: &str = "replacement thread";
const FREED: &str = "wsgi thread free again";
const STUCK_RETURNED: &str = "stuck wsgi thread returned";

#[test]
fn a_request_spinning_in_python_gets_504_and_its_thread_serves_the_next() {
    let (d, addr) = serve(&["--threads", "1", "--request-timeout", "1s"]);
    let r = get(&addr, "/spin");
    assert_eq!(r.status, 504, "{r:?}");
    d.wait_log(TIMED_OUT);
    let rec = record(&d, TIMED_OUT);
    assert!(rec.contains(&format!("File \"{}\"", app_file())), "{rec}");
    assert!(rec.contains("in spin_forever"), "{rec}");
    assert!(rec.contains("in application"), "{rec}");
    assert!(
        rec.contains("method=GET") && rec.contains("uri=/spin"),
        "{rec}"
    );
    assert!(rec.contains("request_id="), "{rec}");
    // The exception ends the app call: the thread comes back (normally well within the grace;
    // on a very loaded machine it may be declared stuck first and then exit when it returns).
    wait_any(&d, &[FREED, STUCK_RETURNED]);
    let r = get(&addr, "/ok");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.starts_with("ok "), "{r:?}");
}

#[test]
fn a_request_blocked_in_sleep_gets_504_and_a_bounded_replacement_thread() {
    let (d, addr) = serve(&["--threads", "1", "--request-timeout", "1s"]);
    let r = get(&addr, "/sleep");
    assert_eq!(r.status, 504, "{r:?}");
    d.wait_log(TIMED_OUT);
    let rec = record(&d, TIMED_OUT);
    assert!(rec.contains(&format!("File \"{}\"", app_file())), "{rec}");
    assert!(rec.contains("in sleep_forever"), "{rec}");
    assert!(rec.contains("time.sleep(3600)"), "{rec}");
    // time.sleep does not see the exception: after the grace, a fresh thread takes its place.
    let line = d.wait_log(REPLACED);
    assert!(line.contains("replacement thread wsgi-1 started"), "{line}");
    let r = get(&addr, "/ok");
    assert_eq!((r.status, r.body.starts_with("ok ")), (200, true), "{r:?}");

    // A second stuck thread exceeds the bound (--threads 1): no replacement, the pool is empty,
    // and a request queued past its deadline is answered without running.
    let r = get(&addr, "/sleep");
    assert_eq!(r.status, 504, "{r:?}");
    d.wait_log("no replacement, 2 threads are stuck");
    let r = get(&addr, "/ok");
    assert_eq!(r.status, 504, "{r:?}");
    d.wait_log("wsgi request still queued after the request timeout");
    assert_eq!(d.count_log(REPLACED), 1, "{}", d.log().join("\n"));
}

#[test]
fn a_response_already_begun_is_cut_at_the_timeout() {
    let (d, addr) = serve(&["--threads", "1", "--request-timeout", "1s"]);
    let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let r = wsgi_support::get(port, "/stream-spin", &[]);
    assert_eq!(r.status, 200);
    assert!(!r.complete, "the response must be cut, got {:?}", r.text());
    assert!(r.text().starts_with("begun\n"), "{:?}", r.text());
    d.wait_log(TIMED_OUT);
    assert!(record(&d, TIMED_OUT).contains("in streamed_then_spin"));
    wait_any(&d, &[FREED, STUCK_RETURNED]);
    assert_eq!(get(&addr, "/ok").status, 200);
}

#[test]
fn with_workers_a_stuck_thread_recycles_its_worker_and_requests_keep_being_served() {
    let (d, addr) = serve(&[
        "--workers",
        "2",
        "--threads",
        "1",
        "--request-timeout",
        "1s",
    ]);
    let pids = serving_pids(&d);
    // Spinning: the thread is freed, no recycling needed.
    assert_eq!(get(&addr, "/spin").status, 504);
    d.wait_log(TIMED_OUT);
    assert!(record(&d, TIMED_OUT).contains("in spin_forever"));
    wait_any(&d, &[FREED, STUCK_RETURNED]);

    assert_eq!(get(&addr, "/sleep").status, 504);
    let line = d.wait_log("has a wsgi thread stuck past --request-timeout");
    let old: u32 = line
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    assert!(pids.contains(&old), "{old} not in {pids:?}");
    record_with(&d, TIMED_OUT, "in sleep_forever");
    d.wait_log("stopping worker ");
    // The old worker drains and exits, with its thread still in time.sleep.
    wait_gone(old);
    for _ in 0..20 {
        let r = get(&addr, "/ok");
        assert_eq!(r.status, 200, "{r:?}");
        assert_ne!(
            r.body.split_whitespace().nth(1),
            Some(old.to_string().as_str())
        );
    }
}

#[test]
fn the_slow_log_has_the_traceback_once_and_the_request_completes() {
    let (d, addr) = serve(&["--threads", "1", "--slow-log-timeout", "300ms"]);
    let r = get(&addr, "/nap?2");
    assert_eq!(r.status, 200, "{r:?}");
    const SLOW: &str = "slow wsgi request";
    d.wait_log(SLOW);
    let rec = record(&d, SLOW);
    assert!(rec.contains("in nap"), "{rec}");
    assert!(rec.contains("time.sleep(seconds)"), "{rec}");
    assert!(
        rec.contains("uri=/nap?2") && rec.contains("running_ms="),
        "{rec}"
    );
    assert!(d
        .log()
        .iter()
        .any(|l| l.contains(SLOW) && l.contains("WARN")));
    // Once per request, and a fast one is not logged.
    assert_eq!(get(&addr, "/ok").status, 200);
    assert_eq!(d.count_log(SLOW), 1, "{}", d.log().join("\n"));
    assert_eq!(d.count_log(TIMED_OUT), 0);
}

#[test]
fn a_cgi_script_past_the_request_timeout_is_killed_with_504() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    support::cgi::set_mode(&root, 0o755);
    let pid_file = root.join("pid");
    write_program(
        &root.join("sleepy.sh"),
        &format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 3600\n",
            pid_file.display()
        ),
    );
    let app = format!("cgi:{}", root.display());
    // --cgi-timeout (idle) is longer: only the wall-clock limit can end it.
    let d = Daemon::start(&[
        &app,
        "--http",
        "127.0.0.1:0",
        "--request-timeout",
        "1s",
        "--cgi-timeout",
        "1h",
    ]);
    let addr = d.listener("http");
    let r = get(&addr, "/sleepy.sh");
    assert_eq!(r.status, 504, "{r:?}");
    let line = d.wait_log("after the request timeout");
    assert!(
        line.contains("sleepy.sh") && line.contains("killed"),
        "{line}"
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_gone(pid);
}

/// Sends `GET target` on a new connection and leaves it open.
fn send_only(addr: &str, target: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send the request");
    s
}

/// Whether the answer on `s` (if any arrives within `wait`) is a 503. `None`: no answer yet.
fn answered_503(s: &mut TcpStream, wait: Duration) -> Option<bool> {
    s.set_read_timeout(Some(wait)).expect("read timeout");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) if n > 0 => Some(buf[..n].starts_with(b"HTTP/1.1 503")),
        Ok(_) => Some(false),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("read: {e}"),
    }
}

/// Sends `GET target` until a request is admitted (no answer within 2 s: it waits in the queue)
/// rather than refused with 503, for at most 20 s; the admitted connection.
fn admitted(addr: &str, target: &str, what: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut s = send_only(addr, target);
        match answered_503(&mut s, Duration::from_secs(2)) {
            None => return s,
            Some(true) => assert!(Instant::now() < deadline, "{what}: still 503 after 20 s"),
            Some(false) => panic!("{what}: answered while the only thread naps"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn queued_requests_whose_clients_leave_give_their_place_back() {
    let (d, addr) = serve(&["--threads", "1", "--wsgi-queue", "1"]);
    // The one thread naps for a minute: without the release, every request after the first
    // queued one would get 503 for that long.
    let _napping = send_only(&addr, "/nap?60");
    d.wait_log("napping 60");
    for round in 0..4 {
        // A client queues (the daemon may need a moment to see the previous one go)...
        let queued = admitted(&addr, "/ok", &format!("round {round}"));
        // ...and holds the queue's one place: the next is refused...
        let mut probe = send_only(&addr, "/ok");
        assert_eq!(
            answered_503(&mut probe, TIMEOUT),
            Some(true),
            "round {round}"
        );
        // ...until it leaves.
        drop(queued);
    }
    drop(admitted(&addr, "/ok", "after 4 clients left"));
}
