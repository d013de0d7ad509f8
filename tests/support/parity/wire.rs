//! The parity test's own clients: HTTP/1.1 (chunked uploads, `Expect: 100-continue`, HEAD) and
//! SCGI (a netstring and the body), and the answer they all return.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use super::case::{Case, Framing};
use crate::support::http::read_chunked;
use crate::support::TIMEOUT;

/// Chunk sizes of a chunked upload, used in turn: odd ones, so chunk and buffer edges differ.
const CHUNKS: [usize; 4] = [65_536, 1, 4_093, 100_000];

/// What came back, whichever way.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    /// Header fields in order, names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// An HTTP `100 Continue` came before the final answer.
    pub continued: bool,
}

impl Reply {
    /// The first value of `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A CGI response (FastCGI STDOUT, SCGI, a CGI program's stdout; RFC 3875 section 6).
    pub fn from_cgi(data: &[u8]) -> Self {
        let r = crate::support::http::Response::parse_cgi(data);
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
            continued: false,
        }
    }
}

/// Sends `case` to `127.0.0.1:port` over one connection and reads the answer.
pub fn http(port: u16, case: &Case) -> Reply {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut w = stream.try_clone().expect("clone the stream");
    let mut r = BufReader::new(stream);
    w.write_all(http_head(case).as_bytes())
        .expect("send the head");
    let mut continued = false;
    if case.expect_continue {
        let interim = read_reply(&mut r, case.method == "HEAD");
        if interim.status != 100 {
            return interim; // a final answer instead of 100: the caller reports it
        }
        continued = true;
    }
    // The server may answer and close before reading all of a body: read the answer anyway.
    let _ = send_body(&mut w, case);
    let mut reply = read_reply(&mut r, case.method == "HEAD");
    reply.continued = continued;
    reply
}

fn http_head(case: &Case) -> String {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n",
        case.method, case.target
    );
    match case.framing {
        Framing::None => {}
        Framing::Length => head.push_str(&format!("Content-Length: {}\r\n", case.body.len())),
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    if case.expect_continue {
        head.push_str("Expect: 100-continue\r\n");
    }
    for (n, v) in &case.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

fn send_body(w: &mut TcpStream, case: &Case) -> std::io::Result<()> {
    if case.framing != Framing::Chunked {
        return w.write_all(&case.body);
    }
    let (mut rest, mut i) = (&case.body[..], 0);
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(CHUNKS[i % CHUNKS.len()].min(rest.len()));
        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
        framed.extend_from_slice(piece);
        framed.extend_from_slice(b"\r\n");
        w.write_all(&framed)?;
        rest = tail;
        i += 1;
    }
    w.write_all(b"0\r\n\r\n")
}

/// Reads one answer: status line, fields, and the body by its framing (none for HEAD, 1xx,
/// 204 and 304; chunked; `Content-Length`; else to the end of input).
fn read_reply(r: &mut impl BufRead, head_request: bool) -> Reply {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("header line");
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l
            .split_once(':')
            .unwrap_or_else(|| panic!("bad field {l:?}"));
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mut reply = Reply {
        status,
        headers,
        ..Reply::default()
    };
    if head_request || matches!(status, 100..=199 | 204 | 304) {
        return reply;
    }
    if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        reply.body = read_chunked(r);
    } else if let Some(len) = reply.header("content-length") {
        let mut body = vec![0; len.parse().expect("content-length")];
        r.read_exact(&mut body).expect("body");
        reply.body = body;
    } else {
        r.read_to_end(&mut reply.body).expect("body to the end");
    }
    reply
}

/// One SCGI request (SCGI section 3: a netstring of NUL-terminated names and values,
/// `CONTENT_LENGTH` first, `SCGI` = `1`, then the body) to `addr`; the answer is read to the end
/// of input (one request per connection).
pub fn scgi(addr: &str, vars: &[(String, String)], body: &[u8]) -> Reply {
    let len = body.len().to_string();
    let mut block = Vec::new();
    let fixed = [("CONTENT_LENGTH", len.as_str()), ("SCGI", "1")];
    let all = fixed
        .into_iter()
        .chain(vars.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    for (name, value) in all {
        block.extend_from_slice(name.as_bytes());
        block.push(0);
        block.extend_from_slice(value.as_bytes());
        block.push(0);
    }
    let mut request = format!("{}:", block.len()).into_bytes();
    request.extend_from_slice(&block);
    request.push(b',');
    request.extend_from_slice(body);
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(&request).expect("send the SCGI request");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read the SCGI answer");
    Reply::from_cgi(&answer)
}
