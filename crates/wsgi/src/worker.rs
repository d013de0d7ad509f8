//! One request on a pool thread: build the environ, call the app, iterate its result, and call
//! the result's `close()` whatever happened (PEP 3333: "the server must call close() upon
//! completion of the current request, whether the request was completed normally, or terminated
//! early due to an application error during iteration or an early disconnect of the browser").
//!
//! The outcome goes back to the async side, which sends the 500 (head not sent) or the abort
//! (head sent) and logs the traceback once, through `serve_request`.

use std::sync::{Arc, Mutex, TryLockError};
use std::time::Instant;

use gatehouse_channel_request::{Env, Request, RequestInfo};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::config::LateSpool;
use crate::environ::{self, Template};
use crate::error::Error;
use crate::input::Input;
use crate::loader::format_exception;
use crate::outbox::{OutSender, Reply};
use crate::pool::Permit;
use crate::sink::{ClientDisconnected, Sink, WriteError};
use crate::start_response::{lock, type_name, SharedSink, StartResponse};

/// A request handed to the pool.
pub(crate) struct Job {
    /// The request.
    pub(crate) req: Request,
    /// Where the head, the body chunks and how the request ended (once the result's `close()`
    /// has returned) go.
    pub(crate) reply: Reply,
    /// Its place in the pool, given back before the answer.
    pub(crate) permit: Permit,
    /// When it was admitted: `--request-timeout` counts from here, queueing included.
    pub(crate) admitted: Instant,
}

/// Serves one request on the calling pool thread; `release` (which gives the request's place
/// in the pool back) runs just before the outcome is delivered.
pub(crate) fn run(
    py: Python<'_>,
    app: &Py<PyAny>,
    template: &Template,
    late_spool: Option<&LateSpool>,
    req: Request,
    reply: Reply,
    release: impl FnOnce(Python<'_>),
) {
    let outcome = serve(py, app, template, late_spool, req, reply.sender());
    release(py);
    reply.finish(outcome);
}

fn serve(
    py: Python<'_>,
    app: &Py<PyAny>,
    template: &Template,
    late_spool: Option<&LateSpool>,
    req: Request,
    out: OutSender,
) -> Result<(), Error> {
    let Request { env, body, info } = req;
    let head_request = env.method() == b"HEAD";
    let sink: SharedSink = Arc::new(Mutex::new(Sink::new(out, info.clone(), head_request)));
    let input = Bound::new(py, Input::new(body)).map_err(|e| failure(py, &sink, &e))?;
    let outcome = call_app(py, app, template, &env, &info, (&input, late_spool), &sink);
    // An app that failed because its body did (the peer's fault) is answered for the body.
    let outcome = match (
        outcome,
        input.try_borrow().ok().and_then(|i| i.peer_fault()),
    ) {
        (Err(Error::App(_)), Some(e)) => Err(Error::RequestBody(e)),
        (outcome, _) => outcome,
    };
    // However long Python keeps these objects, the request is over for the front end.
    if let Ok(mut input) = input.try_borrow_mut() {
        input.release();
    }
    match sink.try_lock() {
        Ok(mut s) => s.release(),
        Err(TryLockError::Poisoned(p)) => p.into_inner().release(),
        // A thread the app started is in write(): wait for it without the GIL, which it needs
        // to return.
        Err(TryLockError::WouldBlock) => py.detach(|| {
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .release();
        }),
    }
    outcome
}

fn call_app(
    py: Python<'_>,
    app: &Py<PyAny>,
    template: &Template,
    env: &Env,
    info: &RequestInfo,
    (input, late_spool): (&Bound<'_, Input>, Option<&LateSpool>),
    sink: &SharedSink,
) -> Result<(), Error> {
    let environ =
        environ::build(py, env, input, info, template).map_err(|e| failure(py, sink, &e))?;
    let start_response =
        Bound::new(py, StartResponse::new(sink.clone())).map_err(|e| failure(py, sink, &e))?;
    let result = app
        .bind(py)
        .call1((environ, start_response))
        .map_err(|e| failure(py, sink, &e))?;
    let spool = late_spool.map(|limits| (input, limits));
    let iterated = drive(py, &result, sink, spool);
    let closed = close(&result, sink).map_err(|e| failure(py, sink, &e));
    match (iterated, closed) {
        (Err(Error::App(first)), Err(Error::App(second))) => Err(Error::App(format!(
            "{first}\nand then close() raised:\n{second}"
        ))),
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => sink_guard(sink)?.finish(py),
    }
}

/// Iterates the app's result into the sink, stopping early when the client is gone or the
/// `Content-Length` is reached. Before the first body bytes (and so the head) go out, the rest
/// of a body the app has started reading is spooled, with `spool` ([`LateSpool`]).
fn drive(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    sink: &SharedSink,
    mut spool: Option<(&Bound<'_, Input>, &LateSpool)>,
) -> Result<(), Error> {
    let mut spool_before_head = |py: Python<'_>, bytes: &[u8]| {
        if bytes.is_empty() {
            return;
        }
        if let Some((input, limits)) = spool.take() {
            // Not while another thread of the app reads the input: it then is not waiting.
            if let Ok(mut input) = input.try_borrow_mut() {
                input.spool_rest(py, limits);
            }
        }
    };
    if let Some(only) = single_item(result) {
        let bytes = as_bytes(&only)?;
        spool_before_head(py, bytes.as_bytes());
        let mut s = sink_guard(sink)?;
        s.set_known_length(bytes.as_bytes().len() as u64);
        return s
            .write(py, bytes.as_bytes())
            .map_err(|e| write_failure(e, "returned"));
    }
    let mut iter = result.try_iter().map_err(|e| failure(py, sink, &e))?;
    loop {
        if sink_guard(sink)?.is_gone() {
            // The seed's `_requestFinished`: stop at the next chunk.
            return Err(Error::ClientGone);
        }
        let Some(item) = iter.next() else {
            return Ok(());
        };
        let item = item.map_err(|e| failure(py, sink, &e))?;
        let bytes = as_bytes(&item)?;
        spool_before_head(py, bytes.as_bytes());
        let mut s = sink_guard(sink)?;
        s.write(py, bytes.as_bytes())
            .map_err(|e| write_failure(e, "yielded"))?;
        if s.is_complete() {
            return Ok(());
        }
        // The chunk goes out before the app computes the next one.
        s.flush();
    }
}

/// The one item of a one-item list or tuple (so the body length is known).
fn single_item<'py>(result: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    if let Ok(list) = result.cast_exact::<PyList>() {
        return (list.len() == 1).then(|| list.get_item(0).ok()).flatten();
    }
    let tuple = result.cast_exact::<PyTuple>().ok()?;
    (tuple.len() == 1).then(|| tuple.get_item(0).ok()).flatten()
}

