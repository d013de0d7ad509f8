//! The request an app receives, the [`Application`] trait, and [`serve_request`]: the one place
//! where app errors and panics become a 500 (or an aborted response) and a log line.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::body::RequestBody;
use crate::channel::{BoxFuture, Response};
use crate::env::Env;
use crate::error::{BodyError, Error};
use crate::observe::{self, End, Observer, Outcome, RequestRecord};

/// The protocol a request arrived over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// FastCGI 1.0, RESPONDER role.
    FastCgi,
    /// SCGI.
    Scgi,
    /// CGI/1.1: this process serves one request from its environment.
    Cgi,
    /// HTTP/1.x served directly.
    Http,
    /// The uwsgi protocol (modifier1 0), from nginx `uwsgi_pass` or Apache `mod_proxy_uwsgi`.
    Uwsgi,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FastCgi => "fastcgi",
            Self::Scgi => "scgi",
            Self::Cgi => "cgi",
            Self::Http => "http",
            Self::Uwsgi => "uwsgi",
        })
    }
}

/// Who is at the other end of the transport (the front server for FastCGI/SCGI, the client for
/// HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer.
    Tcp(SocketAddr),
    /// A unix-socket peer (usually unnamed).
    Unix(Option<PathBuf>),
    /// Our own stdin/stdout (the CGI front end).
    Stdio,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => addr.fmt(f),
            // A client names its own socket: a newline in it must not end the log line.
            Self::Unix(Some(p)) => write!(f, "unix:{}", p.as_os_str().as_bytes().escape_ascii()),
            Self::Unix(None) => f.write_str("unix"),
            Self::Stdio => f.write_str("stdio"),
        }
    }
}

/// Transport facts about a request, for logs and for apps that care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The protocol it arrived over.
    pub protocol: Protocol,
    /// The transport peer.
    pub peer: Peer,
    /// A process-unique number for log lines.
    pub id: u64,
}

impl RequestInfo {
    /// Info for a new request with a fresh process-unique id.
    pub fn new(protocol: Protocol, peer: Peer) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            protocol,
            peer,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// A request as every app sees it, whatever front end carried it.
#[derive(Debug)]
pub struct Request {
    /// The CGI meta-variables.
    pub env: Env,
    /// The body stream.
    pub body: RequestBody,
    /// Transport facts.
    pub info: RequestInfo,
}

/// What an app returns when it fails.
pub type AppError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An application: takes a request, answers through the response.
///
/// Returning `Err` before the head is sent gives the client a 500 (or the status the error maps
/// to); after the head, the response is aborted. Returning `Ok` without finishing finishes the
/// response. Panics are caught and treated as errors. A request cancelled by the front end (the
/// client went away, FastCGI `ABORT_REQUEST`) has its future dropped.
pub trait Application: Send + Sync + 'static {
    /// Serves one request.
    fn call<'a>(
        &'a self,
        req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>>;
}

impl<A: Application + ?Sized> Application for Arc<A> {
    fn call<'a>(
        &'a self,
        req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        (**self).call(req, resp)
    }
}

/// Runs `app` on one request and makes sure the response ends properly.
///
/// This is what front ends spawn per request. Errors and panics are logged once, with the peer
/// and request id, and answered with the status the error maps to (500 by default) when the head
/// is not yet sent, or an abort when it is.
///
/// # Cancel safety
/// Dropping this future drops the app's future: that is how requests are cancelled.
pub async fn serve_request(app: &dyn Application, mut req: Request, resp: Response) {
    let Some(observers) = observe::active() else {
        let mut resp = resp;
        serve(app, req, &mut resp).await;
        return;
    };
    let mut watch = Watch {
        record: Arc::new(RequestRecord::new(&req.env, &req.info)),
        tally: req.body.tally(),
        observers,
        resp,
        served: false,
        client_gone: false,
    };
    for o in observers {
        o.started(&watch.record);
    }
    watch.client_gone = serve(app, req, &mut watch.resp).await == Served::ClientGone;
    watch.served = true;
}

/// A request being observed: tells the observers how it ended when dropped, which is also what
/// happens to a request cancelled mid-way (its future dropped).
struct Watch {
    record: Arc<RequestRecord>,
    tally: observe::Tally,
    observers: &'static [Arc<dyn Observer>],
    resp: Response,
    served: bool,
    /// The app stopped because the client went away (its response aborted): cancelled, as
    /// when the front end drops the request.
    client_gone: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let resp = &self.resp;
        let end = if !self.served || !resp.is_done() || self.client_gone {
            End::Cancelled
        } else if resp.is_aborted() {
            End::Aborted
        } else {
            End::Finished
        };
        let outcome = Outcome {
            status: resp.status(),
            bytes_sent: resp.bytes_sent(),
            request_bytes: observe::tally_value(&self.tally),
            duration: self.record.started.elapsed(),
            end,
            app: resp.app_label().cloned(),
        };
        for o in self.observers {
            o.ended(&self.record, &outcome);
        }
    }
}

/// How [`serve`] ended.
#[derive(Debug, PartialEq, Eq)]
enum Served {
    /// Answered (or failed and answered with an error, or aborted).
    Done,
    /// The app gave up because the client went away.
    ClientGone,
}

