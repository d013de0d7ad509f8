//! The crate's one error type, split by whose fault a failure is, each mapped to its HTTP answer.

use std::fmt;
use std::time::Duration;

/// What went wrong on an HTTP connection or request.
///
/// Peer variants are the client's fault, app variants the application's, limit variants a
/// configured limit, and [`Error::Io`] the transport's. [`Error::http_status`] gives the answer
/// the client gets when one can still be sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Peer: the request could not be parsed (hyper answered `400`); the text says how.
    Malformed(String),
    /// Peer: the request parsed but breaks a rule this front end enforces (missing or invalid
    /// `Host`, `%00` or a `..` above the root in the path). Answered `400`.
    BadRequest {
        /// What was wrong.
        what: &'static str,
        /// The offending bytes, for the log line.
        bytes: Vec<u8>,
    },
    /// Peer: the request uses a transfer coding other than `chunked` (answered `501`, RFC 9112
    /// section 6.1); holds the coding.
    UnknownTransferCoding(Vec<u8>),
    /// Peer: the request body's framing was broken (bad chunk size, connection closed early).
    BadBody(String),
    /// Limit: the request head is larger than `max_header_bytes` or has more than `max_headers`
    /// lines (hyper answered `431`).
    HeadTooLarge,
    /// Limit: the request head did not arrive within `header_read_timeout`.
    HeaderTimeout(Duration),
    /// Limit: the client made no progress for `idle_timeout` while we waited on it; `during`
    /// says for what (`"the next request"`, `"the request body"`, `"response bytes to be read"`).
    IdleTimeout {
        /// The timeout.
        after: Duration,
        /// What we were waiting for.
        during: &'static str,
    },
    /// Limit: `max_conns` connections are already open (answered `503`).
    TooManyConnections {
        /// The limit.
        limit: usize,
    },
    /// App: the response head cannot be sent (e.g. a `Content-Length` that is not a number).
    BadResponseHead(String),
    /// App: the app wrote more body bytes than its `Content-Length`; the body was cut at the
    /// announced length and the connection closed after it.
    ResponseTooLong {
        /// The announced length.
        announced: u64,
    },
    /// App: the app finished after fewer body bytes than its `Content-Length`; the connection was
    /// aborted so the client sees an error rather than a short body.
    ResponseTooShort {
        /// The announced length.
        announced: u64,
        /// What the app sent.
        sent: u64,
    },
    /// App: the app aborted its response (failed after the head, or was cancelled).
    ResponseAborted,
    /// I/O or HTTP machinery failure on the connection (reset, broken pipe, hyper internal).
    Io(String),
}

impl Error {
    /// The status answering this error when a response can still be sent, `None` when the
    /// connection is just closed.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Malformed(_) | Self::BadRequest { .. } | Self::BadBody(_) => Some(400),
            Self::HeadTooLarge => Some(431),
            Self::UnknownTransferCoding(_) => Some(501),
            Self::TooManyConnections { .. } => Some(503),
            Self::BadResponseHead(_) => Some(500),
            Self::HeaderTimeout(_)
            | Self::IdleTimeout { .. }
            | Self::ResponseTooLong { .. }
            | Self::ResponseTooShort { .. }
            | Self::ResponseAborted
            | Self::Io(_) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed request: {why}"),
            Self::BadRequest { what, bytes } if bytes.is_empty() => {
                write!(f, "bad request: {what}")
            }
            Self::BadRequest { what, bytes } => {
                write!(f, "bad request: {what}: \"{}\"", bytes.escape_ascii())
            }
            Self::UnknownTransferCoding(coding) => write!(
                f,
                "transfer coding \"{}\" is not implemented",
                coding.escape_ascii()
            ),
            Self::BadBody(why) => write!(f, "malformed request body: {why}"),
            Self::HeadTooLarge => f.write_str("request head too large or too many header lines"),
            Self::HeaderTimeout(d) => write!(f, "request head not complete after {d:?}"),
            Self::IdleTimeout { after, during } => {
                write!(f, "client idle for {after:?} while waiting for {during}")
            }
            Self::TooManyConnections { limit } => {
                write!(f, "connection limit of {limit} reached")
            }
            Self::BadResponseHead(why) => write!(f, "bad response head from application: {why}"),
            Self::ResponseTooLong { announced } => write!(
                f,
                "application wrote more than its content-length of {announced} bytes"
            ),
            Self::ResponseTooShort { announced, sent } => write!(
                f,
                "application finished after {sent} of its content-length of {announced} bytes"
            ),
            Self::ResponseAborted => f.write_str("application aborted the response"),
            Self::Io(why) => write!(f, "connection error: {why}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_display() {
        let e = Error::BadRequest {
            what: "invalid Host",
            bytes: b"a\x01b".to_vec(),
        };
        assert_eq!(e.http_status(), Some(400));
        assert_eq!(e.to_string(), "bad request: invalid Host: \"a\\x01b\"");
        assert_eq!(Error::HeadTooLarge.http_status(), Some(431));
        let e = Error::UnknownTransferCoding(b"gzip".to_vec());
        assert_eq!(e.http_status(), Some(501));
        assert_eq!(e.to_string(), "transfer coding \"gzip\" is not implemented");
        assert_eq!(
            Error::TooManyConnections { limit: 3 }.http_status(),
            Some(503)
        );
        assert_eq!(Error::ResponseAborted.http_status(), None);
    }
}
