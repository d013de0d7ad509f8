//! Moving bytes between the client, the script and the response, all at the same time.
//!
//! ```text
//!   RequestBody ──feeder──► script stdin        (as it arrives; closed at the end of the body)
//!   script stdout ──head──► parse_cgi_head ──► send_head ──► write (awaits: backpressure)
//! ```
//!
//! The feeder is never awaited on its own: every wait of the response side goes through
//! [`Ctl::drive`], which polls the awaited step together with the feeder, the client-gone signal
//! and the idle watchdog. So a script that answers before reading its body gets its answer
//! forwarded (to the front end) while its body still flows in, and a script that stops reading
//! its body does not stop its answer (the rest of the body is dropped, which tells the front end
//! to discard it). Neither direction buffers more than one chunk. The FastCGI and SCGI front
//! ends then hold such an early answer until the body is in (nginx stops sending a request body
//! once it has a response header); see their crate docs.
//!
//! The watchdog ([`crate::Config::timeout`]) fires when no byte moved to or from the script for
//! the configured time; time spent waiting for the client does not count.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gatehouse_channel_request::cgi_head::{parse_cgi_head, parse_cgi_head_final, CgiResponse};
use gatehouse_channel_request::{BoxFuture, RequestBody, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use crate::config::STDERR_LINGER;
use crate::error::Error;
use crate::guard::ChildGuard;
use crate::stderr::Forwarding;

/// Bytes read from the script's stdout per allocation; one pipe's worth.
pub const READ_CHUNK: usize = 64 * 1024;

/// The first read buffer of a run, which holds the head (and all of a small answer). Kept below
/// glibc's 64 KiB `FASTBIN_CONSOLIDATION_THRESHOLD`: freeing a [`READ_CHUNK`] buffer after every
/// small request made malloc consolidate its free lists each time. A larger head, or a larger
/// answer, gets [`READ_CHUNK`] buffers as before.
const HEAD_CHUNK: usize = 16 * 1024;

/// Below this much spare room a new read buffer is allocated.
const MIN_READ_ROOM: usize = 4 * 1024;

/// Output a script may write after a local-redirect head before it is killed (RFC 3875 section
/// 6.2.2 says it must write none).
pub const REDIRECT_DRAIN_LIMIT: usize = 64 * 1024;

/// When bytes last moved to or from the script, and whether the feeder waits for the client.
#[derive(Debug)]
pub(crate) struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    client_wait: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            client_wait: AtomicBool::new(false),
        }
    }

    /// Records progress now.
    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }
}

/// What a step of the response side waits for: the script (the watchdog runs) or the client
/// (it does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Script,
    Client,
}

