//! What the operator chooses: the pool's size and time limits, where Python looks for modules,
//! and which app.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// Requests waiting for a thread, beyond the busy pool, before new ones get 503.
pub const DEFAULT_QUEUE: usize = 64;
/// Fewest threads the default pool has, however few cores: WSGI apps mostly wait on I/O.
pub const MIN_DEFAULT_THREADS: usize = 4;
/// Most threads the default pool has: past this the GIL, not the pool, is the limit.
pub const MAX_DEFAULT_THREADS: usize = 32;

/// The default pool size: two threads per core, between [`MIN_DEFAULT_THREADS`] and
/// [`MAX_DEFAULT_THREADS`]. Threads are cheap while they wait for I/O (the GIL is released), and
/// CPU-bound Python code gets no faster with more.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).clamp(MIN_DEFAULT_THREADS, MAX_DEFAULT_THREADS)
}

/// How the WSGI host runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Python threads running the app at once (`--threads`). At least 1.
    pub threads: usize,
    /// Requests waiting for a free thread; one more gets `503 Service Unavailable`.
    pub queue: usize,
    /// Directories put in front of `sys.path` (`--pythonpath`, repeatable), in order.
    pub pythonpath: Vec<PathBuf>,
    /// The virtualenv whose site-packages are importable (`--venv`); `None` = `$VIRTUAL_ENV` if
    /// set, else none. Only the first [`WsgiApp::load`](crate::WsgiApp::load) of a process
    /// chooses it (there is one interpreter).
    pub venv: Option<PathBuf>,
    /// `wsgi.multiprocess`: whether other processes serve the same app (e.g. several gatehouse
    /// processes behind one web server).
    pub multiprocess: bool,
    /// `--request-timeout`: a request still queued or running this long after it was admitted
    /// gets `504` (or a cut response once its head is out); the thread running it gets an
    /// exception, its traceback is logged, and a thread that does not come back (blocked in C
    /// code) is replaced. `None`: no limit.
    pub request_timeout: Option<Duration>,
    /// `--slow-log-timeout`: a request still running this long after it was admitted has the
    /// traceback of its thread logged, once. `None`: off.
    pub slow_log_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threads: default_threads(),
            queue: DEFAULT_QUEUE,
            pythonpath: Vec::new(),
            venv: None,
            multiprocess: false,
            request_timeout: None,
            slow_log_timeout: None,
        }
    }
}

/// Which WSGI callable to serve.
///
/// Parsed from `MODULE[:CALLABLE]` (the module is imported from `--pythonpath`, the current
/// directory, or the virtualenv) or `path/to/file.py[:CALLABLE]` (the file is run as a module; its
/// directory goes first on `sys.path`, as `python file.py` does). Without a callable, the module's
/// `application` is used, else its `app`. `CALLABLE` may be a dotted attribute path
/// (`app.wsgi_app`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsgiSpec {
    /// An importable module.
    Module {
        /// Dotted module name.
        module: String,
        /// Attribute path of the callable; `None` = `application`, then `app`.
        callable: Option<String>,
    },
    /// A Python source file.
    File {
        /// Path of the `.py` file.
        path: PathBuf,
        /// Attribute path of the callable; `None` = `application`, then `app`.
        callable: Option<String>,
    },
}

/// Callable names tried, in order, when the spec names none.
pub const DEFAULT_CALLABLES: [&str; 2] = ["application", "app"];

impl WsgiSpec {
    /// The callable named in the spec, if any.
    pub fn callable(&self) -> Option<&str> {
        match self {
            Self::Module { callable, .. } | Self::File { callable, .. } => callable.as_deref(),
        }
    }
}

impl FromStr for WsgiSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason| Error::Spec {
            spec: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let (target, callable) = match s.rsplit_once(':') {
            // A colon inside a path ("dir:x/app.py") is not a callable separator.
            Some((left, right)) if !s.ends_with(".py") => (left, Some(right)),
            _ => (s, None),
        };
        if let Some(c) = callable {
            if !is_dotted_identifier(c) {
                return Err(bad("the callable must be a (dotted) Python identifier"));
            }
        }
        let callable = callable.map(str::to_owned);
        if target.ends_with(".py") || target.contains('/') {
            if !target.ends_with(".py") {
                return Err(bad("a file path must end in .py"));
            }
            return Ok(Self::File {
                path: PathBuf::from(target),
                callable,
            });
        }
        if !is_dotted_identifier(target) {
            return Err(bad("expected MODULE[:CALLABLE] or path/file.py[:CALLABLE]"));
        }
        Ok(Self::Module {
            module: target.to_owned(),
            callable,
        })
    }
}

impl fmt::Display for WsgiSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Module { module, .. } => f.write_str(module)?,
            Self::File { path, .. } => write!(f, "{}", path.display())?,
        }
        match self.callable() {
            Some(c) => write!(f, ":{c}"),
            None => Ok(()),
        }
    }
}

/// `a`, `a.b_c`, `_x.y2`: Python identifiers (ASCII or not) joined by dots.
fn is_dotted_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(m: &str, c: Option<&str>) -> WsgiSpec {
        WsgiSpec::Module {
            module: m.into(),
            callable: c.map(Into::into),
        }
    }

    fn file(p: &str, c: Option<&str>) -> WsgiSpec {
        WsgiSpec::File {
            path: p.into(),
            callable: c.map(Into::into),
        }
    }

    #[test]
    fn parses_forms() {
        let cases = [
            ("myapp:application", module("myapp", Some("application"))),
            (
                "pkg.mod:app.wsgi_app",
                module("pkg.mod", Some("app.wsgi_app")),
            ),
            ("pkg.mod", module("pkg.mod", None)),
            ("app.py", file("app.py", None)),
            ("dir/app.py:api", file("dir/app.py", Some("api"))),
            ("/abs/dir/app.py", file("/abs/dir/app.py", None)),
            ("we:ird/app.py", file("we:ird/app.py", None)),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<WsgiSpec>().unwrap(), want, "{text}");
            assert_eq!(want.to_string(), text);
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            ":app",
            "mod:",
            "mod:1x",
            "mod:a-b",
            "dir/app",
            "dir/app.txt:app",
            "my-app:app",
            "a..b:c",
        ] {
            assert!(bad.parse::<WsgiSpec>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert!((MIN_DEFAULT_THREADS..=MAX_DEFAULT_THREADS).contains(&c.threads));
        assert_eq!(c.queue, DEFAULT_QUEUE);
        assert_eq!(c.venv, None);
    }
}
