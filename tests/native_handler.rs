//! End-to-end: `examples/native_handler.rs`, a Rust handler served through `gatehouse::serve`,
//! takes the same options as the binary, serves over FastCGI, refuses an APP argument, and drains
//! on SIGTERM. Cargo builds examples along with the tests; this finds it in the target dir.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use support::daemon::{run, Daemon};
use support::fcgi;

fn example() -> PathBuf {
    let path = support::target_dir().join("examples/native_handler");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --example native_handler` \
         (`cargo test` and `cargo nextest run` build examples)",
        path.display()
    );
    path
}

fn greet(addr: &str, query: &str) -> String {
    let answer = fcgi::call(addr, &fcgi::params("GET", "/greet", query, None), b"");
    let resp = answer.cgi();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    resp.text()
}

#[test]
fn the_example_handler_serves_over_fastcgi() {
    let mut cmd = Command::new(example());
    cmd.args(["--fastcgi", "127.0.0.1:0"]).stdin(Stdio::null());
    let mut d = Daemon::spawn(cmd, "native_handler");
    let addr = d.addr();
    assert_eq!(greet(&addr, "name=Ada"), "Hello, Ada!\n");
    assert_eq!(
        greet(&addr, "x=1&name=J%C3%BCrgen+M"),
        "Hello, J\u{fc}rgen M!\n"
    );
    assert_eq!(greet(&addr, ""), "Hello, stranger!\n");
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn the_example_takes_the_binary_options_but_no_app() {
    let (status, _, err) = run({
        let mut c = Command::new(example());
        c.arg("echo");
        c
    });
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("takes no APP argument"), "{err}");

    let (status, out, _) = run({
        let mut c = Command::new(example());
        c.arg("--help");
        c
    });
    assert_eq!(status.code(), Some(0));
    assert!(
        out.contains("--fastcgi <ADDR>") && !out.contains("[APP]"),
        "{out}"
    );
}
