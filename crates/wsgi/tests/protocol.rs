//! PEP 3333 server obligations, driven through channel-request types (no sockets).
//!
//! One interpreter serves every test of this binary: each test loads its own callable (its own
//! pool) from `fixtures/apps/wsgi_cases.py`, and tests that record things use their own file.

mod support;

use gatehouse_channel_request::Protocol;
use support::{config, load, Call, End, Record};

const CASES: &str = "wsgi_cases.py";

#[tokio::test]
async fn hello_gets_content_length_from_one_item_list() {
    let app = load(CASES, "hello", config(1));
    let a = Call::get("/").run(&app).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.text(), "Hello, world!\n");
    assert_eq!(a.header("content-length").as_deref(), Some("14"));
    assert_eq!(a.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!((a.end, a.after_end), (End::Finish, 0));
}

#[tokio::test]
async fn file_spec_defaults_to_application() {
    let spec = support::fixture("hello.py")
        .display()
        .to_string()
        .parse()
        .unwrap();
    let app = gatehouse_wsgi::WsgiApp::load(&spec, config(1)).unwrap();
    let a = Call::get("/").run(&app).await;
    assert_eq!((a.status(), a.text().as_str()), (200, "Hello, world!\n"));
    assert_eq!(a.header("content-length").as_deref(), Some("14"));
}

#[tokio::test]
async fn environ_has_every_required_key() {
    let app = load(CASES, "environ_dump", config(2));
    let call = Call::get("/x/y?a=1&b")
        .var("SCRIPT_NAME", "/mount")
        .var("HTTP_X_LATIN", "caf\u{e9}")
        .var("HTTPS", "on")
        .var("CONTENT_TYPE", "text/plain")
        .var("HTTP_CONTENT_TYPE", "text/plain")
        .var("CUSTOM_VAR", "kept");
    let v = call.run(&app).await.json();
    assert_eq!(v["REQUEST_METHOD"], "GET");
    assert_eq!(v["SCRIPT_NAME"], "/mount");
    assert_eq!(v["PATH_INFO"], "/x/y");
    assert_eq!(v["QUERY_STRING"], "a=1&b");
    assert_eq!(v["SERVER_NAME"], "test.local");
    assert_eq!(v["SERVER_PORT"], "80");
    assert_eq!(v["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(v["CUSTOM_VAR"], "kept");
    assert!(v.get("HTTP_CONTENT_TYPE").is_none(), "{v}");
    // "caf\u{e9}" arrives as UTF-8 bytes c3 a9 and becomes two latin-1 characters.
    assert_eq!(v["HTTP_X_LATIN"], "caf\u{c3}\u{a9}");
    assert_eq!(v["_cgi_values_are_str"], true);
    assert_eq!(v["wsgi.version"], serde_json::json!([1, 0]));
    assert_eq!(v["wsgi.url_scheme"], "https");
    assert_eq!(v["wsgi.input"], "Input");
    assert_eq!(v["wsgi.errors"], "Errors");
    assert_eq!(v["wsgi.multithread"], true);
    assert_eq!(v["wsgi.multiprocess"], false);
    assert_eq!(v["wsgi.run_once"], false);
    assert_eq!(v["wsgi.input_terminated"], true);
    assert_eq!(v["wsgi.file_wrapper"], "type");
    assert_eq!(v["gatehouse.protocol"], "fastcgi");
}

#[tokio::test]
async fn environ_fills_missing_variables() {
    let app = load(
        CASES,
        "environ_dump",
        gatehouse_wsgi::Config {
            threads: 1,
            multiprocess: true,
            ..Default::default()
        },
    );
    let mut call = Call::get("/")
        .without("SERVER_NAME")
        .without("SERVER_PORT")
        .without("SERVER_PROTOCOL")
        .without("QUERY_STRING")
        .without("PATH_INFO")
        .var("SCRIPT_NAME", "/")
        .var("HTTP_HOST", "example.org:8443");
    call.protocol = Protocol::Cgi;
    let v = call.run(&app).await.json();
    assert_eq!(v["SERVER_NAME"], "example.org");
    assert_eq!(v["SERVER_PORT"], "8443");
    assert_eq!(v["SERVER_PROTOCOL"], "HTTP/1.0");
    assert_eq!(v["QUERY_STRING"], "");
    assert_eq!(v["SCRIPT_NAME"], "", "SCRIPT_NAME can never be '/'");
    assert_eq!(v["PATH_INFO"], "/");
    assert_eq!(v["wsgi.url_scheme"], "http");
    assert_eq!(v["wsgi.run_once"], true, "CGI front end");
    assert_eq!(v["wsgi.multithread"], false, "one thread");
    assert_eq!(v["wsgi.multiprocess"], true);
}

#[tokio::test]
async fn write_callable_and_iterable_in_order() {
    let app = load(CASES, "writer", config(2));
    let a = Call::get("/").run(&app).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.text(), "one two three");
    assert_eq!(
        a.chunks,
        vec![4, 4, 5],
        "empty writes and chunks send nothing"
    );
    assert_eq!(a.end, End::Finish);
}

#[tokio::test]
async fn close_is_called_after_normal_iteration() {
    let app = load(CASES, "closing", config(2));
    let rec = Record::new();
    let a = Call::get("/")
        .var("HTTP_X_RECORD", &rec.header())
        .run(&app)
        .await;
    assert_eq!(
        (a.status(), a.text().as_str(), a.end),
        (200, "abc", End::Finish)
    );
    assert_eq!(rec.lines(), vec!["closed"]);
}

#[tokio::test]
async fn generator_runs_to_the_end() {
    let app = load(CASES, "generator", config(2));
    let rec = Record::new();
    let a = Call::get("/")
        .var("HTTP_X_RECORD", &rec.header())
        .run(&app)
        .await;
    assert_eq!(a.text(), "firstsecond");
    assert_eq!(rec.lines(), vec!["exhausted"]);
}

#[tokio::test]
async fn generator_cut_short_by_content_length_is_closed() {
    // Content-Length reached: iteration stops and close() raises GeneratorExit in the generator.
    let app = load(CASES, "content_length_over", config(2));
    let rec = Record::new();
    let a = Call::get("/")
        .var("HTTP_X_RECORD", &rec.header())
        .run(&app)
        .await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.text(), "hello", "never more than Content-Length");
    assert_eq!(a.end, End::Finish);
    assert_eq!(rec.lines(), vec!["closed"]);
}

