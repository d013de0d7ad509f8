//! The one error type of the FastCGI front end, split by whose fault a failure is, and how each
//! failure is answered on the wire.
//!
//! | fault | variant | answer |
//! |-------|---------|--------|
//! | peer broke the protocol | [`Error::Protocol`] | log, close the connection (lingering) |
//! | peer sent a bad request | [`Error::BadRequest`] | that request only: `400` or a body error |
//! | a limit was reached | [`Error::Limit`] | `FCGI_OVERLOADED` (+ `431`/`503`), or close |
//! | peer not allowed | [`Error::PeerNotAllowed`] | close without reading |
//! | operator | [`Error::Config`] | refuse to start |
//! | our caller | [`Error::ApiMisuse`] | a bug to fix |
//! | transport | [`Error::Io`] | the connection is gone: abort its requests |

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::record::{ProtocolStatus, RecordType, FCGI_HEADER_LEN, FCGI_VERSION_1};

/// Errors of the FastCGI front end.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the FastCGI protocol; the connection is closed.
    Protocol(ProtocolError),
    /// The peer sent a malformed request; only that request fails.
    BadRequest(RequestError),
    /// A configured limit was reached.
    Limit(LimitError),
    /// A TCP peer not listed in `FCGI_WEB_SERVER_ADDRS` (section 3.2).
    PeerNotAllowed(IpAddr),
    /// A configuration value is invalid.
    Config(String),
    /// Our caller misused this crate's API (e.g. encoding a record with more than 65535
    /// content bytes).
    ApiMisuse(&'static str),
    /// The transport failed.
    Io(io::Error),
}

/// How the peer broke the protocol (always a connection error).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The `version` byte is not `FCGI_VERSION_1`: garbage, or another protocol (often HTTP).
    UnsupportedVersion {
        /// The 8 header bytes as received.
        header: [u8; FCGI_HEADER_LEN],
    },
    /// A discrete record whose body has a fixed size arrived with another `contentLength`.
    BadContentLength {
        /// The record type.
        record_type: RecordType,
        /// The announced `contentLength`.
        content_length: u16,
        /// The length the type requires.
        expected: u16,
    },
    /// The connection ended inside a record.
    Truncated {
        /// Bytes of the unfinished record that arrived.
        received: usize,
        /// Bytes the record needs (`None` while the header itself is incomplete).
        needed: Option<usize>,
    },
    /// An application record type arrived with the null request ID.
    NullRequestId(RecordType),
    /// A record type only an application sends, or no web server sends for a Responder, arrived
    /// for an active request; or a record arrived in the wrong state (e.g. `FCGI_STDIN` before
    /// the end of `FCGI_PARAMS`).
    UnexpectedRecord {
        /// The record type.
        record_type: RecordType,
        /// The request it named.
        request_id: u16,
        /// Why it was not expected, e.g. "before the end of FCGI_PARAMS".
        why: &'static str,
    },
    /// `FCGI_BEGIN_REQUEST` for a request ID that is already active.
    DuplicateBeginRequest(u16),
    /// The name-value pairs of an `FCGI_GET_VALUES` record are malformed.
    MalformedGetValues(NvError),
}

/// What was wrong with one request (the connection carries on).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// `CONTENT_LENGTH` is neither empty nor a decimal number.
    BadContentLength(Bytes),
    /// The `FCGI_PARAMS` stream does not hold well-formed name-value pairs.
    MalformedParams(NvError),
    /// `FCGI_STDIN` carried more bytes than `CONTENT_LENGTH` announced.
    BodyTooLong {
        /// The announced length.
        expected: u64,
    },
    /// `FCGI_STDIN` ended before `CONTENT_LENGTH` bytes.
    BodyTooShort {
        /// The announced length.
        expected: u64,
        /// The bytes received.
        received: u64,
    },
}

/// Which limit was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError {
    /// A request's `FCGI_PARAMS` grew past `Config::max_params_bytes`.
    ParamsTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The connection already runs `Config::max_reqs_per_conn` requests.
    TooManyRequestsOnConnection {
        /// The limit.
        limit: usize,
    },
    /// The server already runs `Config::max_reqs` requests.
    TooManyRequests {
        /// The limit.
        limit: usize,
    },
    /// The server is shutting down, or the connection is closing, and takes no new request.
    Closing,
    /// Too many records in a row that carried no request data (empty or ignored records,
    /// management queries): a flood.
    RecordFlood {
        /// The budget of such records in a row.
        limit: usize,
    },
    /// No request in progress and no input for the idle timeout.
    IdleTimeout(Duration),
}

/// Why name-value pairs (section 3.4) could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NvError {
    /// The stream ended inside a pair.
    Truncated,
    /// A name or value is longer than the bytes allowed for the whole stream.
    TooLong {
        /// The announced length.
        length: u32,
        /// The bytes allowed.
        limit: usize,
    },
}

impl Error {
    /// The `protocolStatus` that ends the request this error concerns, or `None` when the
    /// error is answered by closing the connection.
    pub fn end_request_status(&self) -> Option<ProtocolStatus> {
        match self {
            Self::BadRequest(_) => Some(ProtocolStatus::RequestComplete),
            Self::Limit(l) => l.end_request_status(),
            _ => None,
        }
    }

    /// The HTTP status of the response we write ourselves when the app never runs, if any.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::BadRequest(
                RequestError::BadContentLength(_) | RequestError::MalformedParams(_),
            ) => Some(400),
            Self::Limit(LimitError::ParamsTooLarge { .. }) => Some(431),
            Self::Limit(
                LimitError::TooManyRequests { .. }
                | LimitError::TooManyRequestsOnConnection { .. }
                | LimitError::Closing,
            ) => Some(503),
            _ => None,
        }
    }

    /// Whether this error closes the connection.
    pub fn closes_connection(&self) -> bool {
        self.end_request_status().is_none()
    }
}

