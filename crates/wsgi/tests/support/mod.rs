//! Drives a `WsgiApp` the way a front end does: a `Request` with a `body_channel`, a
//! `QueueChannel` per request, and a driver loop that drops each `Delivery` once "written".
#![allow(dead_code, unreachable_pub)] // reason: each test binary uses a different part of it

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_channel_request::{
    body_channel, delivery_queue, serve_request, Application, CancellationToken, Env, Output, Peer,
    Protocol, QueueChannel, Request, RequestInfo, Response, ResponseHead,
};
use gatehouse_wsgi::{Config, WsgiApp, WsgiSpec};
use sha2::{Digest, Sha256};

/// A generous guard against a hung test (never a timing assertion: healthy runs take
/// milliseconds).
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// `fixtures/apps/<name>` in the workspace.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/apps")
        .join(name)
}

/// Loads `fixtures/apps/<file>:<callable>`, panicking with the traceback on failure.
pub fn load(file: &str, callable: &str, config: Config) -> WsgiApp {
    let spec: WsgiSpec = format!("{}:{callable}", fixture(file).display())
        .parse()
        .expect("spec");
    WsgiApp::load(&spec, config).unwrap_or_else(|e| panic!("{e}"))
}

/// A small pool for tests.
pub fn config(threads: usize) -> Config {
    Config {
        threads,
        ..Config::default()
    }
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Finish,
    Abort,
    /// The channel closed without either (never expected: QueueChannel queues Abort on drop).
    None,
}

/// What the client got.
#[derive(Debug)]
pub struct Answer {
    pub head: Option<ResponseHead>,
    /// The body, when the call kept it (see [`Call::keep_body`]).
    pub body: Vec<u8>,
    pub body_len: u64,
    pub body_sha256: String,
    /// Size of every body chunk, in order.
    pub chunks: Vec<usize>,
    pub end: End,
    /// Outputs after the end (must be empty).
    pub after_end: usize,
    /// The request's id (for log lines).
    pub request_id: u64,
}

impl Answer {
    pub fn status(&self) -> u16 {
        self.head.as_ref().map_or(0, ResponseHead::status)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.head.as_ref()?;
        head.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A request to make.
pub struct Call {
    pub vars: Vec<(String, String)>,
    pub body: Bytes,
    /// Body chunk size sent by the "front end".
    pub chunk: usize,
    /// Whether the front end marks the body complete after its bytes (else it keeps the body
    /// open until the response is over, like a client that sends nothing more).
    pub finish_body: bool,
    pub protocol: Protocol,
    /// The client goes away once this many body bytes were received.
    pub gone_after: Option<u64>,
    pub keep_body: bool,
    /// Response budget of the QueueChannel.
    pub budget: usize,
}

impl Call {
    pub fn get(path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Self {
            vars: vec![
                ("REQUEST_METHOD".into(), "GET".into()),
                ("SCRIPT_NAME".into(), String::new()),
                ("PATH_INFO".into(), path.into()),
                ("QUERY_STRING".into(), query.into()),
                ("SERVER_NAME".into(), "test.local".into()),
                ("SERVER_PORT".into(), "80".into()),
                ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
                ("REMOTE_ADDR".into(), "127.0.0.1".into()),
                ("HTTP_HOST".into(), "test.local".into()),
            ],
            body: Bytes::new(),
            chunk: 64 * 1024,
            finish_body: true,
            protocol: Protocol::FastCgi,
            gone_after: None,
            keep_body: true,
            budget: 256 * 1024,
        }
    }

    pub fn post(path: &str, content_type: &str, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        let mut call = Self::get(path)
            .var("REQUEST_METHOD", "POST")
            .var("CONTENT_TYPE", content_type)
            .var("CONTENT_LENGTH", &body.len().to_string());
        call.body = body;
        call
    }

    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.into(), value.into()));
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        self.vars.retain(|(n, _)| n != name);
        self
    }

    pub fn env(&self) -> Env {
        self.vars
            .iter()
            .map(|(n, v)| (Bytes::from(n.clone()), Bytes::from(v.clone())))
            .collect()
    }

    pub fn request(&self) -> (gatehouse_channel_request::BodySender, Request) {
        let env = self.env();
        let length = env.content_length().ok().flatten();
        let (tx, body) = body_channel(2, length);
        let req = Request {
            env,
            body,
            info: RequestInfo::new(self.protocol, Peer::Stdio),
        };
        (tx, req)
    }

    /// Serves the request and collects what the client would get.
    pub async fn run(self, app: &dyn Application) -> Answer {
        tokio::time::timeout(HANG_GUARD, self.run_unguarded(app))
            .await
            .expect("the request hung")
    }

    async fn run_unguarded(self, app: &dyn Application) -> Answer {
        let (mut tx, req) = self.request();
        let request_id = req.info.id;
        let (dtx, mut drx) = delivery_queue();
        let gone = CancellationToken::new();
        let resp = Response::new(QueueChannel::new(1, dtx, self.budget, gone.clone()));
        let chunks: Vec<Bytes> = self
            .body
            .chunks(self.chunk.max(1))
            .map(Bytes::copy_from_slice)
            .collect();
        let finish = self.finish_body;
        let (served, feed, answer) = tokio::join!(
            serve_request(app, req, resp),
            async move {
                for c in chunks {
                    if tx.send(c).await.is_err() {
                        return None;
                    }
                }
                if finish {
                    tx.finish();
                    None
                } else {
                    Some(tx)
                }
            },
            collect(&mut drx, self.keep_body, self.gone_after, &gone),
        );
        drop((served, feed));
        Answer {
            request_id,
            ..answer
        }
    }
}

async fn collect(
    rx: &mut gatehouse_channel_request::DeliveryReceiver,
    keep: bool,
    gone_after: Option<u64>,
    gone: &CancellationToken,
) -> Answer {
    let mut a = Answer {
        head: None,
        body: Vec::new(),
        body_len: 0,
        body_sha256: String::new(),
        chunks: Vec::new(),
        end: End::None,
        after_end: 0,
        request_id: 0,
    };
    let mut digest = Sha256::new();
    while let Some(delivery) = rx.recv().await {
        if a.end != End::None {
            a.after_end += 1;
            continue;
        }
        match &delivery.output {
            Output::Head(h) => a.head = Some(h.clone()),
            Output::Body(b) => {
                a.body_len += b.len() as u64;
                a.chunks.push(b.len());
                digest.update(b);
                if keep {
                    a.body.extend_from_slice(b);
                }
                if gone_after.is_some_and(|n| a.body_len >= n) {
                    gone.cancel();
                }
            }
            Output::Finish => a.end = End::Finish,
            Output::Abort => a.end = End::Abort,
            Output::Informational(_) | Output::Stderr(_) => {}
        }
        drop(delivery); // "written": the budget comes back
    }
    a.body_sha256 = hex(&digest.finalize());
    a
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A temp file path for apps to record into (X-Record), and a reader for it.
pub struct Record {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Record {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("record.txt");
        Self { _dir: dir, path }
    }

    pub fn header(&self) -> String {
        self.path.display().to_string()
    }

    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}
