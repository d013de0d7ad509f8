//! End-to-end parity with Debian's fcgiwrap: the fixture scripts (fixtures/cgi-bin, plus a few
//! written here) through two identical nginx servers (fixtures/conf/nginx/cgi-parity.conf.tmpl,
//! Debian's fcgiwrap example with `fastcgi_split_path_info`), one with `fastcgi_pass` to
//! `fcgiwrap`, one to `gatehouse cgi:WWW/cgi-bin`. Users switching from fcgiwrap get the same
//! status, `Content-Type` and body for:
//!
//! - a hello script, `Status: 404` with a body, a client redirect (`Location: http://...`, 302);
//! - the environment dump (`env.sh`), request-derived variables only (the differences are listed
//!   and checked in [`compare_env`]);
//! - POST bodies through stdin (0 B, 1 B, 1 MiB) to a script that reads its body, then answers,
//!   and to the streaming `echo.py` (0 B, 1 B);
//! - a script writing to stderr (fcgiwrap's scripts write straight to fcgiwrap's own stderr;
//!   ours become gatehouse log lines, escaped and tagged with the script and request);
//! - a script that answers before reading its body (0 B, 1 B, 64 KiB).
//!
//! Deliberate differences, where OUR behaviour is tested instead of parity:
//!
//! - a local redirect (`Location: /path`, RFC 3875 section 6.2.2) is followed inside gatehouse
//!   (GET, no body); fcgiwrap hands the header to nginx, which answers 302;
//! - `..` in the path, a symlink out of the CGI root and a world-writable script are refused with
//!   403 (fcgiwrap runs whatever SCRIPT_FILENAME names), unless `--cgi-allow-symlinks` /
//!   `--cgi-allow-world-writable` say otherwise;
//! - `--cgi-timeout`: a script that never answers is killed with its whole process group (504);
//!   fcgiwrap has no timeout;
//! - a full-duplex echo of 1 MiB (our raw FastCGI client reads while it sends): gatehouse
//!   spools the body, then starts the script and streams its output; fcgiwrap writes the whole
//!   body to the script first and deadlocks once the script's output fills the pipe. The spool
//!   is also what makes this work through nginx (tests/spool.rs), which stops sending the body
//!   once the response head has come back;
//! - for that last reason, a script that answers before reading a body larger than the socket
//!   buffers works behind nginx only if the early head is not passed on before the body is in:
//!   fcgiwrap feeds the whole body first, gatehouse holds the response back while the body
//!   still arrives ([`early_answer_to_a_large_body`]).
//!
//! No timing assertions; every wait is bounded by the support code's generous timeouts.

mod support;

#[path = "support/cgi_e2e.rs"]
mod cgi_support;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cgi_support::{env_map, fastcgi_duplex, wait_group_gone, Fcgiwrap, SCRIPT_PATH};
use support::cgi::{cgi_tree, set_mode, write_program, CgiTree};
use support::daemon::Daemon;
use support::http::{self, Response};
use support::nginx::Nginx;
use support::{body, fcgi};

/// The `PATH` fcgiwrap runs with (and so passes to its scripts).
const FCGIWRAP_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// A variable both gateways have in their own environment: fcgiwrap passes it on, we do not.
const DAEMON_VAR: (&str, &str) = ("GATEHOUSE_TEST_DAEMON_VAR", "from-the-daemon");

/// Scripts written into the tree next to the fixtures.
const EXTRA_SCRIPTS: &[(&str, &str)] = &[
    (
        "hello.sh",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nHello, world!\\n'\n",
    ),
    // Reads its whole body, then answers with it: no streaming, so fcgiwrap's order (all of
    // stdin first, then stdout) works for any size.
    (
        "slurp.pl",
        "#!/usr/bin/perl\nbinmode STDIN; binmode STDOUT;\nlocal $/;\nmy $b = <STDIN>;\n\
         $b = '' unless defined $b;\nprint \"Content-Type: application/octet-stream\\r\\n\
         Content-Length: \" . length($b) . \"\\r\\n\\r\\n\" . $b;\n",
    ),
    // A local redirect to a path under /cgi-bin/, as nginx serves it.
    (
        "redirect_e2e.sh",
        "#!/bin/sh\nprintf 'Location: /cgi-bin/env.sh/extra?redirected=1&from=%s\\n\\n' \
         \"$REQUEST_METHOD\"\n",
    ),
    // Never answers, ignores SIGTERM (so does its child); leaves its pid (= process group).
    (
        "sleep_pid.sh",
        "#!/bin/sh\ntrap '' TERM\necho $$ > \"$DOCUMENT_ROOT/../sleep.pid\"\nsleep 1000 &\n\
         sleep 1000\n",
    ),
];

