//! The load engine against the real gatehouse front ends, in process: every response checked,
//! errors counted by kind. No timing assertions: counts only.
#![allow(clippy::unwrap_used)] // reason: test helpers; a failure is a test failure

mod support;

use std::time::Duration;

use clap::Parser;
use gatehouse_bench::args::{Cli, Plan};
use gatehouse_bench::engine::{self, Outcome};
use gatehouse_bench::outcome::ErrorKind;
use support::{serve, serve_app, Front};

fn plan(args: &[&str]) -> Plan {
    let argv = ["gatehouse-bench", "-q"]
        .into_iter()
        .chain(args.iter().copied());
    Cli::try_parse_from(argv).unwrap().into_plan().unwrap()
}

fn run(args: &[&str]) -> Outcome {
    engine::run(&plan(args))
}

fn errors(o: &Outcome, kind: ErrorKind) -> u64 {
    o.recorder.errors[kind.index()]
}

const HELLO: &str = "Hello, world!\\n";

#[test]
fn fastcgi_hello_kept_alive() {
    let addr = serve(Front::Fastcgi, "hello").to_string();
    let o = run(&[
        "--fastcgi",
        &addr,
        "-c4",
        "-t2",
        "-n300",
        "--expect-body",
        HELLO,
    ]);
    assert_eq!(
        (o.recorder.ok, o.recorder.error_total()),
        (300, 0),
        "{:?}",
        o.recorder.samples
    );
    assert!(o.recorder.bytes_in > 300 * 14 && o.recorder.bytes_out > 300 * 100);
    let s = o.recorder.summary(o.elapsed);
    assert!(s.latency.min <= s.latency.p50 && s.latency.p50 <= s.latency.max);
}

#[test]
fn fastcgi_multiplexed_and_warmed_up() {
    let addr = serve(Front::Fastcgi, "hello").to_string();
    let args = [
        "--fastcgi",
        &addr,
        "-c2",
        "--multiplex=16",
        "-n500",
        "--warmup=200ms",
    ];
    let o = run(&[&args[..], &["--expect-body", HELLO]].concat());
    assert_eq!(
        (o.recorder.ok, o.recorder.error_total()),
        (500, 0),
        "{:?}",
        o.recorder.samples
    );
}

#[test]
fn fastcgi_connection_per_request() {
    let addr = serve(Front::Fastcgi, "hello").to_string();
    let o = run(&[
        "--fastcgi",
        &addr,
        "-c3",
        "-n60",
        "--no-keep-conn",
        "--expect-body",
        HELLO,
    ]);
    assert_eq!(
        (o.recorder.ok, o.recorder.error_total()),
        (60, 0),
        "{:?}",
        o.recorder.samples
    );
}

#[test]
fn fastcgi_echo_streams_a_large_body() {
    let addr = serve(Front::Fastcgi, "echo").to_string();
    let o = run(&[
        "--fastcgi",
        &addr,
        "-c2",
        "-n6",
        "--body-size=3MiB",
        "--multiplex=2",
    ]);
    assert_eq!(
        (o.recorder.ok, o.recorder.error_total()),
        (6, 0),
        "{:?}",
        o.recorder.samples
    );
    assert!(o.recorder.bytes_out >= 6 * (3 << 20));
}

#[test]
fn wrong_bodies_and_statuses_are_errors() {
    let addr = serve(Front::Fastcgi, "hello").to_string();
    let o = run(&[
        "--fastcgi",
        &addr,
        "-c2",
        "-n20",
        "--expect-body",
        "Goodbye",
    ]);
    assert_eq!((o.recorder.ok, errors(&o, ErrorKind::Body)), (0, 20));
    let addr = serve_app(Front::Fastcgi, support::hello_at_hello()).to_string();
    let o = run(&["--fastcgi", &addr, "-c2", "-n20", "--path=/elsewhere"]);
    assert_eq!((o.recorder.ok, errors(&o, ErrorKind::Status)), (0, 20));
    assert_eq!(o.recorder.statuses.get(&404), Some(&20));
    let o = run(&[
        "--fastcgi",
        &addr,
        "-n5",
        "--path=/hello",
        "--expect-body",
        HELLO,
    ]);
    assert_eq!((o.recorder.ok, o.recorder.error_total()), (5, 0));
}

#[test]
fn scgi_hello() {
    let addr = serve(Front::Scgi, "hello").to_string();
    let o = run(&["--scgi", &addr, "-c4", "-n100", "--expect-body", HELLO]);
    assert_eq!(
        (o.recorder.ok, o.recorder.error_total()),
        (100, 0),
        "{:?}",
        o.recorder.samples
    );
    let addr = serve(Front::Scgi, "echo").to_string();
    let o = run(&["--scgi", &addr, "-c2", "-n4", "--body-size=1MiB"]);
    assert_eq!(
        (o.recorder.ok, o.recorder.error_total()),
        (4, 0),
        "{:?}",
        o.recorder.samples
    );
}

