//! A ready-made [`ResponseChannel`]: app outputs queued to the connection's driver task, with a
//! per-request byte budget for backpressure.
//!
//! ```text
//!   app ── QueueChannel(tag=7) ──┐
//!   app ── QueueChannel(tag=9) ──┼── unbounded queue of Delivery ── driver ── socket
//!                                 │    (bounded by the byte budgets)
//! ```
//!
//! Every request of a connection gets a [`QueueChannel`] over one shared queue. Body chunks take
//! *credit* (bytes) from their request's budget before they are queued; the credit travels inside
//! the [`Delivery`] and returns to the budget when the driver drops it, which it does once the
//! bytes are written to the socket. So each request has at most `budget` bytes in flight, and a
//! slow client makes [`Response::write`](crate::Response::write) wait.
//!
//! Dropping a `QueueChannel` that did not finish queues [`Output::Abort`], so the driver always
//! learns that a request's app ended, also when its task was cancelled or panicked.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::channel::{BoxFuture, Output, ResponseChannel};
use crate::error::Error;

/// Default per-request budget of queued response bytes.
pub const DEFAULT_RESPONSE_BUDGET: usize = 256 * 1024;

/// One output step on its way to the driver.
#[derive(Debug)]
pub struct Delivery {
    /// The front end's tag for the request (unique per request, never reused on a connection).
    pub tag: u64,
    /// The step.
    pub output: Output,
    /// Budget held until the driver drops this delivery.
    credit: Option<OwnedSemaphorePermit>,
}

impl Delivery {
    /// Returns the credit to the request's budget now (e.g. after copying the bytes into a write
    /// buffer that the driver bounds itself).
    pub fn release(&mut self) {
        self.credit = None;
    }
}

/// The sending end of a connection's output queue, cloned into every request's channel.
pub type DeliverySender = mpsc::UnboundedSender<Delivery>;
/// The driver's end of a connection's output queue.
pub type DeliveryReceiver = mpsc::UnboundedReceiver<Delivery>;

/// A connection's output queue.
pub fn delivery_queue() -> (DeliverySender, DeliveryReceiver) {
    mpsc::unbounded_channel()
}

/// A [`ResponseChannel`] that queues outputs, tagged, for a connection driver.
#[derive(Debug)]
pub struct QueueChannel {
    tag: u64,
    tx: DeliverySender,
    budget: Budget,
    gone: CancellationToken,
    informational: bool,
    stderr: bool,
    ended: bool,
}

impl QueueChannel {
    /// A channel for request `tag` with `budget_bytes` of body in flight at most. The driver
    /// cancels `gone` when the client goes away.
    pub fn new(tag: u64, tx: DeliverySender, budget_bytes: usize, gone: CancellationToken) -> Self {
        let budget_bytes = budget_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            tag,
            tx,
            budget: Budget {
                permits: Arc::new(Semaphore::new(budget_bytes)),
                bytes: budget_bytes,
            },
            gone,
            informational: false,
            stderr: false,
            ended: false,
        }
    }

    /// Lets 1xx heads through (for HTTP/1.1).
    pub fn with_informational(mut self) -> Self {
        self.informational = true;
        self
    }

    /// Hands out [`StderrSender`]s: the front end forwards [`Output::Stderr`] (FastCGI's
    /// `FCGI_STDERR`).
    pub fn with_stderr(mut self) -> Self {
        self.stderr = true;
        self
    }

    fn deliver(
        &mut self,
        output: Output,
        credit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), Error> {
        if matches!(output, Output::Finish | Output::Abort) {
            self.ended = true;
        }
        let delivery = Delivery {
            tag: self.tag,
            output,
            credit,
        };
        self.tx.send(delivery).map_err(|_| Error::ClientGone)
    }
}

impl ResponseChannel for QueueChannel {
    fn send(&mut self, out: Output) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            if self.gone.is_cancelled() {
                return Err(Error::ClientGone);
            }
            let Output::Body(chunk) = &out else {
                return self.deliver(out, None);
            };
            let credit = self.budget.acquire(chunk.len(), &self.gone).await?;
            self.deliver(out, Some(credit))
        })
    }

    fn client_gone(&self) -> BoxFuture<'static, ()> {
        let gone = self.gone.clone();
        Box::pin(async move { gone.cancelled_owned().await })
    }

    fn forwards_informational(&self) -> bool {
        self.informational
    }

    fn stderr(&self) -> Option<StderrSender> {
        self.stderr.then(|| StderrSender {
            tag: self.tag,
            tx: self.tx.clone(),
            budget: self.budget.clone(),
            gone: self.gone.clone(),
        })
    }
}

/// A request's byte budget: the response bytes queued and not yet written.
#[derive(Debug, Clone)]
struct Budget {
    permits: Arc<Semaphore>,
    /// The whole budget, as given to `permits`.
    bytes: usize,
}