async fn serve(app: &dyn Application, req: Request, resp: &mut Response) -> Served {
    let info = req.info.clone();
    let mut running = Running {
        info: &info,
        done: false,
    };
    let outcome = CatchUnwind(AssertUnwindSafe(app.call(req, resp))).await;
    running.done = true;
    let error: AppError = match outcome {
        Ok(Ok(())) => {
            if !resp.head_sent() {
                "application returned without sending a response".into()
            } else {
                if !resp.is_done() {
                    let _ = resp.finish().await;
                }
                return Served::Done;
            }
        }
        Ok(Err(e)) => e,
        Err(panic) => format!("application panicked: {}", panic_message(&*panic)).into(),
    };
    if is_client_gone(&*error) {
        tracing::debug!(peer = %info.peer, request_id = info.id, "client gone before the response was complete");
        resp.abort().await;
        return Served::ClientGone;
    }
    if is_peer_fault(&*error) {
        // The front end logged the peer's fault when it saw it; one line per failure.
        tracing::debug!(peer = %info.peer, request_id = info.id, error = %error, "request body failed");
    } else {
        tracing::error!(peer = %info.peer, request_id = info.id, protocol = %info.protocol, error = %error, "request failed");
    }
    if resp.head_sent() {
        resp.abort().await;
        return Served::Done;
    }
    let status = error_status(&*error);
    let reason = crate::head::reason_phrase(status);
    match resp
        .send_full(status, "text/plain", format!("{reason}\n"))
        .await
    {
        Ok(()) => Served::Done,
        Err(e) => {
            resp.abort().await;
            if e == Error::ClientGone {
                Served::ClientGone
            } else {
                Served::Done
            }
        }
    }
}

/// The app's call, while it runs: dropped unfinished (the front end cancelled the request,
/// mostly because the client went away), it says so in the one debug line with the request id.
struct Running<'a> {
    info: &'a RequestInfo,
    done: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.done {
            tracing::debug!(peer = %self.info.peer, request_id = self.info.id, "request cancelled: the client went away (or the front server aborted it)");
        }
    }
}

/// Whether an app's error only says that the client went away (not worth an error log line).
fn is_client_gone(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        error.downcast_ref::<Error>(),
        Some(Error::ClientGone | Error::Body(BodyError::Aborted))
    ) || matches!(error.downcast_ref::<BodyError>(), Some(BodyError::Aborted))
}

/// Whether an app's error is the request body failing by the peer's fault (short, long or
/// malformed), which the front end has already logged.
fn is_peer_fault(error: &(dyn std::error::Error + 'static)) -> bool {
    let body = match error.downcast_ref::<Error>() {
        Some(Error::Body(e)) => Some(e),
        _ => error.downcast_ref::<BodyError>(),
    };
    matches!(
        body,
        Some(BodyError::Short { .. } | BodyError::Long { .. } | BodyError::Malformed(_))
    )
}

/// The status that answers an app's error: the core's errors know theirs, anything else is 500.
fn error_status(error: &(dyn std::error::Error + 'static)) -> u16 {
    if let Some(e) = error.downcast_ref::<Error>() {
        return e.http_status();
    }
    if let Some(e) = error.downcast_ref::<BodyError>() {
        return e.http_status();
    }
    500
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

/// Polls a future, turning a panic into `Err(payload)`.
struct CatchUnwind<F>(AssertUnwindSafe<F>);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut fut.0).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::queue::{delivery_queue, QueueChannel};
    use crate::{Output, ResponseHead};

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

    struct FailsMidway;
    impl Application for FailsMidway {
        fn call<'a>(
            &'a self,
            _: Request,
            resp: &'a mut Response,
        ) -> BoxFuture<'a, Result<(), AppError>> {
            Box::pin(async move {
                resp.send_head(ResponseHead::new(200)).await?;
                resp.write(Bytes::from_static(b"part")).await?;
                Err("oops".into())
            })
        }
    }

    struct Silent;
    impl Application for Silent {
        fn call<'a>(
            &'a self,
            _: Request,
            resp: &'a mut Response,
        ) -> BoxFuture<'a, Result<(), AppError>> {
            Box::pin(async move {
                resp.send_head(ResponseHead::new(204)).await?;
                Ok(())
            })
        }
    }

    async fn run(app: &dyn Application) -> Vec<Output> {
        let (tx, mut rx) = delivery_queue();
        let resp = Response::new(QueueChannel::new(1, tx, 1024, CancellationToken::new()));
        let req = Request {
            env: Env::new(),
            body: RequestBody::empty(),
            info: RequestInfo::new(Protocol::FastCgi, Peer::Stdio),
        };
        serve_request(app, req, resp).await;
        let mut out = Vec::new();
        while let Ok(d) = rx.try_recv() {
            out.push(d.output);
        }
        out
    }

    #[tokio::test]
    async fn panic_becomes_500() {
        let out = run(&Panics).await;
        let Output::Head(h) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(h.status(), 500);
        assert_eq!(out.last(), Some(&Output::Finish));
    }

    #[tokio::test]
    async fn error_after_head_aborts() {
        let out = run(&FailsMidway).await;
        assert_eq!(out.last(), Some(&Output::Abort));
        assert_eq!(out.len(), 3);
    }

    #[tokio::test]
    async fn ok_without_finish_is_finished() {
        let out = run(&Silent).await;
        assert_eq!(
            out,
            vec![Output::Head(ResponseHead::new(204)), Output::Finish]
        );
    }
}
