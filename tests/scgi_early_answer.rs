//! End-to-end: nginx `scgi_pass` to `gatehouse cgi:DIR --scgi`, with a script that answers
//! before it reads a body larger than the socket and pipe buffers (fixtures/cgi-bin/early.pl).
//! nginx stops sending the request body once it has the response head, so gatehouse holds the
//! head back until `CONTENT_LENGTH` bytes are in (crates/scgi, "Flow control"); forwarding it at
//! once left early.pl waiting for its body and nginx for the answer, until
//! `scgi_read_timeout`. No timing assertions.

mod support;

use std::fs;

use support::body;
use support::cgi::{cgi_tree, set_mode};
use support::daemon::Daemon;
use support::http;
use support::nginx::Nginx;

#[test]
fn early_answer_to_a_large_body_through_scgi_pass() {
    let tree = cgi_tree();
    // nginx (prefix: the tree's top) has its default root `html`, which the CGI app takes the
    // script's directory from (DOCUMENT_ROOT); the /plain/ location is a directory of it.
    let root = tree.top.join("html");
    let plain = root.join("plain");
    fs::create_dir_all(&plain).unwrap();
    fs::copy(tree.cgi_bin.join("early.pl"), plain.join("early.pl")).unwrap();
    for (path, mode) in [
        (&root, 0o755),
        (&plain, 0o755),
        (&plain.join("early.pl"), 0o755),
    ] {
        set_mode(path, mode);
    }
    let app = format!("cgi:{}", root.display());
    // A unix socket: its buffers are small (loopback TCP's grow to several MiB and could take
    // the whole body before nginx reads the head).
    let sock = format!("unix:{}", tree.top.join("scgi.sock").display());
    let _daemon = Daemon::serve(&[&app, "--scgi", &sock]);
    let nginx = Nginx::start("scgi.conf.tmpl", &sock, &tree.top);
    for len in [0, 1, 1024 * 1024, 8 * 1024 * 1024 + 5] {
        let data = body(len, 3);
        let resp = http::request(nginx.port, "POST", "/plain/early.pl", &[], &data);
        assert_eq!(resp.status, 200, "{len} bytes: {}", nginx.error_log());
        assert_eq!(resp.text(), format!("early\nread {len}\n"), "{len} bytes");
    }
}
