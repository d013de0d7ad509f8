//! Reading a request's whole body before its app runs (uWSGI's `post-buffering`, what php-fpm
//! and nginx's request buffering do): [`Spooled`] wraps an app.
//!
//! ```text
//!  front end ── body ──► spool: memory up to `memory` bytes, then an unlinked temp file
//!                          │ body complete (or 413 past `max_bytes`, 400 if short)
//!                          ▼
//!                        app ◄── the same bytes, replayed through a new bounded body stream
//! ```
//!
//! Why: web servers' upstream modules (nginx `fastcgi_pass`, `scgi_pass`, `proxy_pass`) stop
//! sending the request body once the response head has arrived. An app that answers while it
//! still reads (a CGI script that is `exec cat`, a WSGI app yielding each piece it reads) fills
//! the response hold, whose release then stops the body: both sides wait for the other. With the
//! body spooled first, the input is complete before the app writes a byte, at any size, with
//! bounded memory. It also means a slow upload never holds a CGI slot or a Python thread: the
//! app starts only once everything is here.
//!
//! When the body was delimited by the protocol (HTTP chunked, FastCGI's empty `STDIN`) and was
//! not empty, the replayed body has a length, and `CONTENT_LENGTH` is set to it (RFC 3875 section 4.1.2: a CGI script reads exactly that
//! many bytes), as nginx does when it buffers a request.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::body::DEFAULT_BODY_QUEUE_CHUNKS;
use gatehouse_channel_request::env::CONTENT_LENGTH;
use gatehouse_channel_request::spill::unlinked_temp_file;
use gatehouse_channel_request::{
    body_channel, AppError, Application, BodySender, BoxFuture, Request, RequestBody, RequestInfo,
    Response,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Where and how much to spool.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Directory of the temp files (`--spool-dir`); they are unlinked as soon as created.
    pub dir: PathBuf,
    /// Bytes of a body kept in memory before it goes to a temp file (`--spool-memory`).
    pub memory: usize,
    /// The largest body accepted (`--max-spool-bytes`): a longer one is answered 413.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: std::env::temp_dir(),
            memory: DEFAULT_SPOOL_MEMORY,
            max_bytes: DEFAULT_MAX_SPOOL_BYTES,
        }
    }
}

/// Default `--spool-memory`: 256 KiB.
pub const DEFAULT_SPOOL_MEMORY: usize = 256 << 10;

/// Default `--max-spool-bytes`: 1 GiB.
pub const DEFAULT_MAX_SPOOL_BYTES: u64 = 1 << 30;

/// Size of the reads that replay a spooled file.
const REPLAY_CHUNK: usize = 64 << 10;

/// An app whose requests reach it with their body already read (see the module documentation).
pub struct Spooled {
    inner: Arc<dyn Application>,
    config: Arc<SpoolConfig>,
}

impl Spooled {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Application>, config: SpoolConfig) -> Self {
        Self {
            inner,
            config: Arc::new(config),
        }
    }
}

/// Why a body could not be spooled.
#[derive(Debug)]
enum SpoolError {
    /// Longer than `max_bytes` (announced or counted).
    TooLarge(u64),
    /// The body stream failed (short, aborted, malformed): the app's usual error path.
    Body(gatehouse_channel_request::BodyError),
    /// The temp file could not be made, written or read.
    Io(std::io::Error),
}

impl Application for Spooled {
    fn call<'a>(
        &'a self,
        mut req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        if req.body.content_length() == Some(0) || req.body.is_end() {
            return self.inner.call(req, resp);
        }
        Box::pin(async move {
            match spool(&mut req.body, &self.config).await {
                Ok(body) => {
                    let len = body.content_length().unwrap_or(0);
                    if req.body.content_length().is_none() && len > 0 {
                        req.env.set(CONTENT_LENGTH, len.to_string());
                    }
                    req.body = body;
                    self.inner.call(req, resp).await
                }
                Err(SpoolError::Body(e)) => Err(e.into()),
                Err(SpoolError::TooLarge(len)) => {
                    log_refusal(&req.info, len, self.config.max_bytes);
                    resp.send_full(413, "text/plain", "Content Too Large\n")
                        .await?;
                    Ok(())
                }
                Err(SpoolError::Io(error)) => {
                    let info = &req.info;
                    tracing::error!(peer = %info.peer, request_id = info.id, dir = %self.config.dir.display(), %error, "cannot spool the request body: answering 503");
                    resp.send_full(503, "text/plain", "Service Unavailable\n")
                        .await?;
                    Ok(())
                }
            }
        })
    }
}

