//! End-to-end: CGI scripts (`cgi:DIR`) run per request behind a real nginx `fastcgi_pass`, the
//! job fcgiwrap does: the usual fcgiwrap configuration (SCRIPT_FILENAME, split PATH_INFO), and
//! Debian's stock params with the scripts mounted by `--mount`. Scripts from `fixtures/cgi-bin`
//! (copied, modes set by the test): the environment a script gets (no ISINDEX arguments, its
//! directory as cwd, no `HTTP_PROXY`), a POST streamed through `echo.py`, `Status: 404`, a local
//! redirect, and refusals (not executable, a symlink out of the directory, no such script).

mod support;

use std::os::unix::fs::symlink;

use support::body;
use support::cgi::{cgi_tree, CgiTree};
use support::daemon::Daemon;
use support::http::{self, Response};
use support::nginx::Nginx;

struct Setup {
    tree: CgiTree,
    _d: Daemon,
    nginx: Nginx,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let tree = cgi_tree();
    // A symlink that leads out of the CGI directory: refused unless --cgi-allow-symlinks.
    symlink("/bin/sh", tree.cgi_bin.join("escape.sh")).expect("symlink");
    let root = format!("cgi:{}", tree.cgi_bin.display());
    let mount = format!("/mounted={root}");
    let d = Daemon::serve(&[&root, "--mount", &mount, "--fastcgi", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let www = tree.www.display().to_string();
    let upstream = d.listener("fastcgi");
    let nginx = Nginx::start_with(
        "cgi.conf.tmpl",
        &[("@UPSTREAM@", upstream.as_str()), ("@WWW@", www.as_str())],
        dir.path(),
    );
    Setup {
        tree,
        _d: d,
        nginx,
        _dir: dir,
    }
}

fn get(s: &Setup, target: &str, headers: &[(&str, &str)]) -> Response {
    http::request(s.nginx.port, "GET", target, headers, b"")
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn the_environment_a_script_gets() {
    let s = setup();
    let cwd = format!("CWD={}", s.tree.cgi_bin.display());
    for (target, script_name) in [
        ("/cgi-bin/env.sh/extra/path?q=1", "/cgi-bin/env.sh"),
        ("/mounted/env.sh/extra/path?q=1", "/mounted/env.sh"),
    ] {
        let resp = get(
            &s,
            target,
            &[("Proxy", "http://attacker.test/"), ("X-Test", "cgi")],
        );
        assert_eq!(
            resp.status,
            200,
            "{target}: {}\n{}",
            resp.text(),
            s.nginx.error_log()
        );
        let text = resp.text();
        for line in [
            "ARGC=0",
            cwd.as_str(),
            "GATEWAY_INTERFACE=CGI/1.1",
            "REQUEST_METHOD=GET",
            &format!("SCRIPT_NAME={script_name}"),
            "PATH_INFO=/extra/path",
            "QUERY_STRING=q=1",
            "HTTP_X_TEST=cgi",
            "PATH=/usr/local/bin:/usr/bin:/bin",
        ] {
            assert!(has_line(&text, line), "{target}: no {line:?} in\n{text}");
        }
        assert!(!text.contains("HTTP_PROXY"), "{target}: {text}");
    }
}

#[test]
fn bodies_stream_through_a_script() {
    let s = setup();
    let data = body(3 * 1024 * 1024 + 1, 77);
    for target in ["/cgi-bin/echo.py", "/mounted/echo.py"] {
        let resp = http::request(s.nginx.port, "POST", target, &[], &data);
        assert_eq!(resp.status, 200, "{target}: {}", s.nginx.error_log());
        assert_eq!(
            resp.header("content-type"),
            Some("application/octet-stream")
        );
        assert!(
            resp.body == data,
            "{target}: {} bytes came back",
            resp.body.len()
        );
    }
}

#[test]
fn statuses_redirects_and_refusals() {
    let s = setup();
    let status = get(&s, "/cgi-bin/status.pl", &[]);
    assert_eq!(status.status, 404);
    assert_eq!(status.text(), "no such thing\n");
    assert_eq!(status.header("x-script"), Some("status.pl"));

    // A local redirect (RFC 3875 section 6.2.2) is followed inside gatehouse.
    let redirected = get(&s, "/mounted/redirect_local.sh", &[]);
    assert_eq!(redirected.status, 200, "{}", redirected.text());
    assert!(
        redirected.text().contains("ARGC=0"),
        "{}",
        redirected.text()
    );

    for (target, want) in [
        ("/cgi-bin/not_exec.sh", 403),
        ("/mounted/not_exec.sh", 403),
        ("/cgi-bin/escape.sh", 403),
        ("/cgi-bin/no_such_script.sh", 404),
        ("/mounted/no/such/thing", 404),
    ] {
        let resp = get(&s, target, &[]);
        assert_eq!(resp.status, want, "{target}: {}", resp.text());
    }
}

/// FastCGI params a front server may send that would make the script's loader, shell or
/// interpreter run other code (`LD_PRELOAD`, `BASH_ENV`, `PYTHONPATH`, ...) never reach the
/// script; ordinary server variables (`GIT_PROJECT_ROOT`, `HTTPS`, `REMOTE_USER`) do.
#[test]
fn dangerous_params_from_the_front_server_do_not_reach_scripts() {
    let tree = cgi_tree();
    let app = format!("cgi:{}", tree.cgi_bin.display());
    let d = Daemon::fastcgi_tcp(&app, &["--log-level", "debug"]);
    let mut c = support::fcgi::Client::connect(&d.addr());
    let params: Vec<(String, String)> = [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", "/env.sh"),
        ("LD_PRELOAD", "/tmp/evil.so"),
        ("BASH_ENV", "/tmp/evil.sh"),
        ("ENV", "/tmp/evil.sh"),
        ("IFS", "x"),
        ("PYTHONPATH", "/tmp/evil"),
        ("PERL5OPT", "-Mevil"),
        ("GIT_PROJECT_ROOT", "/srv/git"),
        ("HTTPS", "on"),
        ("REMOTE_USER", "ada"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    c.send(&support::fcgi::request(1, 0, &params, b""));
    let answer = c.answer(1);
    let text = answer.cgi().text();
    for bad in [
        "LD_PRELOAD=",
        "BASH_ENV=",
        "\nENV=",
        "IFS=x",
        "PYTHONPATH=",
        "PERL5OPT=",
    ] {
        assert!(!text.contains(bad), "{bad} reached the script:\n{text}");
    }
    for good in ["GIT_PROJECT_ROOT=/srv/git", "HTTPS=on", "REMOTE_USER=ada"] {
        assert!(text.contains(good), "{good} is missing:\n{text}");
    }
    d.wait_log("request variables that could make the script run other code were not passed");
}
