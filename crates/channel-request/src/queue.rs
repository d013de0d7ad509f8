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
//!
//! With a [`ResponseSpool`] ([`QueueChannel::with_spool`]), a body chunk that finds no credit,
//! or would pass the spool's process-wide memory budget, is not waited for: it goes to the
//! request's spill file and the [`DeliveryReceiver`] reads it back, in order (see [`spill`]).
//!
//! [`spill`]: crate::spill

use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::channel::{BoxFuture, Output, ResponseChannel};
use crate::error::Error;
use crate::spill::{Appended, MemoryCharge, ResponseSpool, SpillFile};

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
    /// The bytes' share of the spool's process-wide memory budget, held likewise.
    charge: Option<MemoryCharge>,
    /// A marker (never handed out by [`DeliveryReceiver`]): read the request's body from this
    /// file, until it is caught up.
    spilled: Option<Arc<SpillFile>>,
}

impl Delivery {
    fn new(tag: u64, output: Output) -> Self {
        Self {
            tag,
            output,
            credit: None,
            charge: None,
            spilled: None,
        }
    }

    /// Returns the credit to the request's budget now (e.g. after copying the bytes into a write
    /// buffer that the driver bounds itself).
    pub fn release(&mut self) {
        self.credit = None;
        self.charge = None;
    }
}

/// The sending end of a connection's output queue, cloned into every request's channel.
pub type DeliverySender = mpsc::UnboundedSender<Delivery>;

/// The driver's end of a connection's output queue: the deliveries in the order they were
/// queued, with spilled body bytes read back from their files in their place.
#[derive(Debug)]
pub struct DeliveryReceiver {
    rx: mpsc::UnboundedReceiver<Delivery>,
    /// The marker being read: its request's tag and file.
    reading: Option<(u64, Arc<SpillFile>)>,
}

/// A connection's output queue.
pub fn delivery_queue() -> (DeliverySender, DeliveryReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, DeliveryReceiver { rx, reading: None })
}

