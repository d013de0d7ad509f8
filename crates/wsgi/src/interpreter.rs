//! Starting the embedded CPython, once per process, as the interpreter the crate was built for.
//!
//! pyo3's `auto-initialize` would call `Py_InitializeEx(0)`: CPython then guesses its prefix from
//! our binary's path and `sys.executable` is `gatehouse`. We initialise through `PyConfig`
//! instead (PEP 587), which needs raw FFI, hence the only `unsafe` of the crate:
//!
//! - `executable` is the build interpreter's (`GATEHOUSE_PYTHON_EXECUTABLE`, from pyo3's build
//!   config) or the virtualenv's `bin/python3`. CPython's path calculation then does exactly what
//!   it does when that executable runs: same `sys.prefix`, same site-packages, and a virtualenv's
//!   `pyvenv.cfg` is honoured (`sys.prefix` = the venv, `sys.base_prefix` = its base).
//! - `install_signal_handlers = 0`: SIGINT and SIGTERM belong to the daemon, not to Python.
//! - `faulthandler = 1` (`-X faulthandler`): a crash in an app writes its Python stack to stderr
//!   (the log), where it otherwise dies without a word.
//!
//! Before starting, [`ensure_started`] checks in `/proc/self/maps` that the libpython the loader
//! mapped is the one from the build directory: without the rpath the loader may pick a distro
//! libpython of the same soname, and we would run another interpreter without noticing.
//!
//! [`raise_in_thread`] and [`clear_raised`] wrap `PyThreadState_SetAsyncExc`, which pyo3 does
//! not wrap either (`--request-timeout` frees a thread with it).
//!
//! Two more FFI calls live here, for the environ of every request, which pyo3's safe API lacks:
//! [`latin1`] makes a `str` from bytes with `PyUnicode_DecodeLatin1` (`PyString::new` takes
//! UTF-8, so a byte string had to be checked in Rust, validated as UTF-8, then decoded), and
//! [`presized_dict`] makes a dict whose table already holds a whole environ
//! (`_PyDict_NewPresized`, what CPython's own `BUILD_MAP` uses; exported through 3.14).

use std::ffi::{CStr, CString, OsString};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::error::Error;

/// Bytes as a native string: byte `b` becomes code point `b` (latin-1, PEP 3333's "native
/// strings"). One pass over the bytes (CPython finds the widest character, then copies).
pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    let len = ffi::Py_ssize_t::try_from(bytes.len()).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: the GIL is held (`py`); the pointer and length describe `bytes`, which CPython
    // only reads during the call; a NULL `errors` means "strict", and latin-1 decoding cannot
    // fail on any byte, so the result is NULL only when memory runs out (turned into a panic,
    // as pyo3's own constructors do).
    unsafe {
        let ptr = ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null());
        Bound::from_owned_ptr(py, ptr).cast_into_unchecked()
    }
}

