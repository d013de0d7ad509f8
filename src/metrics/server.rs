//! The `--metrics` listener: a small HTTP/1.1 server of its own (hyper), apart from the front
//! ends, so nothing the public front server forwards can reach it, and its scrapes are not
//! counted as requests.
//!
//! `GET /metrics` (Prometheus text), `GET /status` (`?json`, `?full`, both: php-fpm's
//! `pm.status_path`), `GET /ping` (`pong`, php-fpm's `ping.path`); `HEAD` too. Anything else is
//! 404 (405 for another method on a known path). At most [`MAX_CONNS`] connections at once
//! (more wait in the backlog); a request head must arrive within [`HEADER_TIMEOUT`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{render, Source};
use crate::error::Error;
use crate::listen::{self, BindOptions, Bound, StdListener};

/// Connections served at once.
const MAX_CONNS: usize = 64;
/// How long a connection may take to send a request head (or stay idle between requests).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The bound `--metrics` socket(s) (one per address a host name resolved to).
#[derive(Debug)]
pub(crate) struct Listener {
    bound: Vec<Bound>,
    opts: BindOptions,
}

impl Listener {
    pub(super) fn new(bound: Vec<Bound>, opts: BindOptions) -> Self {
        Self { bound, opts }
    }

    /// Listens and serves `source` until `shutdown`; `mode` is what `/status` calls the
    /// process model. Must run inside the runtime.
    pub(crate) fn serve(
        self,
        source: Source,
        mode: String,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        listen::listen_all(&self.bound, self.opts)?;
        let ctx = Arc::new((source, mode));
        let limit = Arc::new(Semaphore::new(MAX_CONNS));
        for b in self.bound {
            tracing::info!("metrics and status on http://{}/metrics", b.name);
            let io_err = |source| Error::Io {
                what: "cannot register the metrics listener with the runtime",
                source,
            };
            let name: Arc<str> = Arc::from(b.name);
            match b.listener {
                StdListener::Tcp(l) => {
                    let l = TcpListener::from_std(l).map_err(io_err)?;
                    let (ctx, shutdown, limit) = (ctx.clone(), shutdown.clone(), limit.clone());
                    tokio::spawn(async move {
                        loop {
                            let accepted = tokio::select! {
                                () = shutdown.cancelled() => return,
                                a = accept_tcp(&l, &limit) => a,
                            };
                            match accepted {
                                Ok((s, peer, permit)) => {
                                    spawn_conn(TokioIo::new(s), peer, permit, ctx.clone())
                                }
                                Err(e) => pause(&name, &e).await,
                            }
                        }
                    });
                }
                StdListener::Unix(l, file) => {
                    let l = UnixListener::from_std(l).map_err(io_err)?;
                    let (ctx, shutdown, limit) = (ctx.clone(), shutdown.clone(), limit.clone());
                    tokio::spawn(async move {
                        let _file = file; // the socket file goes with the listener
                        loop {
                            let accepted = tokio::select! {
                                () = shutdown.cancelled() => return,
                                a = accept_unix(&l, &limit) => a,
                            };
                            match accepted {
                                Ok((s, permit)) => spawn_conn(
                                    TokioIo::new(s),
                                    "unix".to_owned(),
                                    permit,
                                    ctx.clone(),
                                ),
                                Err(e) => pause(&name, &e).await,
                            }
                        }
                    });
                }
            }
        }
        Ok(())
    }
}

async fn accept_tcp(
    l: &TcpListener,
    limit: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, String, OwnedSemaphorePermit)> {
    let permit = limit
        .clone()
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (s, peer) = l.accept().await?;
    Ok((s, peer.to_string(), permit))
}

async fn accept_unix(
    l: &UnixListener,
    limit: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::UnixStream, OwnedSemaphorePermit)> {
    let permit = limit
        .clone()
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (s, _) = l.accept().await?;
    Ok((s, permit))
}

/// After an accept error (`EMFILE`...): logged, and a pause before the next try.
async fn pause(name: &str, e: &std::io::Error) {
    tracing::warn!(listener = %name, error = %e, "metrics listener: accept failed; retrying in 100ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn spawn_conn<IO>(
    io: TokioIo<IO>,
    peer: String,
    permit: OwnedSemaphorePermit,
    ctx: Arc<(Source, String)>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |req| {
            let ctx = ctx.clone();
            async move { Ok::<_, Infallible>(answer(&req, &ctx.0, &ctx.1)) }
        });
        if let Err(e) = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(io, service)
            .await
        {
            tracing::debug!(%peer, error = %e, "metrics listener: connection ended with an error");
        }
        drop(permit);
    });
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = "no-store".parse() {
        resp.headers_mut().insert(hyper::header::CACHE_CONTROL, v);
    }
    resp
}

/// The answer to one request.
fn answer<B>(req: &Request<B>, source: &Source, mode: &str) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let path = req.uri().path();
    if !matches!(path, "/metrics" | "/status" | "/ping") {
        return reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: try /metrics, /status or /ping\n",
        );
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut resp = reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "use GET\n");
        if let Ok(v) = "GET, HEAD".parse() {
            resp.headers_mut().insert(hyper::header::ALLOW, v);
        }
        return resp;
    }
    let words: Vec<&str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .map(|w| w.split('=').next().unwrap_or(""))
        .collect();
    let has = |w: &str| words.contains(&w);
    match path {
        "/ping" => reply(StatusCode::OK, TEXT, "pong\n"),
        "/metrics" => reply(
            StatusCode::OK,
            render::PROMETHEUS_CONTENT_TYPE,
            render::prometheus(source.snapshot()),
        ),
        _ => {
            let snap = source.snapshot();
            if has("json") {
                let v = render::status_json(&snap, mode, has("full"));
                reply(StatusCode::OK, "application/json", format!("{v}\n"))
            } else {
                reply(
                    StatusCode::OK,
                    TEXT,
                    render::status_text(&snap, mode, has("full")),
                )
            }
        }
    }
}
