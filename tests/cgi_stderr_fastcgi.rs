//! End-to-end: `--cgi-stderr`. With `fastcgi`, a script's stderr reaches nginx as the request's
//! `FCGI_STDERR` stream (nginx logs "FastCGI sent in stderr: ..."), closed by an empty record
//! before `FCGI_END_REQUEST`, and is not in gatehouse's log; with the default `log`, it is in
//! gatehouse's log and nginx sees none. Scripts from `fixtures/cgi-bin` (`stderr.sh`,
//! `stderr_modes.sh`).

mod support;

use support::cgi::{cgi_tree, CgiTree};
use support::daemon::Daemon;
use support::fcgi::{self, Client, Record};
use support::http;
use support::nginx::Nginx;

struct Setup {
    tree: CgiTree,
    d: Daemon,
    nginx: Nginx,
    _dir: tempfile::TempDir,
}

/// gatehouse serving the fixture scripts with `extra` options, behind nginx.
fn setup(extra: &[&str]) -> Setup {
    let tree = cgi_tree();
    let root = format!("cgi:{}", tree.cgi_bin.display());
    let mut args = vec![root.as_str(), "--fastcgi", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let d = Daemon::serve(&args);
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
        d,
        nginx,
        _dir: dir,
    }
}

#[test]
fn fastcgi_mode_sends_stderr_to_nginxs_error_log() {
    let s = setup(&["--cgi-stderr", "fastcgi"]);
    let resp = http::request(s.nginx.port, "GET", "/cgi-bin/stderr.sh", &[], b"");
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, "ok\n"),
        "{}",
        s.nginx.error_log()
    );
    // nginx logs the stream when it reads it, before it answers the client.
    let log = s.nginx.error_log();
    let line = log
        .lines()
        .find(|l| l.contains("FastCGI sent in stderr"))
        .unwrap_or_else(|| panic!("no FCGI_STDERR in nginx's error log:\n{log}"));
    assert!(line.contains("first complaint from the script"), "{line}");
    // The response is over: whatever gatehouse would log about it is logged by now.
    assert_eq!(
        s.d.count_log("first complaint"),
        0,
        "forwarded, not logged too: {:?}",
        s.d.log()
    );
    // Stderr written after the script closed its stdout still comes before the end.
    let resp = http::request(
        s.nginx.port,
        "GET",
        "/cgi-bin/stderr_modes.sh?late",
        &[],
        b"",
    );
    assert_eq!((resp.status, resp.text().as_str()), (200, "answered\n"));
    let log = s.nginx.error_log();
    assert!(
        log.lines().any(|l| l.contains("FastCGI sent in stderr")
            && l.contains("late words after stdout closed")),
        "{log}"
    );
}

#[test]
fn log_mode_keeps_stderr_in_gatehouses_log() {
    let s = setup(&[]);
    let resp = http::request(s.nginx.port, "GET", "/cgi-bin/stderr.sh", &[], b"");
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok\n"));
    let script = s.tree.cgi_bin.join("stderr.sh").display().to_string();
    let line = s.d.wait_log("first complaint from the script");
    assert!(line.contains(&script), "{line}");
    let log = s.nginx.error_log();
    assert!(!log.contains("FastCGI sent in stderr"), "{log}");
    assert!(!log.contains("first complaint"), "{log}");
}

/// The records of request 1 on `addr` up to its `FCGI_END_REQUEST`, and whether anything
/// followed before the daemon closed the connection (no `FCGI_KEEP_CONN`).
fn records(addr: &str, script: &str, query: &str) -> (Vec<Record>, bool) {
    let params = fcgi::params("GET", script, query, None);
    let mut c = Client::connect(addr);
    c.send(&fcgi::request(1, 0, &params, b""));
    let mut out = Vec::new();
    while let Some(rec) = c.read_record() {
        let end = rec.ty == fcgi::END_REQUEST;
        out.push(rec);
        if end {
            break;
        }
    }
    let more = c.read_record().is_some();
    (out, more)
}

/// `(type, content)` of `records`, with the stream contents of one type in a row joined.
fn streams(records: &[Record]) -> Vec<(u8, Vec<u8>)> {
    let mut out: Vec<(u8, Vec<u8>)> = Vec::new();
    for r in records {
        match out.last_mut() {
            Some((ty, content)) if *ty == r.ty && !content.is_empty() && !r.content.is_empty() => {
                content.extend_from_slice(&r.content);
            }
            _ => out.push((r.ty, r.content.clone())),
        }
    }
    out
}

#[test]
fn raw_record_order() {
    let s = setup(&["--cgi-stderr", "fastcgi"]);
    let addr = s.d.listener("fastcgi");
    // Stderr after stdout is closed: STDOUT, STDERR, empty STDOUT, empty STDERR, END_REQUEST.
    let (recs, more) = records(&addr, "/stderr_modes.sh", "late");
    assert!(!more, "nothing after FCGI_END_REQUEST: {recs:?}");
    let got = streams(&recs);
    let types: Vec<u8> = got.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        types,
        [
            fcgi::STDOUT,
            fcgi::STDERR,
            fcgi::STDOUT,
            fcgi::STDERR,
            fcgi::END_REQUEST
        ],
        "{got:?}"
    );
    assert!(got[0].1.ends_with(b"\r\n\r\nanswered\n"));
    assert_eq!(got[1].1, b"late words after stdout closed\n");
    assert!(got[2].1.is_empty() && got[3].1.is_empty());
    // 1 MiB of stderr: records of at most 65535 bytes, all of it, then the answer.
    let (recs, more) = records(&addr, "/stderr_modes.sh", "flood");
    assert!(!more);
    let stderr: Vec<u8> = recs
        .iter()
        .filter(|r| r.ty == fcgi::STDERR)
        .flat_map(|r| r.content.clone())
        .collect();
    assert_eq!(stderr.len(), 1 << 20);
    assert!(recs.iter().all(|r| r.content.len() <= 65535));
    let last_two: Vec<_> = recs[recs.len() - 2..].iter().map(|r| r.ty).collect();
    assert_eq!(last_two, [fcgi::STDERR, fcgi::END_REQUEST]);
    // No stderr at all: no FCGI_STDERR record, not even the empty one.
    let (recs, _) = records(&addr, "/env.sh", "");
    assert!(recs.iter().all(|r| r.ty != fcgi::STDERR), "{recs:?}");
}