/// The same tree behind fcgiwrap and gatehouse, each behind its own nginx.
struct Rig {
    tree: CgiTree,
    gatehouse: Daemon,
    fcgiwrap: Fcgiwrap,
    /// nginx in front of gatehouse.
    ours: Nginx,
    /// nginx in front of fcgiwrap.
    theirs: Nginx,
}

impl Rig {
    /// Starts everything; `extra` goes to gatehouse's command line.
    fn start(extra: &[&str]) -> Self {
        let tree = cgi_tree();
        for (name, text) in EXTRA_SCRIPTS {
            write_program(&tree.cgi_bin.join(name), text);
        }
        let gatehouse = start_gatehouse(&tree, "gatehouse.sock", extra);
        let fcgiwrap = Fcgiwrap::start(&tree.top, &[("PATH", FCGIWRAP_PATH), DAEMON_VAR]);
        let www = tree.www.display().to_string();
        let nginx = |name: &str, upstream: &str| {
            let dir = tree.top.join(name);
            std::fs::create_dir_all(&dir).expect("nginx dir");
            Nginx::start_with(
                "cgi-parity.conf.tmpl",
                &[("@UPSTREAM@", upstream), ("@WWW@", &www)],
                &dir,
            )
        };
        let ours = nginx("nginx-gatehouse", &gatehouse.addr());
        let theirs = nginx("nginx-fcgiwrap", &fcgiwrap.addr);
        Self {
            tree,
            gatehouse,
            fcgiwrap,
            ours,
            theirs,
        }
    }

    /// The same request through both nginx servers: (gatehouse's answer, fcgiwrap's).
    fn both(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (Response, Response) {
        let ours = http::request(self.ours.port, method, target, headers, body);
        let theirs = http::request(self.theirs.port, method, target, headers, body);
        (ours, theirs)
    }

    /// Both answers must agree on status, `Content-Type` and body; returns ours.
    fn same(&self, method: &str, target: &str, body: &[u8]) -> Response {
        let (ours, theirs) = self.both(method, target, &[], body);
        assert_same(
            &ours,
            &theirs,
            &format!("{method} {target} ({} B)", body.len()),
        );
        ours
    }

    /// The params of `GET script_name` as nginx would send them (see [`raw_params`]).
    fn raw_get(&self, script_name: &str, with_filename: bool) -> Vec<(String, String)> {
        raw_params(&self.tree.www, "GET", script_name, with_filename, None)
    }
}

/// `gatehouse cgi:CGI_BIN --fastcgi unix:TOP/SOCK EXTRA...`, with [`DAEMON_VAR`] in its
/// environment, listening.
fn start_gatehouse(tree: &CgiTree, sock: &str, extra: &[&str]) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.arg(format!("cgi:{}", tree.cgi_bin.display()))
        .arg("--fastcgi")
        .arg(format!("unix:{}", tree.top.join(sock).display()))
        .args(extra)
        .env(DAEMON_VAR.0, DAEMON_VAR.1)
        .stdin(Stdio::null());
    let d = Daemon::spawn(cmd, "gatehouse");
    d.wait_listening(1);
    d
}

/// The params nginx's stock `fastcgi_params` plus the template's SCRIPT_FILENAME line send for
/// `METHOD script_name` (no normalisation: a raw client can send what nginx would not).
fn raw_params(
    www: &Path,
    method: &str,
    script_name: &str,
    with_filename: bool,
    body_len: Option<usize>,
) -> Vec<(String, String)> {
    let mut p = fcgi::params(method, script_name, "", body_len);
    p.push(("DOCUMENT_URI".into(), script_name.into()));
    p.push(("DOCUMENT_ROOT".into(), www.display().to_string()));
    if with_filename {
        let filename = format!("{}{script_name}", www.display());
        p.push(("SCRIPT_FILENAME".into(), filename));
    }
    p
}