/// An empty dict with room for `entries` items without a resize. Copies of it
/// (`PyDict_Copy` clones the table of a dict without deletions) keep that room.
pub(crate) fn presized_dict(py: Python<'_>, entries: usize) -> Bound<'_, PyDict> {
    let entries = ffi::Py_ssize_t::try_from(entries).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: the GIL is held (`py`); the call returns a new reference to a dict, or NULL when
    // memory runs out (turned into a panic, as pyo3's own constructors do).
    unsafe { Bound::from_owned_ptr(py, ffi::_PyDict_NewPresized(entries)).cast_into_unchecked() }
}

/// Schedules `exc` (an exception class) to be raised in the Python thread `tid`
/// (`threading.get_ident()`) the next time it runs Python code: CPython's asynchronous
/// exceptions, what `--request-timeout` uses to free a thread. A thread blocked in C code sees it
/// only when that call returns. Whether a thread with that id was found.
pub(crate) fn raise_in_thread(_py: Python<'_>, tid: u64, exc: &Bound<'_, PyAny>) -> bool {
    // SAFETY: the GIL is held (`_py`); `exc` is a live object for the duration of the call
    // (CPython takes its own reference). The id is an `unsigned long` in CPython; pyo3 declares
    // the parameter as `c_long`, the same bits.
    unsafe { ffi::PyThreadState_SetAsyncExc(thread_id(tid), exc.as_ptr()) == 1 }
}

/// Withdraws an asynchronous exception scheduled for thread `tid` that it has not seen yet.
pub(crate) fn clear_raised(_py: Python<'_>, tid: u64) {
    // SAFETY: the GIL is held (`_py`); a NULL exception clears the pending one.
    unsafe { ffi::PyThreadState_SetAsyncExc(thread_id(tid), std::ptr::null_mut()) };
}

/// `threading.get_ident()` comes from an `unsigned long`: the cast gives back its bits.
fn thread_id(tid: u64) -> std::ffi::c_long {
    tid as std::ffi::c_long
}

/// The interpreter this crate was compiled against (from pyo3's build configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildInfo {
    /// `MAJOR.MINOR`.
    pub version: &'static str,
    /// The interpreter pyo3 ran at build time (may be empty when unknown).
    pub executable: &'static str,
    /// Directory of the shared libpython, embedded as the rpath; empty for a static build.
    pub lib_dir: &'static str,
}

/// What the crate was built against.
pub fn built_for() -> BuildInfo {
    BuildInfo {
        version: env!("GATEHOUSE_PYTHON_VERSION"),
        executable: env!("GATEHOUSE_PYTHON_EXECUTABLE"),
        lib_dir: env!("GATEHOUSE_PYTHON_LIBDIR"),
    }
}

#[derive(Debug)]
struct Started {
    venv: Option<PathBuf>,
}

static STARTED: OnceLock<Result<Started, String>> = OnceLock::new();

/// Starts the interpreter unless it runs already; `venv` (else `$VIRTUAL_ENV`) is the virtualenv.
///
/// There is one interpreter per process: a later call naming another virtualenv fails.
pub(crate) fn ensure_started(venv: Option<&Path>) -> Result<(), Error> {
    let venv = resolve_venv(venv, std::env::var_os("VIRTUAL_ENV"))?;
    let started = STARTED.get_or_init(|| {
        check_loaded_library()?;
        start(executable_for(venv.as_deref()).as_deref())?;
        Python::attach(detach_stdio).map_err(|e| format!("redirecting stdio: {e}"))?;
        Ok(Started { venv: venv.clone() })
    });
    match started {
        Err(msg) => Err(Error::Interpreter(msg.clone())),
        Ok(s) if s.venv != venv => Err(Error::Interpreter(format!(
            "already running with virtualenv {:?}, cannot switch to {:?} (one interpreter per process)",
            s.venv, venv
        ))),
        Ok(_) => Ok(()),
    }
}

/// Points `sys.stdin` at /dev/null and `sys.stdout` at `sys.stderr`: under the CGI front end
/// fd 0 and 1 carry the request and the response, and under a spawned FastCGI server fd 0 is the
/// listening socket, so an app's `print()` or `input()` must never touch them.
fn detach_stdio(py: Python<'_>) -> PyResult<()> {
    py.run(
        c"import os, sys\nsys.stdin = open(os.devnull)\nsys.stdout = sys.stderr\n",
        None,
        None,
    )
}

/// Whether [`ensure_started`] succeeded.
pub(crate) fn is_started() -> bool {
    matches!(STARTED.get(), Some(Ok(_)))
}

/// One line for the start-up log: version, prefixes, executable and the libpython file.
pub fn interpreter_info() -> String {
    if !is_started() {
        return "python interpreter not started".to_owned();
    }
    let library = loaded_libpython()
        .map_or_else(|| "static".to_owned(), |p| p.to_string_lossy().into_owned());
    Python::attach(|py| {
        let attr = |name: &str| -> String {
            py.import("sys")
                .and_then(|sys| sys.getattr(name))
                .map_or_else(|e| format!("<{e}>"), |v| v.to_string())
        };
        let version = attr("version");
        let version = version.split_whitespace().next().unwrap_or_default();
        format!(
            "CPython {version} prefix={} base_prefix={} executable={} library={library}",
            attr("prefix"),
            attr("base_prefix"),
            attr("executable"),
        )
    })
}

