//! The binary end to end: `-n 200 --json` against an in-process FastCGI server serving `hello`.
#![allow(clippy::unwrap_used)] // reason: test helpers; a failure is a test failure

mod support;

use std::process::Command;

use support::{serve, Front};

fn bench(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse-bench"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout:?}"));
    (
        out.status.code().unwrap(),
        json,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn json_report_of_a_clean_run() {
    let addr = serve(Front::Fastcgi, "hello").to_string();
    let (code, v, stderr) = bench(&[
        "--fastcgi",
        &addr,
        "-c",
        "8",
        "-n",
        "200",
        "--json",
        "--expect-body",
        "Hello, world!\\n",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["requests"], 200);
    assert_eq!(v["errors"], 0);
    assert!(v["requests_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(v["protocol"], "fastcgi");
    assert_eq!(v["connections"], 8);
    let l = &v["latency_us"];
    let p = |k: &str| l[k].as_f64().unwrap();
    assert!(p("min") > 0.0 && p("min") <= p("p50") && p("p50") <= p("p90"));
    assert!(p("p90") <= p("p99") && p("p99") <= p("p99_9") && p("p99_9") <= p("max"));
    assert!(v["bytes_in_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["client_cpu_sec"].as_f64().is_some());
    assert!(v["errors_by_kind"]
        .as_object()
        .unwrap()
        .values()
        .all(|n| n == 0));
}

#[test]
fn a_run_with_errors_says_so_and_fails() {
    let addr = serve(Front::Fastcgi, "hello").to_string();
    let (code, v, stderr) = bench(&[
        "--fastcgi",
        &addr,
        "-n",
        "10",
        "--json",
        "-q",
        "--expect-body",
        "bye",
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["errors"], 10);
    assert_eq!(v["errors_by_kind"]["body"], 10);
    assert!(
        stderr.contains("ERRORS: 10 of 10 requests failed: body 10"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse-bench"))
        .args(["--fastcgi", "127.0.0.1:1", "--multiplex", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
