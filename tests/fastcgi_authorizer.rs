//! End-to-end: the FastCGI Authorizer role (FastCGI 1.0 section 6.3).
//!
//! - Raw role-2 requests (support/fcgi.rs) to the built-in `env` and to
//!   `fixtures/apps/authorizer.py`: `FCGI_ROLE=AUTHORIZER` (ours, whatever the peer sends under
//!   that name), no `CONTENT_LENGTH`, no body (none sent, the empty `FCGI_STDIN` after the end,
//!   content sent anyway: dropped with a log line naming the peer), the answer bytes on
//!   `FCGI_STDOUT`; on the same connection `FCGI_GET_VALUES`, `FCGI_FILTER` (still
//!   `FCGI_UNKNOWN_ROLE`) and a Responder, which sees `FCGI_ROLE=RESPONDER` and its body.
//! - Behind a real lighttpd (`mod_fastcgi` `"mode" => "authorizer"`,
//!   fixtures/conf/lighttpd/authorizer.conf.tmpl): a 401 reaches the client with its headers
//!   and body; a 200 lets lighttpd serve the protected static file, and a CGI program behind
//!   gets the `Variable-*` headers as variables (and the POST body the authorizer never saw).

mod support;

use support::daemon::Daemon;
use support::fcgi::{self, Client};
use support::lighttpd::Lighttpd;
use support::{fixtures, http};

fn authorizer_app() -> String {
    format!("wsgi:{}", fixtures().join("apps/authorizer.py").display())
}

/// The params of a role-2 request as lighttpd sends them (no `SCRIPT_NAME`, `PATH_INFO` or
/// `CONTENT_LENGTH`; the request header's length as `HTTP_CONTENT_LENGTH`), plus `extra`.
fn authorizer_params(extra: &[(&str, &str)]) -> Vec<u8> {
    let mut pairs = vec![
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/protected/file.txt"),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_NAME", "test.invalid"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_CONTENT_LENGTH", "11"),
    ];
    pairs.extend_from_slice(extra);
    fcgi::nv_pairs(&pairs)
}

