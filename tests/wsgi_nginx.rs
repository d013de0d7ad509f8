//! End-to-end: Python WSGI apps in the built daemon (`gatehouse wsgi:...`) behind a real nginx
//! (`fastcgi_pass` over loopback TCP and a unix socket, plain and with keepalive;
//! fixtures/conf/nginx/wsgi.conf.tmpl):
//! - a real Flask app (fixtures/apps/flask_app.py): routes, JSON, form POST, a 20 MiB upload
//!   (digest checked), a streamed response, 404, a route that raises (500 without the traceback,
//!   the traceback in the daemon's log);
//! - `wsgiref.validate.validator` around test apps: no assertion fires (and one that breaks the
//!   rules on purpose does fail visibly, so the check is live);
//! - the `write()` callable, a generator's and an iterable's `close()`, `exc_info` re-raised
//!   after the head and replacing the head before it, an exception before the head;
//! - `wsgi.file_wrapper` streaming a 100 MiB file while the daemon's peak RSS stays bounded;
//! - a client hanging up mid-stream: the app's iterable is closed;
//! - `--threads 2` and 8 concurrent requests: all answered, never more than 2 at once;
//! - fixtures/apps/echo.py answering byte for byte what the built-in `echo` answers.
//!
//! A missing nginx or Flask fails the tests (CI installs both).

mod support;
#[path = "support/wsgi.rs"]
mod wsgi_support;

use std::path::Path;

use support::daemon::Daemon;
use support::nginx::Nginx;
use support::{body, sha256_hex};
use wsgi_support::{get, logged, mounts, post, start, status_kib, Record};

const TEMPLATE: &str = "wsgi.conf.tmpl";
/// The nginx locations: one FastCGI connection per request, and kept-alive connections.
const PASSES: [&str; 2] = ["/plain", "/keepalive"];

/// The daemon's FastCGI address: a loopback port.
const TCP: &str = "127.0.0.1:0";

/// A unix socket in `dir`, as the daemon's FastCGI address.
fn unix_socket(dir: &Path) -> String {
    format!("unix:{}", dir.join("gatehouse.sock").display())
}

/// A daemon serving `app` at `/` on FastCGI address `listen`, and nginx in front of it.
fn behind_nginx(dir: &Path, listen: &str, app: &str) -> (Daemon, Nginx) {
    let d = start(&[app.to_owned(), "--fastcgi".into(), listen.to_owned()]);
    let nginx = Nginx::start(TEMPLATE, &d.addr(), dir);
    (d, nginx)
}

/// Mounts of `wsgi_cases.py` callables at `/<name>` with no app at `/`.
fn cases(names: &[&str]) -> Vec<String> {
    let routes: Vec<(String, &str)> = names.iter().map(|n| (format!("/{n}"), *n)).collect();
    let routes: Vec<(&str, &str)> = routes.iter().map(|(p, n)| (p.as_str(), *n)).collect();
    mounts("wsgi_cases.py", &routes)
}

/// A daemon serving only `mounts` (`--threads 2` each), and nginx in front of it.
fn mounted_behind_nginx(dir: &Path, mounts: Vec<String>) -> (Daemon, Nginx) {
    let mut args = vec![
        "--fastcgi".to_owned(),
        "127.0.0.1:0".into(),
        "--threads".into(),
        "2".into(),
    ];
    args.extend(mounts);
    let d = start(&args);
    let nginx = Nginx::start(TEMPLATE, &d.addr(), dir);
    (d, nginx)
}

