//! The request body: a bounded async stream from the front end to the app.
//!
//! ```text
//!   front end ── BodySender ──[ bounded queue of chunks ]── RequestBody ── app
//! ```
//!
//! The queue holds at most `capacity` chunks, so a slow app makes [`BodySender::send`] (or
//! [`BodySender::poll_reserve`]) wait and the front end stops reading its socket: memory stays
//! bounded whatever the body size. The end of the body is not a queue item: the sender records
//! how the body ended ([`BodySender::finish`], [`BodySender::fail`], or dropped = aborted) and the
//! reader sees it once the queued chunks are consumed.
//!
//! [`RequestBody`] enforces `CONTENT_LENGTH`: it never hands out bytes past the announced length
//! and reports a short body as [`BodyError::Short`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::PollSender;

use crate::error::BodyError;

/// Default queue depth, in chunks. With FastCGI's 64 KiB records that bounds a request's queued
/// body at 256 KiB.
pub const DEFAULT_BODY_QUEUE_CHUNKS: usize = 4;

/// How the sender ended the body.
#[derive(Debug, Clone, Default)]
enum Ending {
    /// Not ended yet; if all senders are dropped in this state the body was aborted.
    #[default]
    Open,
    /// The body is complete.
    Complete,
    /// The front end reported an error.
    Failed(BodyError),
}

type Shared = Arc<Mutex<Ending>>;

/// Whether the app has asked for body bytes yet; lets a front end hold back `100 Continue`.
#[derive(Debug, Default)]
struct Demand {
    asked: AtomicBool,
    notify: Notify,
}

impl Demand {
    fn ask(&self) {
        if !self.asked.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }
}

/// Creates a body stream: the front end keeps the sender, the app gets the [`RequestBody`].
///
/// `content_length` is the announced length (`None` when the body is delimited by the protocol,
/// like a chunked upload or FastCGI's empty STDIN record).
pub fn body_channel(capacity: usize, content_length: Option<u64>) -> (BodySender, RequestBody) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let ending: Shared = Arc::default();
    let demand = Arc::new(Demand::default());
    let sender = BodySender {
        tx: PollSender::new(tx),
        ending: ending.clone(),
        demand: demand.clone(),
        sent: 0,
    };
    let body = RequestBody {
        rx: Some(rx),
        ending: Some(ending),
        demand: Some(demand),
        expected: content_length,
        received: 0,
        pending_error: None,
        tally: None,
    };
    (sender, body)
}

/// The front end's side of a request body.
#[derive(Debug)]
pub struct BodySender {
    tx: PollSender<Bytes>,
    ending: Shared,
    demand: Arc<Demand>,
    sent: u64,
}

/// The app no longer reads the body (its [`RequestBody`] was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyClosed;

impl BodySender {
    /// Waits until the queue has room for one chunk. Call [`BodySender::send_item`] after `Ready(Ok)`.
    ///
    /// Returns `Ready(Err(BodyClosed))` when the app dropped its body: the caller should discard
    /// the rest of the body instead of buffering it.
    pub fn poll_reserve(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BodyClosed>> {
        self.tx.poll_reserve(cx).map_err(|_| BodyClosed)
    }

    /// Queues one chunk into the slot reserved by [`BodySender::poll_reserve`].
    pub fn send_item(&mut self, chunk: Bytes) -> Result<(), BodyClosed> {
        self.sent += chunk.len() as u64;
        self.tx.send_item(chunk).map_err(|_| BodyClosed)
    }

    /// Queues one chunk, waiting for room.
    ///
    /// # Cancel safety
    /// Cancel-safe: when cancelled before completion the chunk was not queued.
    pub async fn send(&mut self, chunk: Bytes) -> Result<(), BodyClosed> {
        std::future::poll_fn(|cx| self.poll_reserve(cx)).await?;
        self.send_item(chunk)
    }

    /// Whether the app dropped its body.
    pub fn is_closed(&self) -> bool {
        self.tx.get_ref().is_none_or(|tx| tx.is_closed())
    }

    /// Resolves once the app first asks for body bytes (`true`), or drops its body without
    /// asking (`false`). A front end that must not solicit the body before the app wants it
    /// (HTTP `Expect: 100-continue`) waits on this before reading.
    ///
    /// # Cancel safety
    /// Cancel-safe.
    pub async fn wanted(&self) -> bool {
        loop {
            let notified = self.demand.notify.notified();
            if self.demand.asked.load(Ordering::Acquire) {
                return true;
            }
            if self.is_closed() {
                return false;
            }
            notified.await;
        }
    }

    /// Bytes queued so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// Marks the body complete. Chunks already queued are still delivered.
    pub fn finish(self) {
        self.end(Ending::Complete);
    }

    /// Marks the body failed; the app sees `err` after the chunks already queued.
    pub fn fail(self, err: BodyError) {
        self.end(Ending::Failed(err));
    }

    fn end(mut self, how: Ending) {
        if let Ok(mut e) = self.ending.lock() {
            *e = how;
        }
        self.tx.close();
    }
}

/// The app's side of a request body: an async stream of chunks.
#[derive(Debug)]
pub struct RequestBody {
    rx: Option<mpsc::Receiver<Bytes>>,
    ending: Option<Shared>,
    demand: Option<Arc<Demand>>,
    expected: Option<u64>,
    received: u64,
    pending_error: Option<BodyError>,
    tally: Option<crate::observe::Tally>,
}

impl RequestBody {
    /// A body with no bytes.
    pub fn empty() -> Self {
        Self {
            rx: None,
            ending: None,
            demand: None,
            expected: Some(0),
            received: 0,
            pending_error: None,
            tally: None,
        }
    }