#[test]
fn http_hello_and_echo() {
    let addr = serve(Front::Http, "hello");
    let url = format!("http://{addr}/");
    let o = run(&["--http", &url, "-c4", "-n200", "--expect-body", HELLO]);
    assert_eq!(
        (o.recorder.ok, o.recorder.error_total()),
        (200, 0),
        "{:?}",
        o.recorder.samples
    );
    let addr = serve(Front::Http, "echo");
    let url = format!("http://{addr}/echo?x=1");
    let o = run(&["--http", &url, "-c2", "-n10", "--body-size=2MiB"]);
    assert_eq!(
        (o.recorder.ok, o.recorder.error_total()),
        (10, 0),
        "{:?}",
        o.recorder.samples
    );
}

#[test]
fn open_loop_never_exceeds_its_schedule() {
    let addr = serve(Front::Fastcgi, "hello").to_string();
    let o = run(&["--fastcgi", &addr, "-c2", "--rate=200", "-d500ms"]);
    assert_eq!(o.recorder.error_total(), 0);
    // 200/s for 0.5 s is 100 slots (+1 per connection at the boundary); whatever the timing,
    // the schedule never issues more.
    assert!(o.recorder.ok <= 102, "{}", o.recorder.ok);
    assert!(o.recorder.ok > 0);
}

#[test]
fn refused_connections_are_counted() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let o = run(&["--fastcgi", &addr, "-c2", "-n6"]);
    assert_eq!((o.recorder.ok, errors(&o, ErrorKind::Connect)), (0, 6));
    let o = run(&["--scgi", &addr, "-c1", "-n3"]);
    assert_eq!(errors(&o, ErrorKind::Connect), 3);
}

#[test]
fn silent_server_times_out() {
    let addr = support::black_hole().to_string();
    let o = run(&[
        "--fastcgi",
        &addr,
        "-c2",
        "-n4",
        "--timeout=100ms",
        "--multiplex=2",
    ]);
    assert_eq!(
        (o.recorder.ok, errors(&o, ErrorKind::Timeout)),
        (0, 4),
        "{:?}",
        o.recorder.samples
    );
    let o = run(&["--scgi", &addr, "-c1", "-n2", "--timeout=100ms"]);
    assert_eq!(errors(&o, ErrorKind::Timeout), 2);
}

#[test]
fn idle_mode_holds_connections() {
    let addr = serve(Front::Fastcgi, "hello").to_string();
    let p = plan(&[
        "--fastcgi",
        &addr,
        "-c50",
        "--idle-hold=100ms",
        "--expect-body",
        HELLO,
    ]);
    let held = gatehouse_bench::idle::run(&p, Duration::from_millis(100));
    assert_eq!(held.held, 50);
    assert_eq!((held.recorder.ok, held.recorder.error_total()), (50, 0));
}

#[test]
fn open_loop_counts_a_stall_against_every_request_it_held_back() {
    // 100 requests/s on one connection; the server sits on the first request for 600 ms.
    // Requests due at 10, 20, ... 590 ms could not go out before it answered: open loop times
    // them from when they were due, so at least the 51 due in the first 500 ms show >= 100 ms,
    // more than half of the <= 100 measured. (A lower bound set by the injected stall: a slower
    // machine only makes latencies longer.)
    let addr = serve_app(
        Front::Fastcgi,
        support::stalls_once(Duration::from_millis(600)),
    );
    let o = run(&["--fastcgi", &addr.to_string(), "-c1", "--rate=100", "-d1s"]);
    assert_eq!(o.recorder.error_total(), 0, "{:?}", o.recorder.samples);
    let s = o.recorder.summary(o.elapsed);
    assert!(s.requests <= 100, "{}", s.requests);
    assert!(
        s.latency.max >= Duration::from_millis(600),
        "{:?}",
        s.latency
    );
    assert!(
        s.latency.p50 >= Duration::from_millis(100),
        "{:?}",
        s.latency
    );
}

#[test]
fn requests_left_unanswered_at_the_end_are_reported() {
    let addr = support::black_hole().to_string();
    let o = run(&["--fastcgi", &addr, "-c3", "--multiplex=2", "-d300ms"]);
    assert_eq!((o.recorder.ok, o.recorder.error_total()), (0, 0));
    assert_eq!(o.recorder.unfinished, 6);
    assert!(o.recorder.oldest_unfinished > Duration::ZERO);
    let o = run(&["--scgi", &addr, "-c2", "-d300ms"]);
    assert_eq!((o.recorder.unfinished, o.recorder.error_total()), (2, 0));
}
