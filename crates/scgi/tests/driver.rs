//! Driver tests: whole connections over `tokio::io::duplex`, with paused time for the timeouts.

#![allow(clippy::unwrap_used)] // reason: test helpers: a failed unwrap is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::{
    AppError, Application, BoxFuture, CancellationToken, Peer, Request, Response, ResponseHead,
};
use gatehouse_scgi::{encode_head, serve_connection, Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// Streams the request body back, after a head naming the method and the announced length.
struct EchoBody {
    calls: AtomicUsize,
}

impl Application for EchoBody {
    fn call<'a>(
        &'a self,
        mut req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let head = ResponseHead::new(200)
                .with_header("Content-Type", "application/octet-stream")?
                .with_header("X-Method", req.env.method().to_vec())?;
            let mut first = true;
            while let Some(chunk) = req.body.chunk().await? {
                if first {
                    resp.send_head(head.clone()).await?;
                    first = false;
                }
                resp.write(chunk).await?;
            }
            if first {
                resp.send_head(head).await?;
            }
            Ok(())
        })
    }
}

fn echo() -> Arc<EchoBody> {
    Arc::new(EchoBody {
        calls: AtomicUsize::new(0),
    })
}

/// Sends `dropped` when the app's future is dropped (cancelled) or returns.
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Waits for `gate` before doing `then`; reports its end through a [`DropSignal`].
struct Gated {
    gate: Arc<Notify>,
    started: Arc<Notify>,
    ended: Mutex<Option<oneshot::Sender<()>>>,
    then: Then,
}

#[derive(Clone, Copy)]
enum Then {
    /// Read the whole body, answer its length.
    CountBody,
    /// Answer "early" without reading the body.
    AnswerEarly,
    /// Stream `x` bytes forever.
    StreamForever,
}

impl Application for Gated {
    fn call<'a>(
        &'a self,
        mut req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        let signal = DropSignal(self.ended.lock().unwrap().take());
        Box::pin(async move {
            let _signal = signal;
            self.started.notify_one();
            self.gate.notified().await;
            match self.then {
                Then::CountBody => {
                    let mut n = 0;
                    while let Some(c) = req.body.chunk().await? {
                        n += c.len();
                    }
                    resp.send_full(200, "text/plain", format!("{n}")).await?;
                }
                Then::AnswerEarly => resp.send_full(200, "text/plain", "early").await?,
                Then::StreamForever => {
                    resp.send_head(ResponseHead::new(200)).await?;
                    loop {
                        resp.write(Bytes::from(vec![b'x'; 4096])).await?;
                    }
                }
            }
            Ok(())
        })
    }
}

fn gated(then: Then) -> (Arc<Gated>, Arc<Notify>, oneshot::Receiver<()>) {
    let gate = Arc::new(Notify::new());
    let (tx, rx) = oneshot::channel();
    let app = Arc::new(Gated {
        gate: gate.clone(),
        started: Arc::new(Notify::new()),
        ended: Mutex::new(Some(tx)),
        then,
    });
    (app, gate, rx)
}

fn request(pairs: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_head(
        pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        &mut out,
    );
    out.extend_from_slice(body);
    out.to_vec()
}

fn post(body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    request(
        &[
            ("CONTENT_LENGTH", &len),
            ("SCGI", "1"),
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/x"),
        ],
        body,
    )
}

fn peer() -> Peer {
    Peer::Tcp("192.0.2.7:40000".parse().unwrap())
}

/// Starts a connection; returns the client end and the driver's task.
fn connect(app: Arc<dyn Application>, config: Config) -> (DuplexStream, JoinHandle<()>) {
    connect_to(&Server::new(app, config), CancellationToken::new())
}

fn connect_to(server: &Arc<Server>, shutdown: CancellationToken) -> (DuplexStream, JoinHandle<()>) {
    let (client, conn) = tokio::io::duplex(16 * 1024);
    let task = tokio::spawn(serve_connection(server.clone(), conn, peer(), shutdown));
    (client, task)
}

/// Writes `input` and half-closes while reading the whole answer (as a front server does: an
/// app may answer before it has read the body).
async fn exchange(app: Arc<dyn Application>, config: Config, input: &[u8]) -> Vec<u8> {
    let (client, task) = connect(app, config);
    let (mut rd, mut wr) = tokio::io::split(client);
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        // A server that answered and closed early may refuse the rest: not an error here.
        if wr.write_all(&input).await.is_ok() {
            let _ = wr.shutdown().await;
        }
    });
    let mut out = Vec::new();
    rd.read_to_end(&mut out).await.unwrap();
    writer.await.unwrap();
    task.await.unwrap();
    out
}