    /// A body made of one chunk already in memory.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        let (tx, body) = body_channel(1, Some(bytes.len() as u64));
        if !bytes.is_empty() {
            // A fresh channel of capacity 1 always has room for one chunk.
            let _ = tx.tx.get_ref().map(|s| s.try_send(bytes));
        }
        tx.finish();
        body
    }

    /// The announced length (`CONTENT_LENGTH`), if any.
    pub fn content_length(&self) -> Option<u64> {
        self.expected
    }

    /// Bytes handed to the app so far.
    pub fn bytes_read(&self) -> u64 {
        self.received
    }

    /// A count of the bytes handed to the app from now on, readable after the body is gone.
    pub(crate) fn tally(&mut self) -> crate::observe::Tally {
        self.tally.get_or_insert_with(Default::default).clone()
    }

    /// Whether the whole body has been read (a later [`RequestBody::chunk`] returns `Ok(None)`).
    pub fn is_end(&self) -> bool {
        self.rx.is_none() && self.pending_error.is_none()
    }

    /// The next chunk, `Ok(None)` at the end of the body.
    ///
    /// With a `CONTENT_LENGTH`, the body ends as soon as that many bytes were read; bytes past it
    /// are never returned, and a body ending early is [`BodyError::Short`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a cancelled call loses no chunk.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        if self.complete_by_length() {
            return Ok(None);
        }
        let next = match self.rx.as_mut() {
            None => None,
            Some(rx) => rx.recv().await,
        };
        self.accept(next)
    }

    /// Like [`RequestBody::chunk`], blocking the calling thread. For app threads outside the async
    /// runtime (WSGI); panics if called from within an async task.
    pub fn blocking_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        if self.complete_by_length() {
            return Ok(None);
        }
        let next = match self.rx.as_mut() {
            None => None,
            Some(rx) => rx.blocking_recv(),
        };
        self.accept(next)
    }

    /// Polls for the next chunk; the `poll` form of [`RequestBody::chunk`].
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, BodyError>> {
        if self.complete_by_length() {
            return Poll::Ready(Ok(None));
        }
        let next = match self.rx.as_mut() {
            None => None,
            Some(rx) => match rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            },
        };
        Poll::Ready(self.accept(next))
    }

    /// Reads the whole body into memory, failing past `limit` bytes.
    pub async fn read_to_end(&mut self, limit: u64) -> Result<Bytes, BodyError> {
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if (out.len() + chunk.len()) as u64 > limit {
                return Err(BodyError::TooLarge { limit });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// Whether every announced byte was read (so the body is over without asking the queue).
    fn complete_by_length(&mut self) -> bool {
        if let Some(demand) = &self.demand {
            demand.ask();
        }
        let done = self.pending_error.is_none() && self.expected == Some(self.received);
        if done {
            self.close();
        }
        done
    }

    /// Turns what the queue gave into what the app sees, enforcing `CONTENT_LENGTH`.
    fn accept(&mut self, next: Option<Bytes>) -> Result<Option<Bytes>, BodyError> {
        if let Some(err) = self.pending_error.take() {
            self.close();
            return Err(err);
        }
        let Some(mut chunk) = next else {
            return self.at_end();
        };
        if let Some(expected) = self.expected {
            let room = expected - self.received;
            if chunk.len() as u64 > room {
                chunk.truncate(room as usize);
                self.pending_error = Some(BodyError::Long { expected });
            }
        }
        self.received += chunk.len() as u64;
        if let Some(tally) = &self.tally {
            tally.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        if self.expected == Some(self.received) && self.pending_error.is_none() {
            // All announced bytes are here: the body is over whatever the peer does next.
            self.close();
        }
        if chunk.is_empty() {
            return match self.pending_error.take() {
                Some(err) => {
                    self.close();
                    Err(err)
                }
                None => self.at_end(),
            };
        }
        Ok(Some(chunk))
    }

    /// The queue is exhausted: report how the sender ended the body.
    fn at_end(&mut self) -> Result<Option<Bytes>, BodyError> {
        let ending = self
            .ending
            .as_ref()
            .and_then(|e| e.lock().ok().map(|e| e.clone()));
        self.close();
        match (ending, self.expected) {
            (Some(Ending::Failed(err)), _) => Err(err),
            (Some(Ending::Open), _) => Err(BodyError::Aborted),
            (_, Some(expected)) if self.received < expected => Err(BodyError::Short {
                expected,
                received: self.received,
            }),
            _ => Ok(None),
        }
    }

    fn close(&mut self) {
        self.rx = None;
        self.ending = None;
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        // Wake a front end waiting in `wanted()`: the app will never ask now.
        self.rx = None;
        if let Some(demand) = &self.demand {
            demand.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_chunks_then_end() {
        let (mut tx, mut body) = body_channel(2, None);
        tx.send(Bytes::from_static(b"ab")).await.unwrap();
        tx.send(Bytes::from_static(b"c")).await.unwrap();
        tx.finish();
        assert_eq!(body.chunk().await, Ok(Some(Bytes::from_static(b"ab"))));
        assert_eq!(body.chunk().await, Ok(Some(Bytes::from_static(b"c"))));
        assert_eq!(body.chunk().await, Ok(None));
        assert_eq!(body.chunk().await, Ok(None));
    }

    #[tokio::test]
    async fn dropped_sender_is_abort() {
        let (tx, mut body) = body_channel(2, None);
        drop(tx);
        assert_eq!(body.chunk().await, Err(BodyError::Aborted));
    }

    #[tokio::test]
    async fn short_body_is_error() {
        let (mut tx, mut body) = body_channel(2, Some(5));
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        tx.finish();
        assert_eq!(body.chunk().await, Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(
            body.chunk().await,
            Err(BodyError::Short {
                expected: 5,
                received: 3
            })
        );
    }

    #[tokio::test]
    async fn never_reads_past_content_length() {
        let (mut tx, mut body) = body_channel(2, Some(4));
        tx.send(Bytes::from_static(b"abcdef")).await.unwrap();
        tx.finish();
        assert_eq!(body.chunk().await, Ok(Some(Bytes::from_static(b"abcd"))));
        assert_eq!(body.chunk().await, Err(BodyError::Long { expected: 4 }));
        assert_eq!(body.bytes_read(), 4);
    }

    #[tokio::test]
    async fn exact_length_ends_without_waiting_for_sender() {
        let (mut tx, mut body) = body_channel(2, Some(3));
        tx.send(Bytes::from_static(b"abc")).await.unwrap();
        // Sender still open: the body is complete anyway.
        assert_eq!(body.chunk().await, Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(body.chunk().await, Ok(None));
        assert!(tx.is_closed());
    }

    #[tokio::test]
    async fn failure_after_queued_chunks() {
        let (mut tx, mut body) = body_channel(2, None);
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        tx.fail(BodyError::Malformed("bad chunk".into()));
        assert_eq!(body.chunk().await, Ok(Some(Bytes::from_static(b"x"))));
        assert!(matches!(body.chunk().await, Err(BodyError::Malformed(_))));
    }

    #[tokio::test]
    async fn full_queue_blocks_sender() {
        let (mut tx, mut body) = body_channel(1, None);
        tx.send(Bytes::from_static(b"1")).await.unwrap();
        let mut second = Box::pin(tx.send(Bytes::from_static(b"2")));
        assert!(futures_poll_once(&mut second).is_pending());
        assert_eq!(body.chunk().await, Ok(Some(Bytes::from_static(b"1"))));
        second.await.unwrap();
        assert_eq!(body.chunk().await, Ok(Some(Bytes::from_static(b"2"))));
    }

    #[tokio::test]
    async fn wanted_waits_for_first_read_or_drop() {
        let (mut tx, mut body) = body_channel(2, None);
        {
            let wanted = tx.wanted();
            tokio::pin!(wanted);
            assert!(futures_poll_once(&mut wanted).is_pending());
            let read = body.chunk();
            tokio::pin!(read);
            assert!(futures_poll_once(&mut read).is_pending());
            assert!(wanted.await);
        }
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        let (tx2, body2) = body_channel(2, None);
        let wanted = tx2.wanted();
        drop(body2);
        assert!(!wanted.await);
    }

    #[tokio::test]
    async fn empty_and_from_bytes() {
        assert_eq!(RequestBody::empty().chunk().await, Ok(None));
        let mut b = RequestBody::from_bytes("hey");
        assert_eq!(b.read_to_end(10).await, Ok(Bytes::from_static(b"hey")));
        let mut b = RequestBody::from_bytes("hey");
        assert_eq!(
            b.read_to_end(2).await,
            Err(BodyError::TooLarge { limit: 2 })
        );
    }

    fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        std::pin::Pin::new(f).poll(&mut cx)
    }
}