#[tokio::test]
async fn fewer_bytes_than_content_length_aborts() {
    let app = load(CASES, "content_length_short", config(2));
    let a = Call::get("/").run(&app).await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.text(), "hi");
    assert_eq!(a.end, End::Abort);
    // A HEAD response announces the length of a body it does not carry.
    let a = Call::get("/").var("REQUEST_METHOD", "HEAD").run(&app).await;
    assert_eq!(a.end, End::Finish);
}

#[tokio::test]
async fn client_gone_mid_stream_stops_iteration_and_closes() {
    let app = load(CASES, "endless", config(2));
    let rec = Record::new();
    let mut call = Call::get("/").var("HTTP_X_RECORD", &rec.header());
    call.gone_after = Some(1 << 20);
    call.keep_body = false;
    let a = call.run(&app).await;
    assert_eq!(a.status(), 200);
    assert!(a.body_len >= 1 << 20);
    assert_eq!(a.end, End::Abort);
    assert_eq!(
        rec.lines(),
        vec!["closed"],
        "close() called when the client went away"
    );
}

#[tokio::test]
async fn exception_before_head_is_500_without_traceback() {
    let app = load(CASES, "raise_before", config(2));
    let a = Call::get("/").run(&app).await;
    assert_eq!(a.status(), 500);
    assert_eq!(a.end, End::Finish);
    assert!(!a.text().contains("secret"), "{}", a.text());
    assert!(!a.text().contains("Traceback"), "{}", a.text());

    let app = load(CASES, "raise_before_first_chunk", config(2));
    let rec = Record::new();
    let a = Call::get("/")
        .var("HTTP_X_RECORD", &rec.header())
        .run(&app)
        .await;
    assert_eq!(a.status(), 500, "start_response alone sends nothing");
    assert_eq!(rec.lines(), vec!["closed"]);
}

#[tokio::test]
async fn exception_after_head_aborts_and_closes() {
    let app = load(CASES, "raise_after", config(2));
    let rec = Record::new();
    let a = Call::get("/")
        .var("HTTP_X_RECORD", &rec.header())
        .run(&app)
        .await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.text(), "part one ");
    assert_eq!(a.end, End::Abort);
    assert_eq!(rec.lines(), vec!["closed"]);
}

#[tokio::test]
async fn exc_info_after_head_is_reraised() {
    let app = load(CASES, "exc_info_after_head", config(2));
    let rec = Record::new();
    let a = Call::get("/")
        .var("HTTP_X_RECORD", &rec.header())
        .run(&app)
        .await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.text(), "partial");
    assert_eq!(a.end, End::Abort);
    assert_eq!(rec.lines(), vec!["reraised boom after head"]);
}