impl DeliveryReceiver {
    /// The next delivery; `None` once every sender is gone and everything was received.
    ///
    /// # Cancel safety
    /// Cancel-safe: a delivery is either returned or still there for the next call.
    pub async fn recv(&mut self) -> Option<Delivery> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery (see [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        loop {
            if let Some(d) = self.next_spilled() {
                return Poll::Ready(Some(d));
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(d) => match self.take_marker(d) {
                    Some(d) => return Poll::Ready(Some(d)),
                    None => continue,
                },
                None => return Poll::Ready(None),
            }
        }
    }

    /// The next delivery if one is ready.
    pub fn try_recv(&mut self) -> Result<Delivery, TryRecvError> {
        loop {
            if let Some(d) = self.next_spilled() {
                return Ok(d);
            }
            let next = self.rx.try_recv()?;
            if let Some(d) = self.take_marker(next) {
                return Ok(d);
            }
        }
    }

    /// `d`, unless it is a marker: then it becomes the file being read.
    fn take_marker(&mut self, mut d: Delivery) -> Option<Delivery> {
        match d.spilled.take() {
            Some(file) => {
                self.reading = Some((d.tag, file));
                None
            }
            None => Some(d),
        }
    }

    /// The next chunk of the file being read, if any; a read error aborts its response.
    fn next_spilled(&mut self) -> Option<Delivery> {
        let (tag, file) = self.reading.as_ref()?;
        let tag = *tag;
        match file.read_next() {
            Ok(Some(chunk)) => Some(Delivery::new(tag, Output::Body(chunk))),
            Ok(None) => {
                self.reading = None;
                None
            }
            Err(error) => {
                tracing::error!(request_id = tag, %error, "cannot read back a spilled response: aborting it");
                self.reading = None;
                Some(Delivery::new(tag, Output::Abort))
            }
        }
    }
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
    /// Where chunks spill when there is no credit (`None`: they wait, always).
    spool: Option<Arc<ResponseSpool>>,
    /// This request's spill file, made on its first spill.
    file: Option<Arc<SpillFile>>,
    /// Spilling failed (no file could be made or written): wait for credit instead.
    spill_failed: bool,
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
            spool: None,
            file: None,
            spill_failed: false,
        }
    }

    /// Spills body chunks that find no credit (or would pass the spool's memory budget) to a
    /// temp file instead of waiting for the driver: see [`spill`](crate::spill).
    pub fn with_spool(mut self, spool: Arc<ResponseSpool>) -> Self {
        self.spool = Some(spool);
        self
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
        let mut delivery = Delivery::new(self.tag, output);
        delivery.credit = credit;
        self.queue(delivery)
    }

    fn queue(&mut self, delivery: Delivery) -> Result<(), Error> {
        if matches!(delivery.output, Output::Finish | Output::Abort) {
            self.ended = true;
        }
        self.tx.send(delivery).map_err(|_| Error::ClientGone)
    }

    /// Queues a body chunk through `spool`: in memory when it has credit and the budget
    /// allows, else appended to the spill file, else (file full or failing) waiting for credit.
    async fn send_spooling(
        &mut self,
        spool: Arc<ResponseSpool>,
        chunk: Bytes,
    ) -> Result<(), Error> {
        loop {
            if self.gone.is_cancelled() || self.tx.is_closed() {
                return Err(Error::ClientGone);
            }
            let outstanding = self.file.as_ref().is_some_and(|f| f.outstanding());
            if !outstanding && !spool.over_budget(chunk.len()) {
                if let Some(credit) = self.budget.try_acquire(chunk.len()) {
                    return self.in_memory(&spool, chunk, credit);
                }
            }
            if !self.spill_failed && self.spill(&spool, &chunk)? {
                return Ok(());
            }
            match &self.file {
                Some(file) if outstanding => {
                    let file = file.clone();
                    tokio::select! {
                        () = file.drained() => {}
                        () = self.gone.cancelled() => return Err(Error::ClientGone),
                    }
                }
                _ => {
                    let credit = self.budget.acquire(chunk.len(), &self.gone).await?;
                    return self.in_memory(&spool, chunk, credit);
                }
            }
        }
    }

    fn in_memory(
        &mut self,
        spool: &Arc<ResponseSpool>,
        chunk: Bytes,
        credit: OwnedSemaphorePermit,
    ) -> Result<(), Error> {
        let charge = spool.charge(chunk.len());
        let mut delivery = Delivery::new(self.tag, Output::Body(chunk));
        delivery.charge = Some(charge);
        delivery.credit = Some(credit);
        self.queue(delivery)
    }

    /// Appends `chunk` to the spill file (made now if needed), queueing a marker when none is
    /// outstanding. `Ok(false)`: not spilled (the file is full, or spilling failed: logged
    /// once, and this request waits for credit from now on).
    fn spill(&mut self, spool: &Arc<ResponseSpool>, chunk: &Bytes) -> Result<bool, Error> {
        let file = match &self.file {
            Some(file) => file.clone(),
            None => match spool.create() {
                Ok(file) => {
                    tracing::debug!(request_id = self.tag, dir = %spool.dir().display(), "the client reads slower than the app writes: spilling the response to a temp file");
                    self.file = Some(file.clone());
                    file
                }
                Err(error) => return Ok(self.spill_failed(spool, &error)),
            },
        };
        match file.append(chunk) {
            Ok(Appended::Joined) => Ok(true),
            Ok(Appended::NeedsMarker) => {
                let mut marker = Delivery::new(self.tag, Output::Body(Bytes::new()));
                marker.spilled = Some(file);
                self.queue(marker).map(|()| true)
            }
            Ok(Appended::Full) => Ok(false),
            Err(error) => Ok(self.spill_failed(spool, &error)),
        }
    }

    fn spill_failed(&mut self, spool: &ResponseSpool, error: &std::io::Error) -> bool {
        tracing::warn!(request_id = self.tag, dir = %spool.dir().display(), %error, "cannot spill the response to a temp file: the app waits for the client instead");
        self.spill_failed = true;
        false
    }
}

