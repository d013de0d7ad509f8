//! The crate's one error type: what went wrong, whose fault it is, and what the client gets.

use std::fmt;

/// Everything that can fail in this crate.
///
/// Start-up errors ([`Error::Spec`], [`Error::Interpreter`], [`Error::Import`], [`Error::Io`])
/// are the operator's to fix: the binary prints them and exits 2. Request errors
/// ([`Error::App`], [`Error::ShortBody`], [`Error::Overloaded`], [`Error::Timeout`],
/// [`Error::ClientGone`], [`Error::WorkerLost`]) end one request; [`Error::http_status`] is its
/// answer when the head is not yet sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The app spec does not parse (operator).
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The interpreter cannot be set up: bad virtualenv, version mismatch, a libpython other than
    /// the one built against (operator / installation).
    Interpreter(String),
    /// Importing the app failed (app). `traceback` is Python's text, ready to print.
    Import {
        /// The spec being loaded.
        spec: String,
        /// The formatted Python traceback, or what was missing.
        traceback: String,
    },
    /// Starting the worker threads failed (I/O).
    Io(std::io::Error),
    /// The app raised, or broke PEP 3333, while serving a request (app). Holds the traceback or
    /// the rule broken.
    App(String),
    /// The app's iterable ended before the `Content-Length` it announced (app).
    ShortBody {
        /// The announced length.
        declared: u64,
        /// The bytes the app produced.
        sent: u64,
    },
    /// Every thread is busy and the queue is full (limit): 503.
    Overloaded {
        /// Pool size.
        threads: usize,
        /// Queue size.
        queue: usize,
    },
    /// The request was still queued or running after `--request-timeout` (app): 504.
    Timeout {
        /// The configured limit.
        limit: std::time::Duration,
    },
    /// The client went away (peer): nothing more can be sent.
    ClientGone,
    /// The app failed after its request body failed by the peer's fault (short, too long,
    /// malformed): the body's error answers the request (400), not the app's traceback.
    RequestBody(gatehouse_channel_request::BodyError),
    /// A worker thread ended without answering (bug).
    WorkerLost,
}

impl Error {
    /// The status answering this error when the response head is not yet sent.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Overloaded { .. } => 503,
            Self::Timeout { .. } => 504,
            _ => 500,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spec { spec, reason } => write!(f, "bad wsgi app spec {spec:?}: {reason}"),
            Self::Interpreter(msg) => write!(f, "python interpreter: {msg}"),
            Self::Import { spec, traceback } => {
                write!(f, "cannot load wsgi app {spec}:\n{}", traceback.trim_end())
            }
            Self::Io(e) => write!(f, "wsgi worker threads: {e}"),
            Self::App(msg) => write!(f, "wsgi app failed: {}", msg.trim_end()),
            Self::ShortBody { declared, sent } => write!(
                f,
                "wsgi app sent {sent} body bytes but announced Content-Length {declared}"
            ),
            Self::Overloaded { threads, queue } => write!(
                f,
                "wsgi pool full ({threads} threads busy, {queue} requests queued)"
            ),
            Self::Timeout { limit } => write!(
                f,
                "wsgi request still running after the request timeout ({limit:?})"
            ),
            Self::ClientGone => f.write_str("client gone"),
            Self::RequestBody(e) => write!(f, "request body: {e}"),
            Self::WorkerLost => f.write_str("wsgi worker ended without answering"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_display() {
        let full = Error::Overloaded {
            threads: 2,
            queue: 4,
        };
        assert_eq!(full.http_status(), 503);
        assert_eq!(Error::App("x".into()).http_status(), 500);
        let late = Error::Timeout {
            limit: std::time::Duration::from_secs(2),
        };
        assert_eq!(late.http_status(), 504);
        assert!(late.to_string().contains("2s"), "{late}");
        let short = Error::ShortBody {
            declared: 10,
            sent: 3,
        };
        assert!(short.to_string().contains("announced Content-Length 10"));
        let import = Error::Import {
            spec: "m:app".into(),
            traceback: "Traceback...\nImportError: x\n".into(),
        };
        assert!(import.to_string().ends_with("ImportError: x"));
    }
}
