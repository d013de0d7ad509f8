//! End-to-end: several apps in one daemon with `--mount PREFIX=APP`: the longest prefix wins,
//! the app sees its mount point as `SCRIPT_NAME` and the rest as `PATH_INFO`, a prefix matches
//! whole segments only, and paths no mount matches get 404 when no APP is mounted at `/`.
//! Directly over HTTP, and behind nginx `fastcgi_pass` (whose stock params send the whole path
//! as `SCRIPT_NAME`); a WSGI app and a built-in one side by side.

mod support;

use support::daemon::Daemon;
use support::http::{self, Conn};
use support::nginx::Nginx;
use support::{body, fixtures};

fn env_line(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
}

#[test]
fn two_mounts_and_no_root_app_over_http() {
    let d = Daemon::serve(&[
        "--mount",
        "/api=echo",
        "--mount",
        "/api/env=env",
        "--http",
        "127.0.0.1:0",
    ]);
    let mut c = Conn::connect(&d.listener("http"));

    let echo = c.send("GET", "/api/things?x=1", &[], b"");
    assert_eq!(echo.status, 200);
    assert_eq!(echo.json()["path"], "/api/things");

    // The longer prefix wins.
    let env = c.send("GET", "/api/env/a/b", &[], b"").text();
    assert_eq!(
        env_line(&env, "SCRIPT_NAME").as_deref(),
        Some("/api/env"),
        "{env}"
    );
    assert_eq!(
        env_line(&env, "PATH_INFO").as_deref(),
        Some("/a/b"),
        "{env}"
    );

    // Whole segments only; nothing at `/`.
    for target in ["/", "/apiary", "/other/api"] {
        assert_eq!(c.send("GET", target, &[], b"").status, 404, "{target}");
    }
}

#[test]
fn mounts_beside_an_app_at_the_root_behind_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let wsgi_echo = format!(
        "/plain/py=wsgi:{}",
        fixtures().join("apps/echo.py").display()
    );
    let d = Daemon::serve(&[
        "hello",
        "--mount",
        &wsgi_echo,
        "--mount",
        "/plain/rs=echo",
        "--fastcgi",
        "127.0.0.1:0",
    ]);
    let nginx = Nginx::start("fastcgi.conf.tmpl", &d.listener("fastcgi"), dir.path());
    let get = |target: &str| http::request(nginx.port, "GET", target, &[], b"");

    assert_eq!(get("/plain/elsewhere").text(), "Hello, world!\n");
    assert_eq!(get("/plain/pyx").text(), "Hello, world!\n");

    // The WSGI echo and the built-in one, mounted side by side, agree but for the path.
    let data = body(100_000, 5);
    let mut answers = Vec::new();
    for prefix in ["/plain/py", "/plain/rs"] {
        let resp = http::request(nginx.port, "POST", &format!("{prefix}/x?q=1"), &[], &data);
        assert_eq!(resp.status, 200, "{prefix}: {}", nginx.error_log());
        let mut j = resp.json();
        assert_eq!(j["path"], format!("{prefix}/x"));
        j["path"] = serde_json::Value::Null;
        answers.push(j);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0]["body_len"], data.len());
}
