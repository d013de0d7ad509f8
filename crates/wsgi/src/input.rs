//! `wsgi.input`: the request body as a file-like object that streams (PEP 3333, "Input and Error
//! Streams"): `read(size)`, `read()`, `readline(size)`, `readlines(hint)` and iteration.
//!
//! Bytes come from [`RequestBody::blocking_chunk`] with the GIL released, one chunk at a time, so
//! a 1 GiB upload read in 64 KiB pieces holds one piece in memory. The stream ends at
//! `CONTENT_LENGTH`: once that many bytes were pulled it answers EOF without asking the front end
//! for more (so `read()` never blocks on a client that keeps its connection open, and never
//! returns a byte past the length). Without `CONTENT_LENGTH` it ends where the front end says the
//! body ends (chunked uploads): `wsgi.input_terminated` is true.

use std::fs::File;
use std::io::{Read, Seek, Write};

use bytes::BytesMut;
use gatehouse_channel_request::{BodyError, RequestBody};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::config::LateSpool;
use crate::sink::ClientDisconnected;

/// Size of the reads from a spool file.
const SPOOL_READ: usize = 64 << 10;

/// The `wsgi.input` object of one request.
#[pyclass(module = "gatehouse", name = "Input")]
pub(crate) struct Input {
    body: RequestBody,
    buf: BytesMut,
    /// Announced bytes not yet pulled from the body.
    remaining: Option<u64>,
    eof: bool,
    /// The rest of the body, once spooled ([`Input::spool_rest`]): read from here first.
    spool: Option<Spool>,
    /// How the body failed by the peer's fault, when it did (short, too long, malformed).
    failed: Option<BodyError>,
}

/// A spooled rest of the body: bytes in memory, then a temp file, then (when the file failed)
/// the chunk it could not take, then how the body ended.
struct Spool {
    memory: BytesMut,
    file: Option<File>,
    tail: BytesMut,
    /// The body's error, reported once the spooled bytes are read.
    ending: Option<BodyError>,
}

impl Input {
    pub(crate) fn new(body: RequestBody) -> Self {
        Self {
            remaining: body.content_length(),
            body,
            buf: BytesMut::new(),
            eof: false,
            spool: None,
            failed: None,
        }
    }