#[test]
fn flask_routes_json_form_stream_404_and_a_raising_route() {
    let dir = tempfile::tempdir().unwrap();
    let (d, nginx) = behind_nginx(dir.path(), TCP, &wsgi_support::app("flask_app.py"));
    let n = nginx.port;
    for (round, pass) in PASSES.into_iter().enumerate() {
        let r = get(n, &format!("{pass}/"), &[]);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "hello from flask\n"),
            "{}",
            nginx.error_log()
        );
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));

        let r = get(n, &format!("{pass}/json?name=gate%20house"), &[]);
        assert_eq!(r.status, 200, "{pass}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.json(),
            serde_json::json!({"items": [1, 2, 3], "name": "gate house"})
        );

        let r = post(
            n,
            &format!("{pass}/json"),
            "application/json",
            br#"{"a": [1, "two"], "b": null}"#,
        );
        assert_eq!(r.status, 201, "{pass}: {}", r.text());
        assert_eq!(
            r.json(),
            serde_json::json!({"received": {"a": [1, "two"], "b": null}, "kind": "dict"})
        );

        let form = b"name=Ada+Lovelace&lang=python&lang=rust&empty=&caf%C3%A9=cr%C3%A8me";
        let r = post(
            n,
            &format!("{pass}/form"),
            "application/x-www-form-urlencoded",
            form,
        );
        assert_eq!(r.status, 200, "{pass}: {}", r.text());
        assert_eq!(
            r.json()["fields"],
            serde_json::json!({"name": ["Ada Lovelace"], "lang": ["python", "rust"], "empty": [""], "café": ["crème"]})
        );

        let r = get(n, &format!("{pass}/stream?n=2000"), &[]);
        assert_eq!(r.status, 200, "{pass}: {}", r.text());
        assert!(r.complete, "{pass}: stream cut short");
        assert_eq!(
            r.header("content-length"),
            None,
            "{pass}: streamed, length unknown"
        );
        let want: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(r.text(), want, "{pass}");

        let r = get(n, &format!("{pass}/nowhere"), &[]);
        assert_eq!(r.status, 404, "{pass}: {}", r.text());

        let r = get(n, &format!("{pass}/boom"), &[]);
        assert_eq!(r.status, 500, "{pass}: {}", r.text());
        assert!(r.complete, "{pass}");
        for secret in ["flask-route-secret-marker", "Traceback", "RuntimeError"] {
            assert!(
                !r.text().contains(secret),
                "{pass}: {secret} in the body: {}",
                r.text()
            );
        }
        // Flask catches the exception and logs it to wsgi.errors: the daemon's log.
        d.wait_log_count("RuntimeError: flask-route-secret-marker", round + 1);
        assert!(logged(&d, "Traceback (most recent call last)"));
        // And the app keeps serving.
        assert_eq!(get(n, &format!("{pass}/"), &[]).status, 200);
    }
    assert_eq!(
        d.count_log("RuntimeError: flask-route-secret-marker"),
        PASSES.len()
    );
}

#[test]
fn flask_upload_of_20_mib_buffered_kept_alive_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    // Over a unix socket this time.
    let sock = unix_socket(dir.path());
    let (_d, nginx) = behind_nginx(dir.path(), &sock, &wsgi_support::app("flask_app.py"));
    let content = body(20 * 1024 * 1024, 2020);
    let (content_type, form) = wsgi_support::multipart("big one", "data.bin", &content);
    for pass in ["/plain", "/keepalive", "/unbuffered"] {
        let r = post(nginx.port, &format!("{pass}/upload"), &content_type, &form);
        assert_eq!(r.status, 200, "{pass}: {} {}", r.text(), nginx.error_log());
        let j = r.json();
        assert_eq!(j["filename"], "data.bin", "{pass}");
        assert_eq!(j["note"], "big one", "{pass}");
        assert_eq!(j["size"], content.len(), "{pass}");
        assert_eq!(j["sha256"], sha256_hex(&content), "{pass}");
    }
}

#[test]
fn validator_finds_nothing_to_object_to_through_fastcgi() {
    let dir = tempfile::tempdir().unwrap();
    let m = wsgi_support::validator_mounts();
    let (d, nginx) = mounted_behind_nginx(dir.path(), m);
    let n = nginx.port;
    let file = dir.path().join("served.bin");
    let data = body(300_000, 7);
    std::fs::write(&file, &data).unwrap();
    let file = file.display().to_string();

    for pass in PASSES {
        let ok = |r: &wsgi_support::Raw, what: &str| {
            assert!(r.complete, "{pass}{what}: cut short");
            assert!(
                r.status != 500,
                "{pass}{what}: the validator objected: {}",
                r.text()
            );
        };
        let r = get(n, &format!("{pass}/hello"), &[]);
        ok(&r, "/hello");
        assert_eq!(r.text(), "Hello, world!\n");
        let r = post(
            n,
            &format!("{pass}/form"),
            "text/plain",
            b"line one\nthe rest\nof it",
        );
        ok(&r, "/form");
        assert_eq!(
            r.json(),
            serde_json::json!({"first": "line one\n", "rest": "the rest\nof it"})
        );
        let r = post(n, &format!("{pass}/lines"), "text/plain", b"a\nb\nc");
        ok(&r, "/lines");
        assert_eq!(r.json(), serde_json::json!(["a\n", "b\n", "c"]));
        let r = get(n, &format!("{pass}/writer"), &[]);
        ok(&r, "/writer");
        assert_eq!(r.text(), "written and returned");
        let r = get(n, &format!("{pass}/streamed"), &[]);
        ok(&r, "/streamed");
        assert_eq!(
            r.text(),
            (0..100).map(|i| format!("chunk {i}\n")).collect::<String>()
        );
        let r = get(n, &format!("{pass}/no_content"), &[]);
        ok(&r, "/no_content");
        assert_eq!(r.status, 204);
        let r = get(n, &format!("{pass}/error_page"), &[]);
        ok(&r, "/error_page");
        assert_eq!((r.status, r.text().as_str()), (404, "not here"));
        let r = get(n, &format!("{pass}/file_response"), &[("X-File", &file)]);
        ok(&r, "/file_response");
        assert_eq!(r.body, data);
        let head = wsgi_support::exchange(
            n,
            &wsgi_support::request_bytes("HEAD", &format!("{pass}/hello"), &[], b""),
        );
        assert_eq!(head.status, 200, "{pass} HEAD");
    }
    // Iterators the validator saw garbage-collected unclosed, and warnings, land in `report`.
    let r = get(n, "/plain/report", &[]);
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

    // The negative control: an app that breaks PEP 3333 inside the validator fails visibly, the
    // way any objection above would have.
    let r = get(n, "/plain/objects", &[]);
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(!r.text().contains("AssertionError"), "{}", r.text());
    d.wait_log("AssertionError");
}

