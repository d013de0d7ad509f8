//! Reading a CGI response (RFC 3875 section 6) as it streams in, for FastCGI `FCGI_STDOUT` and
//! SCGI: the head is gathered until its blank line and only `Status:` (else `Location:`) is
//! looked at; the body is counted and, with an expected body, compared as it arrives (the body
//! itself is never kept).

use bytes::Bytes;

use crate::outcome::{BodyCheck, ErrorKind, Failure, Response};

/// The longest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;

/// One CGI response being read; [`reset`](Self::reset) reuses its buffer for the next one.
#[derive(Debug)]
pub struct CgiReader {
    head: Vec<u8>,
    in_body: bool,
    status: u16,
    body: BodyCheck,
}

impl CgiReader {
    /// A reader checking bodies against `expect` when given.
    pub fn new(expect: Option<Bytes>) -> Self {
        Self {
            head: Vec::with_capacity(256),
            in_body: false,
            status: 0,
            body: BodyCheck::new(expect),
        }
    }

    /// Ready for the next response.
    pub fn reset(&mut self) {
        self.head.clear();
        self.in_body = false;
        self.status = 0;
        self.body.reset();
    }

    /// Takes the next bytes of the response.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), Failure> {
        if self.in_body {
            self.body.take(data);
            return Ok(());
        }
        // Search only where a blank line could newly appear: the last 2 bytes already held.
        let from = self.head.len().saturating_sub(2);
        self.head.extend_from_slice(data);
        let Some(end) = find_blank_line(&self.head, from) else {
            if self.head.len() > MAX_HEAD {
                return Err(Failure::new(
                    ErrorKind::Protocol,
                    format!("cgi response head over {MAX_HEAD} bytes"),
                ));
            }
            return Ok(());
        };
        self.status = head_status(&self.head[..end])?;
        self.in_body = true;
        let rest = self.head.len() - end;
        let body_start = data.len() - rest;
        self.body.take(&data[body_start..]);
        Ok(())
    }

    /// The response is over: its status and body, or the head never ended.
    pub fn finish(&mut self) -> Result<Response, Failure> {
        if !self.in_body {
            return Err(Failure::new(
                ErrorKind::Protocol,
                format!(
                    "cgi response ended inside its head: {:?}",
                    excerpt(&self.head)
                ),
            ));
        }
        Ok(self.body.response(self.status))
    }
}

/// The end of the blank line (`\n\n` or `\n\r\n`) at or after `from`.
fn find_blank_line(buf: &[u8], from: usize) -> Option<usize> {
    // A head that is only a blank line ("\r\n" or "\n" at the very start).
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    if buf.starts_with(b"\n") {
        return Some(1);
    }
    let mut i = from;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + nl;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at + 2),
            Some(b'\r') if buf.get(at + 2) == Some(&b'\n') => return Some(at + 3),
            _ => i = at + 1,
        }
    }
    None
}

/// The status a CGI head gives: `Status: NNN ...`, else 302 with `Location:`, else 200.
fn head_status(head: &[u8]) -> Result<u16, Failure> {
    let mut location = false;
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"status") {
            return parse_status(line[colon + 1..].trim_ascii());
        }
        location |= name.eq_ignore_ascii_case(b"location");
    }
    Ok(if location { 302 } else { 200 })
}

/// Three digits at the start of `value`.
pub fn parse_status(value: &[u8]) -> Result<u16, Failure> {
    match value {
        [a, b, c, rest @ ..]
            if [a, b, c].iter().all(|d| d.is_ascii_digit())
                && rest.first().is_none_or(|&r| r == b' ' || r == b'\r') =>
        {
            Ok(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => Err(Failure::new(
            ErrorKind::Protocol,
            format!("bad status {:?}", excerpt(value)),
        )),
    }
}

/// The start of `bytes`, escaped, for error messages.
pub fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(64)];
    cut.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` whole, split at every byte position, and one byte at a time; all must agree.
    fn read_every_way(input: &[u8], expect: Option<&'static str>) -> Result<Response, Failure> {
        let expect = expect.map(|e| Bytes::from_static(e.as_bytes()));
        let mut reader = CgiReader::new(expect);
        let mut run = |chunks: &[&[u8]]| {
            reader.reset();
            for c in chunks {
                reader.feed(c)?;
            }
            reader.finish()
        };
        let whole = run(&[input]);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(run(&[a, b]), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), whole, "one byte at a time");
        whole
    }

    #[test]
    fn statuses() {
        let r = read_every_way(b"Content-Type: text/plain\r\n\r\nHello, world!\n", None);
        assert_eq!(r.map(|r| (r.status, r.body_len)), Ok((200, 14)));
        let r = read_every_way(b"Status: 404 Not Found\nContent-Type: x\n\nnope", None);
        assert_eq!(r.map(|r| (r.status, r.body_len)), Ok((404, 4)));
        let r = read_every_way(b"Location: /x\r\n\r\n", None);
        assert_eq!(r.map(|r| r.status), Ok(302));
        let r = read_every_way(b"status:201\r\n\r\n", None);
        assert_eq!(r.map(|r| r.status), Ok(201));
        let r = read_every_way(b"\r\nbo\n\ndy", None);
        assert_eq!(r.map(|r| (r.status, r.body_len)), Ok((200, 6)));
    }

    #[test]
    fn expected_body() {
        let input = b"Content-Type: text/plain\r\n\r\nHello, world!\n";
        let hello = Some("Hello, world!\n");
        assert!(read_every_way(input, hello).unwrap().body_ok);
        assert!(!read_every_way(input, Some("Hello")).unwrap().body_ok);
        assert!(
            !read_every_way(input, Some("Hello, world!\nmore"))
                .unwrap()
                .body_ok
        );
        let other = b"Content-Type: text/plain\r\n\r\nHello, World!\n";
        assert!(!read_every_way(other, hello).unwrap().body_ok);
    }

    #[test]
    fn bad_heads() {
        let e = read_every_way(b"Status: abc\r\n\r\n", None).unwrap_err();
        assert!(e.detail.contains("bad status"), "{e}");
        let e = read_every_way(b"Status: 2000\r\n\r\n", None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        let e = read_every_way(b"Content-Type: text/plain\r\n", None).unwrap_err();
        assert!(e.detail.contains("inside its head"), "{e}");
        let mut r = CgiReader::new(None);
        let big = vec![b'x'; MAX_HEAD + 1];
        assert_eq!(r.feed(&big).unwrap_err().kind, ErrorKind::Protocol);
    }
}
