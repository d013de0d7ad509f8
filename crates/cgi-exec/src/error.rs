//! The crate's one error type: why a CGI program could not be set up or a request could not be
//! served, whose fault that is, and the HTTP status that answers it.

use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use gatehouse_channel_request::{BodyError, CgiHeadError};

/// Everything that can go wrong, grouped by whose fault it is.
///
/// - operator: [`Error::Root`], [`Error::Config`] (from [`crate::CgiApp::new`] and the lookups);
/// - peer: [`Error::BadPath`], [`Error::NotFound`], [`Error::Forbidden`], [`Error::Body`],
///   [`Error::ClientGone`];
/// - script: [`Error::Spawn`], [`Error::BadHead`], [`Error::NoOutput`], [`Error::Timeout`],
///   [`Error::RequestTimeout`], [`Error::TooManyRedirects`];
/// - I/O: [`Error::Io`], [`Error::Response`].
///
/// [`Error::http_status`] gives the answer when the response head was not sent yet.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configured `cgi:PATH` cannot be used.
    Root {
        /// The configured path.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
        /// The system error, if one was seen.
        source: Option<io::Error>,
    },
    /// The configuration is inconsistent or names an unknown user or group.
    Config(String),
    /// The request path cannot name a file (it holds a NUL byte).
    BadPath(Vec<u8>),
    /// No file matches the request.
    NotFound {
        /// The path looked for.
        path: PathBuf,
    },
    /// A file was found but will not be run.
    Forbidden {
        /// The offending path (the script, or the directory that makes it unsafe).
        path: PathBuf,
        /// Why it is refused.
        why: Refusal,
    },
    /// The request body failed (short, malformed, aborted).
    Body(BodyError),
    /// The client went away; nothing more can be sent.
    ClientGone,
    /// The program could not be started.
    Spawn {
        /// The program.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The script's CGI response head (RFC 3875 section 6) is malformed or too large.
    BadHead(CgiHeadError),
    /// The script ended without writing anything to stdout.
    NoOutput {
        /// How it ended.
        status: ExitStatus,
    },
    /// The script made no progress for the configured time and was killed.
    Timeout {
        /// The configured idle time.
        idle: Duration,
    },
    /// The request was still running (or still waiting for a slot) after the wall-clock limit
    /// (`--request-timeout`), counted from when it arrived; a running script was killed.
    RequestTimeout {
        /// The configured limit.
        limit: Duration,
        /// Whether a script was running (killed) rather than the request waiting for a slot.
        killed: bool,
    },
    /// Local redirects (RFC 3875 section 6.2.2) chained more than the limit.
    TooManyRedirects {
        /// The limit.
        limit: usize,
    },
    /// Talking to the script failed (a pipe error).
    Io(io::Error),
    /// The response channel refused an output (a front-end or API error).
    Response(gatehouse_channel_request::Error),
}

/// Why a file that exists is not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The path has a `..` segment.
    Traversal,
    /// The file lies outside the configured root.
    OutsideRoot,
    /// A symlink leads out of the configured root (allowed with `allow_symlinks`).
    SymlinkEscape,
    /// The path names a directory, not a program.
    Directory,
    /// Not a regular file (a device, a fifo, a socket).
    NotRegular,
    /// No execute bit is set.
    NotExecutable,
    /// The script, or a directory on its way from the root, is world-writable.
    WorldWritable,
    /// The file name's extension is not in the allow-list.
    Extension,
    /// The file or a directory on its way cannot be inspected (permission denied).
    Inaccessible,
}

impl Error {
    /// The HTTP status that answers this error when the response head is not yet sent.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadPath(_) => 400,
            Self::NotFound { .. } => 404,
            Self::Forbidden { .. } => 403,
            Self::Body(e) => e.http_status(),
            Self::BadHead(_) | Self::NoOutput { .. } | Self::Io(_) => 502,
            Self::Timeout { .. } | Self::RequestTimeout { .. } => 504,
            Self::Spawn { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => 403,
            _ => 500,
        }
    }

    /// Whether the failure is the client's or the request's, rather than the script's or ours:
    /// such failures are logged at a lower level.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            Self::BadPath(_)
                | Self::NotFound { .. }
                | Self::Forbidden { .. }
                | Self::Body(_)
                | Self::ClientGone
        )
    }

    /// Whether the failure only says that the client went away.
    pub fn is_client_gone(&self) -> bool {
        matches!(
            self,
            Self::ClientGone
                | Self::Body(BodyError::Aborted)
                | Self::Response(gatehouse_channel_request::Error::ClientGone)
        )
    }
}

