//! Drives `CgiApp` the way a front end does, without sockets: a `Request` with a body from
//! `body_channel`, a `Response` over a `QueueChannel`, `serve_request`, and the `Delivery`s
//! collected. Also: a copy of `fixtures/cgi-bin` with modes set by the test (a fresh clone's
//! umask must not matter), log capture, and a check that a process group is gone.
#![allow(dead_code, unreachable_pub)] // reason: each test file uses a different part of this

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gatehouse_cgi_exec::{CgiApp, Config};
use gatehouse_channel_request::{
    body_channel, delivery_queue, serve_request, BodySender, CancellationToken, DeliveryReceiver,
    Env, Output, Peer, Protocol, QueueChannel, Request, RequestInfo, Response, ResponseHead,
};

/// Generous bound on any single test step, so a deadlock fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(60);

/// A temporary web root: `www/cgi-bin` holds copies of the fixture scripts.
pub struct Tree {
    _dir: tempfile::TempDir,
    /// Canonical path of the temporary directory (holds `www`, room for `outside` files).
    pub top: PathBuf,
    /// `top/www`, a document root.
    pub www: PathBuf,
    /// `top/www/cgi-bin`, the CGI root.
    pub cgi: PathBuf,
}

pub fn tree() -> Tree {
    let dir = tempfile::tempdir().expect("temp dir");
    let top = fs::canonicalize(dir.path()).expect("canonical temp dir");
    let www = top.join("www");
    let cgi = www.join("cgi-bin");
    fs::create_dir_all(&cgi).expect("cgi-bin");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/cgi-bin");
    for entry in fs::read_dir(&fixtures).expect("fixtures/cgi-bin") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let dest = cgi.join(&name);
        fs::copy(entry.path(), &dest).expect("copy fixture");
        let script = matches!(
            dest.extension().and_then(|e| e.to_str()),
            Some("sh" | "pl" | "py")
        );
        let mode = if script && name != "not_exec.sh" {
            0o755
        } else {
            0o644
        };
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).expect("chmod");
    }
    for d in [&top, &www, &cgi] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    }
    Tree {
        _dir: dir,
        top,
        www,
        cgi,
    }
}

/// Test defaults: a short kill grace so stopped scripts go quickly.
pub fn config() -> Config {
    Config {
        kill_grace: Duration::from_millis(200),
        ..Config::default()
    }
}

pub fn app(root: &Path, config: Config) -> CgiApp {
    CgiApp::new(root.to_path_buf(), config).expect("CgiApp::new")
}

pub fn env(vars: &[(&str, &str)]) -> Env {
    vars.iter()
        .map(|&(n, v)| (Bytes::from(n.to_owned()), Bytes::from(v.to_owned())))
        .collect()
}

/// One request's two ends as a front end holds them.
pub struct Exchange {
    pub req: Request,
    pub body: BodySender,
    pub resp: Response,
    pub deliveries: DeliveryReceiver,
    pub gone: CancellationToken,
}

/// A request with `vars` (CONTENT_LENGTH taken from them) and a response with `budget` bytes.
pub fn exchange(vars: &[(&str, &str)], budget: usize) -> Exchange {
    exchange_with(vars, budget, false)
}

/// [`exchange`], with a response channel that forwards stderr (as the FastCGI front end's).
pub fn exchange_with(vars: &[(&str, &str)], budget: usize, forward_stderr: bool) -> Exchange {
    let env = env(vars);
    let length = env.content_length().ok().flatten();
    let (body, rx_body) = body_channel(4, length);
    let (tx, deliveries) = delivery_queue();
    let gone = CancellationToken::new();
    let chan = QueueChannel::new(1, tx, budget, gone.clone());
    let chan = if forward_stderr {
        chan.with_stderr()
    } else {
        chan
    };
    let resp = Response::new(chan);
    let req = Request {
        env,
        body: rx_body,
        info: RequestInfo::new(Protocol::FastCgi, Peer::Stdio),
    };
    Exchange {
        req,
        body,
        resp,
        deliveries,
        gone,
    }
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    pub head: ResponseHead,
    pub body: Vec<u8>,
    /// `Finish` or `Abort`.
    pub end: Output,
    /// The stderr forwarded before the end.
    pub stderr: Vec<u8>,
}

