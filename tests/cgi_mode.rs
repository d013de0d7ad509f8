//! End-to-end: the binary run as a CGI program (RFC 3875), one request from its environment and
//! stdin, the answer on stdout.
//!
//! - Run directly with a CGI environment (nothing inherited): `GATEWAY_INTERFACE` detection and
//!   `--cgi`, GET and POST to `echo`, the app from APP, `GATEHOUSE_APP` or the default, ISINDEX
//!   words on the command line ignored, `SCRIPT_NAME`/`PATH_INFO` kept as the server split them,
//!   a WSGI app (`wsgi.run_once`), errors (a 4xx/5xx response and one line on stderr, or exit 2
//!   with nothing on stdout).
//! - Under a real lighttpd (`mod_cgi`): through the documented two-line wrapper script, and as
//!   the binary itself with `GATEHOUSE_APP` from `setenv.add-environment`; GET and POST.

mod support;

use std::os::unix::fs::symlink;

use support::cgi::{run_cgi, write_program};
use support::lighttpd::Lighttpd;
use support::{body, fixtures, http, sha256_hex};

/// The environment a web server gives a CGI program for `GET /cgi-bin/gatehouse/x?query`.
fn cgi_env<'a>(
    method: &'a str,
    query: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut vars = vec![
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_SOFTWARE", "test/1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "192.0.2.1"),
        ("REQUEST_METHOD", method),
        ("SCRIPT_NAME", "/cgi-bin/gatehouse"),
        ("PATH_INFO", "/x"),
        ("QUERY_STRING", query),
        ("HTTP_X_TEST", "yes"),
    ];
    vars.extend_from_slice(extra);
    vars
}

#[test]
fn detected_from_gateway_interface_get_and_post() {
    let run = run_cgi(&["echo"], &cgi_env("GET", "a=1", &[]), b"");
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.stderr, "", "nothing logged for a good request");
    let resp = run.response();
    assert_eq!(resp.status, 200);
    let j = resp.json();
    assert_eq!(j["method"], "GET");
    assert_eq!(j["path"], "/cgi-bin/gatehouse/x");
    assert_eq!(j["query"], "a=1");
    assert_eq!(j["headers"]["x-test"], "yes");

    let data = body(300 * 1024 + 5, 11);
    let len = data.len().to_string();
    let vars = cgi_env(
        "POST",
        "",
        &[
            ("CONTENT_LENGTH", &len),
            ("CONTENT_TYPE", "application/octet-stream"),
        ],
    );
    let run = run_cgi(&["echo"], &vars, &data);
    assert!(run.status.success(), "{}", run.stderr);
    let j = run.response().json();
    assert_eq!(j["body_len"], data.len());
    assert_eq!(j["body_sha256"], sha256_hex(&data));
}

#[test]
fn explicit_cgi_flag_without_gateway_interface() {
    let vars = [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", "/s"),
        ("PATH_INFO", "/p"),
        ("SERVER_PROTOCOL", "HTTP/1.0"),
    ];
    let run = run_cgi(&["--cgi", "env"], &vars, b"");
    assert!(run.status.success(), "{}", run.stderr);
    let text = run.response().text();
    assert!(text.lines().any(|l| l == "SCRIPT_NAME=/s"), "{text}");
    assert!(text.lines().any(|l| l == "PATH_INFO=/p"), "{text}");
}

#[test]
fn the_app_comes_from_app_then_gatehouse_app_then_hello() {
    let from_env = run_cgi(&[], &cgi_env("GET", "", &[("GATEHOUSE_APP", "echo")]), b"");
    assert_eq!(from_env.response().json()["path"], "/cgi-bin/gatehouse/x");
    let arg_wins = run_cgi(
        &["hello"],
        &cgi_env("GET", "", &[("GATEHOUSE_APP", "echo")]),
        b"",
    );
    assert_eq!(arg_wins.response().text(), "Hello, world!\n");
    let default = run_cgi(&[], &cgi_env("GET", "", &[]), b"");
    assert_eq!(default.response().text(), "Hello, world!\n");
}

#[test]
fn isindex_words_on_the_command_line_are_not_options() {
    // Apache runs `gatehouse env` for `GET /cgi-bin/gatehouse?env` (RFC 3875 section 4.4):
    // the client's words must not choose the app, nor become options.
    let run = run_cgi(&["env"], &cgi_env("GET", "env", &[]), b"");
    assert_eq!(run.response().text(), "Hello, world!\n");
    let run = run_cgi(&["--help"], &cgi_env("GET", "--help", &[]), b"");
    assert_eq!(run.response().text(), "Hello, world!\n");
    let run = run_cgi(
        &["--fastcgi", "fd:0"],
        &cgi_env("GET", "--fastcgi+fd%3A0", &[]),
        b"",
    );
    assert_eq!(run.response().text(), "Hello, world!\n");
    // With an `=` in the query there are no such words: the arguments are the operator's.
    let run = run_cgi(&["echo"], &cgi_env("GET", "q=env", &[]), b"");
    assert_eq!(run.response().json()["query"], "q=env");
}

