//! What a response came to: [`Done`] for one answered request, [`Failure`] with an
//! [`ErrorKind`] for anything that went wrong, and the judgement of a response
//! ([`judge`]: a 2xx status, and the exact body when one is expected).

use std::fmt;

/// The kinds of error the report counts, in the order it lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The connection could not be made.
    Connect,
    /// Writing the request failed.
    Write,
    /// Reading the response failed (reset, ...).
    Read,
    /// The server closed the connection before the response was complete.
    Closed,
    /// The response broke its protocol's framing (bad record, bad status line, ...).
    Protocol,
    /// FastCGI `FCGI_END_REQUEST` with a `protocolStatus` other than `FCGI_REQUEST_COMPLETE`.
    Rejected,
    /// A status outside 200-299.
    Status,
    /// The body was not the one `--expect-body` names.
    Body,
    /// No complete response within `--timeout`.
    Timeout,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [Self; 9] = [
        Self::Connect,
        Self::Write,
        Self::Read,
        Self::Closed,
        Self::Protocol,
        Self::Rejected,
        Self::Status,
        Self::Body,
        Self::Timeout,
    ];

    /// The name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Write => "write",
            Self::Read => "read",
            Self::Closed => "closed",
            Self::Protocol => "protocol",
            Self::Rejected => "rejected",
            Self::Status => "status",
            Self::Body => "body",
            Self::Timeout => "timeout",
        }
    }

    /// Index into [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One error, with a short description for the report's "first error" line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind.
    pub kind: ErrorKind,
    /// The status, for [`ErrorKind::Status`].
    pub status: Option<u16>,
    /// What happened, lowercase.
    pub detail: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            status: None,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// A complete response, before judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code (CGI `Status:`, HTTP status line).
    pub status: u16,
    /// Body bytes received.
    pub body_len: u64,
    /// With `--expect-body`: whether the body matched exactly (always true without it).
    pub body_ok: bool,
}

/// One answered request of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// FastCGI request id (0 for SCGI and HTTP).
    pub id: u16,
    /// The response, judged.
    pub result: Result<Response, Failure>,
    /// HTTP: whether the connection may carry another request.
    pub reusable: bool,
}

/// Counts a body as it streams in and, when an exact body is expected, compares it piece by
/// piece (the body itself is never kept).
#[derive(Debug, Clone)]
pub struct BodyCheck {
    expect: Option<bytes::Bytes>,
    len: u64,
    ok: bool,
}

impl BodyCheck {
    /// A check against `expect`, or only a count.
    pub fn new(expect: Option<bytes::Bytes>) -> Self {
        Self {
            expect,
            len: 0,
            ok: true,
        }
    }

    /// Ready for the next body.
    pub fn reset(&mut self) {
        self.len = 0;
        self.ok = true;
    }

    /// The next bytes of the body.
    pub fn take(&mut self, data: &[u8]) {
        if let Some(expect) = &self.expect {
            let at = usize::try_from(self.len).unwrap_or(usize::MAX);
            self.ok &= at
                .checked_add(data.len())
                .and_then(|end| expect.get(at..end))
                == Some(data);
        }
        self.len += data.len() as u64;
    }

    /// Bytes so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing came yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body is complete: a response with `status`.
    pub fn response(&self, status: u16) -> Response {
        let full = self
            .expect
            .as_ref()
            .is_none_or(|e| e.len() as u64 == self.len);
        Response {
            status,
            body_len: self.len,
            body_ok: self.ok && full,
        }
    }
}

/// Checks a response: a 2xx status, and the exact body when one was expected.
pub fn judge(response: Response) -> Result<Response, Failure> {
    if !(200..300).contains(&response.status) {
        let mut failure = Failure::new(ErrorKind::Status, format!("status {}", response.status));
        failure.status = Some(response.status);
        return Err(failure);
    }
    if !response.body_ok {
        return Err(Failure::new(
            ErrorKind::Body,
            format!("unexpected body ({} bytes)", response.body_len),
        ));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging() {
        let ok = Response {
            status: 204,
            body_len: 0,
            body_ok: true,
        };
        assert_eq!(judge(ok), Ok(ok));
        let e = judge(Response { status: 503, ..ok }).unwrap_err();
        assert_eq!((e.kind, e.status), (ErrorKind::Status, Some(503)));
        assert_eq!(e.to_string(), "status: status 503");
        let e = judge(Response {
            body_ok: false,
            ..ok
        })
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Body);
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
