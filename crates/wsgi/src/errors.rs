//! `wsgi.errors`: a text stream whose lines go to the log (PEP 3333: "an output stream (file-like
//! object) to which error output can be written"), one `tracing` line per text line, tagged with
//! the request's peer and id.

use gatehouse_channel_request::RequestInfo;
use pyo3::prelude::*;

/// Longest partial line kept before it is logged anyway.
const MAX_PENDING_LINE: usize = 16 * 1024;

/// The `wsgi.errors` object of one request.
#[pyclass(module = "gatehouse", name = "Errors")]
pub(crate) struct Errors {
    info: RequestInfo,
    pending: String,
}

impl Errors {
    pub(crate) fn new(info: RequestInfo) -> Self {
        Self {
            info,
            pending: String::new(),
        }
    }

    fn emit(&self, line: &str) {
        tracing::warn!(
            target: "gatehouse_wsgi::errors",
            peer = %self.info.peer,
            request_id = self.info.id,
            "wsgi.errors: {}",
            escape_controls(line)
        );
    }

    fn log_pending(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

/// The line with control characters escaped (a log line stays one line), the rest as written.
fn escape_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[pymethods]
impl Errors {
    /// Writes text; every complete line is logged.
    fn write(&mut self, s: &str) -> usize {
        self.pending.push_str(s);
        while let Some(pos) = self.pending.find('\n') {
            let rest = self.pending.split_off(pos + 1);
            let line = std::mem::replace(&mut self.pending, rest);
            self.emit(line.trim_end_matches(['\n', '\r']));
        }
        if self.pending.len() > MAX_PENDING_LINE {
            self.log_pending();
        }
        s.chars().count()
    }

    /// Writes each string of `lines`.
    fn writelines(&mut self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            let line: String = line?.extract()?;
            self.write(&line);
        }
        Ok(())
    }

    /// Logs a pending partial line.
    fn flush(&mut self) {
        self.log_pending();
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        self.log_pending();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_controls() {
        assert_eq!(escape_controls("a \"b\" caf\u{e9}"), "a \"b\" caf\u{e9}");
        assert_eq!(escape_controls("x\ry\u{1b}[0m"), "x\\ry\\u{1b}[0m");
    }
}