fn assert_same(ours: &Response, theirs: &Response, what: &str) {
    assert_eq!(
        (ours.status, ours.header("content-type")),
        (theirs.status, theirs.header("content-type")),
        "{what}: status and Content-Type differ\nours:   {:?}\ntheirs: {:?}",
        ours.text(),
        theirs.text()
    );
    assert!(
        ours.body == theirs.body,
        "{what}: bodies differ ({} B vs {} B)\nours:   {:?}\ntheirs: {:?}",
        ours.body.len(),
        theirs.body.len(),
        String::from_utf8_lossy(&ours.body[..ours.body.len().min(2000)]),
        String::from_utf8_lossy(&theirs.body[..theirs.body.len().min(2000)])
    );
}

#[test]
fn hello_status_and_client_redirect_match() {
    let rig = Rig::start(&[]);

    let hello = rig.same("GET", "/cgi-bin/hello.sh", b"");
    assert_eq!(
        (hello.status, hello.text().as_str()),
        (200, "Hello, world!\n")
    );
    assert_eq!(hello.header("content-type"), Some("text/plain"));

    let status = rig.same("GET", "/cgi-bin/status.pl", b"");
    assert_eq!(
        (status.status, status.text().as_str()),
        (404, "no such thing\n")
    );
    let (ours, theirs) = rig.both("GET", "/cgi-bin/status.pl", &[], b"");
    assert_eq!(ours.header("x-script"), Some("status.pl"));
    assert_eq!(ours.header("x-script"), theirs.header("x-script"));

    // Client redirect (RFC 3875 section 6.2.3): 302 with the script's Location and headers.
    // (The reason phrase differs: ours is "Found", nginx's default for fcgiwrap's answer
    // "Moved Temporarily"; the status line's reason is not part of the comparison.)
    let (ours, theirs) = rig.both("GET", "/cgi-bin/redirect_client.pl", &[], b"");
    assert_same(&ours, &theirs, "client redirect");
    assert_eq!(ours.status, 302);
    let location = Some("http://example.test/elsewhere?x=1");
    assert_eq!(
        (ours.header("location"), theirs.header("location")),
        (location, location)
    );
    assert_eq!(ours.header("x-script"), Some("redirect_client.pl"));
    assert_eq!(ours.header("x-script"), theirs.header("x-script"));
}

/// Compares two environment dumps: the request-derived variables must be equal. Every
/// intentional difference is listed here and checked, then removed from both:
///
/// - `PATH`: ours is the fixed [`SCRIPT_PATH`]; fcgiwrap passes its own.
/// - the daemon's own variables ([`DAEMON_VAR`]): fcgiwrap passes its whole environment; we pass
///   none unless listed with `--cgi-env`.
/// - `HTTP_PROXY` (from a client's `Proxy:` header): dropped by us (httpoxy), passed by fcgiwrap.
/// - `CONTENT_LENGTH` / `CONTENT_TYPE` sent empty by nginx for a request without a body: unset
///   by us (RFC 3875 sections 4.1.2, 4.1.3), passed empty by fcgiwrap.
/// - `HTTP_CONTENT_LENGTH` / `HTTP_CONTENT_TYPE` (nginx passes every header as `HTTP_*`):
///   dropped by us when `CONTENT_LENGTH` / `CONTENT_TYPE` carry the value (RFC 3875 section
///   4.1.18, gatehouse-dispatch's contract), passed by fcgiwrap.
/// - `PATH_INFO` sent empty by nginx (no path info): unset by us (RFC 3875 section 4.1.5),
///   passed empty by fcgiwrap.
/// - `PATH_TRANSLATED`: computed by us when there is path info (`DOCUMENT_ROOT` + `PATH_INFO`,
///   section 4.1.6); nginx's params do not send it, so fcgiwrap's scripts lack it.
/// - `SCRIPT_FILENAME`: ours is the canonical path of the script; fcgiwrap passes nginx's value.
///   The same here, as the test tree's path is canonical; compared with the rest.
/// - `REMOTE_PORT`, `SERVER_PORT`: differ per connection and per nginx instance, not per
///   gateway; checked to be each nginx's own.
fn compare_env(
    rig: &Rig,
    mut ours: BTreeMap<String, String>,
    mut theirs: BTreeMap<String, String>,
    proxy: &str,
    has_body: bool,
) {
    type Pair = (Option<String>, Option<String>);
    let mut take = |name: &str| -> Pair { (ours.remove(name), theirs.remove(name)) };
    let some = |v: &str| Some(v.to_owned());
    assert_eq!(take("PATH"), (some(SCRIPT_PATH), some(FCGIWRAP_PATH)));
    assert_eq!(take(DAEMON_VAR.0), (None, some(DAEMON_VAR.1)));
    assert_eq!(take("HTTP_PROXY"), (None, some(proxy)));
    // Set by libfcgi for fcgiwrap's scripts, by our FastCGI front end for ours.
    assert_eq!(take("FCGI_ROLE"), (some("RESPONDER"), some("RESPONDER")));
    for name in ["CONTENT_LENGTH", "CONTENT_TYPE"] {
        if has_body {
            let (o, t) = take(name);
            assert!(o.as_deref().is_some_and(|v| !v.is_empty()), "{name}");
            assert_eq!(o, t, "{name}");
            assert_eq!(take(&format!("HTTP_{name}")), (None, o), "HTTP_{name}");
        } else {
            assert_eq!(take(name), (None, some("")), "{name}");
        }
    }
    let path_info = match take("PATH_INFO") {
        (None, Some(empty)) if empty.is_empty() => None,
        (o, t) => {
            assert_eq!(o, t, "PATH_INFO");
            o
        }
    };
    let translated = path_info.map(|pi| format!("{}{pi}", rig.tree.www.display()));
    assert_eq!(take("PATH_TRANSLATED"), (translated, None));
    let (our_port, their_port) = take("REMOTE_PORT");
    for port in [our_port, their_port] {
        let numeric = port.as_deref().is_some_and(|p| p.parse::<u16>().is_ok());
        assert!(numeric, "REMOTE_PORT {port:?}");
    }
    let ports = (rig.ours.port.to_string(), rig.theirs.port.to_string());
    assert_eq!(take("SERVER_PORT"), (Some(ports.0), Some(ports.1)));
    let diff: Vec<_> = ours
        .keys()
        .chain(theirs.keys())
        .filter(|k| ours.get(*k) != theirs.get(*k))
        .map(|k| format!("{k}: ours {:?}, theirs {:?}", ours.get(k), theirs.get(k)))
        .collect();
    assert!(diff.is_empty(), "environments differ:\n{}", diff.join("\n"));
}