/// The virtualenv to use (`given`, else `$VIRTUAL_ENV`), checked: it has a `pyvenv.cfg` for our
/// `MAJOR.MINOR`.
fn resolve_venv(given: Option<&Path>, env: Option<OsString>) -> Result<Option<PathBuf>, Error> {
    let dir = match (given, env) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(env)) if !env.is_empty() => PathBuf::from(env),
        _ => return Ok(None),
    };
    let bad = |what: String| Error::Interpreter(format!("virtualenv {}: {what}", dir.display()));
    let dir = dir.canonicalize().map_err(|e| bad(e.to_string()))?;
    let cfg = std::fs::read_to_string(dir.join("pyvenv.cfg"))
        .map_err(|e| bad(format!("not a virtualenv (pyvenv.cfg: {e})")))?;
    let want = built_for().version;
    match venv_version(&cfg) {
        Some(v) if v == want || v.starts_with(&format!("{want}.")) => Ok(Some(dir)),
        Some(v) => Err(bad(format!(
            "made by Python {v}, but gatehouse embeds Python {want}"
        ))),
        None => Err(bad("pyvenv.cfg names no version".to_owned())),
    }
}

/// The `version` (venv) or `version_info` (virtualenv) value of a `pyvenv.cfg`.
fn venv_version(cfg: &str) -> Option<String> {
    cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_owned())
    })
}

/// The executable CPython computes its paths from.
fn executable_for(venv: Option<&Path>) -> Option<PathBuf> {
    if let Some(venv) = venv {
        let bin = venv.join("bin");
        let found = ["python3", "python"]
            .iter()
            .map(|name| bin.join(name))
            .find(|p| p.exists());
        return Some(found.unwrap_or_else(|| bin.join("python3")));
    }
    let exe = built_for().executable;
    (!exe.is_empty()).then(|| PathBuf::from(exe))
}

/// The libpython file mapped into this process, if any (a static build has none).
fn loaded_libpython() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(Path::new)
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.as_bytes().starts_with(b"libpython"))
        })
        .map(Path::to_path_buf)
}

