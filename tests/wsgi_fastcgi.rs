//! End-to-end: `wsgi:fixtures/apps/hello.py` in the daemon's embedded CPython through a real
//! nginx `fastcgi_pass` (plain and keepalive), and the interpreter the binary embeds: the
//! start-up log line and the libpython the process actually mapped are those of the python3 it
//! was built for (the rpath of build.rs), not another one the loader could find.
//!
//! The rest of WSGI end to end (fixtures/apps/echo.py against the built-in `echo`, Flask, the
//! validator, import errors exiting 2 with the traceback, ...) is in tests/wsgi_nginx.rs,
//! tests/wsgi_http.rs and tests/wsgi_cgi.rs.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use support::daemon::Daemon;
use support::fixtures;
use support::http;
use support::nginx::Nginx;

/// The python3 gatehouse-wsgi was built against: pyo3 takes `PYO3_PYTHON`, else `python3`.
fn build_python() -> String {
    std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// `print(<expr>)` run by the build python.
fn python_says(expr: &str) -> String {
    let out = Command::new(build_python())
        .args(["-c", &format!("import sys, sysconfig; print({expr})")])
        .output()
        .expect("run the build python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The daemon serving `args` over FastCGI on a free port, outside any virtualenv.
fn wsgi_daemon(args: &[&str]) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(args)
        .args(["--fastcgi", "127.0.0.1:0"])
        .env_remove("VIRTUAL_ENV")
        .stdin(Stdio::null());
    let d = Daemon::spawn(cmd, "gatehouse wsgi");
    d.wait_listeners(1);
    d
}

fn app(path: &str) -> String {
    format!("wsgi:{}", fixtures().join(path).display())
}

#[test]
fn hello_py_through_nginx_with_the_built_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let d = wsgi_daemon(&[&app("apps/hello.py")]);
    let nginx = Nginx::start("fastcgi.conf.tmpl", &d.listener("fastcgi"), dir.path());
    for prefix in ["/plain/", "/keepalive/", "/keepalive/again"] {
        let resp = http::request(nginx.port, "GET", prefix, &[], b"");
        assert_eq!(resp.status, 200, "{}", nginx.error_log());
        assert_eq!(resp.text(), "Hello, world!\n");
        assert_eq!(resp.header("content-type"), Some("text/plain"));
    }

    let line = d.wait_log("python: CPython ");
    let version = python_says("sys.version.split()[0]");
    let prefix = python_says("sys.prefix");
    let libdir = python_says("sysconfig.get_config_var('LIBDIR')");
    assert!(line.contains(&format!("CPython {version} ")), "{line}");
    assert!(line.contains(&format!(" prefix={prefix} ")), "{line}");
    assert!(line.contains(&format!(" library={libdir}/")), "{line}");

    // The library the loader really mapped.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", d.pid())).unwrap();
    let mapped: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("libpython"))
        .map(PathBuf::from)
        .collect();
    assert!(!mapped.is_empty(), "no libpython mapped");
    for lib in &mapped {
        assert_eq!(lib.parent().unwrap(), PathBuf::from(&libdir), "{lib:?}");
    }
}
