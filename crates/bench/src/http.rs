//! The HTTP/1.1 client side, hand-rolled for speed rather than through hyper's client: the
//! request is pre-encoded once; the response reader (RFC 9112) finds the status line and the
//! three headers that frame the message (`Content-Length`, `Transfer-Encoding: chunked`,
//! `Connection`) and walks the body in place, counting it (and comparing it with an expected
//! body) without keeping it. Interim 1xx responses are skipped.

use bytes::{Buf, Bytes, BytesMut};

use crate::args::Plan;
use crate::cgi::{excerpt, parse_status, MAX_HEAD};
use crate::outcome::{judge, BodyCheck, Done, ErrorKind, Failure};
use crate::request::header;

/// The request bytes: request line, `Host`, the planned headers, `Content-Length` when there
/// is a body (or the method is not GET), the body.
pub fn encode_request(plan: &Plan) -> Vec<Bytes> {
    let mut head = format!("{} {} HTTP/1.1\r\n", plan.method, plan.path);
    if header(plan, "host").is_none() {
        head.push_str(&format!("Host: {}\r\n", plan.host));
    }
    for (name, value) in &plan.headers {
        if !name.eq_ignore_ascii_case("content-length") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if !plan.body.is_empty() || plan.method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", plan.body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = BytesMut::from(head.as_bytes());
    if plan.body.len() <= 64 * 1024 {
        bytes.extend_from_slice(&plan.body);
        return vec![bytes.freeze()];
    }
    vec![bytes.freeze(), plan.body.clone()]
}

/// Where the reader is in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailer,
    UntilClose,
}

/// Reads the responses of one keep-alive connection, one at a time.
#[derive(Debug)]
pub struct HttpReader {
    state: State,
    status: u16,
    keep_alive: bool,
    scanned: usize,
    body: BodyCheck,
    head_request: bool,
}

impl HttpReader {
    /// A reader checking bodies against `expect`; `head_request` when the method is HEAD.
    pub fn new(expect: Option<Bytes>, head_request: bool) -> Self {
        Self {
            state: State::Head,
            status: 0,
            keep_alive: true,
            scanned: 0,
            body: BodyCheck::new(expect),
            head_request,
        }
    }

    /// The request was sent: a new response starts.
    pub fn start(&mut self) {
        self.state = State::Head;
        self.scanned = 0;
        self.body.reset();
    }

