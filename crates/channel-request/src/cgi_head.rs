//! The CGI response head (RFC 3875 section 6): parsing a script's output, writing ours.
//!
//! Every CGI-family front end (FastCGI, SCGI, CGI) writes the app's [`ResponseHead`] as
//! `Status: NNN reason`, the headers, and a blank line ([`write_cgi_head`]). The CGI-script app
//! reads a script's stdout with [`parse_cgi_head`], which works on a growing buffer with no I/O:
//! `Ok(None)` means "give me more bytes".

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::CgiHeadError;
use crate::head::{trim_ows, validate_header, ResponseHead};

/// Default limit on a script's head, in bytes (Apache uses 8 KiB per line; nginx's
/// `fastcgi_buffer_size` is 4-8 KiB for the whole head).
pub const DEFAULT_CGI_HEAD_LIMIT: usize = 64 * 1024;

/// What a CGI head asks for (RFC 3875 section 6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgiResponse {
    /// `document-response` (and `client-redirdoc-response`): send this head and the body.
    Document(ResponseHead),
    /// `local-redir-response`: a `Location` that is a local path (starts with `/`) and no
    /// `Status`; the server must re-dispatch the request to this path and query.
    LocalRedirect(Bytes),
    /// `client-redir-response`: an absolute `Location` with no `Status`; answered `302 Found`
    /// with the script's other headers.
    ClientRedirect(ResponseHead),
}

impl CgiResponse {
    /// The head to send for document and client-redirect responses.
    pub fn into_head(self) -> Option<ResponseHead> {
        match self {
            Self::Document(h) | Self::ClientRedirect(h) => Some(h),
            Self::LocalRedirect(_) => None,
        }
    }
}

/// Parses the head at the start of `buf`.
///
/// Returns `Ok(Some((response, consumed)))` once the blank line is found (`consumed` counts the
/// head and the blank line), `Ok(None)` when more bytes are needed, or an error when the head is
/// malformed or longer than `limit`. Lines may end in LF or CRLF.
pub fn parse_cgi_head(
    buf: &[u8],
    limit: usize,
) -> Result<Option<(CgiResponse, usize)>, CgiHeadError> {
    let Some((lines_end, consumed)) = find_head_end(buf) else {
        if buf.len() > limit {
            return Err(CgiHeadError::TooLarge { limit });
        }
        return Ok(None);
    };
    if consumed > limit {
        return Err(CgiHeadError::TooLarge { limit });
    }
    let fields = parse_fields(&buf[..lines_end])?;
    classify(fields).map(|r| Some((r, consumed)))
}

/// Like [`parse_cgi_head`] at the end of the output: a head still incomplete is
/// [`CgiHeadError::Truncated`].
pub fn parse_cgi_head_final(
    buf: &[u8],
    limit: usize,
) -> Result<(CgiResponse, usize), CgiHeadError> {
    parse_cgi_head(buf, limit)?.ok_or(CgiHeadError::Truncated)
}

/// Finds the blank line: returns (end of the last header line, end of the blank line).
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = &buf[line_start..i];
        if line.is_empty() || line == b"\r" {
            return Some((line_start, i + 1));
        }
        line_start = i + 1;
    }
    None
}

/// Splits the header block into validated `(name, value)` fields.
fn parse_fields(block: &[u8]) -> Result<Vec<(Bytes, Bytes)>, CgiHeadError> {
    let mut fields = Vec::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| CgiHeadError::MissingColon(line.to_vec()))?;
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        validate_header(name, value)?;
        fields.push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value)));
    }
    Ok(fields)
}

/// Applies the section 6.2 rules: Status, Location local or absolute, the rest as headers.
fn classify(fields: Vec<(Bytes, Bytes)>) -> Result<CgiResponse, CgiHeadError> {
    if fields.is_empty() {
        return Err(CgiHeadError::NoResponseType);
    }
    let mut status: Option<ResponseHead> = None;
    let mut location: Option<Bytes> = None;
    let mut others = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        if name.eq_ignore_ascii_case(b"status") {
            let head = ResponseHead::from_status_line(&value)
                .map_err(|_| CgiHeadError::BadStatus(value.to_vec()))?;
            status = Some(head);
        } else {
            if name.eq_ignore_ascii_case(b"location") && location.is_none() {
                location = Some(value.clone());
            }
            others.push((name, value));
        }
    }
    if let (Some(loc), None) = (&location, &status) {
        if loc.starts_with(b"/") {
            return Ok(CgiResponse::LocalRedirect(loc.clone()));
        }
    }
    let client_redirect = location.is_some() && status.is_none();
    let mut head =
        status.unwrap_or_else(|| ResponseHead::new(if client_redirect { 302 } else { 200 }));
    for (name, value) in others {
        head.add_header(name, value)?;
    }
    Ok(if client_redirect {
        CgiResponse::ClientRedirect(head)
    } else {
        CgiResponse::Document(head)
    })
}