impl ResponseChannel for QueueChannel {
    fn send(&mut self, out: Output) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            if self.gone.is_cancelled() {
                return Err(Error::ClientGone);
            }
            let len = match &out {
                Output::Body(chunk) => chunk.len(),
                _ => return self.deliver(out, None),
            };
            match (self.spool.clone(), out) {
                (Some(spool), Output::Body(chunk)) => self.send_spooling(spool, chunk).await,
                (_, out) => {
                    let credit = self.budget.acquire(len, &self.gone).await?;
                    self.deliver(out, Some(credit))
                }
            }
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
    /// Credit for `len` bytes if it is there now (see [`acquire`](Self::acquire)).
    fn try_acquire(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        let want = len.clamp(1, self.bytes) as u32;
        self.permits.clone().try_acquire_many_owned(want).ok()
    }

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
        let mut delivery = Delivery::new(self.tag, Output::Stderr(bytes));
        delivery.credit = Some(credit);
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

    /// A spool in a fresh directory (returned too, to check that nothing is left in it).
    fn spool(max_file: u64, memory: usize) -> (tempfile::TempDir, Arc<ResponseSpool>) {
        let dir = tempfile::tempdir().unwrap();
        let spool = ResponseSpool::new(dir.path().to_path_buf(), max_file, memory);
        (dir, spool)
    }

