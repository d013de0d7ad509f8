//! The response head an app sends: status, reason phrase and headers, validated on the way in.
//!
//! Nothing from an app reaches the wire unchecked: header names must be RFC 9110 tokens, values
//! must not hold CR, LF, NUL or other control bytes (horizontal tab allowed), and the status must
//! be three digits. A violation is [`HeaderError`], which ends the request with a 500.

use bytes::Bytes;

use crate::error::HeaderError;

/// A response head: status code, reason phrase and header fields in the app's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    status: u16,
    reason: Bytes,
    headers: Vec<(Bytes, Bytes)>,
}

impl ResponseHead {
    /// A head with `status` and its standard reason phrase, no headers.
    ///
    /// # Panics
    /// Never for 100..=999; other values are clamped to 500 (a programming error in the caller).
    pub fn new(status: u16) -> Self {
        let status = if (100..=999).contains(&status) {
            status
        } else {
            500
        };
        Self {
            status,
            reason: Bytes::from_static(reason_phrase(status).as_bytes()),
            headers: Vec::new(),
        }
    }

    /// Parses a status line value such as `200 OK` or `404` (the WSGI `status` string, the CGI
    /// `Status:` header value).
    pub fn from_status_line(line: &[u8]) -> Result<Self, HeaderError> {
        let bad = || HeaderError::InvalidStatus(line.to_vec());
        let line = trim_ows(line);
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        let status = line[..3]
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
        if status < 100 {
            return Err(bad());
        }
        let rest = &line[3..];
        if !rest.is_empty() && rest[0] != b' ' && rest[0] != b'\t' {
            return Err(bad());
        }
        let reason = trim_ows(rest);
        if !reason.iter().all(|&b| is_value_byte(b)) {
            return Err(bad());
        }
        let mut head = Self::new(status);
        if !reason.is_empty() {
            head.reason = Bytes::copy_from_slice(reason);
        }
        Ok(head)
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase.
    pub fn reason(&self) -> &[u8] {
        &self.reason
    }

    /// Sets a custom reason phrase.
    pub fn set_reason(&mut self, reason: impl Into<Bytes>) -> Result<(), HeaderError> {
        let reason = reason.into();
        if !reason.iter().all(|&b| is_value_byte(b)) {
            return Err(HeaderError::InvalidStatus(reason.to_vec()));
        }
        self.reason = reason;
        Ok(())
    }

    /// Appends a header after validating its name and value.
    pub fn add_header(
        &mut self,
        name: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<(), HeaderError> {
        let (name, value) = (name.into(), value.into());
        validate_header(&name, &value)?;
        self.headers.push((name, value));
        Ok(())
    }

    /// Builder form of [`ResponseHead::add_header`].
    pub fn with_header(
        mut self,
        name: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<Self, HeaderError> {
        self.add_header(name, value)?;
        Ok(self)
    }

    /// The headers in order.
    pub fn headers(&self) -> &[(Bytes, Bytes)] {
        &self.headers
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Removes every header called `name` (case-insensitively).
    pub fn remove_header(&mut self, name: &str) {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
    }

    /// `Content-Length` as a number, when present and valid.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .and_then(|v| crate::env::parse_decimal(trim_ows(v)))
    }
}

/// Checks a header field from an app: name a token, value free of control bytes but HTAB.
pub fn validate_header(name: &[u8], value: &[u8]) -> Result<(), HeaderError> {
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return Err(HeaderError::InvalidName(name.to_vec()));
    }
    if !value.iter().all(|&b| is_value_byte(b)) {
        return Err(HeaderError::InvalidValue {
            name: name.to_vec(),
            value: value.to_vec(),
        });
    }
    Ok(())
}

/// RFC 9110 `tchar`.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte allowed in a field value: visible ASCII, space, tab and obs-text (0x80..=0xFF).
pub fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Strips leading and trailing spaces and tabs.
pub fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t');
    let Some(start) = start else {
        return &[];
    };
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .unwrap_or(start);
    &v[start..=end]
}

/// The standard reason phrase for `status`, `Unknown` for unregistered codes.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let h = ResponseHead::from_status_line(b"404 Not Here").unwrap();
        assert_eq!((h.status(), h.reason()), (404, &b"Not Here"[..]));
        let h = ResponseHead::from_status_line(b"204").unwrap();
        assert_eq!((h.status(), h.reason()), (204, &b"No Content"[..]));
        for bad in [
            &b"20"[..],
            b"abc OK",
            b"200OK",
            b"099 x",
            b"200 a\r\nb",
            b"",
        ] {
            assert!(ResponseHead::from_status_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_injection_rejected() {
        let mut h = ResponseHead::new(200);
        assert!(h.add_header("X-A", "ok\tvalue").is_ok());
        assert!(h.add_header("X-B", "a\r\nSet-Cookie: x").is_err());
        assert!(h.add_header("X-C", "a\0b").is_err());
        assert!(h.add_header("X C", "v").is_err());
        assert!(h.add_header("X:C", "v").is_err());
        assert!(h.add_header("", "v").is_err());
        assert_eq!(h.headers().len(), 1);
    }

    #[test]
    fn lookups() {
        let h = ResponseHead::new(200)
            .with_header("Content-Length", " 12 ")
            .unwrap();
        assert_eq!(h.content_length(), Some(12));
        assert!(h.header("CONTENT-length").is_some());
    }

    #[test]
    fn trim() {
        assert_eq!(trim_ows(b"  a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b"x"), b"x");
    }
}
