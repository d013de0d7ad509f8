//! `start_response(status, response_headers, exc_info=None)` and the `write(data)` callable it
//! returns (PEP 3333, "The start_response() Callable").
//!
//! The head is checked here, while the app still runs, so that a bad status or header raises in
//! the app ("servers should check for errors in the headers at the time start_response is
//! called"): native strings must be latin-1, names tokens, values free of CR/LF/NUL (the core's
//! [`ResponseHead`] rules), and hop-by-hop headers are a fatal error.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use gatehouse_channel_request::env::parse_decimal;
use gatehouse_channel_request::head::trim_ows;
use gatehouse_channel_request::ResponseHead;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::sink::{ClientDisconnected, Sink, WriteError};

/// The sink shared by `start_response`, `write` and the worker.
pub(crate) type SharedSink = Arc<Mutex<Sink>>;

/// HTTP/1.1 hop-by-hop headers (RFC 2616 section 13.5.1), which PEP 3333 forbids apps to send.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// The `start_response` callable of one request.
#[pyclass(frozen, module = "gatehouse", name = "start_response")]
pub(crate) struct StartResponse {
    sink: SharedSink,
}

impl StartResponse {
    pub(crate) fn new(sink: SharedSink) -> Self {
        Self { sink }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, response_headers, exc_info = None))]
    fn __call__(
        &self,
        status: &Bound<'_, PyAny>,
        response_headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let exc_info = match exc_info {
            Some(e) if !e.is_none() && !e.get_item(1)?.is_none() => Some(e),
            _ => None,
        };
        let mut sink = lock(&self.sink)?;
        match exc_info {
            // "if exc_info is provided, and the HTTP headers have already been sent,
            // start_response must raise an error, and should re-raise using the exc_info tuple."
            Some(exc) if sink.head_sent() => {
                drop(sink);
                return Err(reraise(exc)?);
            }
            None if sink.started() => {
                return Err(PyRuntimeError::new_err(
                    "start_response() called a second time without exc_info (PEP 3333)",
                ))
            }
            _ => {}
        }
        let (head, content_length) = build_head(status, response_headers)?;
        sink.start(head, content_length);
        Ok(Write {
            sink: self.sink.clone(),
        })
    }
}

/// The `write(data)` callable: sends bytes at once, head first (PEP 3333 imperative API).
#[pyclass(frozen, module = "gatehouse", name = "write")]
pub(crate) struct Write {
    sink: SharedSink,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!("write() takes bytes, not {}", type_name(data)))
        })?;
        let mut sink = lock(&self.sink)?;
        sink.write(py, data.as_bytes()).map_err(write_error)?;
        // The app runs again when write() returns: its bytes go now.
        sink.flush();
        Ok(())
    }
}

/// The Python exception for a failed write.
pub(crate) fn write_error(e: WriteError) -> PyErr {
    match e {
        WriteError::Gone => ClientDisconnected::new_err("the client went away"),
        WriteError::NotStarted => {
            PyRuntimeError::new_err("body data before start_response() (PEP 3333)")
        }
    }
}

/// Locks the sink without waiting: waiting here would hold the GIL while the owner (another
/// thread, in a broken app) waits for it, a deadlock. Concurrent use is an app bug, raised.
pub(crate) fn lock(sink: &SharedSink) -> PyResult<MutexGuard<'_, Sink>> {
    match sink.try_lock() {
        Ok(guard) => Ok(guard),
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(
            "start_response()/write() used from two threads at once",
        )),
    }
}

/// `raise exc_info[1].with_traceback(exc_info[2])`.
fn reraise(exc_info: &Bound<'_, PyAny>) -> PyResult<PyErr> {
    let value = exc_info.get_item(1)?;
    let tb = exc_info.get_item(2)?;
    let value = if tb.is_none() {
        value
    } else {
        value.call_method1("with_traceback", (tb,))?
    };
    Ok(PyErr::from_value(value))
}

