//! End-to-end: Python WSGI apps with the binary run as a CGI program (`gatehouse --cgi
//! wsgi:...`, one request from the environment and stdin, the answer on stdout):
//! `wsgi.run_once` is true there and false in the daemon; `wsgiref.validate.validator` finds
//! nothing to object to (and objects, visibly, to an app that breaks the rules); a Flask app
//! answers. (tests/cgi_mode.rs covers CGI detection from `GATEWAY_INTERFACE` and the CGI
//! front end with the built-in apps.)

mod support;
#[path = "support/wsgi.rs"]
mod wsgi_support;

use wsgi_support::{callable, get, port, run_cgi, start, CgiRun};

/// What a web server puts in a CGI program's environment for `METHOD
/// /cgi-bin/gatehouse/x?query` (no `GATEWAY_INTERFACE`: `--cgi` says it), plus `extra`.
fn env<'a>(
    method: &'a str,
    query: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut vars = vec![
        ("REQUEST_METHOD", method),
        ("SCRIPT_NAME", "/cgi-bin/gatehouse"),
        ("PATH_INFO", "/x"),
        ("QUERY_STRING", query),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", "localhost"),
    ];
    vars.extend_from_slice(extra);
    vars
}

fn cgi(app: &str, vars: &[(&str, &str)], body: &[u8]) -> CgiRun {
    let run = run_cgi(&["--cgi", app], vars, body);
    assert!(run.status.success(), "{app}: {}", run.stderr);
    run
}

#[test]
fn run_once_is_true_under_cgi_and_false_in_the_daemon() {
    let dump = callable("wsgi_cases.py", "environ_dump");
    let run = cgi(&dump, &env("GET", "a=b", &[]), b"");
    let j = run.response().json();
    assert_eq!(run.response().status, 200);
    assert_eq!(j["wsgi.run_once"], true);
    assert_eq!(j["wsgi.multithread"], false, "one request, one thread");
    assert_eq!(j["gatehouse.protocol"], "cgi");
    assert_eq!(j["SCRIPT_NAME"], "/cgi-bin/gatehouse");
    assert_eq!(j["PATH_INFO"], "/x");
    assert_eq!(j["QUERY_STRING"], "a=b");

    let d = start(&[dump, "--http".into(), "127.0.0.1:0".into()]);
    let j = get(port(&d, "http"), "/y?c=d", &[]).json();
    assert_eq!(j["wsgi.run_once"], false);
    assert_eq!(j["wsgi.multithread"], true);
    assert_eq!(j["PATH_INFO"], "/y");
}

#[test]
fn validator_finds_nothing_to_object_to_under_cgi() {
    let app = |name: &str| callable("wsgi_validated.py", name);
    let get_env = env("GET", "", &[]);
    for (name, want) in [
        ("hello", "Hello, world!\n"),
        ("writer", "written and returned"),
        ("error_page", "not here"),
    ] {
        let run = cgi(&app(name), &get_env, b"");
        let r = run.response();
        assert!(
            r.status != 500,
            "{name}: the validator objected: {}",
            run.stderr
        );
        assert_eq!(r.text(), want, "{name}");
        assert!(
            !run.stderr.contains("AssertionError"),
            "{name}: {}",
            run.stderr
        );
    }
    let run = cgi(&app("streamed"), &get_env, b"");
    assert_eq!(
        run.response().text(),
        (0..100).map(|i| format!("chunk {i}\n")).collect::<String>()
    );
    assert!(!run.stderr.contains("AssertionError"), "{}", run.stderr);

    let body = b"line one\nthe rest\nof it";
    let len = body.len().to_string();
    let post = env(
        "POST",
        "",
        &[("CONTENT_LENGTH", &len), ("CONTENT_TYPE", "text/plain")],
    );
    let run = cgi(&app("form"), &post, body);
    assert_eq!(
        run.response().json(),
        serde_json::json!({"first": "line one\n", "rest": "the rest\nof it"}),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("AssertionError"), "{}", run.stderr);

    // The negative control: the objection shows as a 500 and the traceback on stderr.
    let run = cgi(&callable("wsgi_e2e.py", "validator_objects"), &get_env, b"");
    assert_eq!(run.response().status, 500);
    assert!(run.stderr.contains("AssertionError"), "{}", run.stderr);
}

#[test]
fn flask_under_cgi() {
    let app = wsgi_support::app("flask_app.py");
    let mut vars = env("GET", "name=cgi", &[]);
    vars.retain(|(n, _)| *n != "PATH_INFO");
    vars.push(("PATH_INFO", "/json"));
    let run = cgi(&app, &vars, b"");
    let r = run.response();
    assert_eq!(r.status, 200, "{}", run.stderr);
    assert_eq!(
        r.json(),
        serde_json::json!({"items": [1, 2, 3], "name": "cgi"})
    );
}

/// httpoxy: a web server puts a client's `Proxy:` header in the CGI program's environment as
/// `HTTP_PROXY`. Neither the WSGI environ nor the process environment Python's HTTP clients
/// read may carry it.
#[test]
fn a_proxy_header_never_reaches_os_environ_under_cgi() {
    let evil = [("HTTP_PROXY", "http://evil.test:3128")];
    let run = cgi(
        &callable("wsgi_cases.py", "process_proxy"),
        &env("GET", "", &evil),
        b"",
    );
    assert_eq!(run.response().status, 200, "{}", run.stderr);
    assert_eq!(run.response().text(), "HTTP_PROXY=<unset>");
    let run = cgi(
        &callable("wsgi_cases.py", "environ_dump"),
        &env("GET", "", &evil),
        b"",
    );
    assert!(run.response().json().get("HTTP_PROXY").is_none());
}
