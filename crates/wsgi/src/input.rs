//! `wsgi.input`: the request body as a file-like object that streams (PEP 3333, "Input and Error
//! Streams"): `read(size)`, `read()`, `readline(size)`, `readlines(hint)` and iteration.
//!
//! Bytes come from [`RequestBody::blocking_chunk`] with the GIL released, one chunk at a time, so
//! a 1 GiB upload read in 64 KiB pieces holds one piece in memory. The stream ends at
//! `CONTENT_LENGTH`: once that many bytes were pulled it answers EOF without asking the front end
//! for more (so `read()` never blocks on a client that keeps its connection open, and never
//! returns a byte past the length). Without `CONTENT_LENGTH` it ends where the front end says the
//! body ends (chunked uploads): `wsgi.input_terminated` is true.

use bytes::BytesMut;
use gatehouse_channel_request::{BodyError, RequestBody};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::sink::ClientDisconnected;

/// The `wsgi.input` object of one request.
#[pyclass(module = "gatehouse", name = "Input")]
pub(crate) struct Input {
    body: RequestBody,
    buf: BytesMut,
    /// Announced bytes not yet pulled from the body.
    remaining: Option<u64>,
    eof: bool,
}

impl Input {
    pub(crate) fn new(body: RequestBody) -> Self {
        Self {
            remaining: body.content_length(),
            body,
            buf: BytesMut::new(),
            eof: false,
        }
    }

    /// Drops the body at the end of the request, even if the app keeps `wsgi.input` alive: the
    /// front end then sees the body closed and discards the rest instead of waiting.
    pub(crate) fn release(&mut self) {
        self.body = RequestBody::empty();
        self.buf = BytesMut::new();
        self.remaining = Some(0);
        self.eof = true;
    }

    /// Pulls one chunk into the buffer; `false` at the end of the body.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if self.eof || self.remaining == Some(0) {
            self.eof = true;
            return Ok(false);
        }
        let body = &mut self.body;
        // A chunk already queued is taken with the GIL held; waiting happens without it.
        let waker = std::task::Waker::noop();
        let next = match body.poll_chunk(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(next) => next,
            std::task::Poll::Pending => py.detach(|| body.blocking_chunk()),
        };
        match next {
            Ok(Some(mut chunk)) => {
                if let Some(remaining) = self.remaining.as_mut() {
                    chunk.truncate(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    *remaining -= chunk.len() as u64;
                }
                self.buf.extend_from_slice(&chunk);
                Ok(true)
            }
            Ok(None) => {
                self.eof = true;
                Ok(false)
            }
            Err(BodyError::Aborted) => Err(ClientDisconnected::new_err(
                "the client went away while sending the body",
            )),
            Err(e) => Err(PyOSError::new_err(format!("request body: {e}"))),
        }
    }

    /// Takes `n` buffered bytes as a Python `bytes`.
    fn take(&mut self, py: Python<'_>, n: usize) -> Py<PyBytes> {
        let n = n.min(self.buf.len());
        let out = self.buf.split_to(n);
        PyBytes::new(py, &out).unbind()
    }

    fn line(&mut self, py: Python<'_>, limit: usize) -> PyResult<Py<PyBytes>> {
        let mut scanned = 0;
        loop {
            let end = self.buf.len().min(limit);
            if let Some(pos) = self.buf[scanned..end].iter().position(|&b| b == b'\n') {
                return Ok(self.take(py, scanned + pos + 1));
            }
            if self.buf.len() >= limit {
                return Ok(self.take(py, limit));
            }
            scanned = end;
            if !self.fill(py)? {
                let all = self.buf.len();
                return Ok(self.take(py, all));
            }
        }
    }
}

/// `None` or a negative size means "no limit", as for Python files.
fn limit(size: Option<isize>) -> usize {
    size.and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX)
}

#[pymethods]
impl Input {
    /// Reads up to `size` bytes, fewer only at the end of the body; everything left without it.
    #[pyo3(signature = (size = None))]
    fn read(&mut self, py: Python<'_>, size: Option<isize>) -> PyResult<Py<PyBytes>> {
        let want = limit(size);
        while self.buf.len() < want && self.fill(py)? {}
        Ok(self.take(py, want))
    }

    /// Reads one line (ending in `\n`), at most `size` bytes of it.
    #[pyo3(signature = (size = None))]
    fn readline(&mut self, py: Python<'_>, size: Option<isize>) -> PyResult<Py<PyBytes>> {
        self.line(py, limit(size))
    }

    /// Reads lines until the end, or until `hint` bytes were read.
    #[pyo3(signature = (hint = None))]
    fn readlines(&mut self, py: Python<'_>, hint: Option<isize>) -> PyResult<Vec<Py<PyBytes>>> {
        let hint = limit(hint.filter(|&h| h > 0));
        let (mut lines, mut total) = (Vec::new(), 0usize);
        loop {
            let line = self.line(py, usize::MAX)?;
            let len = line.bind(py).as_bytes().len();
            if len == 0 {
                return Ok(lines);
            }
            lines.push(line);
            total = total.saturating_add(len);
            if total >= hint {
                return Ok(lines);
            }
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        let line = self.line(py, usize::MAX)?;
        Ok((!line.bind(py).as_bytes().is_empty()).then_some(line))
    }

    /// Input streams are readable (for `io` wrappers that ask).
    fn readable(&self) -> bool {
        true
    }
}