fn split_response(out: &[u8]) -> (String, Vec<u8>) {
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", out.escape_ascii().to_string()));
    (
        String::from_utf8(out[..end].to_vec()).unwrap(),
        out[end + 4..].to_vec(),
    )
}

#[tokio::test]
async fn post_is_echoed_and_connection_closed() {
    let app = echo();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let out = exchange(app.clone(), Config::default(), &post(&body)).await;
    let (head, got) = split_response(&out);
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert!(head.contains("X-Method: POST"), "{head}");
    assert_eq!(got, body);
    assert_eq!(app.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn get_without_body() {
    let input = request(
        &[
            ("CONTENT_LENGTH", "0"),
            ("SCGI", "1"),
            ("REQUEST_METHOD", "GET"),
        ],
        b"",
    );
    let out = exchange(echo(), Config::default(), &input).await;
    let (head, body) = split_response(&out);
    assert!(head.contains("X-Method: GET"));
    assert!(body.is_empty());
}

#[tokio::test]
async fn bytes_after_the_body_never_reach_the_app() {
    let mut input = post(b"abc");
    input.extend_from_slice(b"EXTRA BYTES");
    let out = exchange(echo(), Config::default(), &input).await;
    assert_eq!(split_response(&out).1, b"abc");
}

#[tokio::test]
async fn without_half_close_the_response_still_ends_with_close() {
    let (mut client, task) = connect(echo(), Config::default());
    client.write_all(&post(b"hello")).await.unwrap();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    assert_eq!(split_response(&out).1, b"hello");
    task.await.unwrap();
}

#[tokio::test]
async fn half_closed_client_gets_the_whole_response() {
    let (app, gate, _ended) = gated(Then::CountBody);
    let (mut client, task) = connect(app, Config::default());
    client.write_all(&post(&[7u8; 70_000])).await.unwrap();
    client.shutdown().await.unwrap();
    tokio::task::yield_now().await;
    gate.notify_one();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    assert_eq!(split_response(&out).1, b"70000");
    task.await.unwrap();
}

#[tokio::test]
async fn client_gone_while_writing_cancels_the_app() {
    let (app, gate, ended) = gated(Then::StreamForever);
    let (mut client, task) = connect(app, Config::default());
    client.write_all(&post(b"")).await.unwrap();
    gate.notify_one();
    let mut first = [0u8; 100];
    client.read_exact(&mut first).await.unwrap();
    drop(client);
    ended.await.unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn reset_after_the_body_cancels_the_app() {
    let (app, _gate, ended) = gated(Then::CountBody);
    let started = app.started.clone();
    let io = tokio_test::io::Builder::new()
        .read(&post(b"body"))
        .wait(Duration::from_millis(10))
        .read_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
        .build();
    let server = Server::new(app, Config::default());
    let task = tokio::spawn(serve_connection(
        server,
        io,
        peer(),
        CancellationToken::new(),
    ));
    started.notified().await;
    ended.await.expect("the app was cancelled");
    task.await.unwrap();
}

#[tokio::test]
async fn server_ready_waits_for_a_free_slot() {
    let server = Server::new(
        echo(),
        Config {
            max_conns: 1,
            ..Config::default()
        },
    );
    server.ready().await;
    let (mut client, task) = connect_to(&server, CancellationToken::new());
    client.write_all(b"2").await.unwrap();
    tokio::task::yield_now().await;
    let ready = server.ready();
    tokio::pin!(ready);
    assert!(
        futures_poll_once(&mut ready).is_pending(),
        "full server is not ready"
    );
    drop(client);
    task.await.unwrap();
    ready.await;
}

fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(f).poll(&mut cx)
}

#[tokio::test]
async fn eof_inside_the_body_fails_the_body_of_an_app_that_reads_it() {
    // The app's body stream fails with the short body; the app reading it gets the error and
    // the request is answered 400 (an app that does not read its body answers as it answers:
    // tests/hostile.rs runs both against the binary).
    let (app, gate, ended) = gated(Then::CountBody);
    let started = app.started.clone();
    let (mut client, task) = connect(app, Config::default());
    let mut input = post(&[1u8; 10]);
    input.truncate(input.len() - 4);
    client.write_all(&input).await.unwrap();
    started.notified().await;
    client.shutdown().await.unwrap();
    gate.notify_one();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    assert!(out.starts_with(b"Status: 400 Bad Request\r\n"), "{out:?}");
    ended.await.expect("the app ended");
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stalled_body_times_out() {
    let (app, gate, ended) = gated(Then::CountBody);
    gate.notify_one();
    let config = Config {
        idle_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let (mut client, task) = connect(app, config);
    let mut input = post(&[1u8; 10]);
    input.truncate(input.len() - 4);
    client.write_all(&input).await.unwrap();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    assert!(out.starts_with(b"Status: 400 Bad Request\r\n"));
    ended.await.unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn app_answering_early_gets_its_response_through() {
    // The app answers before the body is read; the driver reads and discards the rest so the
    // client, still sending, is not cut off (lingering close).
    let (app, gate, _ended) = gated(Then::AnswerEarly);
    gate.notify_one();
    let (client, task) = connect(app, Config::default());
    let (mut rd, mut wr) = tokio::io::split(client);
    let body = vec![0u8; 1 << 20];
    let writer = tokio::spawn(async move { wr.write_all(&post(&body)).await });
    let mut out = Vec::new();
    rd.read_to_end(&mut out).await.unwrap();
    assert_eq!(split_response(&out).1, b"early");
    writer.await.unwrap().unwrap();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn body_backpressure_stops_reading() {
    let (app, gate, _ended) = gated(Then::CountBody);
    let config = Config {
        body_queue_chunks: 1,
        ..Config::default()
    };
    let (client, task) = connect(app, config);
    let (mut rd, mut wr) = tokio::io::split(client);
    let sent = Arc::new(AtomicUsize::new(0));
    let total = 4 << 20;
    let input = post(&vec![3u8; total]);
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        for piece in input.chunks(4096) {
            wr.write_all(piece).await.unwrap();
            counter.fetch_add(piece.len(), Ordering::SeqCst);
        }
    });
    // Paused time advances only once every task is blocked: the writer is then stuck.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stuck_at = sent.load(Ordering::SeqCst);
    assert!(
        stuck_at < 512 * 1024,
        "{stuck_at} bytes accepted while the app read nothing"
    );
    gate.notify_one();
    writer.await.unwrap();
    let mut out = Vec::new();
    rd.read_to_end(&mut out).await.unwrap();
    assert_eq!(split_response(&out).1, total.to_string().as_bytes());
    task.await.unwrap();
}

/// Sends a head and some body, then fails.
struct FailsMidway;

impl Application for FailsMidway {
    fn call<'a>(
        &'a self,
        _: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            resp.send_head(ResponseHead::new(200)).await?;
            resp.write(Bytes::from(vec![b'p'; 100_000])).await?;
            Err("broken midway".into())
        })
    }
}

/// Over TCP: one request, the client's read result.
async fn tcp_exchange(app: Arc<dyn Application>) -> std::io::Result<Vec<u8>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(app, Config::default());
    let serving = tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        serve_connection(server, stream, Peer::Tcp(peer), CancellationToken::new()).await;
    });
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client.write_all(&post(b"")).await.unwrap();
    let mut out = Vec::new();
    let read = client.read_to_end(&mut out).await.map(|_| out);
    serving.await.unwrap();
    read
}

