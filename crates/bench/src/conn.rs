//! One client connection's loop: kept-alive sessions (`session`: FastCGI with K requests in
//! flight, HTTP keep-alive) and one request per connection (`one_shot_on`: SCGI, FastCGI
//! without `FCGI_KEEP_CONN`). Each is a single task on its thread's runtime, with a single
//! `select!` over reading responses, writing requests, the open-loop timer, the request
//! timeout and the end of the run.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::args::{Addr, Plan, Protocol};
use crate::out::OutQueue;
use crate::outcome::{Done, ErrorKind, Failure, Response};
use crate::schedule::{timed_from, Clock, Next, Schedule, Slot};
use crate::stats::Recorder;
use crate::wire::{Reader, Templates};

/// What every connection of a thread shares.
#[derive(Debug)]
pub struct Ctx {
    /// The run.
    pub plan: Plan,
    /// The clock.
    pub clock: std::sync::Arc<Clock>,
    /// Pre-encoded requests.
    pub templates: std::sync::Arc<Templates>,
    /// This thread's counters.
    pub recorder: RefCell<Recorder>,
    /// This thread's progress counters, read by the progress line.
    pub progress: std::sync::Arc<crate::engine::Progress>,
    /// The time of the last measured completion.
    pub last_completion: RefCell<Option<Instant>>,
}

impl Ctx {
    /// Records the end of request `slot` at `now`.
    pub fn complete(&self, slot: Slot, now: Instant, result: Result<Response, Failure>) {
        if !slot.measured || self.clock.end.is_some_and(|end| now > end) {
            return;
        }
        let mut rec = self.recorder.borrow_mut();
        match result {
            Ok(_) => rec.success(now.saturating_duration_since(slot.intended)),
            Err(f) => {
                rec.failure(&f);
                self.progress.error();
            }
        }
        self.progress.done();
        *self.last_completion.borrow_mut() = Some(now);
    }

    /// Request `slot` was still unanswered when the run ended.
    pub fn unfinished(&self, slot: Slot) {
        if slot.measured {
            let waited = Instant::now().saturating_duration_since(slot.intended);
            let mut rec = self.recorder.borrow_mut();
            rec.unfinished += 1;
            rec.oldest_unfinished = rec.oldest_unfinished.max(waited);
        }
    }

    fn bytes(&self, read: usize, written: usize) {
        let mut rec = self.recorder.borrow_mut();
        rec.bytes_in += read as u64;
        rec.bytes_out += written as u64;
    }
}

/// A connected socket, TCP or unix.
pub enum Stream {
    /// TCP, with `TCP_NODELAY`.
    Tcp(TcpStream),
    /// Unix.
    Unix(UnixStream),
}

/// Connects to `addr`.
pub async fn connect(addr: &Addr) -> Result<Stream, Failure> {
    let failed = |e: std::io::Error| Failure::new(ErrorKind::Connect, e.to_string());
    match addr {
        Addr::Tcp(sock) => {
            let s = TcpStream::connect(sock).await.map_err(failed)?;
            s.set_nodelay(true).map_err(failed)?;
            Ok(Stream::Tcp(s))
        }
        Addr::Unix(path) => UnixStream::connect(path)
            .await
            .map(Stream::Unix)
            .map_err(failed),
    }
}

