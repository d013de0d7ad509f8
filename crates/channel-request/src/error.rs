//! The one error type of the core, split by whose fault a failure is.

use std::fmt;

/// Errors raised by the request model and the response channel.
///
/// Variants say whose fault the failure is: the peer (bad bytes), the app (API misuse, bad
/// header), or the channel (the client went away).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The application broke the response protocol (e.g. wrote before sending the head).
    ApiMisuse(&'static str),
    /// A header name or value from the application is not allowed on the wire.
    BadHeader(HeaderError),
    /// The script's or application's CGI response head could not be parsed.
    BadCgiHead(CgiHeadError),
    /// The client is gone (connection closed, request aborted); nothing more can be sent.
    ClientGone,
    /// The request body stream failed.
    Body(BodyError),
}

impl Error {
    /// The HTTP status that answers this error when the head has not been sent yet.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadCgiHead(_) => 502,
            Self::Body(e) => e.http_status(),
            _ => 500,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiMisuse(what) => write!(f, "application misused the response: {what}"),
            Self::BadHeader(e) => write!(f, "bad response header from application: {e}"),
            Self::BadCgiHead(e) => write!(f, "bad CGI response head: {e}"),
            Self::ClientGone => f.write_str("client is gone"),
            Self::Body(e) => write!(f, "request body: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BadHeader(e) => Some(e),
            Self::BadCgiHead(e) => Some(e),
            Self::Body(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HeaderError> for Error {
    fn from(e: HeaderError) -> Self {
        Self::BadHeader(e)
    }
}

impl From<CgiHeadError> for Error {
    fn from(e: CgiHeadError) -> Self {
        Self::BadCgiHead(e)
    }
}

impl From<BodyError> for Error {
    fn from(e: BodyError) -> Self {
        Self::Body(e)
    }
}

/// A response header the application supplied that must not reach the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The name is empty or has a byte outside the RFC 9110 `token` set.
    InvalidName(Vec<u8>),
    /// The value holds CR, LF, NUL or another control byte.
    InvalidValue {
        /// The header's name.
        name: Vec<u8>,
        /// The rejected value.
        value: Vec<u8>,
    },
    /// The status code is outside 100..=999 or the reason phrase holds control bytes.
    InvalidStatus(Vec<u8>),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName(n) => write!(f, "invalid header name \"{}\"", n.escape_ascii()),
            Self::InvalidValue { name, value } => write!(
                f,
                "invalid value for header \"{}\": \"{}\"",
                name.escape_ascii(),
                value.escape_ascii()
            ),
            Self::InvalidStatus(s) => write!(f, "invalid status \"{}\"", s.escape_ascii()),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Why a CGI response head (RFC 3875 section 6) was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CgiHeadError {
    /// The head grew past the limit before its blank line.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A header line has no `:`.
    MissingColon(Vec<u8>),
    /// A header line is not valid (bad name or value bytes).
    Header(HeaderError),
    /// The `Status:` value is not `NNN reason`.
    BadStatus(Vec<u8>),
    /// The output ended before the blank line that closes the head.
    Truncated,
    /// Neither `Content-Type`, `Location` nor `Status` is present (RFC 3875 section 6.2).
    NoResponseType,
}

impl fmt::Display for CgiHeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "head larger than {limit} bytes"),
            Self::MissingColon(l) => write!(f, "header line without ':': \"{}\"", l.escape_ascii()),
            Self::Header(e) => e.fmt(f),
            Self::BadStatus(s) => write!(f, "bad Status value \"{}\"", s.escape_ascii()),
            Self::Truncated => f.write_str("output ended inside the head"),
            Self::NoResponseType => f.write_str("head has no Content-Type, Location or Status"),
        }
    }
}

impl std::error::Error for CgiHeadError {}

impl From<HeaderError> for CgiHeadError {
    fn from(e: HeaderError) -> Self {
        Self::Header(e)
    }
}

/// Why the request body stream failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The peer sent fewer bytes than CONTENT_LENGTH announced.
    Short {
        /// Announced length.
        expected: u64,
        /// Bytes received.
        received: u64,
    },
    /// The peer sent more bytes than CONTENT_LENGTH announced.
    Long {
        /// Announced length.
        expected: u64,
    },
    /// The front end stopped delivering the body (connection closed, request aborted).
    Aborted,
    /// The peer's body framing was malformed; the text says how.
    Malformed(String),
    /// The body is larger than the configured limit.
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
}

impl BodyError {
    /// The HTTP status that answers this error when the head has not been sent yet.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            Self::Aborted => 500,
            _ => 400,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short { expected, received } => {
                write!(
                    f,
                    "body ended after {received} of {expected} announced bytes"
                )
            }
            Self::Long { expected } => write!(f, "body longer than the {expected} announced bytes"),
            Self::Aborted => f.write_str("body aborted by the front end"),
            Self::Malformed(why) => write!(f, "malformed body: {why}"),
            Self::TooLarge { limit } => write!(f, "body larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for BodyError {}
