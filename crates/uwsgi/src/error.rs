//! The crate's one error type, split by whose fault a failure is, and the HTTP status that
//! answers it.
//!
//! The uwsgi protocol has no error packet for modifier1 0: the only answer we can give is an
//! HTTP response (see [`Error::http_status`]), written when the connection can still carry one.

use std::fmt;
use std::io;
use std::time::Duration;

/// How many bytes of peer input an error keeps for its log line.
pub const EXCERPT_LEN: usize = 64;

/// A short copy of peer bytes, shown escaped (`escape_ascii`) and cut at [`EXCERPT_LEN`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    bytes: Vec<u8>,
    cut: bool,
}

impl Excerpt {
    /// Keeps at most [`EXCERPT_LEN`] bytes of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes[..bytes.len().min(EXCERPT_LEN)].to_vec(),
            cut: bytes.len() > EXCERPT_LEN,
        }
    }

    /// The kept bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Display for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.bytes.escape_ascii())?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong on a uwsgi connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer (the front server) sent bytes that are not a uwsgi request.
    Peer(PeerError),
    /// The peer went past one of our limits.
    Limit(LimitError),
    /// The peer did not send the whole packet (header and vars) within
    /// [`Config::header_timeout`](crate::Config::header_timeout) (peer's fault): a `datasize`
    /// larger than what arrives ends here.
    HeaderTimeout(Duration),
    /// The peer made no progress for [`Config::idle_timeout`](crate::Config::idle_timeout) while
    /// we waited to read the body or to write the response (peer's fault).
    IdleTimeout(Duration),
    /// The transport failed (reset, broken pipe): the client is gone.
    Io(io::Error),
    /// The configuration is unusable (the operator's fault), from [`Config::validate`](crate::Config::validate).
    Config(String),
}

/// A malformed request: the front server's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerError {
    /// `modifier1` is not 0 (a WSGI/HTTP request with a vars block): the other modifiers
    /// (uWSGI's plugins, its cluster and signal packets) are not served. Holds the header.
    UnknownModifier1 {
        /// The packet's `modifier1`.
        modifier1: u8,
        /// The packet's `modifier2`.
        modifier2: u8,
    },
    /// A key or value length runs past the end of the vars block.
    VarOverrun(Excerpt),
    /// A key is empty.
    EmptyKey,
    /// `CONTENT_LENGTH` is not empty and not a sequence of ASCII digits, or is absurd.
    BadContentLength(Excerpt),
    /// A name other than an `HTTP_*` header appears twice.
    DuplicateName(Excerpt),
    /// No `REQUEST_METHOD` in the vars.
    MissingMethod,
    /// The connection ended inside the packet header or the vars block.
    TruncatedHead {
        /// Bytes of the packet that arrived.
        received: usize,
    },
    /// The connection ended before `CONTENT_LENGTH` body bytes arrived.
    ShortBody {
        /// `CONTENT_LENGTH`.
        expected: u64,
        /// Body bytes that arrived.
        received: u64,
    },
}

/// A limit the peer went past.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError {
    /// The packet announces a vars block (`datasize`) larger than
    /// [`Config::max_vars_bytes`](crate::Config::max_vars_bytes); refused before it is buffered.
    VarsBytes {
        /// The packet's `datasize`.
        announced: usize,
        /// The limit.
        limit: usize,
    },
    /// [`Config::max_conns`](crate::Config::max_conns) connections are already being served.
    Connections {
        /// The limit.
        limit: usize,
    },
}

impl Error {
    /// The status of our answer, `None` when there is no one to answer.
    ///
    /// Malformed input, vars over the limit and timeouts are `400`, too many connections is
    /// `503`. An I/O failure has no answer: the connection is gone.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Peer(_) | Self::HeaderTimeout(_) | Self::IdleTimeout(_) => Some(400),
            Self::Limit(LimitError::VarsBytes { .. }) => Some(400),
            Self::Limit(LimitError::Connections { .. }) => Some(503),
            Self::Io(_) | Self::Config(_) => None,
        }
    }

    /// Whether the error means the client went away (not worth a warning).
    pub fn is_client_gone(&self) -> bool {
        matches!(self, Self::Io(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Peer(e) => write!(f, "malformed request: {e}"),
            Self::Limit(e) => write!(f, "limit exceeded: {e}"),
            Self::HeaderTimeout(t) => write!(f, "no complete packet within {t:?}"),
            Self::IdleTimeout(t) => write!(f, "peer made no progress for {t:?}"),
            Self::Io(e) => write!(f, "connection failed: {e}"),
            Self::Config(why) => write!(f, "bad uwsgi configuration: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Peer(e) => Some(e),
            Self::Limit(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::HeaderTimeout(_) | Self::IdleTimeout(_) | Self::Config(_) => None,
        }
    }
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownModifier1 {
                modifier1,
                modifier2,
            } => write!(
                f,
                "modifier1 {modifier1} (modifier2 {modifier2}) is not served, only 0 (WSGI/HTTP)"
            ),
            Self::VarOverrun(b) => write!(f, "var length runs past the vars block: {b}"),
            Self::EmptyKey => f.write_str("empty var name"),
            Self::BadContentLength(v) => write!(f, "CONTENT_LENGTH is not a number: {v}"),
            Self::DuplicateName(n) => write!(f, "duplicate var {n}"),
            Self::MissingMethod => f.write_str("no REQUEST_METHOD var"),
            Self::TruncatedHead { received } => {
                write!(f, "connection closed after {received} bytes of the packet")
            }
            Self::ShortBody { expected, received } => write!(
                f,
                "connection closed after {received} of {expected} body bytes"
            ),
        }
    }
}

impl std::error::Error for PeerError {}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VarsBytes { announced, limit } => {
                write!(f, "vars block of {announced} bytes, limit {limit}")
            }
            Self::Connections { limit } => write!(f, "already serving {limit} connections"),
        }
    }
}

impl std::error::Error for LimitError {}

impl From<PeerError> for Error {
    fn from(e: PeerError) -> Self {
        Self::Peer(e)
    }
}

impl From<LimitError> for Error {
    fn from(e: LimitError) -> Self {
        Self::Limit(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_fault() {
        let m = PeerError::UnknownModifier1 {
            modifier1: 5,
            modifier2: 0,
        };
        assert_eq!(Error::from(m).http_status(), Some(400));
        let conns = Error::from(LimitError::Connections { limit: 1 });
        assert_eq!(conns.http_status(), Some(503));
        let io = Error::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(io.is_client_gone());
        assert_eq!(io.http_status(), None);
        assert_eq!(
            Error::from(PeerError::DuplicateName(Excerpt::new(b"A\n"))).to_string(),
            "malformed request: duplicate var \"A\\n\""
        );
    }
}