impl LimitError {
    fn end_request_status(&self) -> Option<ProtocolStatus> {
        match self {
            Self::RecordFlood { .. } | Self::IdleTimeout(_) => None,
            _ => Some(ProtocolStatus::Overloaded),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::BadRequest(e) => write!(f, "bad request: {e}"),
            Self::Limit(e) => write!(f, "limit reached: {e}"),
            Self::PeerNotAllowed(ip) => {
                write!(f, "peer {ip} is not listed in FCGI_WEB_SERVER_ADDRS")
            }
            Self::Config(e) => write!(f, "configuration: {e}"),
            Self::ApiMisuse(e) => write!(f, "api misuse: {e}"),
            Self::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedVersion { header } => {
                write!(
                    f,
                    "record version {} (expected {FCGI_VERSION_1}), header \"{}\"",
                    header[0],
                    header.escape_ascii()
                )?;
                if looks_like_http(header) {
                    f.write_str(" (this looks like HTTP, not FastCGI)")?;
                }
                Ok(())
            }
            Self::BadContentLength {
                record_type,
                content_length,
                expected,
            } => write!(
                f,
                "{record_type} with contentLength {content_length} (must be {expected})"
            ),
            Self::Truncated { received, needed } => match needed {
                Some(n) => write!(
                    f,
                    "connection closed inside a record ({received} of {n} bytes)"
                ),
                None => write!(
                    f,
                    "connection closed inside a record header ({received} bytes)"
                ),
            },
            Self::NullRequestId(t) => write!(f, "{t} with the null request id"),
            Self::UnexpectedRecord {
                record_type,
                request_id,
                why,
            } => write!(f, "{record_type} for request {request_id} {why}"),
            Self::DuplicateBeginRequest(id) => {
                write!(
                    f,
                    "FCGI_BEGIN_REQUEST for request {id}, which is already active"
                )
            }
            Self::MalformedGetValues(e) => write!(f, "FCGI_GET_VALUES: {e}"),
        }
    }
}

fn looks_like_http(header: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"PRI * ",
    ];
    METHODS
        .iter()
        .any(|m| header.starts_with(&m[..m.len().min(header.len())]))
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadContentLength(v) => {
                write!(f, "CONTENT_LENGTH \"{}\" is not a number", v.escape_ascii())
            }
            Self::MalformedParams(e) => write!(f, "FCGI_PARAMS: {e}"),
            Self::BodyTooLong { expected } => {
                write!(
                    f,
                    "FCGI_STDIN longer than the {expected} bytes of CONTENT_LENGTH"
                )
            }
            Self::BodyTooShort { expected, received } => write!(
                f,
                "FCGI_STDIN ended after {received} of the {expected} bytes of CONTENT_LENGTH"
            ),
        }
    }
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ParamsTooLarge { limit } => write!(f, "FCGI_PARAMS larger than {limit} bytes"),
            Self::TooManyRequestsOnConnection { limit } => {
                write!(f, "{limit} concurrent requests on this connection")
            }
            Self::TooManyRequests { limit } => write!(f, "{limit} concurrent requests in total"),
            Self::Closing => f.write_str("the connection is closing and takes no new request"),
            Self::RecordFlood { limit } => {
                write!(f, "{limit} records in a row carried no request data")
            }
            Self::IdleTimeout(d) => write!(f, "idle for {} s", d.as_secs_f64()),
        }
    }
}

impl fmt::Display for NvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("stream ends inside a name-value pair"),
            Self::TooLong { length, limit } => {
                write!(
                    f,
                    "name or value of {length} bytes (at most {limit} allowed)"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(e) => Some(e),
            Self::BadRequest(e) => Some(e),
            Self::Limit(e) => Some(e),
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl std::error::Error for ProtocolError {}
impl std::error::Error for RequestError {}
impl std::error::Error for LimitError {}
impl std::error::Error for NvError {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        Self::BadRequest(e)
    }
}

impl From<LimitError> for Error {
    fn from(e: LimitError) -> Self {
        Self::Limit(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_fault() {
        let proto = Error::from(ProtocolError::DuplicateBeginRequest(1));
        assert!(proto.closes_connection());
        assert_eq!(proto.http_status(), None);
        let busy = Error::from(LimitError::TooManyRequests { limit: 2 });
        assert_eq!(busy.end_request_status(), Some(ProtocolStatus::Overloaded));
        assert_eq!(busy.http_status(), Some(503));
        let big = Error::from(LimitError::ParamsTooLarge { limit: 9 });
        assert_eq!(big.http_status(), Some(431));
        let bad = Error::from(RequestError::BadContentLength(Bytes::from_static(b"x")));
        assert_eq!(
            bad.end_request_status(),
            Some(ProtocolStatus::RequestComplete)
        );
        assert!(Error::from(LimitError::RecordFlood { limit: 1 }).closes_connection());
    }

    #[test]
    fn display_escapes_peer_bytes_and_spots_http() {
        let e = ProtocolError::UnsupportedVersion {
            header: *b"GET / HT",
        };
        let text = e.to_string();
        assert!(text.contains("\"GET / HT\""), "{text}");
        assert!(text.contains("looks like HTTP"), "{text}");
        let e = ProtocolError::UnsupportedVersion {
            header: [0, 1, 0, 1, 0, 0, 0, 0xff],
        };
        let text = e.to_string();
        assert!(text.contains("\\x00\\x01"), "{text}");
        assert!(!text.contains("HTTP"), "{text}");
        let e = RequestError::BadContentLength(Bytes::from_static(b"1\r\n"));
        assert!(e.to_string().contains("1\\r\\n"));
    }
}
