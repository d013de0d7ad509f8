//! The driver's side of requests: starting an app (polled once where it is dispatched when
//! alone on its connection, else in a task), feeding its body with backpressure, forgetting it.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use gatehouse_channel_request::{
    body_channel, serve_request, BodyClosed, BodyError, BodySender, CancellationToken, Peer,
    QueueChannel, Request, Response,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::{AbortHandle, JoinSet};

use super::Driver;
use crate::conn::Dispatch;
use crate::id_map::IdMap;

/// The driver's side of a running request.
pub(super) struct Handle {
    pub(super) body: Option<BodySender>,
    /// Its body chunks that did not fit its body queue yet.
    pub(super) backlog: Backlog,
    pub(super) gone: CancellationToken,
    /// `None` while the app waits in `starting`, or when it finished where it was started.
    pub(super) task: Option<AbortHandle>,
}

/// An app's future: `serve_request` for one request, owning its request slot.
pub(super) type App = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An app dispatched alone on its connection, started once the records already read are taken.
pub(super) struct Starting {
    tag: u64,
    app: App,
}

/// Body chunks of one request waiting for room in its body queue, in order, and the end of its
/// body when that came behind them.
#[derive(Default)]
pub(super) struct Backlog {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    end: Option<Option<BodyError>>,
}

impl Backlog {
    fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.end.is_none()
    }
}

impl<IO: AsyncRead + AsyncWrite + Send + Unpin + 'static> Driver<IO> {
    /// Starts the app on a request: `serve_request` with a `QueueChannel` tagged by the
    /// request's process-unique id. The app's future owns the request slot until it ends.
    pub(super) fn dispatch(&mut self, d: Dispatch) {
        let cfg = self.server.config();
        let tag = d.info.id;
        let (body_tx, body) = body_channel(cfg.body_queue_chunks, d.content_length);
        let gone = CancellationToken::new();
        let mut chan = QueueChannel::new(
            tag,
            self.outputs_tx.clone(),
            cfg.response_budget,
            gone.clone(),
        )
        .with_stderr();
        if let Some(spool) = &cfg.response_spool {
            chan = chan.with_spool(spool.clone());
        }
        let req = Request {
            env: d.env,
            body,
            info: d.info,
        };
        let app = self.server.app().clone();
        let slot = d.slot;
        let app: App = Box::pin(async move {
            let _slot = slot;
            serve_request(&*app, req, Response::new(chan)).await;
        });
        // Alone on the connection, the app may run here, once the records already read are
        // taken (its body may be all there: nginx sends a GET's end with its head).
        let task = if self.requests.is_empty() {
            self.starting = Some(Starting { tag, app });
            None
        } else {
            Some(self.tasks.get_or_insert_with(JoinSet::new).spawn(app))
        };
        let handle = Handle {
            body: Some(body_tx),
            backlog: Backlog::default(),
            gone,
            task,
        };
        self.requests.insert(tag, handle);
    }

    /// Starts the app waiting in `starting`: polled once here if its request is still alone
    /// on the connection, moved to a task if it waits (or is not alone).
    pub(super) fn start(&mut self) {
        let Some(Starting { tag, mut app }) = self.starting.take() else {
            return;
        };
        let alone = self.requests.len() == 1;
        if alone && poll_inline(app.as_mut(), self.conn.peer(), tag).is_ready() {
            return;
        }
        let task = self.tasks.get_or_insert_with(JoinSet::new).spawn(app);
        if let Some(handle) = self.requests.get_mut(&tag) {
            handle.task = Some(task);
        }
    }

    /// Queues a body chunk, or keeps it in its request's backlog when the queue is full (or
    /// others wait before it). Reading goes on while the connection's backlogs are small
    /// ([`Driver::can_read`]).
    pub(super) fn stdin(&mut self, tag: u64, data: Bytes) {
        let Some(handle) = self.requests.get_mut(&tag) else {
            return;
        };
        if handle.body.is_none() || data.is_empty() {
            return; // The app dropped its body: the rest is discarded as it arrives.
        }
        if handle.backlog.is_empty() {
            let mut cx = Context::from_waker(Waker::noop());
            let room = handle.body.as_mut().map(|b| b.poll_reserve(&mut cx));
            match room {
                Some(Poll::Ready(Ok(()))) => {
                    let sent = handle
                        .body
                        .as_mut()
                        .is_some_and(|b| b.send_item(data).is_ok());
                    if !sent {
                        handle.body = None;
                    }
                    return;
                }
                Some(Poll::Ready(Err(BodyClosed))) | None => {
                    handle.body = None;
                    return;
                }
                Some(Poll::Pending) => {}
            }
        }
        self.backlog_bytes += data.len();
        handle.backlog.bytes += data.len();
        handle.backlog.chunks.push_back(data);
    }

    /// The end of request `tag`'s body: now, or behind its backlog.
    pub(super) fn stdin_end(&mut self, tag: u64, error: Option<BodyError>) {
        match self.requests.get_mut(&tag) {
            Some(handle) if !handle.backlog.chunks.is_empty() => {
                handle.backlog.end = Some(error);
            }
            _ => self.end_body(tag, error),
        }
    }

    pub(super) fn end_body(&mut self, tag: u64, error: Option<BodyError>) {
        let body = self.requests.get_mut(&tag).and_then(|h| h.body.take());
        match (body, error) {
            (Some(body), None) => body.finish(),
            (Some(body), Some(e)) => body.fail(e),
            (None, _) => {}
        }
    }

    pub(super) fn forget(&mut self, tag: u64) -> Option<Handle> {
        if self.starting.as_ref().is_some_and(|s| s.tag == tag) {
            self.starting = None; // Cancelled before it ran: dropping it is all there is to do.
        }
        let handle = self.requests.remove(&tag);
        if let Some(h) = &handle {
            self.backlog_bytes -= h.backlog.bytes;
        }
        handle
    }
}