    /// Consumes bytes of `buf` until the response is complete (`Ok(Some)`), more bytes are
    /// needed (`Ok(None)`), or the response is malformed (`Err`: close the connection).
    pub fn poll(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Done>, Failure> {
        loop {
            let progressed = match self.state {
                State::Head => self.head(buf)?,
                State::Length(left) => self.counted(buf, left, State::Length),
                State::ChunkSize => self.chunk_size(buf)?,
                State::ChunkData(left) => self.counted(buf, left, State::ChunkData),
                State::ChunkDataEnd => self.crlf(buf)?,
                State::Trailer => self.trailer(buf)?,
                State::UntilClose => {
                    self.body.take(buf);
                    buf.clear();
                    if eof {
                        return Ok(Some(self.done(false)));
                    }
                    false
                }
            };
            if let Some(done) = self.complete() {
                return Ok(Some(done));
            }
            if !progressed {
                if eof {
                    return Err(Failure::new(ErrorKind::Closed, "response cut short"));
                }
                return Ok(None);
            }
        }
    }

    /// A response whose framing says it is over (`Length(0)`, the trailer read).
    fn complete(&mut self) -> Option<Done> {
        match self.state {
            State::Length(0) => Some(self.done(self.keep_alive)),
            _ => None,
        }
    }

    fn done(&mut self, reusable: bool) -> Done {
        self.state = State::Head;
        Done {
            id: 0,
            result: judge(self.body.response(self.status)),
            reusable,
        }
    }

    fn head(&mut self, buf: &mut BytesMut) -> Result<bool, Failure> {
        let from = self.scanned.saturating_sub(3);
        let Some(end) = find(&buf[from..], b"\r\n\r\n").map(|i| from + i + 4) else {
            if buf.len() > MAX_HEAD {
                return Err(protocol(format!("response head over {MAX_HEAD} bytes")));
            }
            self.scanned = buf.len();
            return Ok(false);
        };
        self.scanned = 0;
        let framing = parse_head(&buf[..end])?;
        buf.advance(end);
        self.status = framing.status;
        if (100..200).contains(&framing.status) && framing.status != 101 {
            return Ok(true); // interim response: the real one follows
        }
        self.keep_alive = framing.keep_alive;
        let bodiless = self.head_request || matches!(framing.status, 204 | 304);
        self.state = match (bodiless, framing.chunked, framing.length) {
            (true, _, _) => State::Length(0),
            (false, true, _) => State::ChunkSize,
            (false, false, Some(n)) => State::Length(n),
            (false, false, None) => State::UntilClose,
        };
        Ok(true)
    }

    fn counted(&mut self, buf: &mut BytesMut, left: u64, next: fn(u64) -> State) -> bool {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 && left > 0 {
            return false;
        }
        self.body.take(&buf[..n]);
        buf.advance(n);
        let left = left - n as u64;
        self.state = match (next(0), left) {
            (State::ChunkData(_), 0) => State::ChunkDataEnd,
            _ => next(left),
        };
        n > 0
    }

    fn chunk_size(&mut self, buf: &mut BytesMut) -> Result<bool, Failure> {
        let Some(line) = take_line(buf)? else {
            return Ok(false);
        };
        let digits = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let size = std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.len() <= 15)
            .and_then(|d| u64::from_str_radix(d, 16).ok())
            .ok_or_else(|| protocol(format!("bad chunk size {:?}", excerpt(&line))))?;
        self.state = if size == 0 {
            State::Trailer
        } else {
            State::ChunkData(size)
        };
        Ok(true)
    }

    fn crlf(&mut self, buf: &mut BytesMut) -> Result<bool, Failure> {
        match take_line(buf)? {
            None => Ok(false),
            Some(line) if line.is_empty() => {
                self.state = State::ChunkSize;
                Ok(true)
            }
            Some(line) => Err(protocol(format!(
                "chunk not followed by CRLF: {:?}",
                excerpt(&line)
            ))),
        }
    }

    fn trailer(&mut self, buf: &mut BytesMut) -> Result<bool, Failure> {
        match take_line(buf)? {
            None => Ok(false),
            Some(line) if line.is_empty() => {
                self.state = State::Length(0);
                Ok(true)
            }
            Some(_) => Ok(true),
        }
    }
}

/// What the head says about the message.
#[derive(Debug, PartialEq, Eq)]
struct Framing {
    status: u16,
    length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
}

fn parse_head(head: &[u8]) -> Result<Framing, Failure> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let (version, rest) = match status_line {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', v, b' ', rest @ ..] => (*v, rest),
        _ => {
            return Err(protocol(format!(
                "bad status line {:?}",
                excerpt(status_line)
            )))
        }
    };
    let mut framing = Framing {
        status: parse_status(rest)?,
        length: None,
        chunked: false,
        keep_alive: version != b'0',
    };
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            framing.length = Some(
                n.ok_or_else(|| protocol(format!("bad Content-Length {:?}", excerpt(value))))?,
            );
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            framing.chunked = value.to_ascii_lowercase().ends_with(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            let v = value.to_ascii_lowercase();
            framing.keep_alive = if version == b'0' {
                v == b"keep-alive"
            } else {
                v != b"close"
            };
        }
    }
    Ok(framing)
}

