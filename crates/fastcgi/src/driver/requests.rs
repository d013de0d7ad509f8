//! The driver's side of requests: starting an app (polled once where it is dispatched when
//! alone on its connection, else in a task), feeding its body with backpressure, forgetting it.

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

/// A body chunk waiting for room in its request's body queue (no record is read meanwhile).
pub(super) struct Held {
    pub(super) tag: u64,
    data: Bytes,
    /// The end of the body, when it arrived behind the held chunk.
    pub(super) end: Option<Option<BodyError>>,
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

    /// Queues a body chunk, or holds it (and stops reading) when the queue is full.
    pub(super) fn stdin(&mut self, tag: u64, data: Bytes) {
        let mut cx = Context::from_waker(Waker::noop());
        match poll_room(&mut self.requests, Some(tag), &mut cx) {
            Poll::Pending => {
                self.held = Some(Held {
                    tag,
                    data,
                    end: None,
                })
            }
            res => self.send_body(tag, data, res),
        }
    }

    pub(super) fn release_held(&mut self, room: Result<(), BodyClosed>) {
        let Some(held) = self.held.take() else {
            return;
        };
        self.send_body(held.tag, held.data, Poll::Ready(room));
        if let Some(error) = held.end {
            self.end_body(held.tag, error);
        }
        self.conn.handle_body_accepted(self.clock);
    }

    fn send_body(&mut self, tag: u64, data: Bytes, room: Poll<Result<(), BodyClosed>>) {
        let Some(handle) = self.requests.get_mut(&tag) else {
            return;
        };
        let sent = match (room, handle.body.as_mut()) {
            (Poll::Ready(Ok(())), Some(body)) => body.send_item(data).is_ok(),
            _ => false,
        };
        if !sent {
            // The app dropped its body: the rest of it is discarded as it arrives.
            handle.body = None;
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
        if self.held.as_ref().is_some_and(|h| h.tag == tag) {
            self.held = None;
        }
        if self.starting.as_ref().is_some_and(|s| s.tag == tag) {
            self.starting = None; // Cancelled before it ran: dropping it is all there is to do.
        }
        self.requests.remove(&tag)
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

/// Polls for room in the body queue of request `tag`; `Err` when the app no longer reads it.
pub(super) fn poll_room(
    requests: &mut IdMap<u64, Handle>,
    tag: Option<u64>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), BodyClosed>> {
    match tag
        .and_then(|tag| requests.get_mut(&tag))
        .and_then(|h| h.body.as_mut())
    {
        Some(body) => body.poll_reserve(cx),
        None => Poll::Ready(Err(BodyClosed)),
    }
}