#[tokio::test]
async fn exc_info_before_head_replaces_the_head() {
    let app = load(CASES, "exc_info_before_head", config(2));
    let a = Call::get("/").run(&app).await;
    assert_eq!(a.status(), 503);
    assert_eq!(
        a.head.as_ref().map(|h| h.reason().to_vec()),
        Some(b"Try Later".to_vec())
    );
    assert_eq!(a.header("x-replaced").as_deref(), Some("yes"));
    assert_eq!(a.text(), "custom error page");
    assert_eq!(a.end, End::Finish);
}

#[tokio::test]
async fn protocol_violations_are_500() {
    for case in [
        "start_twice",
        "bad_header",
        "hop_by_hop",
        "non_latin1_header",
        "str_body",
        "no_start_response",
    ] {
        let app = load(CASES, case, config(1));
        let a = Call::get("/").run(&app).await;
        assert_eq!(a.status(), 500, "{case}");
        assert_eq!(a.end, End::Finish, "{case}");
        assert!(a.header("set-cookie").is_none(), "{case}");
    }
}

#[tokio::test]
async fn start_response_inside_the_iterable() {
    let app = load(CASES, "lazy_start", config(1));
    let a = Call::get("/").run(&app).await;
    assert_eq!(
        (a.status(), a.text().as_str(), a.end),
        (200, "lazy", End::Finish)
    );
    let app = load(CASES, "body_before_start", config(1));
    let a = Call::get("/").run(&app).await;
    assert_eq!(a.status(), 500);
}

#[tokio::test]
async fn empty_body_sends_head_at_the_end() {
    let app = load(CASES, "empty_body", config(1));
    let a = Call::get("/").run(&app).await;
    assert_eq!(a.status(), 204);
    assert!(a.chunks.is_empty());
    assert_eq!(a.end, End::Finish);
}

async fn input_op(
    app: &gatehouse_wsgi::WsgiApp,
    op: &str,
    body: &str,
    chunk: usize,
) -> Vec<String> {
    let mut call = Call::post(&format!("/?{op}"), "text/plain", body.to_owned());
    call.chunk = chunk;
    let a = call.run(app).await;
    assert_eq!(a.status(), 200, "{op}: {}", a.text());
    serde_json::from_value(a.json()).expect("list of strings")
}

#[tokio::test]
async fn input_readline_readlines_and_iteration() {
    let app = load(CASES, "input_ops", config(2));
    let body = "first line\nsecond line\nthird\n\nlast";
    // Every way the front end may cut the body: one byte at a time up to all at once.
    for chunk in (1..=body.len()).chain([64 * 1024]) {
        assert_eq!(
            input_op(&app, "readline", body, chunk).await,
            ["first line\n", "secon", "d line\n", "third\n", "\nlast"],
            "chunk {chunk}"
        );
        let lines = ["first line\n", "second line\n", "third\n", "\n", "last"];
        assert_eq!(input_op(&app, "readlines", body, chunk).await, lines);
        assert_eq!(input_op(&app, "iter", body, chunk).await, lines);
        assert_eq!(
            input_op(&app, "readlines_hint", body, chunk).await,
            ["first line\n", "|", "second line\nthird\n\nlast"]
        );
        assert_eq!(
            input_op(&app, "read_n", body, chunk).await,
            ["fir", "st l", "ine\nsecond line\nthird\n\nlast", "", ""]
        );
    }
}

#[tokio::test]
async fn input_never_reads_past_content_length() {
    // The front end sends more than CONTENT_LENGTH: the app sees exactly CONTENT_LENGTH bytes.
    let app = load(CASES, "input_ops", config(1));
    let mut call = Call::post("/?read_all", "text/plain", "hello world");
    call = call.var("CONTENT_LENGTH", "5");
    call.chunk = 3;
    let a = call.run(&app).await;
    assert_eq!(a.json(), serde_json::json!(["hello", ""]));

    // The body stays open after CONTENT_LENGTH bytes (a client that sends nothing more): read()
    // and read(n) return at the length instead of waiting for more.
    for op in ["read_all", "read_length"] {
        let mut call = Call::post(&format!("/?{op}"), "text/plain", "exact");
        call.finish_body = false;
        let a = call.run(&app).await;
        assert_eq!(a.status(), 200, "{op}");
        assert_eq!(a.json()[0], "exact", "{op}");
    }
}

#[tokio::test]
async fn input_without_content_length_reads_to_the_end() {
    // A chunked upload: no CONTENT_LENGTH, the front end marks the end.
    let app = load(CASES, "input_ops", config(1));
    let mut call = Call::post("/?read_all", "text/plain", "chunked body").without("CONTENT_LENGTH");
    call.chunk = 4;
    assert_eq!(
        call.run(&app).await.json(),
        serde_json::json!(["chunked body", ""])
    );
}

