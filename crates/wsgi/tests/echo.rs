//! The `echo` contract: fixtures/apps/echo.py answers byte for byte what the built-in `echo`
//! (crates/dispatch) answers for the same request.

mod support;

use bytes::Bytes;
use gatehouse_dispatch::builtin::Echo;
use support::{config, load, Call};

fn cases() -> Vec<Call> {
    let big: Vec<u8> = (0..1_000_003u32).map(|i| (i % 253) as u8).collect();
    let mut chunked = Call::post("/upload", "application/octet-stream", big.clone())
        .without("CONTENT_LENGTH")
        .var("REQUEST_METHOD", "PUT");
    chunked.chunk = 4096;
    vec![
        Call::get("/"),
        Call::get("/a/b%20c?x=1&y=%C3%A9").var("SCRIPT_NAME", "/mount"),
        Call::get("/caf\u{e9}")
            .var("HTTP_X_UTF8", "\u{2603} snow")
            .var("HTTP_USER_AGENT", "test/1.0")
            .var("HTTP_ACCEPT_LANGUAGE", "en;q=0.5"),
        Call::post("/form", "application/x-www-form-urlencoded", "a=1&b=2"),
        Call::post("/big", "application/octet-stream", big),
        chunked,
        Call::get("/").var("HTTP_X_CTRL", "tab\there \u{1} \"quoted\" back\\slash"),
    ]
}

#[tokio::test]
async fn echo_py_matches_builtin_echo() {
    let wsgi = load("echo.py", "application", config(2));
    for call in cases() {
        let label = call
            .vars
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>();
        let clone = Call {
            vars: call.vars.clone(),
            body: call.body.clone(),
            ..Call::get("/")
        };
        let builtin = clone.run(&Echo).await;
        let python = call.run(&wsgi).await;
        assert_eq!(builtin.status(), 200);
        assert_eq!(python.status(), 200);
        assert_eq!(python.text(), builtin.text(), "{label:?}");
        assert_eq!(
            python.header("content-type"),
            builtin.header("content-type")
        );
        assert_eq!(
            python.header("content-length"),
            builtin.header("content-length")
        );
    }
}

#[tokio::test]
async fn invalid_utf8_is_replaced_the_same_way() {
    // Bytes that are not UTF-8 (a lone continuation byte, a truncated sequence, an overlong
    // form): both apps replace them with U+FFFD per the same maximal-subpart rule.
    let wsgi = load("echo.py", "application", config(1));
    let raw = |v: &'static [u8]| Bytes::from_static(v);
    let env_call = || {
        let mut c = Call::get("/");
        c.vars.retain(|(n, _)| n != "PATH_INFO");
        c
    };
    for value in [
        raw(b"\x80abc"),
        raw(b"\xe2\x82"),
        raw(b"\xc0\xaf"),
        raw(b"ok\xf0\x9f\x98"),
    ] {
        let (_, mut req_b) = env_call().request();
        req_b.env.set("PATH_INFO", value.clone());
        let (_, mut req_p) = env_call().request();
        req_p.env.set("PATH_INFO", value.clone());
        let builtin = run_raw(&Echo, req_b).await;
        let python = run_raw(&wsgi, req_p).await;
        assert_eq!(python, builtin, "{value:?}");
    }
}

async fn run_raw(
    app: &dyn gatehouse_channel_request::Application,
    mut req: gatehouse_channel_request::Request,
) -> String {
    use gatehouse_channel_request::{
        delivery_queue, serve_request, CancellationToken, Output, QueueChannel, RequestBody,
        Response,
    };
    req.body = RequestBody::empty();
    let (tx, mut rx) = delivery_queue();
    let resp = Response::new(QueueChannel::new(1, tx, 1 << 20, CancellationToken::new()));
    serve_request(app, req, resp).await;
    let mut body = Vec::new();
    while let Ok(d) = rx.try_recv() {
        if let Output::Body(b) = d.output {
            body.extend_from_slice(&b);
        }
    }
    String::from_utf8(body).expect("JSON is UTF-8")
}
