//! The crate's one error type: what can go wrong serving one CGI request, by whose fault.

use std::fmt;
use std::io;

/// Why a CGI request failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `REQUEST_METHOD` is missing or empty. RFC 3875 section 4.1.12: the server MUST set it, so
    /// this is the web server's fault (or a person running the program by hand): `500`.
    MissingRequestMethod,
    /// `CONTENT_LENGTH` is not a decimal number (RFC 3875 section 4.1.2): `400`. Holds the value.
    BadContentLength(Vec<u8>),
    /// Standard input ended before `CONTENT_LENGTH` bytes (the client or server gave up on the
    /// upload): the app's body fails with it, and an app that reads its body is answered `400`.
    ShortBody {
        /// The announced length.
        expected: u64,
        /// Bytes read.
        received: u64,
    },
    /// Reading standard input failed: `500`.
    Stdin(io::Error),
    /// Writing standard output failed: the web server is gone, nobody can be answered.
    Stdout(io::Error),
    /// The app failed after sending its head: the response is cut short (or, when its head was
    /// still held back, answered `500` instead). The core (`serve_request`) has already logged
    /// the app's error.
    ResponseAborted,
}

impl Error {
    /// The status of the response that answers this error when no response byte went out
    /// yet, or `None` when no answer is possible or needed.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::BadContentLength(_) | Self::ShortBody { .. } => Some(400),
            Self::MissingRequestMethod | Self::Stdin(_) | Self::ResponseAborted => Some(500),
            Self::Stdout(_) => None,
        }
    }

    /// Whether the error only says that the client went away: the web server closed our
    /// standard output. Not worth a warning in the web server's error log. (A short body is
    /// still one: it is answered `400`, so whoever sent it is there to read the answer.)
    pub fn is_client_gone(&self) -> bool {
        match self {
            Self::Stdout(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::WriteZero
            ),
            _ => false,
        }
    }

    /// Whether the error was already logged where it happened (so `run` prints no line).
    pub fn already_logged(&self) -> bool {
        matches!(self, Self::ResponseAborted)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingRequestMethod => f.write_str("REQUEST_METHOD is not set"),
            Self::BadContentLength(v) => {
                write!(
                    f,
                    "CONTENT_LENGTH is not a number: \"{}\"",
                    v.escape_ascii()
                )
            }
            Self::ShortBody { expected, received } => write!(
                f,
                "standard input ended after {received} of {expected} body bytes"
            ),
            Self::Stdin(e) => write!(f, "reading standard input: {e}"),
            Self::Stdout(e) => write!(f, "writing standard output: {e}"),
            Self::ResponseAborted => f.write_str("the application's response was cut short"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Stdin(e) | Self::Stdout(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_text() {
        assert_eq!(Error::MissingRequestMethod.http_status(), Some(500));
        let bad = Error::BadContentLength(b"1\r\n".to_vec());
        assert_eq!(bad.http_status(), Some(400));
        assert_eq!(
            bad.to_string(),
            "CONTENT_LENGTH is not a number: \"1\\r\\n\""
        );
        let gone = Error::Stdout(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(gone.http_status(), None);
        assert!(gone.is_client_gone());
        assert!(!Error::Stdout(io::Error::other("disk full")).is_client_gone());
        assert!(!Error::ShortBody {
            expected: 9,
            received: 1
        }
        .is_client_gone());
        assert!(!Error::MissingRequestMethod.is_client_gone());
        assert!(Error::ResponseAborted.already_logged());
    }
}