/// Appends `head` as a CGI response head: `Status: NNN reason`, the headers, a blank line.
pub fn write_cgi_head(head: &ResponseHead, out: &mut BytesMut) {
    out.reserve(cgi_head_len(head));
    out.put_slice(b"Status: ");
    out.put_slice(itoa3(head.status()).as_slice());
    out.put_u8(b' ');
    out.put_slice(head.reason());
    out.put_slice(b"\r\n");
    for (name, value) in head.headers() {
        out.put_slice(name);
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// The exact length [`write_cgi_head`] appends.
pub fn cgi_head_len(head: &ResponseHead) -> usize {
    let fields: usize = head
        .headers()
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum();
    8 + 3 + 1 + head.reason().len() + 2 + fields + 2
}

fn itoa3(status: u16) -> [u8; 3] {
    let s = status.min(999);
    [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all_splits(input: &[u8]) -> Result<(CgiResponse, usize), CgiHeadError> {
        // Feeding a prefix must ask for more or give the same answer as the whole input.
        let whole = parse_cgi_head(input, DEFAULT_CGI_HEAD_LIMIT);
        for cut in 0..input.len() {
            match parse_cgi_head(&input[..cut], DEFAULT_CGI_HEAD_LIMIT) {
                Ok(None) => {}
                other => assert_eq!(other, whole, "prefix of {cut} bytes"),
            }
        }
        whole.map(|r| r.expect("complete head"))
    }

    #[test]
    fn document_with_status() {
        let out = b"Content-Type: text/html\nStatus: 404 Nope\nX-A:  b \n\nbody";
        let (resp, used) = parse_all_splits(out).unwrap();
        assert_eq!(&out[used..], b"body");
        let CgiResponse::Document(h) = resp else {
            panic!("not a document: {resp:?}")
        };
        assert_eq!((h.status(), h.reason()), (404, &b"Nope"[..]));
        assert_eq!(h.header("x-a").map(|v| v.as_ref()), Some(&b"b"[..]));
        assert!(h.header("status").is_none());
    }

    #[test]
    fn crlf_lines() {
        let out = b"Content-Type: text/plain\r\n\r\nhi";
        let (resp, used) = parse_all_splits(out).unwrap();
        assert_eq!(used, out.len() - 2);
        assert_eq!(resp.into_head().map(|h| h.status()), Some(200));
    }

    #[test]
    fn redirects() {
        let (r, _) = parse_all_splits(b"Location: /other?q=1\n\n").unwrap();
        assert_eq!(
            r,
            CgiResponse::LocalRedirect(Bytes::from_static(b"/other?q=1"))
        );
        let (r, _) = parse_all_splits(b"Location: http://x.test/\n\n").unwrap();
        let CgiResponse::ClientRedirect(h) = r else {
            panic!("{r:?}")
        };
        assert_eq!(h.status(), 302);
        assert!(h.header("location").is_some());
        let (r, _) = parse_all_splits(b"Status: 301 Moved\nLocation: /x\n\n").unwrap();
        assert!(matches!(r, CgiResponse::Document(h) if h.status() == 301));
    }

    #[test]
    fn malformed_heads() {
        let lim = DEFAULT_CGI_HEAD_LIMIT;
        assert!(matches!(
            parse_cgi_head(b"no colon\n\n", lim),
            Err(CgiHeadError::MissingColon(_))
        ));
        assert!(matches!(
            parse_cgi_head(b"Status: abc\n\n", lim),
            Err(CgiHeadError::BadStatus(_))
        ));
        assert!(matches!(
            parse_cgi_head(b"\n\n", lim),
            Err(CgiHeadError::NoResponseType)
        ));
        assert!(matches!(
            parse_cgi_head(b"Bad Name: x\n\n", lim),
            Err(CgiHeadError::Header(_))
        ));
        assert!(matches!(
            parse_cgi_head(&[b'a'; 100], 50),
            Err(CgiHeadError::TooLarge { .. })
        ));
        assert_eq!(
            parse_cgi_head_final(b"Content-Type: x\n", lim),
            Err(CgiHeadError::Truncated)
        );
    }

    #[test]
    fn write_round_trips() {
        let head = ResponseHead::new(201)
            .with_header("Content-Type", "text/plain")
            .unwrap()
            .with_header("X-Y", "z")
            .unwrap();
        let mut out = BytesMut::new();
        write_cgi_head(&head, &mut out);
        assert_eq!(out.len(), cgi_head_len(&head));
        assert_eq!(
            &out[..],
            b"Status: 201 Created\r\nContent-Type: text/plain\r\nX-Y: z\r\n\r\n"
        );
        let (resp, used) = parse_cgi_head(&out, 1024).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(resp, CgiResponse::Document(head));
    }
}