#[test]
fn environment_matches_but_for_documented_differences() {
    let rig = Rig::start(&[]);
    let proxy = "http://proxy.invalid:3128";
    let headers = [
        ("Proxy", proxy),
        ("X-Custom", "a b;c"),
        ("Accept", "text/plain"),
        ("Cookie", "k=v"),
        ("Authorization", "Basic dXNlcjpwdw=="),
    ];

    // GET with a query string, headers and no body.
    let target = "/cgi-bin/env.sh?x=1&y=%20z";
    let (ours, theirs) = rig.both("GET", target, &headers, b"");
    assert_eq!((ours.status, theirs.status), (200, 200), "{}", ours.text());
    assert_eq!(ours.header("content-type"), theirs.header("content-type"));
    let (o, t) = (env_map(&ours.body), env_map(&theirs.body));
    assert_eq!(o["QUERY_STRING"], "x=1&y=%20z");
    assert_eq!(o["HTTP_X_CUSTOM"], "a b;c");
    // Passed on as fcgiwrap does: scripts that do their own authentication need it.
    assert_eq!(o["HTTP_AUTHORIZATION"], "Basic dXNlcjpwdw==");
    assert_eq!(o["SCRIPT_NAME"], "/cgi-bin/env.sh");
    assert_eq!(o["ARGC"], "0", "no ISINDEX arguments");
    assert_eq!(o["CWD"], rig.tree.cgi_bin.display().to_string());
    compare_env(&rig, o, t, proxy, false);

    // POST with a body and path info (nginx splits it; we find the same split by walking).
    let target = "/cgi-bin/env.sh/extra/more?post=1";
    let mut headers = headers.to_vec();
    headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    let (ours, theirs) = rig.both("POST", target, &headers, b"a=1&b=2");
    assert_eq!((ours.status, theirs.status), (200, 200), "{}", ours.text());
    let (o, t) = (env_map(&ours.body), env_map(&theirs.body));
    assert_eq!(o["PATH_INFO"], "/extra/more");
    assert_eq!(o["CONTENT_LENGTH"], "7");
    assert_eq!(o["CONTENT_TYPE"], "application/x-www-form-urlencoded");
    compare_env(&rig, o, t, proxy, true);
}

