//! End-to-end: `--metrics ADDR` over the built binary, read with real parsers.
//!
//! - `--workers 2`, FastCGI and HTTP requests: `/metrics`, parsed by Python's
//!   `prometheus_client.parser`, counts exactly the requests sent (by protocol and status
//!   class), the histogram's count too, and one accepted connection per request; a worker killed
//!   with SIGKILL is replaced and the totals do not go backwards (then grow by what follows);
//!   `gatehouse_worker_restarts_total{reason="signal"}` is 1; `/status?json` (serde_json) has
//!   both workers with their pids and requests adding up;
//! - `--request-timeout` with `--workers 2`: the timeouts of the workers' WSGI apps reach
//!   `gatehouse_request_timeouts_total`, the 504s the `5xx` class;
//! - recycling and a SIGHUP reload keep the totals, `gatehouse_worker_restarts_total` counts
//!   `max-requests` and `reload`;
//! - the listener on a unix socket; `--metrics systemd:...` and bad addresses exit 2;
//! - one process, a WSGI app that blocks until the test releases it: `/status?full` (text and
//!   JSON) lists the running request with its method, uri, worker and how long it runs, the
//!   WSGI gauges show a busy thread, and once released the list is empty; `/ping` answers
//!   `pong`, an unknown path 404, a POST 405.
//!
//! Figures reach `/metrics` when a request is over (after its response went out) and the WSGI
//! ones within a fraction of a second: the tests poll for them (bounded by `support::TIMEOUT`),
//! then assert exact values.

mod support;
#[path = "support/workers.rs"]
mod workers_support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use support::daemon::Daemon;
use support::{fcgi, http, kill, wait_for};
use workers_support::{serving_pids, try_get, wait_gone};

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// The metrics listener's address, from the `metrics and status on http://ADDR/metrics` line.
fn metrics_addr(d: &Daemon) -> String {
    let line = d.wait_log("metrics and status on http://");
    let at = line.find("http://").expect("url") + "http://".len();
    line[at..]
        .trim()
        .strip_suffix("/metrics")
        .expect("a /metrics url")
        .to_owned()
}

/// `GET target` on the metrics listener; panics unless it answers 200.
fn get(addr: &str, target: &str) -> String {
    let got = try_get(addr, target).unwrap_or_else(|e| panic!("GET {target}: {e}"));
    assert_eq!(got.status, 200, "GET {target}: {}", got.body);
    got.body
}

/// Every sample of `text`, as Python's Prometheus parser reads it (a parse error fails).
fn parse(text: &str) -> Vec<Sample> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "the Prometheus parser rejected the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| {
            let labels = s[1]
                .as_object()
                .expect("labels")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_owned()))
                .collect();
            (
                s[0].as_str().expect("name").to_owned(),
                labels,
                s[2].as_f64().expect("value"),
            )
        })
        .collect()
}

fn scrape(addr: &str) -> Vec<Sample> {
    parse(&get(addr, "/metrics"))
}

/// The sum of the samples named `name` whose labels include `labels`.
fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// Whether a sample named `name` exists.
fn has(samples: &[Sample], name: &str) -> bool {
    samples.iter().any(|(n, _, _)| n == name)
}

fn status_json(addr: &str) -> serde_json::Value {
    serde_json::from_str(&get(addr, "/status?json")).expect("/status?json is JSON")
}

fn fastcgi_get(addr: &str, path: &str) {
    let answer = fcgi::call(addr, &fcgi::params("GET", path, "", None), b"");
    let text = String::from_utf8_lossy(&answer.stdout);
    assert!(text.contains("Hello, world!"), "{text}");
}