/// Fails when the loader mapped a libpython from another directory than the build's.
fn check_loaded_library() -> Result<(), String> {
    let want = built_for().lib_dir;
    let (Some(got), false) = (loaded_libpython(), want.is_empty()) else {
        return Ok(());
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if got.parent().is_some_and(|dir| same(dir, Path::new(want))) {
        return Ok(());
    }
    Err(format!(
        "the loader mapped {} but gatehouse was built against the libpython in {want}: \
         the binary lacks its rpath (see crates/wsgi/README.md)",
        got.display()
    ))
}

/// Initialises CPython from a `PyConfig` and releases the GIL.
fn start(executable: Option<&Path>) -> Result<(), String> {
    // SAFETY: a plain query, valid before initialisation.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        return Err("the interpreter was started outside gatehouse-wsgi".to_owned());
    }
    let executable = executable
        .map(|p| CString::new(p.as_os_str().as_bytes()))
        .transpose()
        .map_err(|_| "the executable path holds a NUL byte".to_owned())?;
    let mut config = MaybeUninit::<ffi::PyConfig>::uninit();
    // SAFETY: the pointer is to writable memory sized for `PyConfig` as laid out for the Python
    // version we link (pyo3-ffi picks the layout from the same build configuration), and
    // PyConfig_InitPythonConfig initialises every field.
    unsafe { ffi::PyConfig_InitPythonConfig(config.as_mut_ptr()) };
    {
        // SAFETY: initialised just above; this borrow ends before the raw pointer below is made.
        let fields = unsafe { config.assume_init_mut() };
        fields.install_signal_handlers = 0;
        fields.parse_argv = 0;
        // `python -X faulthandler`: a SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT in an app (a
        // broken C extension) writes "Fatal Python error" and every thread's Python stack to
        // stderr, which is the daemon's log, before the process dies of the signal.
        fields.faulthandler = 1;
    }
    // From here on the config is only reached through this one pointer.
    let cfg = config.as_mut_ptr();
    if let Some(exe) = &executable {
        let field = cfg
            .wrapping_byte_add(std::mem::offset_of!(ffi::PyConfig, executable))
            .cast();
        // SAFETY: `field` points into the initialised config; the function copies the
        // NUL-terminated string into memory the config owns (freed by PyConfig_Clear).
        let status = unsafe { ffi::PyConfig_SetBytesString(cfg, field, exe.as_ptr()) };
        if let Some(msg) = status_error(status) {
            // SAFETY: the config is initialised; clearing frees what it owns.
            unsafe { ffi::PyConfig_Clear(cfg) };
            return Err(format!("setting the executable: {msg}"));
        }
    }
    // SAFETY: runs once (the caller's OnceLock) with an initialised config.
    let status = unsafe { ffi::Py_InitializeFromConfig(cfg) };
    // SAFETY: the config is initialised and no longer needed; cleared once.
    unsafe { ffi::PyConfig_Clear(cfg) };
    if let Some(msg) = status_error(status) {
        return Err(format!("initialisation failed: {msg}"));
    }
    // SAFETY: initialisation left this thread holding the GIL; releasing it lets the pool
    // threads take it (the thread state stays valid, as in pyo3's own initialisation).
    unsafe { ffi::PyEval_SaveThread() };
    Ok(())
}

/// The message of a failed `PyStatus`, `None` for success.
fn status_error(status: ffi::PyStatus) -> Option<String> {
    // SAFETY: PyStatus_Exception only reads the struct passed by value.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return None;
    }
    let text = |p: *const std::ffi::c_char| {
        if p.is_null() {
            return String::new();
        }
        // SAFETY: CPython sets these to static NUL-terminated strings or leaves them NULL.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    };
    Some(format!(
        "{} ({}, exit code {})",
        text(status.err_msg),
        text(status.func),
        status.exitcode
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_versions() {
        assert_eq!(
            venv_version("home = /usr/bin\nversion = 3.11.7\n").as_deref(),
            Some("3.11.7")
        );
        assert_eq!(
            venv_version("version_info = 3.11.7.final.0\n").as_deref(),
            Some("3.11.7.final.0")
        );
        assert_eq!(venv_version("home = /x\n"), None);
    }

    #[test]
    fn venv_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let want = built_for().version;
        std::fs::write(
            dir.path().join("pyvenv.cfg"),
            format!("version = {want}.1\n"),
        )
        .unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(resolve_venv(None, None).unwrap(), None);
        assert_eq!(resolve_venv(None, Some("".into())).unwrap(), None);
        let from_env = resolve_venv(None, Some(dir.path().as_os_str().to_owned())).unwrap();
        assert_eq!(from_env.as_deref(), Some(canonical.as_path()));
        let given = resolve_venv(Some(dir.path()), Some("/elsewhere".into())).unwrap();
        assert_eq!(given.as_deref(), Some(canonical.as_path()), "the flag wins");

        std::fs::write(dir.path().join("pyvenv.cfg"), "version = 2.7.18\n").unwrap();
        let err = resolve_venv(Some(dir.path()), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("made by Python 2.7.18"), "{err}");
        std::fs::remove_file(dir.path().join("pyvenv.cfg")).unwrap();
        let err = resolve_venv(Some(dir.path()), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a virtualenv"), "{err}");
        let err = resolve_venv(Some(Path::new("/no/such/venv")), None).unwrap_err();
        assert!(matches!(err, Error::Interpreter(_)));
    }

    #[test]
    fn build_info_is_filled() {
        let b = built_for();
        assert!(b.version.starts_with("3."), "{b:?}");
    }
}