/// Checks `status` and `response_headers`, returning the head and its `Content-Length`.
fn build_head(
    status: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
) -> PyResult<(ResponseHead, Option<u64>)> {
    let status = native_string(status, "status")?;
    let mut head = ResponseHead::from_status_line(&status)
        .map_err(|e| PyValueError::new_err(format!("bad status: {e}")))?;
    if head.status() < 200 {
        return Err(PyValueError::new_err(
            "a WSGI app cannot send a 1xx status (the server handles 100-continue)",
        ));
    }
    let headers = headers.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response_headers must be a list, not {}",
            type_name(headers)
        ))
    })?;
    let mut content_length = None;
    for item in headers.iter() {
        let (name, value) = header_pair(&item)?;
        if let Some(hop) = HOP_BY_HOP
            .iter()
            .find(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        {
            return Err(PyValueError::new_err(format!(
                "hop-by-hop header {hop:?} is not allowed from a WSGI app (PEP 3333)"
            )));
        }
        if content_length.is_none() && name.eq_ignore_ascii_case(b"content-length") {
            content_length = Some(parse_decimal(trim_ows(&value)).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "bad Content-Length {:?}",
                    String::from_utf8_lossy(&value)
                ))
            })?);
        }
        head.add_header(name, value)
            .map_err(|e| PyValueError::new_err(format!("bad response header: {e}")))?;
    }
    Ok((head, content_length))
}

fn header_pair(item: &Bound<'_, PyAny>) -> PyResult<(Vec<u8>, Vec<u8>)> {
    let tuple = item.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(format!(
            "each response header must be a (name, value) tuple, not {}",
            type_name(item)
        ))
    })?;
    if tuple.len() != 2 {
        return Err(PyTypeError::new_err(
            "each response header must be a (name, value) tuple of two strings",
        ));
    }
    Ok((
        native_string(&tuple.get_item(0)?, "header name")?,
        native_string(&tuple.get_item(1)?, "header value")?,
    ))
}

/// A PEP 3333 native string: a `str` whose characters are all latin-1, as bytes.
fn native_string(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    let s = obj
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be str, not {}", type_name(obj))))?;
    // Nearly every status and header is ASCII: its UTF-8 form is the bytes (no copy from Python).
    if let Ok(text) = s.to_str() {
        if text.is_ascii() {
            return Ok(text.as_bytes().to_vec());
        }
    }
    s.to_cow()?
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| PyValueError::new_err(format!("{what} holds a character outside latin-1")))
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use super::*;

    fn eval<'py>(py: Python<'py>, src: &str) -> Bound<'py, PyAny> {
        let src = CString::new(src).unwrap();
        py.eval(&src, None, None).unwrap()
    }

    fn head(status: &str, headers: &str) -> PyResult<(ResponseHead, Option<u64>)> {
        crate::interpreter::ensure_started(None).unwrap();
        Python::attach(|py| build_head(&eval(py, status), &eval(py, headers)))
    }

    #[test]
    fn builds_heads() {
        let (h, len) = head(
            "'404 Not Here'",
            "[('Content-Length', ' 12 '), ('X-A', 'caf\\xe9'), ('x-a', 'again')]",
        )
        .unwrap();
        assert_eq!((h.status(), h.reason()), (404, &b"Not Here"[..]));
        assert_eq!(len, Some(12));
        assert_eq!(
            h.header("x-a").map(|v| v.to_vec()),
            Some(b"caf\xe9".to_vec())
        );
        assert_eq!(h.headers().len(), 3, "repeated headers kept");
        let (h, len) = head("'200 OK'", "[]").unwrap();
        assert_eq!((h.status(), len), (200, None));
    }

    #[test]
    fn rejects_bad_heads() {
        for (status, headers) in [
            ("'20 OK'", "[]"),
            ("b'200 OK'", "[]"),
            ("'100 Continue'", "[]"),
            ("'200 OK\\r\\nX: y'", "[]"),
            ("'200 OK'", "(('X', 'y'),)"),
            ("'200 OK'", "[('Connection', 'close')]"),
            ("'200 OK'", "[('Transfer-Encoding', 'chunked')]"),
            ("'200 OK'", "[('X', '\\u20ac')]"),
            ("'200 OK'", "[('X', 'a\\nb')]"),
            ("'200 OK'", "[('X Y', 'v')]"),
            ("'200 OK'", "[('X',)]"),
            ("'200 OK'", "[('X', 1)]"),
            ("'200 OK'", "[['X', 'v']]"),
            ("'200 OK'", "[('Content-Length', 'ten')]"),
        ] {
            assert!(head(status, headers).is_err(), "{status} {headers}");
        }
    }
}
