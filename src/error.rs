//! The daemon's [`Error`]: why it could not start or run, and the exit status that says so.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why the daemon could not start or keep running.
///
/// Faults are the operator's (a usage error, an address in use) or the system's (I/O). Request
/// and connection errors never get here: front ends answer them and log one line.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The command line or environment is inconsistent in a way the parser cannot see.
    Usage(String),
    /// A listener could not be made: bind, listen, chmod or adopting an inherited socket failed.
    Listen {
        /// The address as the user wrote it.
        addr: String,
        /// The cause.
        source: io::Error,
    },
    /// A default listener (no listener option was given) could not be made, usually because
    /// its port is taken.
    ListenDefault {
        /// `fastcgi`, `scgi` or `http`.
        protocol: &'static str,
        /// The default address.
        addr: String,
        /// The option that picks another address.
        flag: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// The app could not be set up: a WSGI app that does not import (the message holds Python's
    /// traceback), a CGI directory that cannot be used, an unknown user. Exit status 2.
    App {
        /// The app as the command line named it.
        spec: String,
        /// What went wrong.
        message: String,
    },
    /// A live process already listens on this unix socket path.
    SocketInUse(PathBuf),
    /// The unix socket path exists and is not a socket; we never delete such a file.
    NotASocket(PathBuf),
    /// The master gave up on its workers: one could not start the app, or failed to start
    /// again and again.
    Workers {
        /// What happened.
        message: String,
        /// The exit status: 2 when the app cannot start, else 1.
        status: u8,
    },
    /// The runtime or the signal handlers could not be set up.
    Io {
        /// What we were doing.
        what: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// A file the daemon writes (the access log) could not be opened.
    File {
        /// What we were doing.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
}

impl Error {
    /// The process exit status for this error: 2 for usage errors and apps that cannot start,
    /// 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::App { .. } => 2,
            Self::Workers { status, .. } => *status,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(msg) => f.write_str(msg),
            Self::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Self::ListenDefault {
                protocol,
                addr,
                flag,
                source,
            } => write!(
                f,
                "cannot listen on {addr}, the default {protocol} address: {source} (with no \
                 listener option gatehouse serves FastCGI, SCGI and HTTP on their defaults; \
                 give {flag} ADDR, --fastcgi ADDR, ... to choose)"
            ),
            Self::App { spec, message } => write!(f, "cannot start app {spec}: {message}"),
            Self::SocketInUse(path) => write!(
                f,
                "cannot listen on unix:{}: another process is listening on it",
                path.display()
            ),
            Self::NotASocket(path) => write!(
                f,
                "cannot listen on unix:{}: the file exists and is not a socket",
                path.display()
            ),
            Self::Workers { message, .. } => f.write_str(message),
            Self::Io { what, source } => write!(f, "{what}: {source}"),
            Self::File { what, path, source } => write!(f, "{what} {path}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Listen { source, .. }
            | Self::ListenDefault { source, .. }
            | Self::Io { source, .. }
            | Self::File { source, .. } => Some(source),
            _ => None,
        }
    }
}