#[test]
fn write_callable_close_and_exc_info() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "writer",
        "generator",
        "closing",
        "exc_info_after_head",
        "exc_info_before_head",
        "raise_before",
    ];
    let (d, nginx) = mounted_behind_nginx(dir.path(), cases(&names));
    let n = nginx.port;
    for pass in PASSES {
        let r = get(n, &format!("{pass}/writer"), &[]);
        assert_eq!(
            (r.status, r.text().as_str(), r.complete),
            (200, "one two three", true),
            "{pass}"
        );

        let rec = Record::new(dir.path(), &format!("generator{}.txt", &pass[1..]));
        let r = get(
            n,
            &format!("{pass}/generator"),
            &[("X-Record", &rec.header())],
        );
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "firstsecond"),
            "{pass}"
        );
        // Iterated to the end: the generator ran past its last yield; close() then has nothing
        // left to interrupt.
        assert_eq!(rec.wait_line("exhausted"), ["exhausted"], "{pass}");

        let rec = Record::new(dir.path(), &format!("closing{}.txt", &pass[1..]));
        let r = get(
            n,
            &format!("{pass}/closing"),
            &[("X-Record", &rec.header())],
        );
        assert_eq!((r.status, r.text().as_str()), (200, "abc"), "{pass}");
        assert_eq!(rec.wait_line("closed"), ["closed"], "{pass}");

        // exc_info after the head went out: start_response re-raises the app's exception, the
        // app lets it propagate, and the response (already begun) is aborted.
        let rec = Record::new(dir.path(), &format!("reraise{}.txt", &pass[1..]));
        let r = get(
            n,
            &format!("{pass}/exc_info_after_head"),
            &[("X-Record", &rec.header())],
        );
        assert_eq!(
            rec.wait_line("reraised boom after head"),
            ["reraised boom after head"],
            "{pass}"
        );
        assert_eq!(
            r.status, 200,
            "{pass}: the head was sent before the exception"
        );
        assert!(r.text().starts_with("partial"), "{pass}: {:?}", r.text());
        assert!(!r.text().contains("unreachable"), "{pass}");

        // exc_info before anything was sent: the new status and headers replace the old ones.
        let r = get(n, &format!("{pass}/exc_info_before_head"), &[]);
        assert_eq!(
            (r.status, r.text().as_str()),
            (503, "custom error page"),
            "{pass}"
        );
        assert_eq!(r.header("x-replaced"), Some("yes"), "{pass}");

        // An exception before the head: 500, the traceback in the log only.
        let r = get(n, &format!("{pass}/raise_before"), &[]);
        assert_eq!(r.status, 500, "{pass}");
        assert!(
            !r.text().contains("secret-traceback-marker"),
            "{pass}: {}",
            r.text()
        );
        assert!(!r.text().contains("Traceback"), "{pass}: {}", r.text());
    }
    // One traceback per request in the log (a log line may span several lines).
    let n = PASSES.len();
    assert_eq!(d.wait_log_count("ValueError: boom after head", n).len(), n);
    assert_eq!(
        d.wait_log_count("RuntimeError: secret-traceback-marker", n)
            .len(),
        n
    );
    assert!(logged(&d, "Traceback (most recent call last)"));
}