#[test]
fn mounts_are_below_the_programs_own_path() {
    let vars = cgi_env("GET", "", &[("PATH_INFO", "/api/v1")]);
    // The last PATH_INFO wins in Command::envs.
    let run = run_cgi(&["hello", "--mount", "/api=env"], &vars, b"");
    let text = run.response().text();
    assert!(
        text.lines()
            .any(|l| l == "SCRIPT_NAME=/cgi-bin/gatehouse/api"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "PATH_INFO=/v1"), "{text}");
}

#[test]
fn a_wsgi_app_runs_once() {
    let app = format!(
        "wsgi:{}:environ_dump",
        fixtures().join("apps/wsgi_cases.py").display()
    );
    let run = run_cgi(&[&app], &cgi_env("GET", "a=b", &[]), b"");
    assert!(run.status.success(), "{}", run.stderr);
    let j = run.response().json();
    assert_eq!(j["wsgi.run_once"], true);
    assert_eq!(j["SCRIPT_NAME"], "/cgi-bin/gatehouse");
    assert_eq!(j["PATH_INFO"], "/x");
    assert_eq!(j["QUERY_STRING"], "a=b");
    assert_eq!(j["HTTP_X_TEST"], "yes");
}

#[test]
fn bad_requests_get_an_answer_and_one_log_line() {
    let vars: Vec<(&str, &str)> = cgi_env("GET", "", &[])
        .into_iter()
        .filter(|(n, _)| *n != "REQUEST_METHOD")
        .collect();
    let run = run_cgi(&["echo"], &vars, b"");
    assert_eq!(run.response().status, 500);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("REQUEST_METHOD"), "{}", run.stderr);

    let vars = cgi_env("POST", "", &[("CONTENT_LENGTH", "10")]);
    let run = run_cgi(&["echo"], &vars, b"short");
    assert_eq!(run.response().status, 400);
    assert!(!run.stderr.is_empty());
}

#[test]
fn an_app_that_cannot_start_writes_nothing_to_stdout() {
    let run = run_cgi(&[], &cgi_env("GET", "", &[("GATEHOUSE_APP", "nope")]), b"");
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&run.stdout)
    );
    assert!(run.stderr.contains("GATEHOUSE_APP"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn listener_options_win_over_a_cgi_environment() {
    let mut d = support::daemon::Daemon::start_env(
        &["--http", "127.0.0.1:0"],
        &[("GATEWAY_INTERFACE", "CGI/1.1"), ("REQUEST_METHOD", "GET")],
    );
    let addr = d.listener("http");
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        http::request(port, "GET", "/", &[], b"").text(),
        "Hello, world!\n"
    );
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn under_lighttpd_mod_cgi() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    let bin = www.join("bin");
    std::fs::create_dir_all(bin.join("env-app")).unwrap();
    // The documented wrapper for servers that run CGI programs without arguments.
    write_program(
        &bin.join("gatehouse.cgi"),
        &format!(
            "#!/bin/sh\nexec {} --cgi echo\n",
            env!("CARGO_BIN_EXE_gatehouse")
        ),
    );
    // The binary itself, its app from GATEHOUSE_APP (mod_setenv).
    symlink(
        env!("CARGO_BIN_EXE_gatehouse"),
        bin.join("env-app/gatehouse"),
    )
    .unwrap();
    let www_text = www.display().to_string();
    let server = Lighttpd::start_with(
        "cgi.conf.tmpl",
        &[("@WWW@", &www_text), ("@APP@", "echo")],
        dir.path(),
    );

    for program in ["/bin/gatehouse.cgi", "/bin/env-app/gatehouse"] {
        let get = http::request(
            server.port,
            "GET",
            &format!("{program}/some/path?x=1"),
            &[("X-Test", "lighttpd")],
            b"",
        );
        assert_eq!(
            get.status,
            200,
            "{program}: {}\n{}",
            get.text(),
            server.error_log()
        );
        let j = get.json();
        assert_eq!(j["method"], "GET");
        assert_eq!(j["path"], format!("{program}/some/path"));
        assert_eq!(j["query"], "x=1");
        assert_eq!(j["headers"]["x-test"], "lighttpd");

        let data = body(40_000, 3);
        let post = http::request(server.port, "POST", program, &[], &data);
        assert_eq!(
            post.status,
            200,
            "{program}: {}\n{}",
            post.text(),
            server.error_log()
        );
        let j = post.json();
        assert_eq!(j["method"], "POST");
        assert_eq!(j["body_len"], data.len());
        assert_eq!(j["body_sha256"], sha256_hex(&data));
    }
}