impl Answer {
    pub fn status(&self) -> u16 {
        self.head.status()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head
            .header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// `NAME=value` lines of an env dump, as a lookup.
    pub fn var(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.text()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }
}

/// Receives deliveries until the response ends, dropping each (which returns its credit).
pub async fn collect(deliveries: &mut DeliveryReceiver) -> Answer {
    let mut head = None;
    let mut body = Vec::new();
    let mut stderr = Vec::new();
    loop {
        let d = deliveries
            .recv()
            .await
            .expect("response ended without Finish/Abort");
        match d.output {
            Output::Head(h) => head = Some(h),
            Output::Body(b) => body.extend_from_slice(&b),
            Output::Informational(_) => {}
            Output::Stderr(b) => stderr.extend_from_slice(&b),
            end @ (Output::Finish | Output::Abort) => {
                return Answer {
                    head: head.expect("no head before the end"),
                    body,
                    end,
                    stderr,
                }
            }
        }
    }
}

/// Feeds `data` in 64 KiB chunks, then ends the body. Stops quietly when the app drops the body.
pub async fn feed(mut tx: BodySender, data: Bytes) {
    for chunk in data.chunks(64 * 1024) {
        if tx.send(data.slice_ref(chunk)).await.is_err() {
            return;
        }
    }
    tx.finish();
}

/// Runs one request to the end: vars, a body (CONTENT_LENGTH set when non-empty), the answer.
pub async fn run(app: &CgiApp, vars: &[(&str, &str)], body: &[u8]) -> Answer {
    run_with(app, vars, body, false).await
}

/// [`run`], over a channel that forwards stderr when `forward_stderr`.
pub async fn run_with(
    app: &CgiApp,
    vars: &[(&str, &str)],
    body: &[u8],
    forward_stderr: bool,
) -> Answer {
    let length = body.len().to_string();
    let mut all: Vec<(&str, &str)> = vars.to_vec();
    if !body.is_empty() && !vars.iter().any(|(n, _)| *n == "CONTENT_LENGTH") {
        all.push(("CONTENT_LENGTH", &length));
    }
    let Exchange {
        req,
        body: tx,
        resp,
        mut deliveries,
        gone: _gone,
    } = exchange_with(&all, 256 * 1024, forward_stderr);
    let data = Bytes::copy_from_slice(body);
    let work = async {
        let (_, _, answer) = tokio::join!(
            serve_request(app, req, resp),
            feed(tx, data),
            collect(&mut deliveries)
        );
        answer
    };
    tokio::time::timeout(STEP, work)
        .await
        .expect("request timed out")
}

/// A GET of `path` below an app mounted at `/` (as the dispatcher hands it over).
pub async fn get(app: &CgiApp, path: &str) -> Answer {
    run(
        app,
        &[
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", path),
        ],
        b"",
    )
    .await
}

/// Captured log output of the current thread (tests run on a current-thread runtime, so tasks
/// they spawn log here too).
///
/// One global subscriber routes each event to the buffer its thread installed: thread-local
/// subscribers (`set_default`) race with each other over tracing's global interest cache when
/// tests run in parallel, and lose events.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the current thread's capture buffer, if any.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(sink) = c.borrow().as_ref() {
                sink.lock().expect("log lock").extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stops capturing on this thread when dropped.
pub struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

impl Logs {
    pub fn install(&self) -> CaptureGuard {
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| ThreadWriter)
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("global subscriber");
        });
        CAPTURE.with(|c| *c.borrow_mut() = Some(self.0.clone()));
        CaptureGuard
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }

    /// Waits (bounded by [`STEP`]) until the log holds `needle`.
    pub async fn wait_for(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + STEP;
        while !self.text().contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "log never said {needle:?}; log:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Whether the process `pgid` still exists (even as a zombie: then nobody reaped it) or any
/// live process is still in its process group.
pub fn group_alive(pgid: u32) -> bool {
    if Path::new(&format!("/proc/{pgid}")).exists() {
        return true;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            return false;
        };
        let fields: Vec<&str> = after.split(' ').collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

/// Waits (bounded by [`STEP`]) until process group `pgid` is gone and its leader reaped.
pub async fn until_gone(pgid: u32) {
    let deadline = tokio::time::Instant::now() + STEP;
    while group_alive(pgid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "process group {pgid} still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded by [`STEP`]) until `path` exists and returns its trimmed content.
pub async fn wait_for_file(path: &Path) -> String {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if let Ok(s) = fs::read_to_string(path) {
            if !s.trim().is_empty() {
                return s.trim().to_owned();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