    /// When the app has read part of its body but not all, reads the rest now (memory up to
    /// `limits.memory`, then an unlinked temp file, at most `limits.max_bytes`), so that the
    /// front server has sent the whole body before the answer starts (see [`LateSpool`]).
    /// Later reads of `wsgi.input` come from the spool. The GIL is released meanwhile.
    pub(crate) fn spool_rest(&mut self, py: Python<'_>, limits: &LateSpool) {
        if self.spool.is_some()
            || self.eof
            || self.remaining == Some(0)
            || self.body.bytes_read() == 0
            || self.body.is_end()
        {
            return;
        }
        let Self {
            body, remaining, ..
        } = self;
        let (spool, error) = py.detach(|| fill_spool(body, remaining, limits));
        if let Some(error) = error {
            tracing::error!(dir = %limits.dir.display(), %error, "cannot spool the rest of a request body: it keeps streaming");
        }
        self.spool = spool;
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
        if let Some(spool) = self.spool.as_mut() {
            if !spool.memory.is_empty() {
                self.buf.unsplit(std::mem::take(&mut spool.memory));
                return Ok(true);
            }
            if let Some(file) = spool.file.as_mut() {
                let mut chunk = vec![0; SPOOL_READ];
                match py.detach(|| file.read(&mut chunk)) {
                    Ok(0) => spool.file = None,
                    Ok(n) => {
                        self.buf.extend_from_slice(&chunk[..n]);
                        return Ok(true);
                    }
                    Err(e) => {
                        return Err(PyOSError::new_err(format!(
                            "request body: reading it back from the spool: {e}"
                        )))
                    }
                }
            }
            if !spool.tail.is_empty() {
                self.buf.unsplit(std::mem::take(&mut spool.tail));
                return Ok(true);
            }
            let ending = spool.ending.take();
            self.spool = None;
            if let Some(e) = ending {
                return Err(self.body_failed(e));
            }
            // The spool held everything that was left unless it stopped at its limit: then
            // the body goes on streaming.
        }
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
            Err(e) => Err(self.body_failed(e)),
        }
    }

    /// Records a body failure by the peer's fault (for the request's answer), and gives the
    /// exception the app sees.
    fn body_failed(&mut self, e: BodyError) -> PyErr {
        if matches!(
            e,
            BodyError::Short { .. } | BodyError::Long { .. } | BodyError::Malformed(_)
        ) {
            self.failed = Some(e.clone());
        }
        body_error(e)
    }

    /// How the body failed by the peer's fault, if it did.
    pub(crate) fn peer_fault(&self) -> Option<BodyError> {
        self.failed.clone()
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

/// The Python exception for a failed body.
fn body_error(e: BodyError) -> PyErr {
    match e {
        BodyError::Aborted => {
            ClientDisconnected::new_err("the client went away while sending the body")
        }
        e => PyOSError::new_err(format!("request body: {e}")),
    }
}

/// Reads what is left of `body` into a [`Spool`] (without the GIL). Stops at the end of the
/// body, at its error (kept for the reader), or at `limits.max_bytes`. An I/O error of the temp
/// file is returned beside what was spooled until then (which is still read first).
fn fill_spool(
    body: &mut RequestBody,
    remaining: &mut Option<u64>,
    limits: &LateSpool,
) -> (Option<Spool>, Option<std::io::Error>) {
    let mut spool = Spool {
        memory: BytesMut::new(),
        file: None,
        tail: BytesMut::new(),
        ending: None,
    };
    let mut total: u64 = 0;
    let mut failure = None;
    while remaining.is_none_or(|r| r > 0) && total < limits.max_bytes {
        let mut chunk = match body.blocking_chunk() {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                *remaining = Some(0);
                break;
            }
            Err(e) => {
                spool.ending = Some(e);
                break;
            }
        };
        if let Some(r) = remaining.as_mut() {
            chunk.truncate(usize::try_from(*r).unwrap_or(usize::MAX));
            *r -= chunk.len() as u64;
        }
        total += chunk.len() as u64;
        if spool.file.is_none() && spool.memory.len() + chunk.len() <= limits.memory {
            spool.memory.extend_from_slice(&chunk);
            continue;
        }
        if spool.file.is_none() {
            match temp_file(limits) {
                Ok(file) => spool.file = Some(file),
                Err(e) => {
                    // Nothing in a file yet: the chunk stays in memory, the rest streams.
                    spool.memory.extend_from_slice(&chunk);
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(Err(e)) = spool.file.as_mut().map(|f| append(f, &chunk)) {
            // The file holds what it took before this chunk; the chunk is read after it.
            spool.tail.extend_from_slice(&chunk);
            failure = Some(e);
            break;
        }
    }
    if let Some(file) = spool.file.as_mut() {
        if let Err(e) = file.rewind() {
            spool.ending = Some(BodyError::Malformed(format!(
                "the spooled body cannot be read back: {e}"
            )));
            failure = Some(e);
        }
    }
    (Some(spool), failure)
}

/// Appends a whole chunk to the spool file; on failure the file is cut back to where it was,
/// so that the chunk can be kept elsewhere whole.
fn append(file: &mut File, chunk: &[u8]) -> std::io::Result<()> {
    let at = file.stream_position()?;
    file.write_all(chunk).inspect_err(|_| {
        let _ = file.set_len(at);
        let _ = file.seek(std::io::SeekFrom::Start(at));
    })
}

/// A new temp file in the spool directory, unlinked at once.
fn temp_file(limits: &LateSpool) -> std::io::Result<File> {
    gatehouse_channel_request::spill::unlinked_temp_file(&limits.dir, "gatehouse-wsgi-spool")
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
