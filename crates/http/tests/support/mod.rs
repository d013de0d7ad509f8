//! Test harness: a listener serving an app through `serve_connection`, a raw HTTP/1.1 client
//! that parses responses byte by byte, and small apps that misbehave on purpose.
#![allow(dead_code, unreachable_pub)] // reason: each test binary uses a different subset
#![allow(clippy::unwrap_used)] // reason: test harness: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gatehouse_channel_request::{
    AppError, Application, BoxFuture, CancellationToken, Peer, Request, Response, ResponseHead,
};
use gatehouse_http::{serve_connection, Config, Server};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Arc<Server>,
    pub shutdown: CancellationToken,
    pub conns: tokio::task::JoinSet<()>,
    accept: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(app: Arc<dyn Application>, config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::new(app, config);
        let shutdown = CancellationToken::new();
        let (s, token) = (server.clone(), shutdown.clone());
        let accept = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let (sock, peer) = tokio::select! {
                    r = listener.accept() => r.unwrap(),
                    () = token.cancelled() => break,
                };
                let local = sock.local_addr().ok();
                conns.spawn(serve_connection(
                    s.clone(),
                    sock,
                    Peer::Tcp(peer),
                    local,
                    token.clone(),
                ));
            }
            while conns.join_next().await.is_some() {}
        });
        Self {
            addr,
            server,
            shutdown,
            conns: tokio::task::JoinSet::new(),
            accept,
        }
    }

    pub async fn connect(&self) -> Client {
        Client::new(TcpStream::connect(self.addr).await.unwrap())
    }

    /// Cancels the shutdown token and waits for every connection to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.accept.await.unwrap();
    }
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body was sent with chunked coding.
    pub chunked: bool,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body.escape_ascii()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.1 client over any stream.
pub struct Client<S = TcpStream> {
    pub stream: BufReader<S>,
}

impl<S: AsyncRead + tokio::io::AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream: BufReader::new(stream),
        }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .get_mut()
            .write_all(bytes.as_ref())
            .await
            .unwrap();
    }

    /// Reads one response head (which may be a 1xx).
    pub async fn read_head(&mut self) -> Resp {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HTTP/1."), "bad status line {line:?}");
        let mut it = line.trim_end().splitn(3, ' ');
        let _version = it.next();
        let status = it.next().unwrap().parse().unwrap();
        let reason = it.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.to_string(), v.trim().to_string()));
        }
        Resp {
            status,
            reason,
            headers,
            body: Vec::new(),
            chunked: false,
        }
    }

    /// Reads one final response (skipping 1xx), with its body; `head_request` when it answers
    /// a HEAD request (no body follows).
    pub async fn read_response_to(&mut self, head_request: bool) -> Resp {
        let mut resp = self.read_head().await;
        while resp.status < 200 {
            resp = self.read_head().await;
        }
        if head_request || resp.status == 204 || resp.status == 304 {
            return resp;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            resp.chunked = true;
            resp.body = self.read_chunked().await;
        } else if let Some(len) = resp.header("content-length") {
            let mut body = vec![0; len.parse().unwrap()];
            self.stream.read_exact(&mut body).await.unwrap();
            resp.body = body;
        } else {
            self.stream.read_to_end(&mut resp.body).await.unwrap();
        }
        resp
    }

    pub async fn read_response(&mut self) -> Resp {
        self.read_response_to(false).await
    }

    async fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            let size = usize::from_str_radix(line.trim_end().split(';').next().unwrap(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            if size == 0 {
                line.clear();
                self.stream.read_line(&mut line).await.unwrap();
                assert_eq!(line, "\r\n", "trailers are not expected");
                return body;
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.stream.read_exact(&mut body[start..]).await.unwrap();
            line.clear();
            self.stream.read_line(&mut line).await.unwrap();
            assert_eq!(line, "\r\n");
        }
    }

    /// Reads until the server closes; what came before the close.
    pub async fn read_to_close(&mut self) -> std::io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        self.stream.read_to_end(&mut rest).await.map(|_| rest)
    }
}

/// A GET with the given extra header lines.
pub fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test.local\r\n{extra}\r\n")
}

/// A POST with a Content-Length body.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test.local\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A deterministic body of `len` bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// The echo app behind the dispatcher at `/`, as the binary serves it.
pub fn echo() -> Arc<dyn Application> {
    Arc::new(gatehouse_dispatch::Dispatcher::single(Arc::new(
        gatehouse_dispatch::builtin::Echo,
    )))
}

/// The env app behind the dispatcher at `/`.
pub fn env_app() -> Arc<dyn Application> {
    Arc::new(gatehouse_dispatch::Dispatcher::single(Arc::new(
        gatehouse_dispatch::builtin::EnvDump,
    )))
}

/// An app made of a closure over the request and response.
pub struct FnApp<F>(pub F);

impl<F> Application for FnApp<F>
where
    F: for<'a> Fn(Request, &'a mut Response) -> BoxFuture<'a, Result<(), AppError>>
        + Send
        + Sync
        + 'static,
{
    fn call<'a>(
        &'a self,
        req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        (self.0)(req, resp)
    }
}

pub fn app<F>(f: F) -> Arc<dyn Application>
where
    F: for<'a> Fn(Request, &'a mut Response) -> BoxFuture<'a, Result<(), AppError>>
        + Send
        + Sync
        + 'static,
{
    Arc::new(FnApp(f))
}

/// An app writing `chunks` as the body without a Content-Length (so it goes out chunked).
pub fn chunked_app(chunks: &'static [&'static [u8]]) -> Arc<dyn Application> {
    app(move |_req, resp| {
        Box::pin(async move {
            resp.send_head(ResponseHead::new(200).with_header("Content-Type", "text/plain")?)
                .await?;
            for c in chunks {
                resp.write(Bytes::from_static(c)).await?;
            }
            resp.finish().await?;
            Ok(())
        })
    })
}

/// An app announcing `announced` bytes and writing `body`.
pub fn length_app(announced: usize, body: &'static [u8]) -> Arc<dyn Application> {
    app(move |_req, resp| {
        Box::pin(async move {
            let head =
                ResponseHead::new(200).with_header("Content-Length", announced.to_string())?;
            resp.send_head(head).await?;
            resp.write(Bytes::from_static(body)).await?;
            resp.finish().await?;
            Ok(())
        })
    })
}

/// Log lines captured from `tracing`, for asserting that a failure was logged with its peer.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Captures this thread's log lines until the guard drops (tests run on a current-thread
    /// runtime, so the server's tasks log on this thread too).
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
