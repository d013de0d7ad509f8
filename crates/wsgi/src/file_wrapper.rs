//! `wsgi.file_wrapper(filelike, block_size=8192)` (PEP 3333, "Optional Platform-Specific File
//! Handling"): an iterable that reads the file in blocks from its current position, so a 100 MiB
//! file costs one block of memory at a time, and whose `close()` closes the file.
//!
//! Blocks are at least [`FILE_WRAPPER_MIN_BLOCK`] and at most [`FILE_WRAPPER_MAX_BLOCK`] bytes whatever the app asks:
//! `block_size` is a suggestion, and 8 KiB blocks would cost a channel hand-over each. There is no
//! `sendfile`: the bytes travel through the response channel like any other body (FastCGI and
//! SCGI wrap them in records anyway).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::start_response::type_name;

/// Smallest block read from a wrapped file.
pub const FILE_WRAPPER_MIN_BLOCK: usize = 64 * 1024;
/// Largest block read from a wrapped file.
pub const FILE_WRAPPER_MAX_BLOCK: usize = 1024 * 1024;

/// The `wsgi.file_wrapper` type.
#[pyclass(module = "gatehouse", name = "FileWrapper")]
pub(crate) struct FileWrapper {
    filelike: Py<PyAny>,
    block: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size = 8192))]
    fn new(filelike: Py<PyAny>, block_size: usize) -> Self {
        Self {
            filelike,
            block: block_size.clamp(FILE_WRAPPER_MIN_BLOCK, FILE_WRAPPER_MAX_BLOCK),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next block; the file's `read` releases the GIL while it waits for the disk.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        let data = self.filelike.bind(py).call_method1("read", (self.block,))?;
        let Ok(bytes) = data.cast::<PyBytes>() else {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "wsgi.file_wrapper: read() returned {}, not bytes",
                type_name(&data)
            )));
        };
        Ok((!bytes.as_bytes().is_empty()).then(|| bytes.clone().unbind()))
    }

    /// Closes the wrapped file, if it can be closed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let file = self.filelike.bind(py);
        if file.hasattr("close")? {
            file.call_method0("close")?;
        }
        Ok(())
    }
}
