//! End-to-end: Python WSGI apps in the built daemon served over its own HTTP/1.1 front end
//! (`--http`, no web server in front):
//! - `wsgiref.validate.validator` around test apps: no assertion fires (and one that breaks the
//!   rules on purpose fails visibly, so the check is live);
//! - a client hanging up mid-stream: the app's iterable is closed;
//! - fixtures/apps/echo.py answers byte for byte what the built-in `echo` answers;
//! - a Flask app's routes, 404 and a raising route;
//! - apps that cannot be imported: exit 2 at start-up with the Python traceback, nothing bound.

mod support;
#[path = "support/wsgi.rs"]
mod wsgi_support;

use std::process::Command;

use support::daemon::{run, Daemon};
use support::{body, sha256_hex};
use wsgi_support::{get, logged, mounts, port, post, start, Record};

/// A daemon serving `app_args` over HTTP on a loopback port, and that port.
fn http(app_args: Vec<String>) -> (Daemon, u16) {
    let mut args = vec![
        "--http".to_owned(),
        "127.0.0.1:0".into(),
        "--threads".into(),
        "2".into(),
    ];
    args.extend(app_args);
    let d = start(&args);
    let p = port(&d, "http");
    (d, p)
}

#[test]
fn validator_finds_nothing_to_object_to_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let m = wsgi_support::validator_mounts();
    let (d, p) = http(m);
    let file = dir.path().join("served.bin");
    let data = body(300_000, 8);
    std::fs::write(&file, &data).unwrap();

    let ok = |r: &wsgi_support::Raw, what: &str| {
        assert!(r.complete, "{what}: cut short");
        assert!(
            r.status != 500,
            "{what}: the validator objected: {}",
            r.text()
        );
    };
    let r = get(p, "/hello", &[]);
    ok(&r, "/hello");
    assert_eq!(r.text(), "Hello, world!\n");
    let r = post(p, "/form", "text/plain", b"line one\nthe rest\nof it");
    ok(&r, "/form");
    assert_eq!(
        r.json(),
        serde_json::json!({"first": "line one\n", "rest": "the rest\nof it"})
    );
    let r = post(p, "/lines", "text/plain", b"a\nb\nc");
    ok(&r, "/lines");
    assert_eq!(r.json(), serde_json::json!(["a\n", "b\n", "c"]));
    // A chunked upload: no CONTENT_LENGTH, the body ends where the chunks do.
    let chunked = b"POST /lines HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
        Transfer-Encoding: chunked\r\n\r\n2\r\nx\n\r\n3\r\nyz\n\r\n1\r\nw\r\n0\r\n\r\n";
    let r = wsgi_support::exchange(p, chunked);
    ok(&r, "/lines chunked");
    assert_eq!(r.json(), serde_json::json!(["x\n", "yz\n", "w"]));
    let r = get(p, "/writer", &[]);
    ok(&r, "/writer");
    assert_eq!(r.text(), "written and returned");
    let r = get(p, "/streamed", &[]);
    ok(&r, "/streamed");
    assert_eq!(
        r.text(),
        (0..100).map(|i| format!("chunk {i}\n")).collect::<String>()
    );
    let r = get(p, "/no_content", &[]);
    ok(&r, "/no_content");
    assert_eq!(r.status, 204);
    let r = get(p, "/error_page", &[]);
    ok(&r, "/error_page");
    assert_eq!((r.status, r.text().as_str()), (404, "not here"));
    let r = get(
        p,
        "/file_response",
        &[("X-File", &file.display().to_string())],
    );
    ok(&r, "/file_response");
    assert_eq!(r.body, data);
    let head = wsgi_support::exchange(p, &wsgi_support::request_bytes("HEAD", "/hello", &[], b""));
    assert_eq!((head.status, head.body.len()), (200, 0), "HEAD");

    let r = get(p, "/report", &[]);
    assert_eq!(
        r.json(),
        serde_json::json!([]),
        "unraisable validator errors"
    );
    for objection in ["AssertionError", "WSGIWarning"] {
        assert!(
            !logged(&d, objection),
            "the validator objected: {}",
            d.log().join("\n")
        );
    }
    // The negative control: a PEP 3333 violation inside the validator fails visibly.
    let r = get(p, "/objects", &[]);
    assert_eq!(r.status, 500, "{}", r.text());
    d.wait_log("AssertionError");
}