/// Sends BEGIN_REQUEST (role 2, `FCGI_KEEP_CONN`) and the params of request `id`.
fn begin_authorizer(c: &mut Client, id: u16, extra: &[(&str, &str)]) {
    c.send(&fcgi::begin(id, fcgi::AUTHORIZER, fcgi::KEEP_CONN));
    c.send(&fcgi::stream(fcgi::PARAMS, id, &authorizer_params(extra)));
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn raw_authorizer_requests_get_their_role_and_no_body() {
    let d = Daemon::fastcgi_tcp("env", &[]);
    let mut c = Client::connect(&d.addr());

    // No FCGI_STDIN at all (lighttpd's POST): answered; the peer's FCGI_ROLE and
    // CONTENT_LENGTH are not what the app sees.
    begin_authorizer(
        &mut c,
        1,
        &[("FCGI_ROLE", "RESPONDER"), ("CONTENT_LENGTH", "11")],
    );
    let a = c.answer(1);
    assert_eq!(
        (a.protocol_status, a.app_status),
        (fcgi::REQUEST_COMPLETE, 0)
    );
    assert!(a.stdout_closed && a.stderr.is_empty(), "{a:?}");
    let resp = a.cgi();
    let text = resp.text();
    assert_eq!(resp.status, 200, "{text}");
    let vars = lines(&text);
    assert!(vars.contains(&"FCGI_ROLE=AUTHORIZER"), "{text}");
    assert!(!text.contains("FCGI_ROLE=RESPONDER"), "{text}");
    assert!(!text.contains("\nCONTENT_LENGTH="), "{text}");
    assert!(vars.contains(&"HTTP_CONTENT_LENGTH=11"), "{text}");
    // The answer bytes: the CGI head and body on FCGI_STDOUT, as a Responder's.
    let expected = format!(
        "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    );
    assert_eq!(String::from_utf8_lossy(&a.stdout), expected);
    // Its empty FCGI_STDIN after the end: for an inactive request, ignored.
    c.send(&fcgi::record(fcgi::STDIN, 1, b""));

    // FCGI_STDIN content sent anyway: dropped, logged with the peer.
    begin_authorizer(&mut c, 2, &[]);
    c.send(&fcgi::stream(fcgi::STDIN, 2, b"hello=world"));
    let a = c.answer(2);
    assert_eq!(a.protocol_status, fcgi::REQUEST_COMPLETE);
    assert!(lines(&a.cgi().text()).contains(&"FCGI_ROLE=AUTHORIZER"));
    let line = d.wait_log("FCGI_AUTHORIZER request (the role has no body): dropped");
    assert!(line.contains("127.0.0.1"), "names the peer: {line}");

    // Management records and the roles around it still work on the same connection.
    let names = fcgi::nv_pairs(&[("FCGI_MPXS_CONNS", "")]);
    c.send(&fcgi::record(fcgi::GET_VALUES, 0, &names));
    let rec = c.read_record().expect("GET_VALUES_RESULT");
    assert_eq!((rec.ty, rec.id), (fcgi::GET_VALUES_RESULT, 0), "{rec:?}");
    assert_eq!(
        fcgi::parse_nv_pairs(&rec.content),
        [("FCGI_MPXS_CONNS".to_owned(), "1".to_owned())]
    );
    c.send(&fcgi::begin(3, fcgi::FILTER, fcgi::KEEP_CONN));
    let a = c.answer(3);
    assert_eq!(a.protocol_status, fcgi::UNKNOWN_ROLE, "{a:?}");
    assert!(a.stdout.is_empty());
    let params = fcgi::params("POST", "/r", "", Some(5));
    c.send(&fcgi::request(4, fcgi::KEEP_CONN, &params, b"hello"));
    let text = c.answer(4).cgi().text();
    let vars = lines(&text);
    assert!(vars.contains(&"FCGI_ROLE=RESPONDER"), "{text}");
    assert!(vars.contains(&"CONTENT_LENGTH=5"), "{text}");
    assert_eq!(d.count_log("closing connection"), 0, "{:?}", d.log());
}

#[test]
fn raw_authorizer_answers_of_a_wsgi_app() {
    let d = Daemon::fastcgi_tcp(&authorizer_app(), &[]);
    let mut c = Client::connect(&d.addr());
    begin_authorizer(&mut c, 1, &[("HTTP_AUTHORIZATION", "Bearer good")]);
    c.send(&fcgi::record(fcgi::STDIN, 1, b""));
    let a = c.answer(1);
    assert_eq!(
        (a.protocol_status, a.app_status),
        (fcgi::REQUEST_COMPLETE, 0)
    );
    // The WSGI layer adds Content-Length for a one-item iterable (the web server ignores a 200's
    // body anyway).
    let body = "ignored by the web server\n";
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        format!(
            "Status: 200 OK\r\nVariable-AUTH_USER: alice\r\nVariable-AUTHZ_ROLE: AUTHORIZER\r\n\
             Variable-AUTHZ_BODY: 0\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    );

    begin_authorizer(&mut c, 2, &[("HTTP_AUTHORIZATION", "Bearer bad")]);
    let a = c.answer(2);
    let denied = "no valid bearer token\n";
    assert_eq!(
        String::from_utf8_lossy(&a.stdout),
        format!(
            "Status: 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"test\"\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{denied}",
            denied.len()
        )
    );
    assert_eq!(a.protocol_status, fcgi::REQUEST_COMPLETE);
}

#[test]
fn lighttpd_authorizer_mode_grants_or_denies_access() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    let bin = www.join("protected/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(www.join("protected/secret.txt"), "the secret\n").unwrap();
    support::cgi::write_program(
        &bin.join("vars.sh"),
        "#!/bin/sh\n\
         printf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
         echo \"AUTH_USER=$AUTH_USER\"\n\
         echo \"AUTHZ_ROLE=$AUTHZ_ROLE\"\n\
         echo \"AUTHZ_BODY=$AUTHZ_BODY\"\n\
         echo \"BODY=$(cat)\"\n",
    );
    let d = Daemon::fastcgi_tcp(&authorizer_app(), &[]);
    let addr = d.addr();
    let (host, port) = addr.rsplit_once(':').unwrap();
    let www_text = www.display().to_string();
    let server = Lighttpd::start_with(
        "authorizer.conf.tmpl",
        &[
            ("@WWW@", &www_text),
            ("@FCGI_HOST@", host),
            ("@FCGI_PORT@", port),
        ],
        dir.path(),
    );
    let get = |target: &str, headers: &[(&str, &str)]| {
        http::request(server.port, "GET", target, headers, b"")
    };

    // Denied: the authorizer's status, headers and body reach the client.
    for headers in [&[][..], &[("Authorization", "Bearer bad")][..]] {
        let r = get("/protected/secret.txt", headers);
        assert_eq!(r.status, 401, "{}\n{}", r.text(), server.error_log());
        assert_eq!(r.text(), "no valid bearer token\n");
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"test\""));
    }

    // Granted: lighttpd serves the file itself (the authorizer's body is ignored).
    let good = [("Authorization", "Bearer good")];
    let r = get("/protected/secret.txt", &good);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), server.error_log());
    assert_eq!(r.text(), "the secret\n");

    // The Variable-* headers become variables of the request: a CGI program behind sees them,
    // and gets the POST body, which the authorizer never saw.
    let r = http::request(
        server.port,
        "POST",
        "/protected/bin/vars.sh",
        &[
            ("Authorization", "Bearer good"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"hello=world",
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), server.error_log());
    assert_eq!(
        lines(&r.text()),
        [
            "AUTH_USER=alice",
            "AUTHZ_ROLE=AUTHORIZER",
            "AUTHZ_BODY=0",
            "BODY=hello=world"
        ]
    );
    let r = http::request(
        server.port,
        "POST",
        "/protected/bin/vars.sh",
        &[],
        b"hello=world",
    );
    assert_eq!(r.status, 401, "{}", r.text());

    assert_eq!(d.count_log("closing connection"), 0, "{:?}", d.log());
    assert_eq!(d.count_log("WARN"), 0, "{:?}", d.log());
    // lighttpd had nothing to complain about (a backend error is logged there).
    let log = server.error_log();
    let complaints = log.lines().filter(|l| !l.contains("server started"));
    assert_eq!(complaints.count(), 0, "{log}");
}