#[test]
fn post_bodies_through_stdin_match() {
    let rig = Rig::start(&[]);
    for (seed, len) in [0usize, 1, 1024 * 1024].into_iter().enumerate() {
        let data = body(len, 7 + seed as u64);
        let ours = rig.same("POST", "/cgi-bin/slurp.pl", &data);
        assert_eq!(ours.status, 200);
        assert!(ours.body == data, "slurp.pl did not echo {len} B");
    }
    // echo.py streams (answers while it reads): through nginx only while the body fits the
    // buffers (see the module doc); the full-duplex 1 MiB case is `full_duplex_echo_of_a_mib`.
    for len in [0usize, 1] {
        let data = body(len, 3);
        let ours = rig.same("POST", "/cgi-bin/echo.py", &data);
        assert_eq!(
            (ours.status, ours.body == data),
            (200, true),
            "echo.py {len} B"
        );
    }
    // early.pl answers first, then reads its body and reports its size.
    for len in [0usize, 1, 64 * 1024] {
        let ours = rig.same("POST", "/cgi-bin/early.pl", &body(len, 5));
        assert_eq!(ours.text(), format!("early\nread {len}\n"));
    }
}

#[test]
fn stderr_goes_to_each_servers_log() {
    let rig = Rig::start(&[]);
    let ours = rig.same("GET", "/cgi-bin/stderr.sh", b"");
    assert_eq!((ours.status, ours.text().as_str()), (200, "ok\n"));
    // Ours: one log line per stderr line, tagged with the script, control bytes escaped.
    let script = rig.tree.cgi_bin.join("stderr.sh").display().to_string();
    let line = rig.gatehouse.wait_log("first complaint from the script");
    assert!(line.contains(&script), "{line}");
    let line = rig.gatehouse.wait_log("second \\x01 line");
    assert!(line.contains(&script), "{line}");
    // fcgiwrap 1.1 lets its scripts inherit its own stderr: the lines arrive as written, control
    // bytes included, with nothing saying which script or request they came from (and nothing
    // reaches nginx as FCGI_STDERR).
    rig.fcgiwrap.wait_log("first complaint from the script");
    let line = rig.fcgiwrap.wait_log("second ");
    assert!(line.contains('\u{1}'), "{line:?}");
    assert!(!rig.theirs.error_log().contains("first complaint"));
}

/// A script that answers before reading a body larger than the socket buffers.
///
/// nginx stops sending the request body once it has the upstream's head: had gatehouse
/// forwarded early.pl's early head while it fed the body to the script (as it did), early.pl
/// would wait for the rest of its body and nginx for the end of the answer, until
/// `fastcgi_read_timeout` (the same for `git push` of more than a few hundred KiB,
/// tests/cgi_git.rs). gatehouse holds the response (in a bounded buffer) until the body has
/// arrived, so both pass, as with fcgiwrap.
#[test]
fn early_answer_to_a_large_body() {
    let rig = Rig::start(&[]);
    let len = 1024 * 1024;
    let ours = rig.same("POST", "/cgi-bin/early.pl", &body(len, 9));
    assert_eq!(ours.text(), format!("early\nread {len}\n"));
}

#[test]
fn local_redirect_is_followed_inside_gatehouse() {
    // fcgiwrap passes `Location: /cgi-bin/env.sh/extra?...` to nginx, which answers 302 to the
    // client. RFC 3875 section 6.2.2 asks the server to run the new path itself: we do, as a GET
    // without the body.
    let rig = Rig::start(&[]);
    let resp = http::request(
        rig.ours.port,
        "POST",
        "/cgi-bin/redirect_e2e.sh",
        &[("Content-Type", "text/plain")],
        b"dropped",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let env = env_map(&resp.body);
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["QUERY_STRING"], "redirected=1&from=POST");
    assert_eq!(env["SCRIPT_NAME"], "/cgi-bin/env.sh");
    assert_eq!(env["PATH_INFO"], "/extra");
    assert!(!env.contains_key("CONTENT_LENGTH"), "{env:?}");
    assert!(resp.header("location").is_none());
}

#[test]
fn full_duplex_echo_of_a_mib() {
    // Straight to gatehouse with our raw FastCGI client, which keeps reading while it sends:
    // output flows while input still arrives (fcgiwrap writes the whole body to the script
    // first, so this deadlocks there once echo.py's output fills the pipe).
    let rig = Rig::start(&[]);
    let data = body(1024 * 1024 + 3, 11);
    let p = raw_params(
        &rig.tree.www,
        "POST",
        "/cgi-bin/echo.py",
        true,
        Some(data.len()),
    );
    let resp = Response::parse_cgi(&fastcgi_duplex(&rig.gatehouse.addr(), &p, &data));
    assert_eq!(resp.status, 200);
    assert!(
        resp.body == data,
        "echo of {} B came back as {} B",
        data.len(),
        resp.body.len()
    );
}

