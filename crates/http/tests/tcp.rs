//! End-to-end tests over real loopback TCP with raw clients: env translation, keep-alive,
//! pipelining, bodies in both directions, 100-continue, HEAD, limits, app failures.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

mod support;

use std::sync::Arc;

use bytes::Bytes;
use gatehouse_channel_request::ResponseHead;
use gatehouse_http::Config;
use support::*;
use tokio::io::AsyncWriteExt;

fn env_lines(resp: &Resp) -> std::collections::HashMap<String, String> {
    resp.text()
        .lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(n, v)| (n.to_string(), v.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn env_translation() {
    let srv = TestServer::start(env_app(), Config::default()).await;
    let mut c = srv.connect().await;
    c.send(
        "GET /odd%2Fpath/with%20space/../x?a=%20b&c=d+e&&raw%2F HTTP/1.1\r\nHost: example.test:8123\r\n\
         X-Rep: one\r\nCookie: a=1\r\nX-Rep: two\r\nCookie: b=2\r\nX_Spoof: bad\r\nProxy: http://evil:3128\r\n\
         User-Agent: raw\r\n\r\n",
    )
    .await;
    let resp = c.read_response().await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let env = env_lines(&resp);
    let v = |n: &str| env.get(n).map(String::as_str);
    assert_eq!(v("REQUEST_METHOD"), Some("GET"));
    assert_eq!(v("SCRIPT_NAME"), Some(""));
    assert_eq!(
        v("PATH_INFO"),
        Some("/odd/path/x"),
        "decoded, dot segment resolved"
    );
    assert_eq!(v("QUERY_STRING"), Some("a=%20b&c=d+e&&raw%2F"));
    assert_eq!(
        v("REQUEST_URI"),
        Some("/odd%2Fpath/with%20space/../x?a=%20b&c=d+e&&raw%2F")
    );
    assert_eq!(v("SERVER_NAME"), Some("example.test"));
    assert_eq!(v("SERVER_PORT"), Some("8123"));
    assert_eq!(v("SERVER_PROTOCOL"), Some("HTTP/1.1"));
    assert_eq!(v("GATEWAY_INTERFACE"), Some("CGI/1.1"));
    assert_eq!(v("SERVER_SOFTWARE"), Some(gatehouse_http::SERVER_SOFTWARE));
    assert_eq!(v("REMOTE_ADDR"), Some("127.0.0.1"));
    assert!(v("REMOTE_PORT").is_some_and(|p| p.parse::<u16>().is_ok()));
    assert_eq!(v("HTTP_X_REP"), Some("one, two"));
    assert_eq!(v("HTTP_COOKIE"), Some("a=1; b=2"));
    assert_eq!(v("HTTP_USER_AGENT"), Some("raw"));
    assert_eq!(v("HTTP_X_SPOOF"), None, "underscore header dropped");
    assert_eq!(v("HTTP_PROXY"), None, "httpoxy");
    assert_eq!(v("HTTPS"), None);
    assert_eq!(v("CONTENT_LENGTH"), None);
    // Space in the path survives as a decoded byte.
    c.send(get("/a%20b/%2Fc", "")).await;
    let env = env_lines(&c.read_response().await);
    assert_eq!(env.get("PATH_INFO").map(String::as_str), Some("/a b//c"));
    drop(c);
    srv.stop().await;
}

#[tokio::test]
async fn echo_sees_the_same_request() {
    let srv = TestServer::start(echo(), Config::default()).await;
    let mut c = srv.connect().await;
    c.send(post("/p%20q/r?x=1&y=%41", b"hello")).await;
    let json = c.read_response().await.json();
    assert_eq!(json["method"], "POST");
    assert_eq!(json["path"], "/p q/r");
    assert_eq!(json["query"], "x=1&y=%41");
    assert_eq!(json["headers"]["host"], "test.local");
    assert_eq!(json["body_len"], 5);
    assert_eq!(json["body_sha256"], sha256_hex(b"hello"));
    srv.stop().await;
}

#[tokio::test]
async fn keep_alive_serves_many_requests() {
    let srv = TestServer::start(echo(), Config::default()).await;
    let mut c = srv.connect().await;
    for i in 0..5 {
        c.send(get(&format!("/n{i}"), "")).await;
        let resp = c.read_response().await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["path"], format!("/n{i}"));
    }
    // HTTP/1.0 without keep-alive: answered, then closed.
    c.send("GET /old HTTP/1.0\r\n\r\n").await;
    let resp = c.read_response().await;
    assert_eq!(resp.json()["path"], "/old");
    assert_eq!(c.read_to_close().await.unwrap(), b"");
    srv.stop().await;
}

#[tokio::test]
async fn pipelined_requests_answered_in_order() {
    let srv = TestServer::start(echo(), Config::default()).await;
    let mut c = srv.connect().await;
    let mut all = Vec::new();
    all.extend_from_slice(get("/first", "").as_bytes());
    all.extend_from_slice(&post("/second", b"0123456789"));
    all.extend_from_slice(get("/third?q", "").as_bytes());
    c.send(&all).await;
    let r1 = c.read_response().await.json();
    let r2 = c.read_response().await.json();
    let r3 = c.read_response().await.json();
    assert_eq!(
        (
            r1["path"].as_str(),
            r2["path"].as_str(),
            r3["path"].as_str()
        ),
        (Some("/first"), Some("/second"), Some("/third"))
    );
    assert_eq!(r2["body_len"], 10);
    assert_eq!(r3["query"], "q");
    srv.stop().await;
}

#[tokio::test]
async fn chunked_upload_reaches_echo() {
    let srv = TestServer::start(echo(), Config::default()).await;
    let mut c = srv.connect().await;
    let body = pattern(300_000);
    c.send("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    for piece in body.chunks(7_001) {
        c.send(format!("{:x};ext=1\r\n", piece.len())).await;
        c.send(piece).await;
        c.send("\r\n").await;
    }
    c.send("0\r\nX-Trailer: ignored\r\n\r\n").await;
    let resp = c.read_response().await;
    assert_eq!(resp.status, 200);
    let json = resp.json();
    assert_eq!(json["body_len"], 300_000);
    assert_eq!(json["body_sha256"], sha256_hex(&body));
    // The connection is still usable.
    c.send(get("/after", "")).await;
    assert_eq!(c.read_response().await.json()["path"], "/after");
    srv.stop().await;
}

#[tokio::test]
async fn chunked_upload_env_has_no_content_length() {
    let srv = TestServer::start(env_app(), Config::default()).await;
    let mut c = srv.connect().await;
    c.send("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Type: text/x\r\n\r\n3\r\nabc\r\n0\r\n\r\n").await;
    let env = env_lines(&c.read_response().await);
    assert_eq!(env.get("CONTENT_LENGTH"), None);
    assert_eq!(env.get("CONTENT_TYPE").map(String::as_str), Some("text/x"));
    assert_eq!(env.get("HTTP_CONTENT_TYPE"), None);
    drop(c);
    srv.stop().await;
}

#[tokio::test]
async fn response_without_length_is_chunked() {
    static CHUNKS: &[&[u8]] = &[b"alpha ", b"beta ", b"gamma"];
    let srv = TestServer::start(chunked_app(CHUNKS), Config::default()).await;
    let mut c = srv.connect().await;
    c.send(get("/", "")).await;
    let resp = c.read_response().await;
    assert!(resp.chunked, "{:?}", resp.headers);
    assert_eq!(resp.body, b"alpha beta gamma");
    // HTTP/1.0 has no chunked coding: the body ends with the connection.
    c.send("GET / HTTP/1.0\r\n\r\n").await;
    let resp = c.read_response().await;
    assert!(!resp.chunked);
    assert_eq!(resp.body, b"alpha beta gamma");
    srv.stop().await;
}

#[tokio::test]
async fn large_streamed_response() {
    let big: &'static [u8] = Box::leak(pattern(3 << 20).into_boxed_slice());
    let srv = TestServer::start(
        length_app(big.len(), big),
        Config {
            response_budget: 64 * 1024,
            ..Config::default()
        },
    )
    .await;
    let mut c = srv.connect().await;
    c.send(get("/", "")).await;
    let resp = c.read_response().await;
    assert_eq!(resp.body.len(), big.len());
    assert!(resp.body == big);
    srv.stop().await;
}

#[tokio::test]
async fn expect_100_continue() {
    let srv = TestServer::start(echo(), Config::default()).await;
    let mut c = srv.connect().await;
    c.send("POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let interim = c.read_head().await;
    assert_eq!(interim.status, 100);
    c.send("data").await;
    let resp = c.read_response().await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["body_len"], 4);
    srv.stop().await;
}

#[tokio::test]
async fn app_that_ignores_the_body_with_expect_gets_its_answer_out() {
    let refuse = app(|_req, resp| {
        Box::pin(async move {
            resp.send_full(417, "text/plain", "no\n").await?;
            Ok(())
        })
    });
    let srv = TestServer::start(refuse, Config::default()).await;
    let mut c = srv.connect().await;
    c.send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
        .await;
    // The app never reads the body, so the client is never told to send it: no 100 first.
    let first = c.read_head().await;
    assert_eq!(first.status, 417);
    drop(c);
    srv.stop().await;
}

#[tokio::test]
async fn head_has_no_body() {
    let srv = TestServer::start(echo(), Config::default()).await;
    let mut c = srv.connect().await;
    c.send("HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let resp = c.read_response_to(true).await;
    assert_eq!(resp.status, 200);
    let announced: usize = resp.header("content-length").unwrap().parse().unwrap();
    assert!(announced > 0);
    // No body bytes: the next response follows the head directly.
    c.send(get("/next", "")).await;
    let resp = c.read_response().await;
    assert_eq!(resp.json()["path"], "/next");
    // A chunked app answering HEAD: still no body.
    static CHUNKS: &[&[u8]] = &[b"x"];
    let srv2 = TestServer::start(chunked_app(CHUNKS), Config::default()).await;
    let mut c2 = srv2.connect().await;
    c2.send("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").await;
    c2.send(get("/", "")).await;
    assert_eq!(c2.read_response_to(true).await.status, 200);
    assert_eq!(c2.read_response().await.body, b"x");
    srv.stop().await;
    srv2.stop().await;
}

#[tokio::test]
async fn oversized_head_gets_431_and_a_log_line() {
    let (logs, _guard) = Logs::capture();
    let srv = TestServer::start(
        echo(),
        Config {
            max_header_bytes: 16 * 1024,
            ..Config::default()
        },
    )
    .await;
    let mut c = srv.connect().await;
    let local = c.stream.get_ref().local_addr().unwrap();
    c.send(get("/", &format!("X-Big: {}\r\n", "a".repeat(20_000))))
        .await;
    let resp = c.read_response().await;
    assert_eq!(resp.status, 431);
    drop(c);
    let mut c = srv.connect().await;
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    c.send(get("/", &many)).await;
    assert_eq!(c.read_response().await.status, 431);
    drop(c);
    // A head just under the limit is fine.
    let mut c = srv.connect().await;
    c.send(get("/", &format!("X-Big: {}\r\n", "a".repeat(15_000))))
        .await;
    assert_eq!(c.read_response().await.status, 200);
    srv.stop().await;
    let text = logs.text();
    assert!(
        text.contains("431") && text.contains(&local.to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn malformed_requests_get_400_and_a_log_line() {
    let (logs, _guard) = Logs::capture();
    let srv = TestServer::start(echo(), Config::default()).await;
    let mut c = srv.connect().await;
    let local = c.stream.get_ref().local_addr().unwrap();
    c.send("GARBAGE\x01 / HTTP/1.1\r\n\r\n").await;
    assert_eq!(c.read_response().await.status, 400);
    assert_eq!(c.read_to_close().await.unwrap(), b"");
    drop(c);
    for bad in [
        "GET / HTTP/1.1\r\n\r\n".to_string(), // no Host
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_string(), // two Hosts
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n".to_string(), // bad Host
        "GET /a/%00 HTTP/1.1\r\nHost: h\r\n\r\n".to_string(), // NUL
        "GET /../etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n".to_string(), // above root
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n".to_string(), // bad length
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_string(), // bad chunk
    ] {
        let mut c = srv.connect().await;
        c.send(&bad).await;
        let resp = c.read_response().await;
        assert_eq!(resp.status, 400, "{bad:?}");
    }
    srv.stop().await;
    let text = logs.text();
    assert!(
        text.contains("request rejected with 400") && text.contains(&local.to_string()),
        "{text}"
    );
    assert!(
        text.contains("GARBAGE\\x01"),
        "peer bytes escaped in the log: {text}"
    );
    assert!(text.contains("NUL byte in path"), "{text}");
}

#[tokio::test]
async fn connect_is_not_implemented() {
    let srv = TestServer::start(echo(), Config::default()).await;
    let mut c = srv.connect().await;
    c.send("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.status, 501);
    drop(c);
    srv.stop().await;
}

#[tokio::test]
async fn app_panic_is_500_and_connection_survives() {
    let panics = app(|req, resp| {
        Box::pin(async move {
            if req.env.path_info() == b"/boom" {
                panic!("kaboom");
            }
            resp.send_full(200, "text/plain", "fine").await?;
            Ok(())
        })
    });
    let srv = TestServer::start(panics, Config::default()).await;
    let mut c = srv.connect().await;
    c.send(get("/boom", "")).await;
    let resp = c.read_response().await;
    assert_eq!(resp.status, 500);
    c.send(get("/ok", "")).await;
    assert_eq!(c.read_response().await.body, b"fine");
    srv.stop().await;
}

#[tokio::test]
async fn app_writing_past_content_length_is_cut_and_closed() {
    let (logs, _guard) = Logs::capture();
    let srv = TestServer::start(length_app(5, b"0123456789"), Config::default()).await;
    let mut c = srv.connect().await;
    c.send(get("/", "")).await;
    c.send(get("/", "")).await; // pipelined: must not be answered on this connection
    let resp = c.read_response().await;
    assert_eq!(resp.body, b"01234");
    assert_eq!(
        c.read_to_close().await.unwrap(),
        b"",
        "nothing after the cut body"
    );
    srv.stop().await;
    assert!(
        logs.text().contains("more than its content-length"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn app_writing_exactly_then_more_is_detected() {
    let (logs, _guard) = Logs::capture();
    let two_writes = app(|_req, resp| {
        Box::pin(async move {
            resp.send_head(ResponseHead::new(200).with_header("Content-Length", "3")?)
                .await?;
            resp.write(Bytes::from_static(b"abc")).await?;
            resp.write(Bytes::from_static(b"def")).await?;
            resp.finish().await?;
            Ok(())
        })
    });
    let srv = TestServer::start(two_writes, Config::default()).await;
    let mut c = srv.connect().await;
    c.send(get("/", "")).await;
    assert_eq!(c.read_response().await.body, b"abc");
    // The extra bytes are discarded (never taken for a next response) and the connection closed.
    assert_eq!(c.read_to_close().await.unwrap(), b"");
    srv.stop().await;
    assert!(
        logs.text().contains("more than its content-length"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn app_finishing_short_aborts_the_connection() {
    let (logs, _guard) = Logs::capture();
    let srv = TestServer::start(length_app(10, b"01234"), Config::default()).await;
    let mut c = srv.connect().await;
    c.send(get("/", "")).await;
    // Either nothing at all or a head and fewer than 10 body bytes, then the close: never a
    // response the client could take as complete.
    let all = c.read_to_close().await.unwrap_or_default();
    if let Some(i) = all.windows(4).position(|w| w == b"\r\n\r\n") {
        assert!(all.len() - (i + 4) < 10, "{}", all.escape_ascii());
        assert!(all.starts_with(b"HTTP/1.1 200"));
    }
    srv.stop().await;
    assert!(
        logs.text()
            .contains("finished after 5 of its content-length of 10"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn answer_without_reading_upload_is_seen_by_the_client() {
    // The app answers 413 at once; the client is still uploading 4 MiB. The lingering close must
    // let it read the 413 instead of getting a reset.
    let too_big = app(|_req, resp| {
        Box::pin(async move {
            resp.send_full(413, "text/plain", "too big\n").await?;
            Ok(())
        })
    });
    let srv = TestServer::start(too_big, Config::default()).await;
    let c = srv.connect().await;
    let (mut rd, mut wr) = c.stream.into_inner().into_split();
    let upload = tokio::spawn(async move {
        let body = pattern(4 << 20);
        let head = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        wr.write_all(head.as_bytes()).await?;
        wr.write_all(&body).await
    });
    let mut text = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut text)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.ends_with("too big\n"), "{text}");
    let _ = upload.await.unwrap();
    srv.stop().await;
}

#[tokio::test]
async fn client_gone_cancels_the_app() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let waits = app(move |_req, resp| {
        let tx = tx.clone();
        Box::pin(async move {
            struct Dropped(tokio::sync::mpsc::UnboundedSender<&'static str>);
            impl Drop for Dropped {
                fn drop(&mut self) {
                    let _ = self.0.send("dropped");
                }
            }
            let _guard = Dropped(tx.clone());
            tx.send("started").unwrap();
            resp.client_gone().await;
            let _ = tx.send("saw client gone");
            std::future::pending::<()>().await;
            Ok(())
        })
    });
    let srv = TestServer::start(waits, Config::default()).await;
    let mut c = srv.connect().await;
    c.send(get("/", "")).await;
    assert_eq!(rx.recv().await, Some("started"));
    drop(c);
    // The app's future is dropped (it may or may not get to see client_gone first).
    let mut seen = Vec::new();
    while let Some(event) = rx.recv().await {
        seen.push(event);
        if event == "dropped" {
            break;
        }
    }
    assert_eq!(seen.last(), Some(&"dropped"), "{seen:?}");
    srv.stop().await;
}

#[tokio::test]
async fn connection_limit_answers_503() {
    let srv = TestServer::start(
        echo(),
        Config {
            max_conns: 1,
            ..Config::default()
        },
    )
    .await;
    let mut first = srv.connect().await;
    first.send(get("/", "")).await;
    assert_eq!(first.read_response().await.status, 200);
    let mut second = srv.connect().await;
    second.send(get("/", "")).await;
    let resp = second.read_response().await;
    assert_eq!(resp.status, 503);
    assert_eq!(srv.server.open_connections(), 1);
    drop((first, second));
    srv.stop().await;
}

#[tokio::test]
async fn curl_basic_get() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl not installed: skipping the curl check");
        return;
    }
    let srv = TestServer::start(echo(), Config::default()).await;
    let url = format!("http://{}/via%20curl?x=1", srv.addr);
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "-H",
            "X-Curl: yes",
            "--data-binary",
            "payload",
            &url,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["path"], "/via curl");
    assert_eq!(json["query"], "x=1");
    assert_eq!(json["headers"]["x-curl"], "yes");
    assert_eq!(json["body_sha256"], sha256_hex(b"payload"));
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--fail", &format!("http://{}/plain", srv.addr)])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    srv.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_request() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let waits = app(move |_req, resp| {
        let (g, started_tx) = (g.clone(), started_tx.clone());
        Box::pin(async move {
            started_tx.send(()).unwrap();
            g.notified().await;
            resp.send_full(200, "text/plain", "finished").await?;
            Ok(())
        })
    });
    let srv = TestServer::start(waits, Config::default()).await;
    let mut busy = srv.connect().await;
    let mut idle = srv.connect().await;
    busy.send(get("/", "")).await;
    started.recv().await.unwrap();
    srv.shutdown.cancel();
    // The idle connection is closed, the busy one answered then closed.
    assert_eq!(idle.read_to_close().await.unwrap(), b"");
    gate.notify_one();
    let resp = busy.read_response().await;
    assert_eq!(resp.body, b"finished");
    assert_eq!(busy.read_to_close().await.unwrap(), b"");
    srv.stop().await;
}
