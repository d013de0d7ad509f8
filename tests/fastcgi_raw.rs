//! End-to-end: a raw FastCGI client (written from the spec in `support/fcgi.rs`) against the
//! built daemon: multiplexing, FCGI_KEEP_CONN both ways, ABORT_REQUEST, GET_VALUES, unknown
//! management types, unknown roles, limits, and bad input followed by a good request.

mod support;

use support::daemon::Daemon;
use support::fcgi::{self, Client};
use support::{body, sha256_hex};

fn echo_json(answer: &fcgi::Answer) -> serde_json::Value {
    assert_eq!(answer.protocol_status, fcgi::REQUEST_COMPLETE, "{answer:?}");
    let resp = answer.cgi();
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn params_with(
    extra: &[(&str, &str)],
    body_len: Option<usize>,
    path: &str,
) -> Vec<(String, String)> {
    let mut p = fcgi::params("POST", path, "q=1", body_len);
    p.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    p
}

#[test]
fn multiplexed_requests_interleave_on_one_connection() {
    let d = Daemon::fastcgi_tcp("echo", &[]);
    let mut c = Client::connect(&d.addr());
    let (b1, b2) = (body(200_000, 1), body(150_001, 2));
    let p1 = fcgi::nv_pairs(&[
        ("REQUEST_METHOD", "POST"),
        ("SCRIPT_NAME", "/one"),
        ("CONTENT_LENGTH", "200000"),
    ]);
    let p2 = fcgi::nv_pairs(&[
        ("REQUEST_METHOD", "PUT"),
        ("SCRIPT_NAME", "/two"),
        ("CONTENT_LENGTH", "150001"),
    ]);

    let mut wire = fcgi::begin(1, fcgi::RESPONDER, fcgi::KEEP_CONN);
    wire.extend(fcgi::begin(2, fcgi::RESPONDER, fcgi::KEEP_CONN));
    wire.extend(fcgi::record(fcgi::PARAMS, 2, &p2[..10]));
    wire.extend(fcgi::stream(fcgi::PARAMS, 1, &p1));
    wire.extend(fcgi::record(fcgi::PARAMS, 2, &p2[10..]));
    wire.extend(fcgi::record(fcgi::STDIN, 1, &b1[..60_000]));
    wire.extend(fcgi::record(fcgi::PARAMS, 2, b""));
    for (i, chunk) in b2.chunks(40_000).enumerate() {
        wire.extend(fcgi::record(fcgi::STDIN, 2, chunk));
        if let Some(c1) = b1[60_000..].chunks(50_000).nth(i) {
            wire.extend(fcgi::record(fcgi::STDIN, 1, c1));
        }
    }
    wire.extend(fcgi::record(fcgi::STDIN, 2, b""));
    wire.extend(fcgi::record(fcgi::STDIN, 1, b""));
    c.send(&wire);

    let answers = c.answers(&[1, 2]);
    let (j1, j2) = (echo_json(&answers[0]), echo_json(&answers[1]));
    assert_eq!(j1["method"], "POST");
    assert_eq!(j1["path"], "/one");
    assert_eq!(j1["body_len"], 200_000);
    assert_eq!(j1["body_sha256"], sha256_hex(&b1));
    assert_eq!(j2["method"], "PUT");
    assert_eq!(j2["path"], "/two");
    assert_eq!(j2["body_len"], 150_001);
    assert_eq!(j2["body_sha256"], sha256_hex(&b2));

    // FCGI_KEEP_CONN was set: the connection stays open, and request ids may be reused.
    c.send(&fcgi::request(
        1,
        fcgi::KEEP_CONN,
        &params_with(&[], Some(3), "/three"),
        b"abc",
    ));
    let j3 = echo_json(&c.answer(1));
    assert_eq!(j3["path"], "/three");
    assert_eq!(j3["body_sha256"], sha256_hex(b"abc"));
}

#[test]
fn without_keep_conn_the_daemon_closes_after_end_request() {
    let d = Daemon::fastcgi_tcp("hello", &[]);
    let mut c = Client::connect(&d.addr());
    c.send(&fcgi::request(
        7,
        0,
        &fcgi::params("GET", "/", "", None),
        b"",
    ));
    let answer = c.answer(7);
    assert_eq!(answer.protocol_status, fcgi::REQUEST_COMPLETE);
    assert_eq!(answer.cgi().text(), "Hello, world!\n");
    assert!(
        c.closed_by_peer(),
        "connection must close after END_REQUEST without FCGI_KEEP_CONN"
    );
}

#[test]
fn body_without_content_length_ends_at_the_empty_stdin() {
    let d = Daemon::fastcgi_tcp("echo", &[]);
    let data = body(70_000, 9);
    let answer = fcgi::call(&d.addr(), &params_with(&[], None, "/chunked"), &data);
    let j = echo_json(&answer);
    assert_eq!(j["body_len"], 70_000);
    assert_eq!(j["body_sha256"], sha256_hex(&data));
}

#[test]
fn abort_request_ends_the_request_and_the_connection_carries_on() {
    let d = Daemon::fastcgi_tcp("echo", &[]);
    let mut c = Client::connect(&d.addr());
    let mut wire = fcgi::begin(1, fcgi::RESPONDER, fcgi::KEEP_CONN);
    wire.extend(fcgi::stream(
        fcgi::PARAMS,
        1,
        &fcgi::nv_pairs(&[("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "100")]),
    ));
    wire.extend(fcgi::record(fcgi::STDIN, 1, &[b'x'; 10]));
    wire.extend(fcgi::record(fcgi::ABORT_REQUEST, 1, b""));
    c.send(&wire);
    let aborted = c.answer(1);
    assert_eq!(
        aborted.protocol_status,
        fcgi::REQUEST_COMPLETE,
        "{aborted:?}"
    );
    assert!(
        !String::from_utf8_lossy(&aborted.stdout).contains("body_len"),
        "an aborted echo must not answer as if it had the whole body: {aborted:?}"
    );

    c.send(&fcgi::request(
        1,
        fcgi::KEEP_CONN,
        &params_with(&[], Some(2), "/after"),
        b"ok",
    ));
    assert_eq!(echo_json(&c.answer(1))["path"], "/after");
}

#[test]
fn get_values_reports_limits_and_multiplexing() {
    let d = Daemon::fastcgi_tcp("hello", &["--max-conns", "7", "--fastcgi-max-reqs", "11"]);
    let mut c = Client::connect(&d.addr());
    let names = fcgi::nv_pairs(&[
        ("FCGI_MAX_CONNS", ""),
        ("FCGI_MAX_REQS", ""),
        ("FCGI_MPXS_CONNS", ""),
        ("X_NO_SUCH_VALUE", ""),
    ]);
    c.send(&fcgi::record(fcgi::GET_VALUES, 0, &names));
    let rec = c.read_record().expect("GET_VALUES_RESULT");
    assert_eq!((rec.ty, rec.id), (fcgi::GET_VALUES_RESULT, 0), "{rec:?}");
    let mut values = fcgi::parse_nv_pairs(&rec.content);
    values.sort();
    assert_eq!(
        values,
        [
            ("FCGI_MAX_CONNS", "7"),
            ("FCGI_MAX_REQS", "11"),
            ("FCGI_MPXS_CONNS", "1")
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
}

#[test]
fn unknown_management_type_gets_unknown_type() {
    let d = Daemon::fastcgi_tcp("hello", &[]);
    let mut c = Client::connect(&d.addr());
    c.send(&fcgi::record(99, 0, b"whatever"));
    let rec = c.read_record().expect("FCGI_UNKNOWN_TYPE");
    assert_eq!((rec.ty, rec.id), (fcgi::UNKNOWN_TYPE, 0), "{rec:?}");
    assert_eq!(rec.content, [99, 0, 0, 0, 0, 0, 0, 0]);
    // The connection is still good.
    c.send(&fcgi::request(
        1,
        0,
        &fcgi::params("GET", "/", "", None),
        b"",
    ));
    assert_eq!(c.answer(1).cgi().text(), "Hello, world!\n");
}

#[test]
fn unknown_role_gets_end_request_unknown_role() {
    let d = Daemon::fastcgi_tcp("hello", &[]);
    let mut c = Client::connect(&d.addr());
    c.send(&fcgi::begin(3, 99, fcgi::KEEP_CONN));
    let answer = c.answer(3);
    assert_eq!(answer.protocol_status, fcgi::UNKNOWN_ROLE, "{answer:?}");
    assert!(answer.stdout.is_empty());
    c.send(&fcgi::request(
        4,
        0,
        &fcgi::params("GET", "/", "", None),
        b"",
    ));
    assert_eq!(c.answer(4).cgi().text(), "Hello, world!\n");
}

#[test]
fn bad_input_closes_that_connection_only() {
    let d = Daemon::fastcgi_tcp("hello", &[]);
    let addr = d.addr();
    let mut bystander = Client::connect(&addr);
    bystander.send(&fcgi::begin(1, fcgi::RESPONDER, fcgi::KEEP_CONN));

    let stdin_before_params_end = [
        fcgi::begin(1, fcgi::RESPONDER, 0),
        fcgi::record(fcgi::STDIN, 1, b"abcd"),
    ]
    .concat();
    let duplicate_begin = [
        fcgi::begin(1, fcgi::RESPONDER, 0),
        fcgi::begin(1, fcgi::RESPONDER, 0),
    ]
    .concat();
    let cases: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
        &[2, 1, 0, 1, 0, 8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        &stdin_before_params_end,
        &duplicate_begin,
        &[0xff; 64],
    ];
    for garbage in cases {
        let mut bad = Client::connect(&addr);
        let _ = bad.try_send(garbage);
        assert!(
            bad.closed_by_peer(),
            "connection not closed after {garbage:?}"
        );
        // One log line names the peer that sent it.
        d.wait_log(&bad.local_addr());

        let answer = fcgi::call(&addr, &fcgi::params("GET", "/", "", None), b"");
        assert_eq!(answer.cgi().text(), "Hello, world!\n");
    }

    // A truncated record followed by EOF.
    let mut cut = Client::connect(&addr);
    cut.send(&[1, 1, 0, 1]);
    cut.shutdown_write();
    assert!(cut.closed_by_peer());

    // The connection opened before the bad ones still works.
    bystander.send(&fcgi::stream(
        fcgi::PARAMS,
        1,
        &fcgi::nv_pairs(&[("REQUEST_METHOD", "GET")]),
    ));
    bystander.send(&fcgi::stream(fcgi::STDIN, 1, b""));
    assert_eq!(bystander.answer(1).cgi().text(), "Hello, world!\n");
}

#[test]
fn params_over_the_limit_are_refused_and_the_daemon_carries_on() {
    let d = Daemon::fastcgi_tcp("echo", &["--max-params-bytes", "1024"]);
    let addr = d.addr();
    let big = "v".repeat(4000);
    let mut c = Client::connect(&addr);
    c.send(&fcgi::request(
        1,
        0,
        &params_with(&[("HTTP_X_BIG", &big)], None, "/big"),
        b"",
    ));
    let mut got_200 = false;
    while let Some(rec) = c.read_record() {
        if rec.ty == fcgi::STDOUT && String::from_utf8_lossy(&rec.content).contains("body_len") {
            got_200 = true;
        }
        if rec.ty == fcgi::END_REQUEST {
            break;
        }
    }
    assert!(
        !got_200,
        "a request over --max-params-bytes must not reach the app"
    );
    let ok = fcgi::call(&addr, &params_with(&[], Some(0), "/small"), b"");
    assert_eq!(echo_json(&ok)["path"], "/small");
}

#[test]
fn max_conns_holds_new_connections_in_the_backlog() {
    let d = Daemon::fastcgi_tcp("hello", &["--max-conns", "1"]);
    let addr = d.addr();
    let mut first = Client::connect(&addr);
    first.send(&fcgi::request(
        1,
        fcgi::KEEP_CONN,
        &fcgi::params("GET", "/", "", None),
        b"",
    ));
    assert_eq!(first.answer(1).cgi().text(), "Hello, world!\n");

    // The only permit is taken: the next connection waits for it (and those after it in the
    // backlog, where the kernel still completes the handshake); its request is served once the
    // first connection closes and frees the permit.
    let mut second = Client::connect(&addr);
    second.send(&fcgi::request(
        1,
        0,
        &fcgi::params("GET", "/", "", None),
        b"",
    ));
    d.wait_log("reached: new connections wait");
    drop(first);
    assert_eq!(second.answer(1).cgi().text(), "Hello, world!\n");
}

#[test]
fn records_for_inactive_request_ids_are_ignored() {
    let d = Daemon::fastcgi_tcp("hello", &[]);
    let mut c = Client::connect(&d.addr());
    let mut wire = fcgi::record(fcgi::STDIN, 9, b"stray");
    wire.extend(fcgi::record(fcgi::PARAMS, 9, b""));
    wire.extend(fcgi::record(fcgi::ABORT_REQUEST, 9, b""));
    wire.extend(fcgi::request(
        1,
        0,
        &fcgi::params("GET", "/", "", None),
        b"",
    ));
    c.send(&wire);
    let answer = c.answer(1);
    assert_eq!(answer.cgi().text(), "Hello, world!\n");
}

#[test]
fn running_out_of_file_descriptors_is_survived() {
    // A soft limit of 32 descriptors: the daemon runs out while accepting (EMFILE).
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "ulimit -n 32 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["hello", "--fastcgi", "127.0.0.1:0"])
        .stdin(std::process::Stdio::null());
    let mut d = Daemon::spawn(cmd, "gatehouse (ulimit -n 32)");
    let addr = d.addr();
    let idle: Vec<std::net::TcpStream> = (0..64)
        .map(|_| std::net::TcpStream::connect(&addr).expect("the backlog takes the connection"))
        .collect();
    d.wait_log("accept failed");
    assert!(d.is_running());
    drop(idle);
    let answer = fcgi::call(&addr, &fcgi::params("GET", "/", "", None), b"");
    assert_eq!(answer.cgi().text(), "Hello, world!\n");
    assert!(d.is_running());
}