fn as_bytes<'a, 'py>(item: &'a Bound<'py, PyAny>) -> Result<&'a Bound<'py, PyBytes>, Error> {
    item.cast::<PyBytes>().map_err(|_| {
        Error::App(format!(
            "the application's iterable yielded {}, not bytes (PEP 3333)",
            type_name(item)
        ))
    })
}

fn write_failure(e: WriteError, how: &str) -> Error {
    match e {
        WriteError::Gone => Error::ClientGone,
        WriteError::NotStarted => Error::App(format!(
            "the application {how} body data before calling start_response (PEP 3333)"
        )),
    }
}

/// Calls `result.close()` when it has one, after flushing what was written (its code may take
/// time).
fn close(result: &Bound<'_, PyAny>, sink: &SharedSink) -> PyResult<()> {
    // A plain list or tuple (the commonest result) has no close(): asking would make and
    // discard an AttributeError, which costs more than the rest of a hello request's answer.
    if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
        return Ok(());
    }
    if result.hasattr(pyo3::intern!(result.py(), "close"))? {
        if let Ok(s) = sink.try_lock() {
            s.flush();
        }
        result.call_method0(pyo3::intern!(result.py(), "close"))?;
    }
    Ok(())
}

/// An exception from the app: the client going away, or an app failure with its traceback.
fn failure(py: Python<'_>, sink: &SharedSink, err: &PyErr) -> Error {
    let gone = sink.try_lock().map(|s| s.is_gone()).unwrap_or(false);
    if gone || err.is_instance_of::<ClientDisconnected>(py) {
        return Error::ClientGone;
    }
    Error::App(format_exception(py, err))
}

fn sink_guard(sink: &SharedSink) -> Result<std::sync::MutexGuard<'_, Sink>, Error> {
    lock(sink).map_err(|e| Error::App(e.to_string()))
}
