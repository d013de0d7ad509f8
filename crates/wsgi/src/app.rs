//! [`WsgiApp`]: the async side. It hands each request to the pool and pumps what the pool thread
//! produces into the [`Response`], so every `await` (backpressure, client gone) happens in tokio
//! and the Python thread only ever blocks with the GIL released.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_channel_request::{
    AppError, Application, BoxFuture, Error as CoreError, Request, RequestInfo, Response,
};
use pyo3::prelude::*;

use crate::config::{Config, WsgiSpec};
use crate::error::Error;
use crate::outbox::{outbox, Next, OutReceiver};
use crate::pool::Pool;
use crate::sink::Chunk;
use crate::worker::Job;
use crate::{interpreter, loader};

static LOADING: Mutex<()> = Mutex::new(());

/// A WSGI callable served by a pool of Python threads.
pub struct WsgiApp {
    pool: Pool,
    spec: WsgiSpec,
    request_timeout: Option<Duration>,
}

impl WsgiApp {
    /// Starts the interpreter (first call in the process), imports the app and starts its pool.
    ///
    /// Import errors come back as [`Error::Import`] with Python's traceback: the binary prints
    /// it and exits 2. The virtualenv is `config.venv`, else `$VIRTUAL_ENV`; only the first
    /// load of a process chooses it.
    pub fn load(spec: &WsgiSpec, config: Config) -> Result<Self, Error> {
        interpreter::ensure_started(config.venv.as_deref())?;
        // One load at a time: a file is registered in sys.modules before its code has run, and
        // a concurrent load of the same file must not take the half-run module. Taken before
        // attaching, so no thread waits for it while holding the GIL.
        let _loading = LOADING.lock().unwrap_or_else(PoisonError::into_inner);
        let callable = Python::attach(|py| loader::load_callable(py, spec, &config.pythonpath))?;
        let pool = Pool::start(callable, &config)?;
        Ok(Self {
            pool,
            spec: spec.clone(),
            request_timeout: config.request_timeout,
        })
    }

    /// The spec this app was loaded from.
    pub fn spec(&self) -> &WsgiSpec {
        &self.spec
    }

    /// The number of Python threads serving it.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    async fn serve(&self, req: Request, resp: &mut Response) -> Result<(), AppError> {
        let admitted = Instant::now();
        let info = req.info.clone();
        let permit = match self.pool.admit() {
            Ok(permit) => permit,
            Err(e) => return refuse(e, &info, resp).await,
        };
        let (reply, mut out) = outbox();
        let job = Job {
            req,
            reply,
            permit,
            admitted,
        };
        if let Err(e) = self.pool.submit(job) {
            return refuse(e, &info, resp).await;
        }
        // Cancelled (the front end drops this future) while still queued: the job leaves the
        // queue, and frees its place, at once.
        let mut queued = Withdraw {
            pool: &self.pool,
            id: info.id,
            armed: true,
        };
        // The thread answers once the result's close() has returned.
        let (pumped, outcome) = self.pump(info.id, &mut out, resp).await;
        queued.armed = false;
        match (pumped, outcome) {
            (Err(e), _) => Err(Box::new(e)),
            (Ok(()), Err(Error::ClientGone)) => Err(Box::new(CoreError::ClientGone)),
            (Ok(()), Err(Error::RequestBody(e))) => Err(Box::new(CoreError::Body(e))),
            (Ok(()), Err(Error::Timeout { .. })) => {
                // The watchdog logged it, with the traceback.
                let answered = !resp.head_sent()
                    && resp
                        .send_full(504, "text/plain", "Gateway Timeout\n")
                        .await
                        .is_ok();
                if !answered {
                    resp.abort().await;
                }
                Ok(())
            }
            (Ok(()), Err(e)) => Err(Box::new(e)),
            (Ok(()), Ok(())) => {
                resp.finish().await?;
                Ok(())
            }
        }
    }

    /// Forwards the pool thread's head and chunks to the response until the thread is done (or
    /// the request timed out), and returns how the forwarding went and the thread's outcome.
    /// When the client goes away (or a write fails) the outbox is closed, so the thread's next
    /// write fails and it stops iterating; a request still queued is withdrawn at once.
    async fn pump(
        &self,
        id: u64,
        out: &mut OutReceiver,
        resp: &mut Response,
    ) -> (Result<(), CoreError>, Result<(), Error>) {
        let mut gone = resp.client_gone();
        let mut result = Ok(());
        loop {
            let next = tokio::select! {
                next = out.next() => next,
                () = &mut gone, if result.is_ok() => {
                    out.close();
                    if self.pool.withdraw(id) {
                        // Never ran: its place in the queue is free again.
                        return (Err(CoreError::ClientGone), Err(Error::ClientGone));
                    }
                    result = Err(CoreError::ClientGone);
                    continue;
                }
            };
            let chunk = match next {
                Next::Done(outcome) => return (result, outcome),
                Next::TimedOut => {
                    let limit = self.request_timeout.unwrap_or_default();
                    return (result, Err(Error::Timeout { limit }));
                }
                // Draining what was sent before the close.
                Next::Item(_) if result.is_err() => continue,
                Next::Item(chunk) => chunk,
            };
            let sent = match chunk {
                Chunk::Head(head) => resp.send_head(head).await,
                Chunk::Body(bytes) => resp.write(bytes).await,
            };
            if let Err(e) = sent {
                out.close();
                result = Err(e);
            }
        }
    }
}

/// Withdraws a request from the pool's queue when dropped armed.
struct Withdraw<'a> {
    pool: &'a Pool,
    id: u64,
    armed: bool,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pool.withdraw(self.id);
        }
    }
}

/// Answers a request the pool cannot take: 503 when full, one log line.
async fn refuse(e: Error, info: &RequestInfo, resp: &mut Response) -> Result<(), AppError> {
    if !matches!(e, Error::Overloaded { .. }) {
        return Err(Box::new(e));
    }
    tracing::warn!(peer = %info.peer, request_id = info.id, error = %e, "request refused");
    resp.send_full(503, "text/plain", "Service Unavailable\n")
        .await?;
    Ok(())
}

impl Application for WsgiApp {
    /// # Cancel safety
    /// Dropping the future closes the outbox: the pool thread stops at its next chunk
    /// and still calls the result's `close()`. A request still queued is skipped (and its
    /// place freed at once when the client-gone signal is seen first).
    fn call<'a>(
        &'a self,
        req: Request,
        resp: &'a mut Response,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(self.serve(req, resp))
    }
}