/// Runs connection `index` until the run is over.
pub async fn run(ctx: Rc<Ctx>, index: usize) {
    let mut schedule = Schedule::new(&ctx.plan, &ctx.clock, index);
    let one_shot = ctx.plan.protocol == Protocol::Scgi || !ctx.plan.keep_conn;
    loop {
        let Some(first) = wait_next(&ctx, &mut schedule).await else {
            return;
        };
        let stream = match connect(&ctx.plan.addr).await {
            Ok(s) => s,
            Err(f) => {
                ctx.complete(first, Instant::now(), Err(f));
                // Do not spin on a server that refuses connections.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let finished = match (stream, one_shot) {
            (Stream::Tcp(mut s), true) => one_shot_on(&ctx, s.split(), first).await,
            (Stream::Unix(mut s), true) => one_shot_on(&ctx, s.split(), first).await,
            (Stream::Tcp(mut s), false) => session(&ctx, s.split(), &mut schedule, first).await,
            (Stream::Unix(mut s), false) => session(&ctx, s.split(), &mut schedule, first).await,
        };
        if finished {
            return;
        }
    }
}

/// The next request of this connection, waiting for its time (open loop); `None` at the end.
async fn wait_next(ctx: &Ctx, schedule: &mut Schedule) -> Option<Slot> {
    let free_since = Instant::now();
    loop {
        let now = Instant::now();
        match schedule.next(&ctx.clock, now) {
            Next::Send(mut slot) => {
                slot.intended = timed_from(slot.intended, free_since, now);
                return Some(slot);
            }
            Next::Finished => return None,
            Next::WaitUntil(t) => tokio::time::sleep_until(t.into()).await,
        }
    }
}

/// One request on a fresh connection, answered then closed. Never "finished": the caller asks
/// the schedule again.
async fn one_shot_on<R, W>(ctx: &Ctx, (mut rd, mut wr): (R, W), slot: Slot) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = Reader::new(&ctx.plan);
    reader.start(1);
    let exchange = async {
        let mut out = OutQueue::default();
        out.push(ctx.templates.request(1));
        while !out.is_empty() {
            let n = out
                .write(&mut wr)
                .await
                .map_err(|e| io_failure(ErrorKind::Write, &e))?;
            ctx.bytes(0, n);
        }
        let mut buf = BytesMut::with_capacity(16 * 1024);
        loop {
            buf.reserve(16 * 1024);
            let n = rd
                .read_buf(&mut buf)
                .await
                .map_err(|e| io_failure(ErrorKind::Read, &e))?;
            ctx.bytes(n, 0);
            if let Some(done) = reader.poll(&mut buf, n == 0)? {
                return done.result;
            }
            if n == 0 {
                return Err(Failure::new(
                    ErrorKind::Closed,
                    "closed before the response ended",
                ));
            }
        }
    };
    let far = Instant::now() + Duration::from_secs(86400 * 365);
    let end = tokio::time::sleep_until(ctx.clock.end.unwrap_or(far).into());
    let result = tokio::select! {
        r = tokio::time::timeout(ctx.plan.timeout, exchange) => match r {
            Ok(r) => r,
            Err(_) => Err(timeout_failure(ctx.plan.timeout)),
        },
        () = end => {
            ctx.unfinished(slot);
            return true;
        }
    };
    ctx.complete(slot, Instant::now(), result);
    false
}

/// Requests in flight on a kept-alive connection, by request id `1..=K`.
struct InFlight {
    slots: Vec<Option<(Slot, Instant)>>,
    free: Vec<u16>,
    /// When each id last became free.
    freed_at: Vec<Instant>,
}

impl InFlight {
    fn new(k: usize) -> Self {
        Self {
            slots: vec![None; k],
            free: (1..=k as u16).rev().collect(),
            freed_at: vec![Instant::now(); k],
        }
    }

    fn busy(&self) -> bool {
        self.free.len() < self.slots.len()
    }

    fn take(&mut self, id: u16) -> Option<Slot> {
        let index = usize::from(id).wrapping_sub(1);
        let slot = self.slots.get_mut(index)?.take()?;
        self.free.push(id);
        self.freed_at[index] = Instant::now();
        Some(slot.0)
    }

    fn oldest_sent(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|(_, sent)| *sent).min()
    }

    /// Every request in flight fails with `failure`.
    fn fail_all(&mut self, ctx: &Ctx, failure: &Failure) {
        let now = Instant::now();
        for id in 1..=self.slots.len() as u16 {
            if let Some(slot) = self.take(id) {
                ctx.complete(slot, now, Err(failure.clone()));
            }
        }
    }
}

