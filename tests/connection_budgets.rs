//! Connection budgets (issue 12): each listener has its own share of `--max-conns`, so clients
//! of one listener cannot starve another, and an idle listener holds no connection slot.
//!
//! - `--max-conns 1` with HTTP and FastCGI listeners: both answer on an idle daemon (the slot
//!   used to be taken by whichever accept loop ran first, before any connection came), and no
//!   "limit reached" line is logged at start-up.
//! - 8 slowloris HTTP clients against `--max-conns 8` (each listener may hold 6) while the
//!   FastCGI listener is asked for a request: it is answered at once, not after the HTTP
//!   clients' 60 s header timeout (before, HTTP took all 8 slots). The bound checked is 20 s,
//!   far from both, so a loaded machine cannot make it flaky.

mod support;

#[path = "support/wsgi.rs"]
mod wsgi_support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::{fcgi, http};

#[test]
fn one_slot_serves_every_listener_of_an_idle_daemon() {
    let d = Daemon::serve(&[
        "hello",
        "--max-conns",
        "1",
        "--http",
        "127.0.0.1:0",
        "--fastcgi",
        "127.0.0.1:0",
    ]);
    let port = wsgi_support::port(&d, "http");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.count_log("limit"), 0, "{:?}", d.log());
    for _ in 0..3 {
        let r = http::request(port, "GET", "/", &[], b"");
        assert_eq!(r.status, 200);
        let a = fcgi::call(
            &d.listener("fastcgi"),
            &fcgi::params("GET", "/", "", None),
            b"",
        );
        assert_eq!(a.cgi().status, 200);
    }
}

#[test]
fn slow_http_clients_do_not_starve_the_fastcgi_listener() {
    let d = Daemon::serve(&[
        "hello",
        "--max-conns",
        "8",
        "--http",
        "127.0.0.1:0",
        "--fastcgi",
        "127.0.0.1:0",
        "--http-header-timeout",
        "60s",
    ]);
    let port = wsgi_support::port(&d, "http");
    // Slowloris: a head begun and never finished, on more connections than the limit.
    let mut slow = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .expect("partial head");
        slow.push(s);
    }
    d.wait_log("--max-conns-per-listener");
    let start = Instant::now();
    let a = fcgi::call(
        &d.listener("fastcgi"),
        &fcgi::params("GET", "/", "", None),
        b"",
    );
    let waited = start.elapsed();
    assert_eq!(a.cgi().status, 200);
    assert!(
        waited < Duration::from_secs(20),
        "the FastCGI request waited {waited:?} behind the HTTP clients"
    );
    drop(slow);
}
