//! `--cgi-stderr`: a script's stderr logged, or forwarded as the request's `Output::Stderr`
//! (FastCGI's `FCGI_STDERR`), all of it before the response ends.

mod support;

use gatehouse_cgi_exec::{CgiApp, Config, StderrMode};
use gatehouse_channel_request::Output;
use support::{app, config, run_with, tree, Answer, Logs};

fn forwarding() -> Config {
    Config {
        stderr: StderrMode::FastCgi,
        ..config()
    }
}

/// A GET of `path?query` over a channel that forwards stderr when `forward`.
async fn get(app: &CgiApp, path: &str, query: &str, forward: bool) -> Answer {
    let vars = [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", path),
        ("QUERY_STRING", query),
    ];
    run_with(app, &vars, b"", forward).await
}

#[tokio::test]
async fn forwarded_not_logged_when_the_front_end_forwards() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    let ans = get(&app(&t.cgi, forwarding()), "/stderr.sh", "", true).await;
    assert_eq!((ans.status(), ans.text().as_str()), (200, "ok\n"));
    assert_eq!(ans.end, Output::Finish);
    assert_eq!(
        ans.stderr,
        b"first complaint from the script\nsecond \x01 line\n"
    );
    assert!(
        !logs.text().contains("first complaint"),
        "forwarded stderr is not logged too:\n{}",
        logs.text()
    );
}

#[tokio::test]
async fn logged_when_the_front_end_does_not_forward() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    // Forwarding asked for, but the channel (an SCGI, HTTP or CGI front end) has no stream.
    let ans = get(&app(&t.cgi, forwarding()), "/stderr.sh", "", false).await;
    assert_eq!(ans.status(), 200);
    assert!(ans.stderr.is_empty());
    logs.wait_for("first complaint from the script").await;
}

#[tokio::test]
async fn log_mode_never_forwards() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    let ans = get(&app(&t.cgi, config()), "/stderr.sh", "", true).await;
    assert_eq!(ans.status(), 200);
    assert!(ans.stderr.is_empty());
    logs.wait_for("first complaint from the script").await;
}

#[tokio::test]
async fn stderr_after_stdout_closed_comes_before_the_end() {
    let t = tree();
    let ans = get(&app(&t.cgi, forwarding()), "/stderr_modes.sh", "late", true).await;
    assert_eq!((ans.status(), ans.text().as_str()), (200, "answered\n"));
    assert_eq!(ans.end, Output::Finish);
    assert_eq!(ans.stderr, b"late words after stdout closed\n");
}

#[tokio::test]
async fn a_flood_of_stderr_goes_through_the_budget_whole() {
    let t = tree();
    let ans = get(
        &app(&t.cgi, forwarding()),
        "/stderr_modes.sh",
        "flood",
        true,
    )
    .await;
    assert_eq!((ans.status(), ans.text().as_str()), (200, "flooded\n"));
    assert_eq!(ans.stderr.len(), 1 << 20);
    assert!(ans.stderr.iter().all(|&b| b == b'e'));
}

#[tokio::test]
async fn a_failing_scripts_stderr_comes_before_the_error_answer() {
    let t = tree();
    let ans = get(&app(&t.cgi, forwarding()), "/no_output.sh", "", true).await;
    assert_eq!(ans.status(), 502);
    assert_eq!(ans.stderr, b"failing on purpose\n");
}

#[tokio::test]
async fn a_child_holding_stderr_open_does_not_hold_the_response() {
    let t = tree();
    let logs = Logs::default();
    let _g = logs.install();
    let ans = get(
        &app(&t.cgi, forwarding()),
        "/stderr_modes.sh",
        "linger",
        true,
    )
    .await;
    let pid: i32 = ans.text().trim().parse().expect("the sleep's pid");
    // The response ended (within support::STEP, far less than the sleep's 300 s) although
    // the sleep still holds the script's stderr.
    let sleeping = std::path::Path::new(&format!("/proc/{pid}")).exists();
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    assert!(sleeping, "the sleep must still have been running");
    assert_eq!(ans.end, Output::Finish);
    assert_eq!(ans.stderr, b"before the exit\n");
}