/// A kept-alive connection: fills its free request ids from the schedule, reads responses as
/// they come. Returns true when the run is over, false to reconnect.
async fn session<R, W>(
    ctx: &Ctx,
    (mut rd, mut wr): (R, W),
    schedule: &mut Schedule,
    first: Slot,
) -> bool
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let k = ctx.plan.multiplex;
    let mut reader = Reader::new(&ctx.plan);
    let mut flight = InFlight::new(k);
    let mut out = OutQueue::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut pending = Some(first);
    let mut finishing = false;
    let far = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
    let end = tokio::time::sleep_until(ctx.clock.end.map_or(far, Into::into));
    let wake = tokio::time::sleep_until(far);
    let timer = tokio::time::sleep(ctx.plan.timeout);
    tokio::pin!(end, wake, timer);
    let mut wake_at = None;
    loop {
        // Give every free request id a request, while the schedule has one due.
        while !finishing && !flight.free.is_empty() {
            let now = Instant::now();
            let slot = match pending
                .take()
                .map_or_else(|| schedule.next(&ctx.clock, now), Next::Send)
            {
                Next::Send(slot) => slot,
                Next::WaitUntil(t) => {
                    if wake_at != Some(t) {
                        wake_at = Some(t);
                        wake.as_mut().reset(t.into());
                    }
                    break;
                }
                Next::Finished => {
                    finishing = true;
                    break;
                }
            };
            let id = flight.free.pop().unwrap_or(1);
            let index = usize::from(id) - 1;
            let slot = Slot {
                intended: timed_from(slot.intended, flight.freed_at[index], now),
                ..slot
            };
            flight.slots[index] = Some((slot, now));
            reader.start(id);
            out.push(ctx.templates.request(id));
            wake_at = None;
        }
        if finishing && !flight.busy() {
            return true;
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) => return fail(ctx, &mut flight, io_failure(ErrorKind::Read, &e)),
                };
                ctx.bytes(n, 0);
                if !on_read(ctx, &mut reader, &mut flight, &mut buf, n == 0) {
                    return finishing;
                }
                buf.reserve(16 * 1024);
            }
            r = out.write(&mut wr), if !out.is_empty() => match r {
                Ok(n) => ctx.bytes(0, n),
                Err(e) => return fail(ctx, &mut flight, io_failure(ErrorKind::Write, &e)),
            },
            () = &mut wake, if wake_at.is_some() => wake_at = None,
            () = &mut timer, if flight.busy() => {
                let now = Instant::now();
                match flight.oldest_sent() {
                    Some(sent) if now.duration_since(sent) >= ctx.plan.timeout => {
                        return fail(ctx, &mut flight, timeout_failure(ctx.plan.timeout));
                    }
                    Some(sent) => timer.as_mut().reset((sent + ctx.plan.timeout).into()),
                    None => timer.as_mut().reset((now + ctx.plan.timeout).into()),
                }
            }
            () = &mut end => {
                for (slot, _) in flight.slots.iter().flatten() {
                    ctx.unfinished(*slot);
                }
                return true;
            }
        }
    }
}

/// Handles what a read brought; false when the connection must be closed.
fn on_read(
    ctx: &Ctx,
    reader: &mut Reader,
    flight: &mut InFlight,
    buf: &mut BytesMut,
    eof: bool,
) -> bool {
    loop {
        match reader.poll(buf, eof) {
            Ok(Some(done)) => {
                let reusable = done.reusable;
                finish(ctx, flight, done);
                if !reusable {
                    let f = Failure::new(ErrorKind::Closed, "server ended the connection");
                    flight.fail_all(ctx, &f);
                    return false;
                }
            }
            Ok(None) if eof => {
                let hint = match reader {
                    Reader::Fastcgi(_) => {
                        " (a FastCGI server that ignores FCGI_KEEP_CONN needs --no-keep-conn)"
                    }
                    _ => "",
                };
                let detail = format!("closed with requests in flight{hint}");
                let f = Failure::new(ErrorKind::Closed, detail);
                flight.fail_all(ctx, &f);
                return false;
            }
            Ok(None) => return true,
            Err(f) => {
                flight.fail_all(ctx, &f);
                return false;
            }
        }
    }
}

fn finish(ctx: &Ctx, flight: &mut InFlight, done: Done) {
    if let Some(slot) = flight.take(done.id.max(1)) {
        ctx.complete(slot, Instant::now(), done.result);
    }
}

fn fail(ctx: &Ctx, flight: &mut InFlight, failure: Failure) -> bool {
    flight.fail_all(ctx, &failure);
    false
}

fn io_failure(kind: ErrorKind, e: &std::io::Error) -> Failure {
    Failure::new(kind, e.to_string())
}

fn timeout_failure(timeout: Duration) -> Failure {
    Failure::new(
        ErrorKind::Timeout,
        format!("no complete response within {timeout:?}"),
    )
}