fn log_refusal(info: &RequestInfo, len: u64, max: u64) {
    tracing::warn!(peer = %info.peer, request_id = info.id, body_bytes = len, max_spool_bytes = max, "request body larger than --max-spool-bytes: answering 413");
}

/// Reads all of `body` (memory, then a temp file) and gives a body that replays it.
async fn spool(body: &mut RequestBody, config: &SpoolConfig) -> Result<RequestBody, SpoolError> {
    if let Some(len) = body.content_length().filter(|&l| l > config.max_bytes) {
        return Err(SpoolError::TooLarge(len));
    }
    let mut memory = BytesMut::new();
    let mut file: Option<tokio::fs::File> = None;
    let mut total: u64 = 0;
    while let Some(chunk) = body.chunk().await.map_err(SpoolError::Body)? {
        total += chunk.len() as u64;
        if total > config.max_bytes {
            return Err(SpoolError::TooLarge(total));
        }
        match &mut file {
            None if memory.len() + chunk.len() <= config.memory => {
                memory.extend_from_slice(&chunk);
            }
            None => {
                let mut f = temp_file(config).await.map_err(SpoolError::Io)?;
                f.write_all(&chunk).await.map_err(SpoolError::Io)?;
                file = Some(f);
            }
            Some(f) => f.write_all(&chunk).await.map_err(SpoolError::Io)?,
        }
    }
    if total == 0 {
        return Ok(RequestBody::empty());
    }
    if let Some(f) = &mut file {
        f.flush().await.map_err(SpoolError::Io)?;
        f.rewind().await.map_err(SpoolError::Io)?;
    }
    let (tx, replayed) = body_channel(DEFAULT_BODY_QUEUE_CHUNKS, Some(total));
    tokio::spawn(replay(tx, memory.freeze(), file));
    Ok(replayed)
}

/// Feeds the spooled bytes to the app, memory first; stops when the app drops its body.
async fn replay(mut tx: BodySender, memory: Bytes, file: Option<tokio::fs::File>) {
    if !memory.is_empty() && tx.send(memory).await.is_err() {
        return;
    }
    if let Some(mut file) = file {
        loop {
            let mut buf = BytesMut::zeroed(REPLAY_CHUNK);
            let n = match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(error) => {
                    tracing::error!(%error, "cannot read back a spooled request body");
                    return; // dropped unfinished: the app sees an aborted body
                }
            };
            buf.truncate(n);
            if tx.send(buf.freeze()).await.is_err() {
                return;
            }
        }
    }
    tx.finish();
}

/// A new temp file in the spool directory, unlinked at once (only this process can reach it;
/// its space is freed when the replay ends). Made on a blocking thread, as `tokio::fs` would.
async fn temp_file(config: &SpoolConfig) -> std::io::Result<tokio::fs::File> {
    let dir = config.dir.clone();
    let file = tokio::task::spawn_blocking(move || unlinked_temp_file(&dir, "gatehouse-spool"))
        .await
        .map_err(std::io::Error::other)??;
    Ok(tokio::fs::File::from_std(file))
}

#[cfg(test)]
mod tests {
    use gatehouse_channel_request::{
        delivery_queue, CancellationToken, Env, Output, Peer, Protocol, QueueChannel,
    };

    use super::*;