impl Budget {
    /// Waits for credit for `len` bytes, or fails once `gone` is cancelled. A chunk larger
    /// than the whole budget waits for all of it and then goes out whole: the bound on queued
    /// bytes per request is max(budget, largest chunk).
    ///
    /// # Cancel safety
    /// Cancel-safe: when cancelled no credit was taken.
    async fn acquire(
        &self,
        len: usize,
        gone: &CancellationToken,
    ) -> Result<OwnedSemaphorePermit, Error> {
        let want = len.clamp(1, self.bytes) as u32;
        tokio::select! {
            credit = self.permits.clone().acquire_many_owned(want) => {
                credit.map_err(|_| Error::ClientGone)
            }
            () = gone.cancelled() => Err(Error::ClientGone),
        }
    }
}

/// Sends a request's diagnostic output ([`Output::Stderr`]) through its [`QueueChannel`]'s
/// queue, from any task: same tag, same byte budget as the body (a flood of stderr waits for
/// the driver like a flood of body does).
#[derive(Debug, Clone)]
pub struct StderrSender {
    tag: u64,
    tx: DeliverySender,
    budget: Budget,
    gone: CancellationToken,
}

impl StderrSender {
    /// Queues `bytes` (nothing when empty), waiting while the request's budget is used up.
    /// Fails with [`Error::ClientGone`] once the client is gone or the connection closed.
    /// Bytes queued after the response's end are dropped by the front end.
    ///
    /// # Cancel safety
    /// Cancel-safe: when cancelled the bytes were not sent.
    pub async fn send(&self, bytes: Bytes) -> Result<(), Error> {
        if bytes.is_empty() {
            return Ok(());
        }
        let credit = self.budget.acquire(bytes.len(), &self.gone).await?;
        if self.gone.is_cancelled() {
            return Err(Error::ClientGone);
        }
        let delivery = Delivery {
            tag: self.tag,
            output: Output::Stderr(bytes),
            credit: Some(credit),
        };
        self.tx.send(delivery).map_err(|_| Error::ClientGone)
    }
}

impl Drop for QueueChannel {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.deliver(Output::Abort, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Response, ResponseHead};

    #[tokio::test]
    async fn budget_blocks_until_driver_drops_delivery() {
        let (tx, mut rx) = delivery_queue();
        let chan = QueueChannel::new(7, tx, 10, CancellationToken::new());
        let mut resp = Response::new(chan);
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        resp.write(Bytes::from_static(b"0123456789")).await.unwrap();
        let head = rx.recv().await.unwrap();
        assert_eq!(
            (head.tag, head.output),
            (7, Output::Head(ResponseHead::new(200)))
        );
        let first = rx.recv().await.unwrap();
        {
            let write = resp.write(Bytes::from_static(b"abc"));
            tokio::pin!(write);
            let waited =
                tokio::time::timeout(std::time::Duration::from_millis(20), &mut write).await;
            assert!(waited.is_err(), "second write must wait for budget");
            drop(first);
            write.await.unwrap();
        }
        let second = rx.recv().await.unwrap();
        assert_eq!(second.output, Output::Body(Bytes::from_static(b"abc")));
    }

    #[tokio::test]
    async fn drop_without_finish_aborts() {
        let (tx, mut rx) = delivery_queue();
        let resp = Response::new(QueueChannel::new(3, tx, 10, CancellationToken::new()));
        drop(resp);
        let d = rx.recv().await.unwrap();
        assert_eq!((d.tag, d.output), (3, Output::Abort));
    }

    #[tokio::test]
    async fn stderr_takes_the_request_budget_and_tag() {
        let (tx, mut rx) = delivery_queue();
        let gone = CancellationToken::new();
        let plain = Response::new(QueueChannel::new(4, tx.clone(), 10, gone.clone()));
        assert!(
            plain.stderr().is_none(),
            "only channels that forward it hand it out"
        );
        let mut resp = Response::new(QueueChannel::new(5, tx, 10, gone.clone()).with_stderr());
        let stderr = resp.stderr().unwrap();
        stderr.send(Bytes::new()).await.unwrap();
        stderr
            .send(Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let first = rx.recv().await.unwrap();
        assert_eq!(
            (first.tag, &first.output),
            (5, &Output::Stderr(Bytes::from_static(b"0123456789")))
        );
        // The budget is shared with the body: both wait until the driver drops `first`.
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        {
            let more = stderr.send(Bytes::from_static(b"x"));
            tokio::pin!(more);
            let waited =
                tokio::time::timeout(std::time::Duration::from_millis(20), &mut more).await;
            assert!(waited.is_err(), "stderr must wait for budget");
            drop(first);
            more.await.unwrap();
        }
        let _head = rx.recv().await.unwrap();
        let next = rx.recv().await.unwrap();
        assert_eq!(next.output, Output::Stderr(Bytes::from_static(b"x")));
        drop(next);
        gone.cancel();
        let gone_err = stderr.send(Bytes::from_static(b"y")).await;
        assert_eq!(gone_err, Err(Error::ClientGone));
    }

    #[tokio::test]
    async fn gone_fails_writes() {
        let (tx, _rx) = delivery_queue();
        let gone = CancellationToken::new();
        let mut resp = Response::new(QueueChannel::new(1, tx, 10, gone.clone()));
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        gone.cancel();
        assert_eq!(
            resp.write(Bytes::from_static(b"x")).await,
            Err(Error::ClientGone)
        );
        resp.client_gone().await;
    }
}