#[test]
fn client_hanging_up_mid_stream_closes_the_iterable() {
    let dir = tempfile::tempdir().unwrap();
    let (d, p) = http(mounts(
        "wsgi_cases.py",
        &[
            ("/endless", "endless"),
            ("/generator", "generator"),
            ("/hello", "hello"),
        ],
    ));
    for round in 0..3 {
        let rec = Record::new(dir.path(), &format!("endless{round}.txt"));
        let got =
            wsgi_support::hang_up_after(p, "/endless", &[("X-Record", &rec.header())], 512 * 1024);
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&got[..200])
        );
        assert_eq!(rec.wait_line("closed"), ["closed"], "round {round}");
    }
    let r = get(p, "/hello", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "Hello, world!\n"));
    assert_eq!(d.count_log("panicked"), 0, "{}", d.log().join("\n"));
}

#[test]
fn echo_py_answers_what_the_builtin_echo_answers() {
    let (_b, builtin) = http(vec!["echo".into()]);
    let (_w, wsgi) = http(vec![wsgi_support::app("echo.py")]);
    for request in wsgi_support::echo_requests("") {
        let want = wsgi_support::exchange(builtin, &request);
        let got = wsgi_support::exchange(wsgi, &request);
        wsgi_support::assert_same_echo(&want, &got, &request);
    }
    // A 2 MiB body, digested as it streams, on both.
    let data = body(2 * 1024 * 1024 + 3, 77);
    let (want, got) = (
        post(builtin, "/big", "application/octet-stream", &data),
        post(wsgi, "/big", "application/octet-stream", &data),
    );
    assert_eq!(got.json()["body_sha256"], sha256_hex(&data));
    assert_eq!(got.text(), want.text());
}

#[test]
fn flask_over_http() {
    let (d, p) = http(vec![wsgi_support::app("flask_app.py")]);
    let r = get(p, "/json?name=direct", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"items": [1, 2, 3], "name": "direct"})
    );
    let r = get(p, "/stream?n=300", &[]);
    assert!(r.complete);
    assert_eq!(
        r.text(),
        (0..300).map(|i| format!("line {i}\n")).collect::<String>()
    );
    assert_eq!(get(p, "/missing", &[]).status, 404);
    let r = get(p, "/boom", &[]);
    assert_eq!(r.status, 500);
    assert!(
        !r.text().contains("flask-route-secret-marker"),
        "{}",
        r.text()
    );
    d.wait_log("RuntimeError: flask-route-secret-marker");
}

/// Runs `gatehouse ARGS --http 127.0.0.1:0` to its exit.
fn gatehouse(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(args).args(["--http", "127.0.0.1:0"]);
    let (status, _out, err) = run(cmd);
    (status.code(), err)
}

#[test]
fn apps_that_cannot_be_imported_exit_2_with_the_traceback() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "missing_dep.py",
        "import gatehouse_no_such_module_4821\n\ndef application(e, s):\n    pass\n",
    );
    write(
        "raises.py",
        "def helper():\n    raise RuntimeError('import-time-marker')\n\nhelper()\n",
    );
    write(
        "syntax.py",
        "def application(environ, start_response)\n    return []\n",
    );
    write("no_callable.py", "VALUE = 1\n");
    let pythonpath = dir.path().display().to_string();
    let file = |name: &str| format!("wsgi:{}", dir.path().join(name).display());
    let cases: [(Vec<String>, &[&str]); 6] = [
        (
            vec![file("missing_dep.py")],
            &[
                "Traceback (most recent call last)",
                "ModuleNotFoundError",
                "gatehouse_no_such_module_4821",
            ],
        ),
        (
            vec![
                "wsgi:missing_dep".into(),
                "--pythonpath".into(),
                pythonpath.clone(),
            ],
            &[
                "Traceback (most recent call last)",
                "ModuleNotFoundError",
                "gatehouse_no_such_module_4821",
            ],
        ),
        (
            vec![file("raises.py")],
            &[
                "Traceback (most recent call last)",
                "in helper",
                "RuntimeError: import-time-marker",
            ],
        ),
        (vec![file("syntax.py")], &["SyntaxError", "syntax.py"]),
        (vec![file("no_callable.py")], &["application", "app"]),
        (
            vec!["wsgi:gatehouse_no_such_app_9313".into()],
            &["ModuleNotFoundError", "gatehouse_no_such_app_9313"],
        ),
    ];
    for (args, says) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = gatehouse(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        for needle in says {
            assert!(
                err.contains(needle),
                "{args:?} should say {needle:?}:\n{err}"
            );
        }
        assert!(
            !err.contains("listening on"),
            "{args:?} bound a listener first:\n{err}"
        );
    }
}