fn http_get(addr: &str, path: &str) {
    let got = try_get(addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(got.status, 200, "{}", got.body);
}

/// Waits until `gatehouse_requests_total` says `n`, and returns that scrape.
fn wait_requests(addr: &str, n: f64) -> Vec<Sample> {
    wait_for(&format!("gatehouse_requests_total to reach {n}"), || {
        let s = scrape(addr);
        let got = sum(&s, "gatehouse_requests_total", &[]);
        assert!(got <= n, "more requests counted ({got}) than sent ({n})");
        (got == n).then_some(s)
    })
}

#[test]
fn totals_over_two_workers_add_up_and_survive_a_killed_worker() {
    let d = Daemon::start(&[
        "hello",
        "--workers",
        "2",
        "--fastcgi",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let maddr = metrics_addr(&d);
    let fastcgi = d.listener("fastcgi");
    let web = d.listener("http");
    let pids = serving_pids(&d);
    assert_eq!(pids.len(), 2);

    const FASTCGI: usize = 30;
    const HTTP: usize = 20;
    for i in 0..FASTCGI {
        fastcgi_get(&fastcgi, &format!("/f{i}"));
    }
    for i in 0..HTTP {
        http_get(&web, &format!("/h{i}"));
    }
    let n = (FASTCGI + HTTP) as f64;
    let s = wait_requests(&maddr, n);
    let fcgi_l = [("protocol", "fastcgi")];
    let http_l = [("protocol", "http")];
    assert_eq!(
        sum(
            &s,
            "gatehouse_requests_total",
            &[("protocol", "fastcgi"), ("status", "2xx")]
        ),
        FASTCGI as f64
    );
    assert_eq!(
        sum(
            &s,
            "gatehouse_requests_total",
            &[("protocol", "http"), ("status", "2xx")]
        ),
        HTTP as f64
    );
    assert_eq!(sum(&s, "gatehouse_request_duration_seconds_count", &[]), n);
    assert_eq!(
        sum(&s, "gatehouse_request_duration_seconds_count", &fcgi_l),
        FASTCGI as f64
    );
    assert_eq!(
        sum(
            &s,
            "gatehouse_request_duration_seconds_bucket",
            &[("protocol", "http"), ("le", "+Inf")]
        ),
        HTTP as f64
    );
    assert!(sum(&s, "gatehouse_request_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(
        sum(&s, "gatehouse_connections_accepted_total", &fcgi_l),
        FASTCGI as f64
    );
    assert_eq!(
        sum(&s, "gatehouse_connections_accepted_total", &http_l),
        HTTP as f64
    );
    assert_eq!(sum(&s, "gatehouse_workers", &[]), 2.0);
    for name in [
        "gatehouse_requests_in_flight",
        "gatehouse_connections_open",
        "gatehouse_wsgi_threads_busy",
        "gatehouse_wsgi_queue_length",
        "gatehouse_wsgi_rejected_total",
        "gatehouse_cgi_running",
        "gatehouse_cgi_queue_length",
        "gatehouse_cgi_killed_total",
        "gatehouse_request_timeouts_total",
        "gatehouse_worker_restarts_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(has(&s, name), "no {name} in /metrics");
    }
    assert!(sum(&s, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(sum(&s, "process_open_fds", &[]) > 0.0);

    let status = status_json(&maddr);
    assert_eq!(status["requests"], serde_json::json!(FASTCGI + HTTP));
    assert_eq!(status["accepted_conn"], serde_json::json!(FASTCGI + HTTP));
    let workers = status["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2, "{status}");
    let mut listed: Vec<u32> = workers
        .iter()
        .map(|w| w["pid"].as_u64().expect("pid") as u32)
        .collect();
    listed.sort_unstable();
    let mut expected = pids.clone();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    let per_worker: u64 = workers
        .iter()
        .map(|w| w["requests"].as_u64().expect("requests"))
        .sum();
    assert_eq!(per_worker, (FASTCGI + HTTP) as u64);
    for key in [
        "start_time",
        "start_since",
        "active_threads",
        "idle_threads",
        "queue_length",
        "max_queue_length",
        "max_children_reached",
        "slow_requests",
    ] {
        assert!(status.get(key).is_some(), "no {key} in {status}");
    }

    // A worker killed: replaced, and no total goes backwards.
    let victim = pids[0];
    kill(victim, libc::SIGKILL);
    wait_gone(victim);
    wait_for("a replacement worker in /status", || {
        let s = status_json(&maddr);
        let w = s["workers"].as_array()?.clone();
        let pids: Vec<u64> = w.iter().filter_map(|w| w["pid"].as_u64()).collect();
        let ready = w.iter().all(|w| w["state"] == "ready");
        (w.len() == 2 && ready && !pids.contains(&u64::from(victim))).then_some(())
    });
    let s = scrape(&maddr);
    assert_eq!(
        sum(&s, "gatehouse_requests_total", &[]),
        n,
        "totals after the kill"
    );
    assert_eq!(sum(&s, "gatehouse_request_duration_seconds_count", &[]), n);
    assert_eq!(
        sum(&s, "gatehouse_connections_accepted_total", &[]),
        n,
        "connections after the kill"
    );
    assert_eq!(
        sum(
            &s,
            "gatehouse_worker_restarts_total",
            &[("reason", "signal")]
        ),
        1.0
    );
    assert_eq!(sum(&s, "gatehouse_worker_restarts_total", &[]), 1.0);
    for i in 0..10 {
        fastcgi_get(&fastcgi, &format!("/after{i}"));
    }
    let s = wait_requests(&maddr, n + 10.0);
    assert_eq!(
        sum(&s, "gatehouse_requests_total", &[("protocol", "fastcgi")]),
        (FASTCGI + 10) as f64
    );
    assert_eq!(
        status_json(&maddr)["requests"],
        serde_json::json!(FASTCGI + HTTP + 10)
    );
}

/// A WSGI app: `/block` waits until the file `$RELEASE` exists; anything else answers `ok`.
const BLOCKING_APP: &str = r#"
import os, time

def application(environ, start_response):
    if environ.get("PATH_INFO") == "/block":
        while not os.path.exists(os.environ["RELEASE"]):
            time.sleep(0.02)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
"#;

#[test]
fn single_process_status_lists_running_requests() {
    running_request_listed(false);
}

#[test]
fn workers_status_lists_running_requests() {
    running_request_listed(true);
}

/// The blocking app in one process, or with `--workers 2` (then the master reads the running
/// request from the worker's block).
fn running_request_listed(workers: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = dir.path().join("blocking.py");
    std::fs::write(&app, BLOCKING_APP).expect("write app");
    let release = dir.path().join("release");
    let spec = format!("wsgi:{}", app.display());
    let mut args = vec![
        spec.as_str(),
        "--threads",
        "2",
        "--http",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ];
    if workers {
        args.extend(["--workers", "2"]);
    }
    let d = Daemon::start_env(&args, &[("RELEASE", release.to_str().expect("utf-8 path"))]);
    let maddr = metrics_addr(&d);
    let web = d.listener("http");
    let pids = if workers {
        serving_pids(&d)
    } else {
        vec![d.pid()]
    };
    let threads = 2.0 * pids.len() as f64;

    assert_eq!(get(&maddr, "/ping"), "pong\n");
    let missing = try_get(&maddr, "/nothing-here").expect("GET");
    assert_eq!(missing.status, 404);
    let port: u16 = maddr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let post = http::request(port, "POST", "/metrics", &[], b"x");
    assert_eq!(post.status, 405);
    {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(&maddr).expect("connect");
        s.set_read_timeout(Some(support::TIMEOUT)).expect("timeout");
        s.write_all(b"NOT HTTP AT ALL\r\n\r\n").expect("send");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "garbage got {answer:?}");
    }

    http_get(&web, "/warm");
    let blocked = {
        let web = web.clone();
        std::thread::spawn(move || try_get(&web, "/block?who=test"))
    };
    let running = wait_for("the blocked request in /status?json&full", || {
        let v: serde_json::Value =
            serde_json::from_str(&get(&maddr, "/status?json&full")).expect("json");
        let r = v["running"].as_array()?.first()?.clone();
        Some(r)
    });
    assert_eq!(running["method"], "GET");
    assert_eq!(running["uri"], "/block?who=test");
    let pid = running["pid"].as_u64().expect("pid") as u32;
    assert!(pids.contains(&pid), "{running} not from {pids:?}");
    let worker = running["worker"].as_u64().expect("worker");
    assert!(
        if workers {
            worker == 1 || worker == 2
        } else {
            worker == 0
        },
        "{running}"
    );
    assert!(running["running_for"].as_f64().expect("running_for") >= 0.0);
    let text = get(&maddr, "/status?full");
    let field = |key: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .collect()
    };
    assert_eq!(field("uri:"), ["/block?who=test"], "{text}");
    assert_eq!(field("method:"), ["GET"], "{text}");
    assert_eq!(field("requests in flight:")[0], "1", "{text}");
    let s = wait_for("a busy WSGI thread in /metrics", || {
        let s = scrape(&maddr);
        let ready = sum(&s, "gatehouse_wsgi_threads", &[]) == threads;
        (ready && sum(&s, "gatehouse_wsgi_threads_busy", &[]) == 1.0).then_some(s)
    });
    assert_eq!(sum(&s, "gatehouse_requests_in_flight", &[]), 1.0);
    assert_eq!(
        sum(&s, "gatehouse_connections_open", &[("protocol", "http")]),
        1.0
    );
    let status = status_json(&maddr);
    assert_eq!(status["active_threads"], 1);
    assert_eq!(status["idle_threads"].as_f64(), Some(threads - 1.0));
    let mode = if workers {
        "master (workers: 2)"
    } else {
        "single"
    };
    assert_eq!(status["process_manager"], mode);

    std::fs::write(&release, b"").expect("release");
    let got = blocked
        .join()
        .expect("client thread")
        .expect("blocked request");
    assert_eq!(got.body, "ok\n");
    let s = wait_requests(&maddr, 2.0);
    assert_eq!(sum(&s, "gatehouse_requests_in_flight", &[]), 0.0);
    let v: serde_json::Value =
        serde_json::from_str(&get(&maddr, "/status?json&full")).expect("json");
    assert_eq!(v["running"], serde_json::json!([]), "{v}");
    assert_eq!(v["requests"], 2);
}

/// `GET target` over the unix socket at `path`: status and body.
fn unix_get(path: &std::path::Path, target: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(support::TIMEOUT)).expect("timeout");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut data = String::new();
    s.read_to_string(&mut data).expect("read");
    let status = data
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {data:?}"));
    let body = data
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn metrics_on_a_unix_socket_and_bad_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("metrics.sock");
    let addr = format!("unix:{}", sock.display());
    let d = Daemon::start(&["hello", "--http", "127.0.0.1:0", "--metrics", &addr]);
    let web = d.listener("http");
    d.wait_log("metrics and status on http://unix:");
    http_get(&web, "/one");
    let text = wait_for("the request in /metrics over the unix socket", || {
        let (status, body) = unix_get(&sock, "/metrics");
        assert_eq!(status, 200);
        (sum(&parse(&body), "gatehouse_requests_total", &[]) == 1.0).then_some(body)
    });
    assert!(
        text.contains("# TYPE gatehouse_requests_total counter"),
        "{text}"
    );
    assert_eq!(unix_get(&sock, "/ping"), (200, "pong\n".to_owned()));
    drop(d);

    for bad in ["systemd:metrics", "nowhere", "127.0.0.1:99999"] {
        let (status, _, stderr) = support::daemon::run({
            let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
            c.args(["hello", "--http", "127.0.0.1:0", "--metrics", bad])
                .stdin(Stdio::null());
            c
        });
        assert_eq!(status.code(), Some(2), "--metrics {bad}: {stderr}");
        assert!(
            stderr.contains("--metrics") || stderr.contains(bad),
            "{stderr}"
        );
    }
}

/// The workers listed by `/status?json` as `(pid, generation, state)`.
fn listed_workers(addr: &str) -> Vec<(u64, u64, String)> {
    status_json(addr)["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| {
            (
                w["pid"].as_u64().expect("pid"),
                w["generation"].as_u64().expect("generation"),
                w["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect()
}

#[test]
fn reloads_and_recycling_keep_the_totals_and_count_restarts() {
    let d = Daemon::start(&[
        "hello",
        "--workers",
        "2",
        "--http",
        "127.0.0.1:0",
        "--max-requests",
        "4",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let maddr = metrics_addr(&d);
    let web = d.listener("http");
    serving_pids(&d);
    for i in 0..20 {
        http_get(&web, &format!("/r{i}"));
    }
    let s = wait_for("recycled workers", || {
        let s = wait_requests(&maddr, 20.0);
        (sum(
            &s,
            "gatehouse_worker_restarts_total",
            &[("reason", "max-requests")],
        ) >= 2.0)
            .then_some(s)
    });
    assert_eq!(sum(&s, "gatehouse_connections_accepted_total", &[]), 20.0);

    // Settled (no replacement under way), then a reload: two new workers of generation 2, the
    // old ones gone; nothing lost.
    wait_for("two ready workers of generation 1", || {
        let w = listed_workers(&maddr);
        (w.len() == 2 && w.iter().all(|(_, g, s)| *g == 1 && s == "ready")).then_some(())
    });
    let s = scrape(&maddr);
    let before = sum(&s, "gatehouse_worker_restarts_total", &[]);
    kill(d.pid(), libc::SIGHUP);
    wait_for("generation 2 alone in /status", || {
        let w = listed_workers(&maddr);
        (w.len() == 2 && w.iter().all(|(_, g, s)| *g == 2 && s == "ready")).then_some(())
    });
    let s = wait_requests(&maddr, 20.0);
    // Two, or three when a recycling the master had not yet heard of was under way.
    let reloads = sum(
        &s,
        "gatehouse_worker_restarts_total",
        &[("reason", "reload")],
    );
    assert!((2.0..=3.0).contains(&reloads), "{reloads} reload restarts");
    assert!(sum(&s, "gatehouse_worker_restarts_total", &[]) >= before + 2.0);
    http_get(&web, "/after-reload");
    wait_requests(&maddr, 21.0);
}

/// A WSGI app: `/spin` runs Python forever (until `--request-timeout` stops it).
const SPINNING_APP: &str = r#"
def application(environ, start_response):
    if environ.get("PATH_INFO") == "/spin":
        n = 0
        while True:
            n += 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
"#;

#[test]
fn request_timeouts_reach_the_metrics_of_the_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = dir.path().join("spin.py");
    std::fs::write(&app, SPINNING_APP).expect("write app");
    let spec = format!("wsgi:{}", app.display());
    let d = Daemon::start(&[
        &spec,
        "--workers",
        "2",
        "--http",
        "127.0.0.1:0",
        "--request-timeout",
        "1s",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let maddr = metrics_addr(&d);
    let web = d.listener("http");
    serving_pids(&d);
    for _ in 0..2 {
        let got = try_get(&web, "/spin").expect("GET /spin");
        assert_eq!(got.status, 504, "{}", got.body);
    }
    http_get(&web, "/fine");
    let s = wait_for("two timeouts in /metrics", || {
        let s = wait_requests(&maddr, 3.0);
        (sum(&s, "gatehouse_request_timeouts_total", &[]) == 2.0).then_some(s)
    });
    assert_eq!(
        sum(&s, "gatehouse_requests_total", &[("status", "5xx")]),
        2.0
    );
    assert_eq!(
        sum(&s, "gatehouse_requests_total", &[("status", "2xx")]),
        1.0
    );
    // The spinning threads are freed (their exception lands) a moment after the 504.
    wait_for("every WSGI thread idle again", || {
        (sum(&scrape(&maddr), "gatehouse_wsgi_threads_busy", &[]) == 0.0).then_some(())
    });
}