#[test]
fn file_wrapper_streams_100_mib_with_bounded_memory() {
    const SIZE: usize = 100 * 1024 * 1024;
    const BOUND_KIB: u64 = 32 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let rec = Record::new(dir.path(), "file.txt");
    let file = dir.path().join("big.bin");
    let data = body(SIZE, 100);
    std::fs::write(&file, &data).unwrap();
    let small = dir.path().join("small.bin");
    std::fs::write(&small, b"warm-up").unwrap();
    let (d, nginx) = mounted_behind_nginx(dir.path(), cases(&["file_wrapper"]));
    let n = nginx.port;
    // Warm up each path (imports, thread stacks, buffers), then take the baseline.
    for pass in ["/keepalive", "/unbuffered"] {
        let r = get(
            n,
            &format!("{pass}/file_wrapper"),
            &[("X-File", &small.display().to_string())],
        );
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "warm-up"),
            "{}",
            nginx.error_log()
        );
    }
    let before = status_kib(d.pid(), "VmHWM");
    // nginx buffering (it reads as fast as the daemon sends, spilling to a temp file), and
    // unbuffered (it reads only as fast as we do: backpressure all the way to the app).
    for pass in ["/keepalive", "/unbuffered"] {
        let headers = [
            ("X-File", file.display().to_string()),
            ("X-Record", rec.header()),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = get(n, &format!("{pass}/file_wrapper"), &headers);
        assert_eq!(r.status, 200, "{pass}: {}", nginx.error_log());
        assert!(r.complete, "{pass}: cut short at {} bytes", r.body.len());
        assert_eq!(r.body.len(), SIZE, "{pass}");
        assert!(r.body == data, "{pass}: the bytes differ from the file's");
    }
    let after = status_kib(d.pid(), "VmHWM");
    eprintln!("daemon VmHWM: {before} KiB before, {after} KiB after 2 x 100 MiB");
    assert!(
        after.saturating_sub(before) < BOUND_KIB,
        "serving 100 MiB raised the daemon's peak RSS from {before} KiB to {after} KiB"
    );
    // The wrapper's close() closed the app's file (warm-ups had no X-Record).
    assert_eq!(rec.wait_line("file closed").len(), 2, "{:?}", rec.lines());
}

#[test]
fn client_hanging_up_mid_stream_closes_the_iterable() {
    let dir = tempfile::tempdir().unwrap();
    let (d, nginx) = mounted_behind_nginx(dir.path(), cases(&["endless", "hello"]));
    for pass in ["/plain", "/keepalive", "/unbuffered"] {
        let rec = Record::new(dir.path(), &format!("endless{}.txt", &pass[1..]));
        let got = wsgi_support::hang_up_after(
            nginx.port,
            &format!("{pass}/endless"),
            &[("X-Record", &rec.header())],
            1024 * 1024,
        );
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{pass}: {:?}",
            String::from_utf8_lossy(&got[..200])
        );
        // The endless iterable only stops when the client is gone; its close() records it.
        assert_eq!(rec.wait_line("closed"), ["closed"], "{pass}");
        // The daemon (and the keepalive connection) still serve.
        let r = get(nginx.port, &format!("{pass}/hello"), &[]);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello, world!\n"),
            "{pass}"
        );
    }
    assert!(d.count_log("panicked") == 0, "{}", d.log().join("\n"));
}

#[test]
fn eight_concurrent_requests_queue_for_two_threads_and_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    // `paired` waits (at most 60 s) until a second request runs beside it, then answers the
    // peak number of requests it saw running at once: with 2 threads, 8 requests pass in
    // pairs, and the 6 others wait in the queue meanwhile.
    let (d, nginx) = mounted_behind_nginx(dir.path(), cases(&["paired"]));
    d.wait_log("2 python thread(s)");
    for pass in PASSES {
        let answers: Vec<_> = (0..8)
            .map(|_| {
                let (port, target) = (nginx.port, format!("{pass}/paired"));
                std::thread::spawn(move || get(port, &target, &[]))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("client thread"))
            .collect();
        for r in &answers {
            assert_eq!(r.status, 200, "{pass}: {} {}", r.text(), nginx.error_log());
            assert_eq!(r.text(), "2", "{pass}: peak concurrency in the app");
        }
    }
    assert!(!logged(&d, "503"), "{}", d.log().join("\n"));
}

#[test]
fn echo_py_answers_what_the_builtin_echo_answers() {
    let (dir_b, dir_w) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_b, builtin) = behind_nginx(dir_b.path(), TCP, "echo");
    let (_w, wsgi) = behind_nginx(dir_w.path(), TCP, &wsgi_support::app("echo.py"));
    for pass in PASSES {
        for request in wsgi_support::echo_requests(pass) {
            let want = wsgi_support::exchange(builtin.port, &request);
            let got = wsgi_support::exchange(wsgi.port, &request);
            wsgi_support::assert_same_echo(&want, &got, &request);
        }
    }
}
