//! Test support: a raw FastCGI client over `tokio::io::duplex`, record builders, and a test
//! application whose behaviour each request picks with an `APP` parameter.
#![allow(dead_code)] // reason: each test file uses a different part of this module

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::{
    AppError, Application, BoxFuture, CancellationToken, Peer, Request, Response, ResponseHead,
};
use gatehouse_fastcgi::codec::RecordCodec;
use gatehouse_fastcgi::record::{
    BeginRequestBody, EndRequestBody, Payload, Record, Role, FCGI_KEEP_CONN,
};
use gatehouse_fastcgi::{nv, serve_connection, Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, Encoder};

/// What the test app saw and did.
#[derive(Default)]
pub(crate) struct Seen {
    /// Calls of the app.
    pub(crate) calls: AtomicUsize,
    /// App futures dropped before they completed (cancelled).
    pub(crate) cancelled: AtomicUsize,
    /// Body bytes the `big` app has written so far.
    pub(crate) written: AtomicUsize,
    /// Opens the `gate` and `hold` apps.
    pub(crate) gate: Notify,
}

/// The test application. `APP` picks the behaviour:
/// - `echo` (default): reads the whole body, answers 200 with it and `X-Len`;
/// - `gate`: waits for `seen.gate`, then answers "gated";
/// - `hold`: waits for `seen.gate` before reading the body, then echoes its length;
/// - `first`: reads one body chunk and answers with it at once;
/// - `hang`: never answers (until cancelled);
/// - `panic`: panics;
/// - `peek`: answers `ended` if its body's end is already there without waiting, else `waits`;
/// - `panic-call`: panics in `call`, before making its future (outside `serve_request`'s guard);
/// - `big`: writes `SIZE` bytes in 64 KiB chunks;
/// - `early`: answers its head and `early\n` before reading its body, then `read N\n`;
/// - `stall`: answers its head and `early\n`, then neither reads its body nor ends;
/// - `stderr`: sends `complaint\n` as stderr from another task, then answers "ok".
/// - `authz`: an Authorizer (section 6.3): reads its body; with `Authorization: Bearer good`
///   answers 200 with `Variable-AUTH_USER: alice` and `role=FCGI_ROLE body=N length=CONTENT_LENGTH`,
///   else 401 with `WWW-Authenticate: Bearer` and `denied`.
pub(crate) struct TestApp(pub Arc<Seen>);