impl Refusal {
    /// A short lowercase description.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Traversal => "path has a '..' segment",
            Self::OutsideRoot => "outside the CGI root",
            Self::SymlinkEscape => "symlink leads out of the CGI root",
            Self::Directory => "is a directory",
            Self::NotRegular => "not a regular file",
            Self::NotExecutable => "not executable",
            Self::WorldWritable => "world-writable",
            Self::Extension => "extension not allowed",
            Self::Inaccessible => "cannot be inspected",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root { path, why, .. } => write!(f, "cgi root {}: {why}", shown(path)),
            Self::Config(what) => write!(f, "cgi configuration: {what}"),
            Self::BadPath(p) => write!(f, "request path \"{}\" has a NUL byte", p.escape_ascii()),
            Self::NotFound { path } => write!(f, "no script at {}", shown(path)),
            Self::Forbidden { path, why } => write!(f, "refused {}: {why}", shown(path)),
            Self::Body(e) => write!(f, "request body: {e}"),
            Self::ClientGone => f.write_str("client is gone"),
            Self::Spawn { path, source } => write!(f, "cannot start {}: {source}", shown(path)),
            Self::BadHead(e) => write!(f, "malformed response head from script: {e}"),
            Self::NoOutput { status } => write!(f, "script wrote no output ({status})"),
            Self::Timeout { idle } => write!(f, "script idle for {idle:?}, killed"),
            Self::RequestTimeout {
                limit,
                killed: true,
            } => write!(
                f,
                "script still running after the request timeout ({limit:?}), killed"
            ),
            Self::RequestTimeout {
                limit,
                killed: false,
            } => write!(
                f,
                "request still waiting for a script slot after the request timeout ({limit:?})"
            ),
            Self::TooManyRedirects { limit } => {
                write!(f, "more than {limit} local redirects")
            }
            Self::Io(e) => write!(f, "pipe to script: {e}"),
            Self::Response(e) => write!(f, "response: {e}"),
        }
    }
}

/// A path for a log line: most of it comes from the request path, so its bytes are escaped
/// (`escape_ascii`: a newline in it cannot start a forged log line).
pub(crate) fn shown(path: &Path) -> impl fmt::Display + '_ {
    path.as_os_str().as_bytes().escape_ascii()
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Root {
                source: Some(e), ..
            }
            | Self::Spawn { source: e, .. }
            | Self::Io(e) => Some(e),
            Self::Body(e) => Some(e),
            Self::BadHead(e) => Some(e),
            Self::Response(e) => Some(e),
            _ => None,
        }
    }
}

impl From<BodyError> for Error {
    fn from(e: BodyError) -> Self {
        Self::Body(e)
    }
}

impl From<gatehouse_channel_request::Error> for Error {
    fn from(e: gatehouse_channel_request::Error) -> Self {
        match e {
            gatehouse_channel_request::Error::ClientGone => Self::ClientGone,
            gatehouse_channel_request::Error::Body(b) => Self::Body(b),
            other => Self::Response(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_fault() {
        let p = PathBuf::from("/x");
        assert_eq!(Error::NotFound { path: p.clone() }.http_status(), 404);
        let forbidden = Error::Forbidden {
            path: p.clone(),
            why: Refusal::Traversal,
        };
        assert_eq!(forbidden.http_status(), 403);
        assert!(forbidden.is_peer_fault());
        assert_eq!(Error::BadHead(CgiHeadError::Truncated).http_status(), 502);
        assert_eq!(
            Error::Timeout {
                idle: Duration::ZERO
            }
            .http_status(),
            504
        );
        let wall = Error::RequestTimeout {
            limit: Duration::from_secs(1),
            killed: true,
        };
        assert_eq!(wall.http_status(), 504);
        assert!(!wall.is_peer_fault() && !wall.is_client_gone());
        assert!(wall.to_string().contains("killed"), "{wall}");
        let denied = Error::Spawn {
            path: p,
            source: io::ErrorKind::PermissionDenied.into(),
        };
        assert_eq!(denied.http_status(), 403);
        assert!(Error::Body(BodyError::Aborted).is_client_gone());
        assert_eq!(
            Error::Body(BodyError::Short {
                expected: 2,
                received: 1
            })
            .http_status(),
            400
        );
    }

    #[test]
    fn display_is_lowercase_and_escapes() {
        let e = Error::BadPath(b"/a\0b".to_vec());
        assert_eq!(e.to_string(), "request path \"/a\\x00b\" has a NUL byte");
        let e = Error::Forbidden {
            path: PathBuf::from("/r/x.sh"),
            why: Refusal::WorldWritable,
        };
        assert_eq!(e.to_string(), "refused /r/x.sh: world-writable");
        let e = Error::NotFound {
            path: PathBuf::from("/r/a\nFORGED"),
        };
        assert_eq!(e.to_string(), "no script at /r/a\\nFORGED");
    }
}