#[tokio::test]
async fn incomplete_response_resets_tcp() {
    let err = tcp_exchange(Arc::new(FailsMidway)).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    let out = tcp_exchange(echo()).await.unwrap();
    assert!(
        out.starts_with(b"Status: 200 OK\r\n"),
        "a complete response ends cleanly"
    );
}

#[tokio::test]
async fn panicking_app_gets_500() {
    struct Panics;
    impl Application for Panics {
        fn call<'a>(
            &'a self,
            _: Request,
            _: &'a mut Response,
        ) -> BoxFuture<'a, Result<(), AppError>> {
            Box::pin(async { panic!("boom") })
        }
    }
    let out = exchange(Arc::new(Panics), Config::default(), &post(b"")).await;
    assert!(out.starts_with(b"Status: 500 Internal Server Error\r\n"));
}

#[tokio::test]
async fn silent_close_is_not_a_request() {
    let app = echo();
    let out = exchange(app.clone(), Config::default(), b"").await;
    assert!(out.is_empty());
    assert_eq!(app.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn shutdown_closes_a_connection_waiting_for_its_head() {
    let server = Server::new(echo(), Config::default());
    let shutdown = CancellationToken::new();
    let (mut client, task) = connect_to(&server, shutdown.clone());
    client.write_all(b"24:CONTENT").await.unwrap();
    shutdown.cancel();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    assert!(out.is_empty());
    task.await.unwrap();
}

#[tokio::test]
async fn connection_over_the_limit_gets_503() {
    let server = Server::new(
        echo(),
        Config {
            max_conns: 1,
            ..Config::default()
        },
    );
    let input = post(b"ok");
    let (mut first, first_task) = connect_to(&server, CancellationToken::new());
    first.write_all(&input[..1]).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(server.active_connections(), 1);
    let (mut second, second_task) = connect_to(&server, CancellationToken::new());
    second.shutdown().await.unwrap();
    let mut out = Vec::new();
    second.read_to_end(&mut out).await.unwrap();
    assert!(out.starts_with(b"Status: 503 Service Unavailable\r\n"));
    second_task.await.unwrap();
    first.write_all(&input[1..]).await.unwrap();
    first.shutdown().await.unwrap();
    let mut out = Vec::new();
    first.read_to_end(&mut out).await.unwrap();
    assert_eq!(split_response(&out).1, b"ok");
    first_task.await.unwrap();
    assert_eq!(server.active_connections(), 0);
}

/// Bad inputs: each is answered 400, the app never runs, the connection ends.
#[tokio::test]
async fn bad_requests_get_400() {
    let config = Config {
        max_header_bytes: 100,
        ..Config::default()
    };
    let long = "v".repeat(100);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no CONTENT_LENGTH", request(&[("SCGI", "1")], b"")),
        (
            "CONTENT_LENGTH not first",
            request(&[("SCGI", "1"), ("CONTENT_LENGTH", "0")], b""),
        ),
        (
            "CONTENT_LENGTH not digits",
            request(&[("CONTENT_LENGTH", "12a"), ("SCGI", "1")], b""),
        ),
        (
            "length not digits",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("absurd length", b"99999999999999999999999:".to_vec()),
        (
            "header block over the limit",
            request(&[("CONTENT_LENGTH", "0"), ("SCGI", "1"), ("X", &long)], b""),
        ),
        ("missing SCGI", request(&[("CONTENT_LENGTH", "0")], b"")),
        (
            "SCGI not 1",
            request(&[("CONTENT_LENGTH", "0"), ("SCGI", "2")], b""),
        ),
        (
            "missing comma",
            b"24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;".to_vec(),
        ),
        (
            "duplicate names",
            request(
                &[
                    ("CONTENT_LENGTH", "0"),
                    ("SCGI", "1"),
                    ("A", "1"),
                    ("A", "2"),
                ],
                b"",
            ),
        ),
        ("truncated head", b"24:CONTENT_LENGTH\x000".to_vec()),
    ];
    for (what, input) in cases {
        let app = echo();
        let out = exchange(app.clone(), config.clone(), &input).await;
        assert!(
            out.starts_with(b"Status: 400 Bad Request\r\n"),
            "{what}: {:?}",
            out.escape_ascii().to_string()
        );
        assert!(out.ends_with(b"\r\n\r\nBad Request\n"), "{what}");
        assert_eq!(app.calls.load(Ordering::SeqCst), 0, "{what}");
    }
}

#[tokio::test(start_paused = true)]
async fn slow_head_times_out_with_400() {
    let config = Config {
        header_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let (mut client, task) = connect(echo(), config);
    client.write_all(b"24:CONTENT_LEN").await.unwrap();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    assert!(out.starts_with(b"Status: 400 Bad Request\r\n"));
    task.await.unwrap();
}

mod logs {
    //! The one log line of a bad request: it names the peer and quotes its bytes escaped.

    use std::io::Write;

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[tokio::test]
    async fn one_line_with_peer_and_escaped_bytes() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let out = exchange(echo(), Config::default(), b"GET /\x1b[31m HTTP/1.1\r\n").await;
        assert!(out.starts_with(b"Status: 400"));
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].contains("WARN"), "{text}");
        assert!(lines[0].contains("peer=192.0.2.7:40000"), "{text}");
        assert!(lines[0].contains(r#"GET /\x1b[31m HTTP/1.1\r\n"#), "{text}");
    }
}