/// Everything polled alongside each step: the feeder, the client, the watchdog.
pub(crate) struct Ctl {
    gone: Option<BoxFuture<'static, ()>>,
    feeder: Option<BoxFuture<'static, Result<(), Error>>>,
    activity: Arc<Activity>,
    watchdog: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl Ctl {
    /// Controls one run of a script. `stdin` is `None` when the request has no body.
    pub(crate) fn new(
        gone: BoxFuture<'static, ()>,
        first: Option<Bytes>,
        body: RequestBody,
        stdin: Option<impl AsyncWrite + Unpin + Send + 'static>,
        timeout: Option<Duration>,
    ) -> Self {
        let activity = Arc::new(Activity::new());
        let feeder = stdin.map(|stdin| {
            let fut: BoxFuture<'static, Result<(), Error>> =
                Box::pin(feed(first, body, stdin, activity.clone()));
            fut
        });
        let watchdog = timeout.map(|idle| (idle, Box::pin(tokio::time::sleep(idle))));
        Self {
            gone: Some(gone),
            feeder,
            activity,
            watchdog,
        }
    }

    /// Stops feeding the script: its stdin is closed and the rest of the body dropped.
    pub(crate) fn stop_feeding(&mut self) {
        self.feeder = None;
    }

    /// After the response is complete the client no longer matters: waiting for the script's
    /// exit goes on even if the client leaves.
    pub(crate) fn forget_client(&mut self) {
        self.gone = None;
    }

    /// Runs `step` while feeding the script, watching the client and (for [`Wait::Script`]) the
    /// idle watchdog.
    ///
    /// # Cancel safety
    /// Cancel-safe as far as this struct goes; `step` itself decides what a cancel loses.
    pub(crate) async fn drive<F: Future>(
        &mut self,
        wait: Wait,
        step: F,
    ) -> Result<F::Output, Error> {
        let mut step = std::pin::pin!(step);
        let out = std::future::poll_fn(|cx| self.poll_drive(cx, wait, step.as_mut())).await;
        if wait == Wait::Client {
            self.activity.touch();
        }
        out
    }

    fn poll_drive<F: Future>(
        &mut self,
        cx: &mut Context<'_>,
        wait: Wait,
        step: Pin<&mut F>,
    ) -> Poll<Result<F::Output, Error>> {
        if let Some(gone) = self.gone.as_mut() {
            if gone.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(Error::ClientGone));
            }
        }
        if let Poll::Ready(out) = step.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if let Some(feeder) = self.feeder.as_mut() {
            if let Poll::Ready(end) = feeder.as_mut().poll(cx) {
                self.feeder = None;
                end?;
            }
        }
        if wait == Wait::Script {
            return self.poll_watchdog(cx).map(Err);
        }
        Poll::Pending
    }

    /// `Ready(Timeout)` once the script has been idle for the configured time.
    fn poll_watchdog(&mut self, cx: &mut Context<'_>) -> Poll<Error> {
        let Some((idle, sleep)) = self.watchdog.as_mut() else {
            return Poll::Pending;
        };
        while sleep.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let deadline = if self.activity.client_wait.load(Ordering::Relaxed) {
                now + *idle
            } else {
                self.activity.idle_deadline(*idle)
            };
            if deadline <= now {
                return Poll::Ready(Error::Timeout { idle: *idle });
            }
            sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

/// Copies the request body to the script's stdin as it arrives, then closes stdin.
///
/// A write error means the script stopped reading (it exited or closed stdin): the rest of the
/// body is dropped and that is not an error. A body error (short, malformed, aborted) is.
async fn feed(
    mut first: Option<Bytes>,
    mut body: RequestBody,
    mut stdin: impl AsyncWrite + Unpin,
    activity: Arc<Activity>,
) -> Result<(), Error> {
    loop {
        let next = match first.take() {
            Some(chunk) => Ok(Some(chunk)),
            None => {
                activity.client_wait.store(true, Ordering::Relaxed);
                let next = body.chunk().await;
                activity.client_wait.store(false, Ordering::Relaxed);
                activity.touch();
                next
            }
        };
        let Some(chunk) = next? else {
            return Ok(());
        };
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            match stdin.write(rest).await {
                Ok(n) if n > 0 => rest = &rest[n..],
                _ => return Ok(()),
            }
            activity.touch();
        }
    }
}

/// How one run of a script ended, when it did not fail.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The response was sent; the script exited with this status.
    Complete(ExitStatus),
    /// The script asked for a local redirect (RFC 3875 section 6.2.2) to this path and query.
    LocalRedirect(Bytes),
}

/// Reads the script's head, then answers: sends the head and streams the body, or reports a
/// local redirect.
pub(crate) async fn answer(
    ctl: &mut Ctl,
    guard: &mut ChildGuard,
    stdout: &mut (impl AsyncRead + Unpin),
    resp: &mut Response,
    max_head: usize,
    stderr: Option<&Forwarding>,
) -> Result<Outcome, Error> {
    let mut buf = BytesMut::with_capacity(HEAD_CHUNK);
    let head = loop {
        let n = read_some(ctl, stdout, &mut buf).await?;
        if n == 0 {
            if buf.is_empty() {
                let status = ctl
                    .drive(Wait::Script, guard.wait())
                    .await?
                    .map_err(Error::Io)?;
                return Err(Error::NoOutput { status });
            }
            let err = parse_cgi_head_final(&buf, max_head).err();
            return Err(Error::BadHead(
                err.unwrap_or(gatehouse_channel_request::CgiHeadError::Truncated),
            ));
        }
        if let Some((head, used)) = parse_cgi_head(&buf, max_head).map_err(Error::BadHead)? {
            let _ = buf.split_to(used);
            break head;
        }
    };
    let head = match head {
        CgiResponse::LocalRedirect(location) => {
            ctl.stop_feeding();
            drain_after_redirect(ctl, guard, stdout, buf.len()).await?;
            return Ok(Outcome::LocalRedirect(location));
        }
        CgiResponse::Document(head) | CgiResponse::ClientRedirect(head) => head,
    };
    ctl.drive(Wait::Client, resp.send_head(head)).await??;
    stream(ctl, stdout, resp, buf).await?;
    let exited = match stderr {
        Some(stderr) => stderr_closed(ctl, guard, stderr).await?,
        None => None,
    };
    ctl.drive(Wait::Client, resp.finish()).await??;
    // The response is complete: neither the client nor the rest of the body matters any more.
    ctl.forget_client();
    ctl.stop_feeding();
    let status = match exited {
        Some(status) => status,
        None => ctl
            .drive(Wait::Script, guard.wait())
            .await?
            .map_err(Error::Io)?,
    };
    Ok(Outcome::Complete(status))
}

