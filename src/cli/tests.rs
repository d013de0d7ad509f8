//! Unit tests of the command line: defaults, repeats, usage errors, the embedded form, ISINDEX
//! arguments, and clap's own consistency checks.

use std::time::Duration;

use super::*;

fn parse(args: &[&str]) -> Result<Cli, u8> {
    Cli::try_from_args(std::iter::once("gatehouse").chain(args.iter().copied()))
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn defaults() {
    let cli = parse(&[]).unwrap();
    assert_eq!(cli.app, None);
    assert!(cli.mount.is_empty());
    assert!(!cli.cgi);
    assert!(!cli.listen.any());
    assert_eq!(cli.listen.backlog, DEFAULT_BACKLOG);
    assert_eq!(cli.run.drain_timeout.0, Duration::from_secs(30));
    assert_eq!(cli.run.runtime_threads, None);
    assert_eq!(
        parse(&["--runtime-threads", "1"]).map(|c| c.run.runtime_threads),
        Ok(Some(1))
    );
    assert_eq!(cli.process.workers, 1);
    assert!(!cli.process.wants_master());
    assert!(parse(&["--workers", "2"]).unwrap().process.wants_master());
    assert!(parse(&["--master"]).unwrap().process.wants_master());
    assert_eq!(cli.process.max_requests, 0);
    let d = gatehouse_fastcgi::Config::default();
    assert_eq!(cli.limits.max_conns, d.max_conns);
    assert_eq!(cli.limits.idle_timeout.0, d.idle_timeout);
    let s = gatehouse_scgi::Config::default();
    assert_eq!(cli.scgi.scgi_max_header_bytes, s.max_header_bytes);
    assert_eq!(cli.scgi.scgi_header_timeout.0, s.header_timeout);
    assert_eq!(cli.scgi.scgi_idle_timeout.0, s.idle_timeout);
    assert!(!cli.scgi.scgi_strict_duplicates);
    let h = gatehouse_http::Config::default();
    assert_eq!(cli.http.http_max_header_bytes, h.max_header_bytes);
    assert_eq!(cli.http.http_max_headers, h.max_headers);
    assert_eq!(cli.http.http_header_timeout.0, h.header_read_timeout);
    assert_eq!(cli.http.http_idle_timeout.0, h.idle_timeout);
    assert_eq!(cli.wsgi.threads, None);
    assert_eq!(
        cli.cgi_scripts.cgi_max,
        gatehouse_cgi_exec::DEFAULT_MAX_CHILDREN
    );
    assert_eq!(cli.cgi_scripts.cgi_timeout, None);
    assert_eq!(cli.cgi_scripts.cgi_stderr, CgiStderr::Log);
    assert_eq!(
        gatehouse_cgi_exec::StderrMode::from(cli.cgi_scripts.cgi_stderr),
        gatehouse_cgi_exec::Config::default().stderr
    );
}

#[test]
fn listeners_and_mounts_repeat() {
    let cli = parse(&[
        "echo",
        "--fastcgi",
        "127.0.0.1:0",
        "--fastcgi",
        "unix:/tmp/x",
        "--scgi",
        "127.0.0.1:0",
        "--http",
        "[::1]:0",
        "--http",
        "fd:3",
        "--mount",
        "/a=env",
        "--mount",
        "/b/=cgi:/srv/cgi-bin",
        "--pythonpath",
        "/x",
        "--pythonpath",
        "/y",
        "--cgi-env",
        "TZ",
        "--cgi-env",
        "LANG",
        "--cgi-extensions",
        "cgi,.sh",
    ])
    .unwrap();
    assert_eq!(cli.app, Some(AppSpec::Builtin("echo")));
    assert_eq!(cli.listen.fastcgi.len(), 2);
    assert_eq!(cli.listen.scgi.len(), 1);
    assert_eq!(cli.listen.http.len(), 2);
    assert_eq!(cli.mount.len(), 2);
    assert_eq!(cli.mount[1].prefix, "/b");
    assert_eq!(cli.wsgi.pythonpath.len(), 2);
    assert_eq!(cli.cgi_scripts.cgi_env, ["TZ", "LANG"]);
    assert_eq!(
        cli.cgi_scripts.cgi_extensions,
        Some(vec!["cgi".to_owned(), "sh".to_owned()])
    );
}

#[test]
fn cgi_stderr_modes() {
    let mode = |m: &str| parse(&["--cgi-stderr", m]).map(|c| c.cgi_scripts.cgi_stderr);
    assert_eq!(mode("fastcgi"), Ok(CgiStderr::FastCgi));
    assert_eq!(mode("log"), Ok(CgiStderr::Log));
    assert_eq!(
        gatehouse_cgi_exec::StderrMode::from(CgiStderr::FastCgi),
        gatehouse_cgi_exec::StderrMode::FastCgi
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["nope"][..],
        &["--fastcgi", "9000"],
        &["--scgi", "unix:"],
        &["--http", "localhost"],
        &["--socket-mode", "999"],
        &["--backlog", "0"],
        &["--drain-timeout", "5 parsecs"],
        &["--web-server-addrs", "10.0.0.300"],
        &["--log-level", "info,=[="],
        &["--scgi-max-header-bytes", "10"],
        &["--scgi-header-timeout", "0"],
        &["--http-max-headers", "0"],
        &["--http-idle-timeout", "0ms"],
        &["--threads", "0"],
        &["--runtime-threads", "0"],
        &["--workers", "2000"],
        &["--max-worker-memory", "12X"],
        &["--cgi-timeout", "0s"],
        &["--cgi-extensions", ","],
        &["--cgi-stderr", "syslog"],
        &["--mount", "api=echo"],
        &["--mount", "/api=nope"],
        &["--cgi", "--http", "127.0.0.1:0"],
        &["--fastcgi", "fd:5", "--http", "fd:5"],
        &["--no-such-flag"],
        &["cgi:"],
    ] {
        assert_eq!(parse(args).unwrap_err(), 2, "{args:?}");
    }
}

#[test]
fn embedded_refuses_app_options() {
    let embedded = |args: &[&str]| {
        Cli::try_from_args_embedded(std::iter::once("/x/my-app").chain(args.iter().copied()))
    };
    assert!(embedded(&["--fastcgi", "127.0.0.1:0", "--http", "127.0.0.1:0"]).is_ok());
    assert!(embedded(&["--cgi"]).is_ok());
    for args in [
        &["echo"][..],
        &["--mount", "/a=echo"],
        &["--threads", "2"],
        &["--cgi-max", "3"],
    ] {
        assert_eq!(embedded(args).unwrap_err(), 2, "{args:?}");
    }
}

#[test]
fn isindex_words_from_the_web_server_are_dropped() {
    let q = |s: &str| Some(OsString::from(s));
    // Apache runs `gatehouse env` for GET /cgi-bin/gatehouse?env.
    let args = without_isindex_args(os(&["gatehouse", "env"]), q("env").as_deref());
    assert_eq!(args, os(&["gatehouse"]));
    let args = without_isindex_args(os(&["gatehouse", "a b", "c"]), q("a%20b+c").as_deref());
    assert_eq!(args, os(&["gatehouse"]));
    // The operator's own arguments stay: a wrapper's `--cgi echo` is not the query's `echo`.
    let args = without_isindex_args(os(&["gatehouse", "--cgi", "echo"]), q("echo").as_deref());
    assert_eq!(args, os(&["gatehouse", "--cgi", "echo"]));
    // A query with `=` carries no arguments; outside a CGI environment nothing is dropped.
    let args = without_isindex_args(os(&["gatehouse", "echo"]), q("a=echo").as_deref());
    assert_eq!(args, os(&["gatehouse", "echo"]));
    let args = without_isindex_args(os(&["gatehouse", "echo"]), None);
    assert_eq!(args, os(&["gatehouse", "echo"]));
}

#[test]
fn help_is_consistent() {
    Cli::command().debug_assert();
    let embedded = Cli::try_from_args_embedded(["x", "--help"]);
    assert_eq!(embedded.unwrap_err(), 0);
}

#[test]
fn time_limits() {
    let cli = parse(&[]).unwrap();
    assert_eq!(cli.time_limits.request_timeout, None);
    assert_eq!(cli.time_limits.slow_log_timeout, None);
    let cli = parse(&["--request-timeout", "30s", "--slow-log-timeout", "500ms"]).unwrap();
    assert_eq!(
        cli.time_limits.request_timeout.map(|d| d.0),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        cli.time_limits.slow_log_timeout.map(|d| d.0),
        Some(Duration::from_millis(500))
    );
    for bad in ["0", "soon", "-1s"] {
        assert_eq!(parse(&["--request-timeout", bad]).err(), Some(2), "{bad}");
        assert_eq!(parse(&["--slow-log-timeout", bad]).err(), Some(2), "{bad}");
    }
}