    /// Every body byte and the end of request `tag` from what is ready on `rx`; other tags
    /// go to `others`.
    fn drain_ready(
        rx: &mut DeliveryReceiver,
        bodies: &mut std::collections::HashMap<u64, (Vec<u8>, bool)>,
    ) {
        while let Ok(d) = rx.try_recv() {
            let entry = bodies.entry(d.tag).or_default();
            match &d.output {
                Output::Body(b) => {
                    assert!(!b.is_empty(), "markers are never handed out");
                    assert!(!entry.1, "body after the end");
                    entry.0.extend_from_slice(b);
                }
                Output::Finish => entry.1 = true,
                Output::Head(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn pattern(i: usize, len: usize) -> Bytes {
        Bytes::from((0..len).map(|j| (i * 31 + j) as u8).collect::<Vec<u8>>())
    }

    #[tokio::test]
    async fn a_slow_driver_does_not_hold_the_app_and_order_is_kept() {
        let (dir, spool) = spool(1 << 30, 1 << 20);
        let (tx, mut rx) = delivery_queue();
        let chan =
            QueueChannel::new(7, tx, 1000, CancellationToken::new()).with_spool(spool.clone());
        let mut resp = Response::new(chan);
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        let mut want = Vec::new();
        // Nobody reads: the first chunk fits the credit, the rest spills; nothing waits.
        for i in 0..50 {
            let chunk = pattern(i, 700 + i * 13);
            want.extend_from_slice(&chunk);
            resp.write(chunk).await.unwrap();
        }
        assert_eq!(spool.open_files(), 1);
        assert!(spool.spilled_bytes() > 30_000);
        let mut bodies = std::collections::HashMap::new();
        drain_ready(&mut rx, &mut bodies);
        // The reader caught up: the next chunks take memory again, then spill again.
        for i in 50..100 {
            let chunk = pattern(i, 300);
            want.extend_from_slice(&chunk);
            resp.write(chunk).await.unwrap();
            if i % 20 == 0 {
                drain_ready(&mut rx, &mut bodies);
            }
        }
        resp.finish().await.unwrap();
        drop(resp);
        drain_ready(&mut rx, &mut bodies);
        let (got, ended) = bodies.remove(&7).unwrap();
        assert!(ended);
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes out of order");
        assert_eq!(spool.in_memory_bytes(), 0, "every charge returned");
        drop(rx);
        assert_eq!(spool.open_files(), 0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the file is unlinked"
        );
    }

    #[tokio::test]
    async fn small_answers_to_fast_drivers_make_no_file() {
        let (_dir, spool) = spool(1 << 30, 1 << 20);
        let (tx, mut rx) = delivery_queue();
        let chan =
            QueueChannel::new(1, tx, 1000, CancellationToken::new()).with_spool(spool.clone());
        let mut resp = Response::new(chan);
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        let mut bodies = std::collections::HashMap::new();
        for i in 0..20 {
            resp.write(pattern(i, 900)).await.unwrap();
            assert_eq!(spool.in_memory_bytes(), 900);
            drain_ready(&mut rx, &mut bodies);
        }
        assert_eq!((spool.open_files(), spool.spilled_bytes()), (0, 0));
    }

    #[tokio::test]
    async fn the_memory_budget_spills_at_once_and_the_file_limit_makes_the_app_wait() {
        // No memory budget at all: even a chunk with credit goes to the file.
        let (_dir, spool) = spool(2000, 0);
        let (tx, mut rx) = delivery_queue();
        let chan =
            QueueChannel::new(2, tx, 1 << 20, CancellationToken::new()).with_spool(spool.clone());
        let mut resp = Response::new(chan);
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        resp.write(pattern(0, 1500)).await.unwrap();
        assert_eq!(
            (
                spool.open_files(),
                spool.spilled_bytes(),
                spool.in_memory_bytes()
            ),
            (1, 1500, 0)
        );
        // Past the file's limit the app waits for the driver to catch up.
        {
            let write = resp.write(pattern(1, 1000));
            tokio::pin!(write);
            let waited =
                tokio::time::timeout(std::time::Duration::from_millis(20), &mut write).await;
            assert!(waited.is_err(), "a write past the file limit must wait");
            let mut bodies = std::collections::HashMap::new();
            drain_ready(&mut rx, &mut bodies);
            assert_eq!(bodies[&2].0.len(), 1500);
            write.await.unwrap();
        }
        // The file was rewound: the next chunk spilled into it again.
        assert_eq!(spool.spilled_bytes(), 2500);
        let d = rx.recv().await.unwrap();
        assert_eq!(d.output, Output::Body(pattern(1, 1000)));
    }

    #[tokio::test]
    async fn client_gone_removes_the_spill_file() {
        let (dir, spool) = spool(1 << 30, 1 << 20);
        let (tx, mut rx) = delivery_queue();
        let gone = CancellationToken::new();
        let chan = QueueChannel::new(3, tx, 100, gone.clone()).with_spool(spool.clone());
        let mut resp = Response::new(chan);
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        for i in 0..10 {
            resp.write(pattern(i, 1000)).await.unwrap();
        }
        // The driver is reading the file when the client goes.
        let _head = rx.recv().await.unwrap();
        let _first = rx.recv().await.unwrap();
        let _spilled = rx.recv().await.unwrap();
        assert_eq!(spool.open_files(), 1);
        gone.cancel();
        assert_eq!(resp.write(pattern(0, 10)).await, Err(Error::ClientGone));
        drop(resp);
        drop(rx);
        assert_eq!(
            spool.open_files(),
            0,
            "the file is closed with its last reference"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let fds = std::fs::read_dir("/proc/self/fd").unwrap();
        let open_in_dir = fds
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir.path()))
            .count();
        assert_eq!(open_in_dir, 0, "no descriptor of a spill file is left");
    }

    #[tokio::test]
    async fn requests_sharing_a_queue_spill_apart() {
        let (_dir, spool) = spool(1 << 30, 1 << 20);
        let (tx, mut rx) = delivery_queue();
        let mut resps: Vec<Response> = (0..3)
            .map(|tag| {
                let chan = QueueChannel::new(tag, tx.clone(), 500, CancellationToken::new());
                Response::new(chan.with_spool(spool.clone()))
            })
            .collect();
        drop(tx);
        let mut want = vec![Vec::new(); 3];
        let mut bodies = std::collections::HashMap::new();
        for (tag, resp) in resps.iter_mut().enumerate() {
            resp.send_head(ResponseHead::new(200)).await.unwrap();
            want[tag].clear();
        }
        for round in 0..40 {
            for (tag, resp) in resps.iter_mut().enumerate() {
                let chunk = pattern(round * 3 + tag, 100 + 37 * tag + round);
                want[tag].extend_from_slice(&chunk);
                resp.write(chunk).await.unwrap();
            }
            if round % 7 == 3 {
                drain_ready(&mut rx, &mut bodies);
            }
        }
        assert_eq!(spool.open_files(), 3);
        for resp in &mut resps {
            resp.finish().await.unwrap();
        }
        drop(resps);
        drain_ready(&mut rx, &mut bodies);
        for (tag, want) in want.iter().enumerate() {
            let (got, ended) = &bodies[&(tag as u64)];
            assert!(ended);
            assert!(got == want, "request {tag}: bytes out of order or lost");
        }
        assert!(rx.recv().await.is_none());
        assert_eq!((spool.open_files(), spool.in_memory_bytes()), (0, 0));
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