struct CancelGuard(Arc<Seen>, bool);
impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Application for TestApp {
    fn call<'a>(
        &'a self,
        mut req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        let seen = self.0.clone();
        if req.env.get_str("APP") == Some("panic-call") {
            panic!("test app panics in call");
        }
        Box::pin(async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            let mut guard = CancelGuard(seen.clone(), false);
            let app = req.env.get_str("APP").unwrap_or("echo").to_string();
            match app.as_str() {
                "gate" => {
                    seen.gate.notified().await;
                    resp.send_full(200, "text/plain", "gated").await?;
                }
                "hold" => {
                    seen.gate.notified().await;
                    let mut n = 0;
                    while let Some(c) = req.body.chunk().await? {
                        n += c.len();
                    }
                    resp.send_full(200, "text/plain", n.to_string()).await?;
                }
                "first" => {
                    let first = req.body.chunk().await?.unwrap_or_default();
                    resp.send_full(200, "text/plain", first).await?;
                }
                "peek" => {
                    let seen = {
                        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                        match req.body.poll_chunk(&mut cx) {
                            std::task::Poll::Ready(Ok(None)) => "ended",
                            _ => "waits",
                        }
                    };
                    resp.send_full(200, "text/plain", seen).await?;
                }
                "early" | "stall" => {
                    let head = ResponseHead::new(200).with_header("Content-Type", "text/plain")?;
                    resp.send_head(head).await?;
                    resp.write(Bytes::from_static(b"early\n")).await?;
                    if app == "stall" {
                        std::future::pending::<()>().await;
                    }
                    let mut n = 0;
                    while let Some(c) = req.body.chunk().await? {
                        n += c.len();
                    }
                    resp.write(Bytes::from(format!("read {n}\n"))).await?;
                    resp.finish().await?;
                }
                "stderr" => {
                    let stderr = resp.stderr().ok_or("the FastCGI channel forwards stderr")?;
                    let task = tokio::spawn(async move {
                        stderr.send(Bytes::from_static(b"complaint\n")).await
                    });
                    task.await??;
                    resp.send_full(200, "text/plain", "ok").await?;
                }
                "authz" => {
                    let body = req.body.read_to_end(1 << 20).await?;
                    if req.env.get_str("HTTP_AUTHORIZATION") == Some("Bearer good") {
                        let role = req.env.get_str("FCGI_ROLE").unwrap_or("-");
                        let length = req.env.get_str("CONTENT_LENGTH").unwrap_or("-");
                        let text = format!("role={role} body={} length={length}", body.len());
                        let head = ResponseHead::new(200)
                            .with_header("Variable-AUTH_USER", "alice")?
                            .with_header("Content-Type", "text/plain")?;
                        resp.send_head(head).await?;
                        resp.write(Bytes::from(text)).await?;
                        resp.finish().await?;
                    } else {
                        let head = ResponseHead::new(401)
                            .with_header("WWW-Authenticate", "Bearer")?
                            .with_header("Content-Type", "text/plain")?;
                        resp.send_head(head).await?;
                        resp.write(Bytes::from_static(b"denied")).await?;
                        resp.finish().await?;
                    }
                }
                "hang" => std::future::pending::<()>().await,
                "panic" => panic!("test app panics"),
                "big" => {
                    let size: usize = req.env.get_str("SIZE").unwrap_or("0").parse()?;
                    resp.send_head(ResponseHead::new(200)).await?;
                    let chunk = Bytes::from(vec![b'z'; 64 * 1024]);
                    let mut left = size;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        resp.write(chunk.slice(..n)).await?;
                        seen.written.fetch_add(n, Ordering::SeqCst);
                        left -= n;
                    }
                    resp.finish().await?;
                }
                _ => {
                    let body = req.body.read_to_end(64 << 20).await?;
                    let head = ResponseHead::new(200)
                        .with_header("Content-Type", "application/octet-stream")?
                        .with_header("X-Len", body.len().to_string())?;
                    resp.send_head(head).await?;
                    resp.write(body).await?;
                    resp.finish().await?;
                }
            }
            guard.1 = true;
            Ok(())
        })
    }
}

/// A raw FastCGI peer (the web server's side).
pub(crate) struct Client {
    pub(crate) io: DuplexStream,
    buf: BytesMut,
}

impl Client {
    /// A client over `io` (the other end of the server's socket).
    pub(crate) fn over(io: DuplexStream) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
        }
    }

    pub(crate) async fn send(&mut self, records: &[Record]) {
        let mut out = BytesMut::new();
        for r in records {
            RecordCodec::new().encode(r, &mut out).unwrap();
        }
        self.send_raw(&out).await;
    }

    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// The next record; `None` once the server closed the connection.
    pub(crate) async fn recv(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = RecordCodec::new().decode(&mut self.buf).unwrap() {
                return Some(r);
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => {
                    assert!(self.buf.is_empty(), "server closed inside a record");
                    return None;
                }
                Ok(_) => {}
            }
        }
    }

    /// Reads records until request `id` ends: its STDOUT bytes and END_REQUEST body. Records
    /// of other requests are returned in `others`.
    pub(crate) async fn response(&mut self, id: u16) -> Answer {
        let mut answer = Answer::default();
        loop {
            let rec = self
                .recv()
                .await
                .expect("connection closed before FCGI_END_REQUEST");
            if rec.request_id != id {
                answer.others.push(rec);
                continue;
            }
            match rec.payload {
                Payload::Stdout(b) if b.is_empty() => answer.stdout_closed = true,
                Payload::Stdout(b) => {
                    assert!(!answer.stdout_closed, "STDOUT after its end");
                    answer.records += 1;
                    answer.stdout.extend_from_slice(&b);
                }
                Payload::EndRequest(end) => {
                    answer.end = Some(end);
                    return answer;
                }
                other => panic!("unexpected record for {id}: {other:?}"),
            }
        }
    }

    /// Asserts that the server closes the connection without sending anything more.
    pub(crate) async fn expect_closed(&mut self) {
        if let Some(r) = self.recv().await {
            panic!("expected the connection to close, got {r:?}");
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stdout_closed: bool,
    pub(crate) records: usize,
    pub(crate) end: Option<EndRequestBody>,
    pub(crate) others: Vec<Record>,
}

impl Answer {
    pub(crate) fn status(&self) -> u16 {
        let head = String::from_utf8_lossy(&self.stdout);
        let line = head.lines().next().unwrap_or_default().to_string();
        line.strip_prefix("Status: ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"))
    }

    pub(crate) fn body(&self) -> &[u8] {
        let at = self
            .stdout
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("head ends");
        &self.stdout[at + 4..]
    }
}