    /// Answers the body length it read and its `CONTENT_LENGTH`, plus a hash-like checksum.
    struct Count;
    impl Application for Count {
        fn call<'a>(
            &'a self,
            mut req: Request,
            resp: &'a mut Response,
        ) -> BoxFuture<'a, Result<(), AppError>> {
            Box::pin(async move {
                let body = req.body.read_to_end(u64::MAX).await?;
                let sum: u64 = body.iter().map(|&b| u64::from(b)).sum();
                let cl = req.env.get_str(CONTENT_LENGTH).unwrap_or("-").to_owned();
                resp.send_full(200, "text/plain", format!("{} {cl} {sum}", body.len()))
                    .await?;
                Ok(())
            })
        }
    }

    async fn ask(config: SpoolConfig, chunks: Vec<Vec<u8>>, length: Option<u64>) -> (u16, String) {
        let app = Spooled::new(Arc::new(Count), config);
        let (out_tx, mut out_rx) = delivery_queue();
        let resp = Response::new(QueueChannel::new(
            1,
            out_tx,
            1 << 20,
            CancellationToken::new(),
        ));
        let (mut tx, body) = body_channel(2, length);
        tokio::spawn(async move {
            for c in chunks {
                if tx.send(Bytes::from(c)).await.is_err() {
                    return;
                }
            }
            tx.finish();
        });
        let mut env = Env::new();
        if let Some(l) = length {
            env.set(CONTENT_LENGTH, l.to_string());
        }
        let req = Request {
            env,
            body,
            info: RequestInfo::new(Protocol::Http, Peer::Stdio),
        };
        gatehouse_channel_request::serve_request(&app, req, resp).await;
        let (mut status, mut text) = (0, Vec::new());
        while let Ok(d) = out_rx.try_recv() {
            match d.output {
                Output::Head(h) => status = h.status(),
                Output::Body(b) => text.extend_from_slice(&b),
                _ => {}
            }
        }
        (status, String::from_utf8_lossy(&text).into_owned())
    }

    fn chunks(n: usize, size: usize) -> (Vec<Vec<u8>>, u64) {
        let all: Vec<Vec<u8>> = (0..n)
            .map(|i| (0..size).map(|j| ((i * 7 + j) % 251) as u8).collect())
            .collect();
        let sum = all.iter().flatten().map(|&b| u64::from(b)).sum();
        (all, sum)
    }

    #[tokio::test]
    async fn memory_and_file_bodies_replay_whole() {
        for (memory, n) in [(1 << 20, 3), (1000, 40), (0, 1)] {
            let config = SpoolConfig {
                memory,
                ..SpoolConfig::default()
            };
            let (body, sum) = chunks(n, 3000);
            let len = (n * 3000) as u64;
            assert_eq!(
                ask(config, body, Some(len)).await,
                (200, format!("{len} {len} {sum}")),
                "memory {memory}"
            );
        }
    }

    #[tokio::test]
    async fn chunked_body_gets_a_content_length() {
        let (body, sum) = chunks(5, 100);
        let config = SpoolConfig {
            memory: 150,
            ..SpoolConfig::default()
        };
        assert_eq!(
            ask(config, body, None).await,
            (200, format!("500 500 {sum}"))
        );
    }

    #[tokio::test]
    async fn empty_delimited_body_gets_no_content_length() {
        assert_eq!(
            ask(SpoolConfig::default(), Vec::new(), None).await,
            (200, "0 - 0".to_owned())
        );
    }

    #[tokio::test]
    async fn too_large_is_413_announced_or_counted() {
        let config = SpoolConfig {
            max_bytes: 1000,
            ..SpoolConfig::default()
        };
        let (body, _) = chunks(1, 10);
        assert_eq!(ask(config.clone(), body, Some(5000)).await.0, 413);
        let (body, _) = chunks(11, 100);
        assert_eq!(ask(config, body, None).await.0, 413);
    }

    #[tokio::test]
    async fn short_body_is_the_apps_usual_400() {
        let (body, _) = chunks(1, 10);
        assert_eq!(ask(SpoolConfig::default(), body, Some(100)).await.0, 400);
    }

    #[tokio::test]
    async fn unwritable_dir_is_503() {
        let config = SpoolConfig {
            dir: "/nonexistent/gatehouse-spool".into(),
            memory: 0,
            ..SpoolConfig::default()
        };
        let (body, _) = chunks(2, 10);
        assert_eq!(ask(config, body, Some(20)).await.0, 503);
    }
}
