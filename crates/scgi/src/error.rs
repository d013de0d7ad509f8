//! The crate's one error type, split by whose fault a failure is, and the HTTP status that
//! answers it.
//!
//! SCGI has no error records: the only protocol answer we can give is a CGI response head with a
//! `Status:` (see [`Error::http_status`]), written when the connection can still carry one.

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

/// Everything that can go wrong on an SCGI connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer (the front server) sent bytes that are not an SCGI request.
    Peer(PeerError),
    /// The peer went past one of our limits.
    Limit(LimitError),
    /// The peer did not send a complete head within
    /// [`Config::header_timeout`](crate::Config::header_timeout) (peer's fault).
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
///
/// The section numbers are those of the SCGI specification (Neil Schemenauer, 2008-06-23).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerError {
    /// The netstring length (section 3: "The headers are sent encoded as a netstring") does not
    /// start with an ASCII digit.
    LengthNotDigits(Excerpt),
    /// The netstring length has a leading zero, which netstrings forbid.
    LengthLeadingZero,
    /// The netstring length is not followed by `:`.
    MissingColon(Excerpt),
    /// The header block is not followed by `,`.
    MissingComma(Excerpt),
    /// The header block ends inside a name or value (`header ::= name NUL value NUL`).
    UnterminatedHeader(Excerpt),
    /// A header name is empty (`name ::= notnull+`).
    EmptyName,
    /// No `CONTENT_LENGTH` header ("The CONTENT_LENGTH header must always be present").
    MissingContentLength,
    /// The first header is not `CONTENT_LENGTH` ("The first header must have the name
    /// CONTENT_LENGTH"); holds the first name.
    ContentLengthNotFirst(Excerpt),
    /// `CONTENT_LENGTH` is not a non-empty sequence of ASCII digits, or is absurd (20 digits or
    /// more: the core parses at most 19).
    BadContentLength(Excerpt),
    /// No `SCGI` header ("There must also always be a header with the name SCGI").
    MissingScgi,
    /// The `SCGI` header's value is not `1`.
    BadScgiVersion(Excerpt),
    /// A header name appears twice ("Duplicate names are not allowed in the headers").
    DuplicateName(Excerpt),
    /// The connection ended inside the head.
    TruncatedHead {
        /// Head bytes received before the end.
        received: usize,
    },
    /// The connection ended before `CONTENT_LENGTH` body bytes arrived.
    ShortBody {
        /// The announced length.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
}

/// A limit of ours that the peer went past.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError {
    /// The netstring announces a header block longer than
    /// [`Config::max_header_bytes`](crate::Config::max_header_bytes).
    HeaderBytes {
        /// The announced length, or the smallest length its digits so far can end up as.
        announced: u64,
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
    /// For a body that ended before `CONTENT_LENGTH`, the error the app's body stream fails
    /// with.
    pub fn short_body(&self) -> Option<gatehouse_channel_request::BodyError> {
        match self {
            Self::Peer(PeerError::ShortBody { expected, received }) => {
                Some(gatehouse_channel_request::BodyError::Short {
                    expected: *expected,
                    received: *received,
                })
            }
            _ => None,
        }
    }

    /// The HTTP status that answers this error in a `Status:` head (when no response byte went
    /// out yet), or `None` when there is no one to answer.
    ///
    /// Malformed input, a head over the limit and timeouts are `400` (HTTP would say 431 or 408;
    /// our answer to every request we cannot read is the same `400 Bad Request`, which front
    /// servers pass on), too many connections is `503`. An I/O failure has no answer: the
    /// connection is gone.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Peer(_) | Self::HeaderTimeout(_) | Self::IdleTimeout(_) => Some(400),
            Self::Limit(LimitError::HeaderBytes { .. }) => Some(400),
            Self::Limit(LimitError::Connections { .. }) => Some(503),
            Self::Io(_) | Self::Config(_) => None,
        }
    }

    /// Whether the error means the client went away (not worth a warning): the connection
    /// failed, or it closed in the middle of the body (what a front server does when its own
    /// client leaves during an upload).
    pub fn is_client_gone(&self) -> bool {
        matches!(self, Self::Io(_) | Self::Peer(PeerError::ShortBody { .. }))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Peer(e) => write!(f, "malformed request: {e}"),
            Self::Limit(e) => write!(f, "limit exceeded: {e}"),
            Self::HeaderTimeout(t) => write!(f, "no complete head within {t:?}"),
            Self::IdleTimeout(t) => write!(f, "peer made no progress for {t:?}"),
            Self::Io(e) => write!(f, "connection failed: {e}"),
            Self::Config(why) => write!(f, "bad SCGI configuration: {why}"),
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
            Self::LengthNotDigits(b) => write!(f, "netstring length is not a number: {b}"),
            Self::LengthLeadingZero => f.write_str("netstring length has a leading zero"),
            Self::MissingColon(b) => write!(f, "netstring length not followed by ':' but {b}"),
            Self::MissingComma(b) => write!(f, "header netstring not followed by ',' but {b}"),
            Self::UnterminatedHeader(b) => write!(f, "header not NUL-terminated: {b}"),
            Self::EmptyName => f.write_str("empty header name"),
            Self::MissingContentLength => f.write_str("no CONTENT_LENGTH header"),
            Self::ContentLengthNotFirst(n) => {
                write!(f, "first header is {n}, not CONTENT_LENGTH")
            }
            Self::BadContentLength(v) => write!(f, "CONTENT_LENGTH is not a number: {v}"),
            Self::MissingScgi => f.write_str("no SCGI header"),
            Self::BadScgiVersion(v) => write!(f, "SCGI header is {v}, not \"1\""),
            Self::DuplicateName(n) => write!(f, "duplicate header {n}"),
            Self::TruncatedHead { received } => {
                write!(f, "connection closed after {received} bytes of the head")
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
            Self::HeaderBytes { announced, limit } => write!(
                f,
                "header block of {announced} bytes or more, limit {limit}"
            ),
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
    fn excerpt_escapes_and_cuts() {
        let e = Excerpt::new(b"GET /\r\n\x00");
        assert_eq!(e.to_string(), "\"GET /\\r\\n\\x00\"");
        let long = Excerpt::new(&[b'a'; 100]);
        assert_eq!(long.as_bytes().len(), EXCERPT_LEN);
        assert!(long.to_string().ends_with("\"..."));
    }

    #[test]
    fn statuses_by_fault() {
        assert_eq!(Error::from(PeerError::MissingScgi).http_status(), Some(400));
        let conns = Error::from(LimitError::Connections { limit: 1 });
        assert_eq!(conns.http_status(), Some(503));
        assert_eq!(
            Error::HeaderTimeout(Duration::from_secs(1)).http_status(),
            Some(400)
        );
        let io = Error::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(io.is_client_gone());
        assert_eq!(io.http_status(), None);
        assert_eq!(
            Error::from(PeerError::DuplicateName(Excerpt::new(b"A"))).to_string(),
            "malformed request: duplicate header \"A\""
        );
    }
}