#[test]
fn traversal_symlinks_and_world_writable_are_refused() {
    let rig = Rig::start(&[]);
    let www = &rig.tree.www;
    // An executable outside the CGI root (www/cgi-bin), which leaves a mark when it runs.
    let marker = rig.tree.top.join("outside-ran");
    write_program(
        &www.join("outside.sh"),
        &format!(
            "#!/bin/sh\n: > '{}'\nprintf 'Content-Type: text/plain\\r\\n\\r\\noutside\\n'\n",
            marker.display()
        ),
    );
    symlink("../outside.sh", rig.tree.cgi_bin.join("link.sh")).expect("symlink");
    let ww = rig.tree.cgi_bin.join("ww.sh");
    write_program(
        &ww,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nww\\n'\n",
    );
    set_mode(&ww, 0o777);

    // Through nginx: it normalises `..` itself (above the root: 400), so the request never
    // reaches a gateway; a symlink out of the root and a world-writable script reach us: 403.
    let resp = http::request(rig.ours.port, "GET", "/cgi-bin/../../etc/passwd", &[], b"");
    assert!(
        matches!(resp.status, 400 | 404),
        "nginx let a traversal through: {} {}",
        resp.status,
        resp.text()
    );
    for (target, why) in [
        ("/cgi-bin/link.sh", "symlink leads out of the CGI root"),
        ("/cgi-bin/ww.sh", "world-writable"),
    ] {
        let resp = http::request(rig.ours.port, "GET", target, &[], b"");
        assert_eq!(resp.status, 403, "{target}: {}", resp.text());
        let line = rig.gatehouse.wait_log(why);
        assert!(line.contains("cgi request refused"), "{line}");
    }

    // Raw FastCGI, as a web server that does not normalise could send it: `..` in SCRIPT_NAME
    // and DOCUMENT_URI, with and without SCRIPT_FILENAME.
    for (name, with_filename) in [
        ("/cgi-bin/../../etc/passwd", false),
        ("/cgi-bin/../outside.sh", true),
        ("/cgi-bin/../outside.sh", false),
    ] {
        let answer = fcgi::call(
            &rig.gatehouse.addr(),
            &rig.raw_get(name, with_filename),
            b"",
        );
        assert_eq!(
            answer.cgi().status,
            403,
            "{name} (SCRIPT_FILENAME: {with_filename})"
        );
    }
    assert_eq!(
        rig.gatehouse
            .wait_log_count("path has a '..' segment", 3)
            .len(),
        3
    );
    assert!(!marker.exists(), "a refused script ran");

    // The switches are wired: a second gatehouse that allows both runs them.
    let allowing = start_gatehouse(
        &rig.tree,
        "allowing.sock",
        &["--cgi-allow-symlinks", "--cgi-allow-world-writable"],
    );
    for (name, text) in [
        ("/cgi-bin/link.sh", "outside\n"),
        ("/cgi-bin/ww.sh", "ww\n"),
    ] {
        let answer = fcgi::call(&allowing.addr(), &rig.raw_get(name, true), b"");
        let resp = answer.cgi();
        assert_eq!((resp.status, resp.text().as_str()), (200, text), "{name}");
    }
    assert!(
        marker.exists(),
        "the allowed symlink did not run its target"
    );
}

#[test]
fn timeout_kills_the_script_and_its_process_group() {
    let rig = Rig::start(&["--cgi-timeout", "2s"]);
    let resp = http::request(rig.ours.port, "GET", "/cgi-bin/sleep_pid.sh", &[], b"");
    assert_eq!(resp.status, 504, "{}", resp.text());
    rig.gatehouse.wait_log("script idle for 2s, killed");
    let pid_file: PathBuf = rig.tree.top.join("sleep.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("sleep_pid.sh wrote its pid")
        .trim()
        .parse()
        .expect("a pid");
    // The script ignores SIGTERM, and so does its `sleep` child: the SIGKILL after the grace
    // period ends both; gatehouse reaps the leader. Nothing of the group may be left.
    wait_group_gone(pid);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}