pub(crate) fn begin(id: u16, keep_conn: bool) -> Record {
    begin_role(id, Role::Responder, keep_conn)
}

pub(crate) fn begin_role(id: u16, role: Role, keep_conn: bool) -> Record {
    let flags = if keep_conn { FCGI_KEEP_CONN } else { 0 };
    Record::new(id, Payload::BeginRequest(BeginRequestBody { role, flags }))
}

/// The PARAMS stream (content then the empty record).
pub(crate) fn params(id: u16, pairs: &[(&str, &str)]) -> Vec<Record> {
    let mut out = BytesMut::new();
    for (n, v) in pairs {
        nv::put_pair(&mut out, n.as_bytes(), v.as_bytes());
    }
    let mut recs = Vec::new();
    if !out.is_empty() {
        recs.push(Record::new(id, Payload::Params(out.freeze())));
    }
    recs.push(Record::new(id, Payload::Params(Bytes::new())));
    recs
}

pub(crate) fn stdin(id: u16, data: &[u8]) -> Record {
    Record::new(id, Payload::Stdin(Bytes::copy_from_slice(data)))
}

/// A whole request: BEGIN, PARAMS, the body in one STDIN record (if any), the empty STDIN.
pub(crate) fn request(
    id: u16,
    keep_conn: bool,
    pairs: &[(&str, &str)],
    body: &[u8],
) -> Vec<Record> {
    let mut recs = vec![begin(id, keep_conn)];
    recs.extend(params(id, pairs));
    if !body.is_empty() {
        recs.push(stdin(id, body));
    }
    recs.push(stdin(id, b""));
    recs
}

/// A server with the test app, serving one duplex connection in a task.
pub(crate) struct Harness {
    pub(crate) seen: Arc<Seen>,
    pub(crate) server: Arc<Server>,
    pub(crate) shutdown: CancellationToken,
}

impl Harness {
    pub(crate) fn new(config: Config) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("gatehouse_fastcgi=trace")
            .with_test_writer()
            .try_init();
        let seen = Arc::new(Seen::default());
        let server = Server::new(Arc::new(TestApp(seen.clone())), config);
        Self {
            seen,
            server,
            shutdown: CancellationToken::new(),
        }
    }

    pub(crate) fn connect(&self) -> (Client, JoinHandle<()>) {
        self.connect_as(Peer::Unix(None))
    }

    pub(crate) fn connect_as(&self, peer: Peer) -> (Client, JoinHandle<()>) {
        let (client, server_io) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(serve_connection(
            self.server.clone(),
            server_io,
            peer,
            self.shutdown.clone(),
        ));
        let client = Client {
            io: client,
            buf: BytesMut::new(),
        };
        (client, task)
    }

    pub(crate) fn calls(&self) -> usize {
        self.seen.calls.load(Ordering::SeqCst)
    }
}

/// Lets every task run until all wait (time is paused in these tests: a sleep returns only
/// once nothing else can run, without taking real time).
pub(crate) async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
}