/// With stderr forwarded: waits, before the response ends, until all of the script's stderr
/// was handed to the front end (its stderr closed), so none of it comes after the end. Bounded:
/// once the script exited, a process it started that keeps the stderr open gets
/// [`STDERR_LINGER`]; and the watchdog, when set, cuts the wait short (the response then ends
/// as it would have, and the wait for the script's exit reports the timeout). Returns the exit
/// status if the script was reaped meanwhile.
async fn stderr_closed(
    ctl: &mut Ctl,
    guard: &mut ChildGuard,
    stderr: &Forwarding,
) -> Result<Option<ExitStatus>, Error> {
    let first = ctl
        .drive(Wait::Script, async {
            tokio::select! {
                () = stderr.closed() => None,
                status = guard.wait() => Some(status),
            }
        })
        .await;
    let status = match first {
        Ok(None) | Err(Error::Timeout { .. }) => return Ok(None),
        Ok(Some(status)) => status.map_err(Error::Io)?,
        Err(e) => return Err(e),
    };
    let linger = tokio::time::timeout(STDERR_LINGER, stderr.closed());
    match ctl.drive(Wait::Script, linger).await {
        Ok(_) | Err(Error::Timeout { .. }) => Ok(Some(status)),
        Err(e) => Err(e),
    }
}

/// Streams the rest of stdout (starting with what `buf` already holds) to the response.
async fn stream(
    ctl: &mut Ctl,
    stdout: &mut (impl AsyncRead + Unpin),
    resp: &mut Response,
    mut buf: BytesMut,
) -> Result<(), Error> {
    loop {
        if !buf.is_empty() {
            let chunk = buf.split().freeze();
            ctl.drive(Wait::Client, resp.write(chunk)).await??;
        }
        if read_some(ctl, stdout, &mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// One read from stdout into `buf`'s spare room (allocating a new chunk when little is left).
async fn read_some(
    ctl: &mut Ctl,
    stdout: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> Result<usize, Error> {
    if buf.capacity() - buf.len() < MIN_READ_ROOM {
        buf.reserve(READ_CHUNK);
    }
    let n = ctl
        .drive(Wait::Script, stdout.read_buf(buf))
        .await?
        .map_err(Error::Io)?;
    if n > 0 {
        ctl.activity.touch();
    }
    Ok(n)
}

/// After a local-redirect head: discard what the script still writes (up to a limit) and wait
/// for it to exit, so the next script does not run beside it. Past the limit it is left to the
/// guard, which stops it.
async fn drain_after_redirect(
    ctl: &mut Ctl,
    guard: &mut ChildGuard,
    stdout: &mut (impl AsyncRead + Unpin),
    mut drained: usize,
) -> Result<(), Error> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    while drained <= REDIRECT_DRAIN_LIMIT {
        buf.clear();
        let n = read_some(ctl, stdout, &mut buf).await?;
        if n == 0 {
            ctl.drive(Wait::Script, guard.wait())
                .await?
                .map_err(Error::Io)?;
            return Ok(());
        }
        drained += n;
    }
    Ok(())
}