/// Takes one CRLF-terminated line (without its CRLF) off the front of `buf`.
fn take_line(buf: &mut BytesMut) -> Result<Option<Vec<u8>>, Failure> {
    let Some(i) = find(buf, b"\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(protocol("chunk line too long".into()));
        }
        return Ok(None);
    };
    let line = buf[..i].to_vec();
    buf.advance(i + 2);
    Ok(Some(line))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn protocol(detail: String) -> Failure {
    Failure::new(ErrorKind::Protocol, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::tests::plan;

    /// Reads `input` fed whole, split at every position, and one byte at a time; all agree.
    fn read_every_way(input: &[u8], expect: Option<&'static str>) -> Vec<Result<Done, String>> {
        let run = |chunks: Vec<&[u8]>| {
            let mut r = HttpReader::new(expect.map(|e| Bytes::from_static(e.as_bytes())), false);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let last = chunks.len();
            for (i, chunk) in chunks.into_iter().enumerate() {
                buf.extend_from_slice(chunk);
                loop {
                    match r.poll(&mut buf, i + 1 == last && chunk.is_empty()) {
                        Ok(Some(done)) => {
                            let reusable = done.reusable;
                            out.push(Ok(done));
                            if !reusable {
                                return out;
                            }
                            r.start();
                        }
                        Ok(None) => break,
                        Err(e) => {
                            out.push(Err(e.to_string()));
                            return out;
                        }
                    }
                }
            }
            out
        };
        let with_eof = |mut v: Vec<&'static [u8]>| {
            v.push(b"");
            v
        };
        let input: &'static [u8] = Box::leak(input.to_vec().into_boxed_slice());
        let whole = run(with_eof(vec![input]));
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(run(with_eof(vec![a, b])), whole, "split at {cut}");
        }
        assert_eq!(run(with_eof(input.chunks(1).collect())), whole, "bytewise");
        whole
    }

    fn status_len(d: &Result<Done, String>) -> (u16, u64, bool) {
        let d = d.as_ref().unwrap();
        let r = d.result.as_ref().unwrap();
        (r.status, r.body_len, d.reusable)
    }

    #[test]
    fn length_chunked_and_close() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n\
3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n\
HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n\
HTTP/1.0 200 OK\r\n\r\nuntil close";
        let out = read_every_way(input, None);
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(status_len(&out[0]), (200, 5, true));
        assert_eq!(status_len(&out[1]), (201, 5, true));
        assert_eq!(status_len(&out[2]), (204, 0, true));
        assert_eq!(status_len(&out[3]), (200, 11, false));
    }

    #[test]
    fn connection_close_and_expected_body() {
        let input =
            b"HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 14\r\n\r\nHello, world!\n";
        let out = read_every_way(input, Some("Hello, world!\n"));
        assert_eq!(status_len(&out[0]), (200, 14, false));
        let out = read_every_way(input, Some("Hello"));
        let kind = out[0].as_ref().unwrap().result.as_ref().unwrap_err().kind;
        assert_eq!(kind, ErrorKind::Body);
        let out = read_every_way(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", None);
        let kind = out[0].as_ref().unwrap().result.as_ref().unwrap_err().kind;
        assert_eq!(kind, ErrorKind::Status);
    }

    #[test]
    fn malformed() {
        for (input, needle) in [
            (&b"SSH-2.0-OpenSSH\r\n\r\n"[..], "bad status line"),
            (b"HTTP/1.1 2x0 OK\r\n\r\n", "bad status"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "bad chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
                "not followed",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
                "cut short",
            ),
        ] {
            let out = read_every_way(input, None);
            let err = out.last().unwrap().as_ref().unwrap_err();
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn request_bytes() {
        let p = plan(&[
            "--http=http://127.0.0.1:8080/x?y",
            "-H",
            "X-A: 1",
            "--body-size=3",
        ]);
        let bytes = encode_request(&p).concat();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("POST /x?y HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-A: 1\r\n"));
        assert!(text.ends_with("Content-Length: 3\r\n\r\ngat"), "{text:?}");
        let p = plan(&["--http=unix:/s", "-H", "Host: h"]);
        let text = String::from_utf8(encode_request(&p).concat()).unwrap();
        assert_eq!(text, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    }
}
