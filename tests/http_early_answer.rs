//! End-to-end: nginx `proxy_pass` to `gatehouse cgi:DIR --http`, with a script that answers
//! before it reads a body larger than the socket and pipe buffers (fixtures/cgi-bin/early.pl).
//! nginx stops sending the request body once it has the response head, so gatehouse holds the
//! head back until the body is in (crates/http, "Early answers are held"); forwarding it at once
//! left early.pl waiting for its body and nginx for the answer, until `proxy_read_timeout`.
//! No timing assertions.

mod support;

use support::body;
use support::cgi::cgi_tree;
use support::daemon::Daemon;
use support::http;
use support::nginx::Nginx;

#[test]
fn early_answer_to_a_large_body_through_proxy_pass() {
    let tree = cgi_tree();
    let app = format!("cgi:{}", tree.cgi_bin.display());
    // A unix socket: its buffers are small (loopback TCP's grow to several MiB and could take
    // the whole body before nginx reads the head).
    let path = tree.top.join("http.sock");
    let sock = format!("unix:{}", path.display());
    let _daemon = Daemon::serve(&[&app, "--http", &sock]);
    let nginx = Nginx::start("http-proxy.conf.tmpl", &format!("{sock}:"), &tree.top);
    for len in [0, 1, 1024 * 1024, 8 * 1024 * 1024 + 5] {
        let data = body(len, 5);
        let resp = http::request(nginx.port, "POST", "/early.pl", &[], &data);
        assert_eq!(resp.status, 200, "{len} bytes: {}", nginx.error_log());
        assert_eq!(resp.text(), format!("early\nread {len}\n"), "{len} bytes");
    }
}