#[tokio::test]
async fn aborted_body_is_client_gone() {
    // The front end's sender is dropped mid-body (client disconnected): the app's read raises,
    // and the request ends without a 500 page (there is nobody to send it to).
    let app = load(CASES, "read_body", config(1));
    let call = Call::post("/", "text/plain", "partial").var("CONTENT_LENGTH", "100");
    let (mut tx, req) = call.request();
    let (dtx, mut drx) = gatehouse_channel_request::delivery_queue();
    let resp =
        gatehouse_channel_request::Response::new(gatehouse_channel_request::QueueChannel::new(
            1,
            dtx,
            1024,
            gatehouse_channel_request::CancellationToken::new(),
        ));
    let feed = async move {
        tx.send(bytes::Bytes::from_static(b"partial"))
            .await
            .unwrap();
        drop(tx);
    };
    let ((), ()) = tokio::join!(
        gatehouse_channel_request::serve_request(&app, req, resp),
        feed
    );
    let mut outputs = Vec::new();
    while let Ok(d) = drx.try_recv() {
        outputs.push(d.output);
    }
    assert_eq!(outputs, vec![gatehouse_channel_request::Output::Abort]);
}

#[tokio::test]
async fn spec_errors_and_import_errors() {
    use gatehouse_wsgi::{Error, WsgiApp, WsgiSpec};
    let missing: WsgiSpec = format!("{}:nope", support::fixture(CASES).display())
        .parse()
        .unwrap();
    let err = WsgiApp::load(&missing, config(1))
        .err()
        .expect("no such callable");
    assert!(matches!(err, Error::Import { .. }), "{err}");
    assert!(err.to_string().contains("AttributeError"), "{err}");

    let no_default: WsgiSpec = support::fixture(CASES)
        .display()
        .to_string()
        .parse()
        .unwrap();
    let err = WsgiApp::load(&no_default, config(1))
        .err()
        .expect("no application/app");
    assert!(
        err.to_string().contains("neither `application` nor `app`"),
        "{err}"
    );

    let broken = tempfile::tempdir().unwrap();
    let file = broken.path().join("broken_app.py");
    std::fs::write(
        &file,
        "import json\n\ndef helper():\n    raise ValueError('at import')\n\nhelper()\n",
    )
    .unwrap();
    let spec: WsgiSpec = file.display().to_string().parse().unwrap();
    let err = WsgiApp::load(&spec, config(1))
        .err()
        .expect("raises at import");
    let text = err.to_string();
    assert!(text.contains("Traceback (most recent call last)"), "{text}");
    assert!(text.contains("ValueError: at import"), "{text}");
    assert!(
        text.contains("broken_app.py\", line 4, in helper"),
        "{text}"
    );

    let module: WsgiSpec = "gatehouse_no_such_module:app".parse().unwrap();
    let err = WsgiApp::load(&module, config(1)).err().expect("no module");
    assert!(err.to_string().contains("ModuleNotFoundError"), "{err}");

    let not_callable = tempfile::tempdir().unwrap();
    let file = not_callable.path().join("not_callable.py");
    std::fs::write(&file, "application = 42\n").unwrap();
    let spec: WsgiSpec = file.display().to_string().parse().unwrap();
    let err = WsgiApp::load(&spec, config(1)).err().expect("not callable");
    assert!(err.to_string().contains("not a callable"), "{err}");
}

#[tokio::test]
async fn module_spec_with_pythonpath_and_default_callable() {
    use gatehouse_wsgi::{Config, WsgiApp};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("gh_pkg")).unwrap();
    std::fs::write(dir.path().join("gh_pkg/__init__.py"), "").unwrap();
    std::fs::write(
        dir.path().join("gh_pkg/site.py"),
        "class Holder:\n    @staticmethod\n    def wsgi(environ, start_response):\n        start_response('200 OK', [])\n        return [b'nested']\n\ndef app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'default app']\n",
    )
    .unwrap();
    let config = Config {
        threads: 1,
        pythonpath: vec![dir.path().to_path_buf()],
        ..Config::default()
    };
    let nested =
        WsgiApp::load(&"gh_pkg.site:Holder.wsgi".parse().unwrap(), config.clone()).unwrap();
    assert_eq!(Call::get("/").run(&nested).await.text(), "nested");
    let default = WsgiApp::load(&"gh_pkg.site".parse().unwrap(), config).unwrap();
    assert_eq!(Call::get("/").run(&default).await.text(), "default app");
}
