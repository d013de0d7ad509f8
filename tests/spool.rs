//! Request body spooling (issue 12): apps that answer while they still read their body, behind
//! nginx, at any size, with bounded memory.
//!
//! nginx's upstream modules stop sending the request body once the response head has arrived.
//! A CGI script that is `exec cat` (after its head) and a WSGI app yielding each 64 KiB it reads
//! (fixtures/apps/stream_echo.py) used to hang at 1 MiB behind `fastcgi_pass`/`scgi_pass` and at
//! 20 MiB behind `proxy_pass`, until nginx's read timeout. With the body spooled before the app
//! runs (the default for CGI scripts, `--spool-request-body all` for the WSGI app), 1, 20 and
//! 100 MiB come back intact through all three, and the daemon's peak RSS stays under 64 MiB (the
//! body goes to an unlinked temp file past `--spool-memory`).
//!
//! Also: a FastCGI client that writes its whole 3 MiB request before reading (which deadlocked
//! at ~1.5 MiB), a body over `--max-spool-bytes` (413, the daemon serves on).
//!
//! No timing assertions; every wait is bounded by the support code's generous timeouts.

mod support;

#[path = "support/wsgi.rs"]
mod wsgi_support;

use std::path::Path;

use support::cgi::{set_mode, write_program};
use support::daemon::Daemon;
use support::nginx::Nginx;
use support::{body, fcgi, fixtures, free_port, http, sha256_hex, wait_for};
use wsgi_support::status_kib;

const CAT_SCRIPT: &str =
    "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nexec cat\n";

/// A CGI root `DIR/www/cgi` holding `cat.sh` (nginx's `root` is `DIR/www`, so the
/// `SCRIPT_FILENAME` of `/cgi/cat.sh` is the script).
fn cat_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("www/cgi");
    std::fs::create_dir_all(&root).expect("www/cgi");
    for d in [dir, &dir.join("www"), &root] {
        set_mode(d, 0o755);
    }
    write_program(&root.join("cat.sh"), CAT_SCRIPT);
    root
}

struct Rig {
    daemon: Daemon,
    _nginx: Nginx,
    /// nginx ports: fastcgi_pass, scgi_pass, proxy_pass.
    ports: [(&'static str, u16); 3],
}

fn rig(dir: &Path, extra: &[&str]) -> Rig {
    let root = cat_root(dir);
    let wsgi = format!(
        "/wsgi=wsgi:{}",
        fixtures().join("apps/stream_echo.py").display()
    );
    let cgi = format!("/cgi=cgi:{}", root.display());
    let mut args = vec![
        "--mount",
        &cgi,
        "--mount",
        &wsgi,
        "--fastcgi",
        "127.0.0.1:0",
        "--scgi",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--spool-dir",
    ];
    let spool_dir = dir.display().to_string();
    args.push(&spool_dir);
    args.extend_from_slice(extra);
    let daemon = Daemon::serve(&args);
    let (fastcgi, scgi, http_addr) = (
        daemon.listener("fastcgi"),
        daemon.listener("scgi"),
        daemon.listener("http"),
    );
    let [scgi_port, proxy_port] = [free_port(), free_port()];
    let nginx_dir = dir.join("nginx");
    std::fs::create_dir(&nginx_dir).expect("nginx dir");
    let nginx = Nginx::start_with(
        "spool.conf.tmpl",
        &[
            ("@PORT_SCGI@", &scgi_port.to_string()),
            ("@PORT_PROXY@", &proxy_port.to_string()),
            ("@FASTCGI@", &fastcgi),
            ("@SCGI@", &scgi),
            ("@HTTP@", &http_addr),
            ("@WWW@", &dir.join("www").display().to_string()),
        ],
        &nginx_dir,
    );
    for port in [scgi_port, proxy_port] {
        wait_for("nginx's other servers", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }
    Rig {
        daemon,
        ports: [
            ("fastcgi_pass", nginx.port),
            ("scgi_pass", scgi_port),
            ("proxy_pass", proxy_port),
        ],
        _nginx: nginx,
    }
}

/// Both echo apps, through the three nginx servers, at 1, 20 and 100 MiB: every body comes back
/// whole, and the daemon's memory stays bounded.
#[test]
fn echoing_apps_behind_nginx_at_any_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rig = rig(dir.path(), &["--spool-request-body", "all"]);
    for mib in [1, 20, 100] {
        let sent = body(mib << 20, mib as u64);
        let want = sha256_hex(&sent);
        for (route, port) in rig.ports {
            for target in ["/cgi/cat.sh", "/wsgi/echo"] {
                let r = http::request(port, "POST", target, &[], &sent);
                assert_eq!(
                    r.status,
                    200,
                    "{route} {target} {mib} MiB: {}",
                    String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                );
                assert_eq!(
                    (r.body.len(), sha256_hex(&r.body)),
                    (sent.len(), want.clone()),
                    "{route} {target} {mib} MiB: body differs"
                );
            }
        }
    }
    let peak = status_kib(rig.daemon.pid(), "VmHWM");
    assert!(
        peak < 64 * 1024,
        "daemon peak RSS {peak} KiB, over 64 MiB, after 100 MiB bodies"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("spool dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("gatehouse-spool")
        })
        .collect();
    assert!(leftovers.is_empty(), "spool files left: {leftovers:?}");
}

/// A FastCGI client that writes its whole request (3 MiB of body) before it reads anything, to
/// the CGI `cat` script with the defaults: answered whole.
#[test]
fn write_everything_first_client() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = cat_root(dir.path());
    let app = format!("cgi:{}", root.display());
    let d = Daemon::serve(&[&app, "--fastcgi", "127.0.0.1:0"]);
    let sent = body(3 << 20, 7);
    let mut params = fcgi::params("POST", "/cat.sh", "", Some(sent.len()));
    params.push((
        "SCRIPT_FILENAME".to_owned(),
        root.join("cat.sh").display().to_string(),
    ));
    let answer = fcgi::call(&d.listener("fastcgi"), &params, &sent);
    let r = answer.cgi();
    assert_eq!(
        r.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&answer.stderr)
    );
    assert_eq!(
        (r.body.len(), sha256_hex(&r.body)),
        (sent.len(), sha256_hex(&sent))
    );
}

/// A body over `--max-spool-bytes` is answered 413 (announced or counted), one log line names
/// the peer, and the next request is served.
#[test]
fn over_the_limit_is_413() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = cat_root(dir.path());
    let app = format!("cgi:{}", root.display());
    let d = Daemon::serve(&[&app, "--http", "127.0.0.1:0", "--max-spool-bytes", "64K"]);
    let port = wsgi_support::port(&d, "http");
    let r = http::request(port, "POST", "/cat.sh", &[], &body(100_000, 1));
    assert_eq!(r.status, 413, "{}", r.text());
    d.wait_log("larger than --max-spool-bytes");
    let r = http::post_chunked(port, "/cat.sh", &body(100_000, 2), 10_000);
    assert_eq!(r.status, 413, "{}", r.text());
    let small = body(60_000, 3);
    let r = http::request(port, "POST", "/cat.sh", &[], &small);
    assert_eq!((r.status, r.body.len()), (200, small.len()));
}