/// Polls an app's future once, here. A pending future is then spawned and polled again by
/// its task, which registers the task's waker: so no waker is needed here. A panic outside
/// the app (`serve_request` catches the app's own) ends the request as in a task: its
/// response channel, dropped, aborts it.
fn poll_inline(app: Pin<&mut (dyn Future<Output = ()> + Send)>, peer: &Peer, tag: u64) -> Poll<()> {
    let mut cx = Context::from_waker(Waker::noop());
    match std::panic::catch_unwind(AssertUnwindSafe(|| app.poll(&mut cx))) {
        Ok(poll) => poll,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("non-string panic payload");
            tracing::error!(%peer, request_id = tag, panic = message, "request panicked outside the app");
            Poll::Ready(())
        }
    }
}

/// Moves backlogged chunks into body queues that have room; `Ready` when any moved (or a
/// backlog was dropped because its app no longer reads). Registers for wake-ups on the
/// queues still full.
pub(super) fn poll_backlogs(
    requests: &mut IdMap<u64, Handle>,
    backlog_bytes: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut moved = false;
    for handle in requests.values_mut() {
        if handle.backlog.is_empty() {
            continue;
        }
        while let Some(front) = handle.backlog.chunks.front() {
            let len = front.len();
            let Some(body) = handle.body.as_mut() else {
                break;
            };
            match body.poll_reserve(cx) {
                Poll::Pending => break,
                Poll::Ready(Ok(())) => {
                    let chunk = handle.backlog.chunks.pop_front().unwrap_or_default();
                    if body.send_item(chunk).is_err() {
                        handle.body = None;
                    }
                }
                Poll::Ready(Err(BodyClosed)) => {
                    handle.body = None;
                    handle.backlog.chunks.pop_front();
                }
            }
            handle.backlog.bytes -= len;
            *backlog_bytes -= len;
            moved = true;
        }
        if handle.body.is_none() {
            // Its app dropped its body: what waited for it is discarded.
            *backlog_bytes -= handle.backlog.bytes;
            handle.backlog = Backlog::default();
            moved = true;
            continue;
        }
        if handle.backlog.chunks.is_empty() {
            if let Some(error) = handle.backlog.end.take() {
                match (handle.body.take(), error) {
                    (Some(body), None) => body.finish(),
                    (Some(body), Some(e)) => body.fail(e),
                    (None, _) => {}
                }
                moved = true;
            }
        }
    }
    if moved {
        Poll::Ready(())
    } else {
        Poll::Pending
    }
}
