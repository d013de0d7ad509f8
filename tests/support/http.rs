//! A minimal HTTP/1.1 client (one request per connection, `Connection: close`) for talking to
//! nginx, and the parser for CGI-style responses (FastCGI STDOUT, cgi-fcgi's output).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use super::TIMEOUT;

/// A response: status, headers in order (names lower-cased), body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (the `echo` app's answer).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Parses a CGI response (RFC 3875 section 6): header lines, a blank line, the body. The
    /// status comes from `Status:` (200 when absent). Lines may end in CRLF or LF.
    pub fn parse_cgi(data: &[u8]) -> Self {
        let (head, body) = split_head(data)
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(data)));
        let headers = parse_fields(head);
        let status = headers
            .iter()
            .find(|(n, _)| n == "status")
            .map_or(200, |(_, v)| v[..3].parse().expect("3-digit status"));
        Self {
            status,
            headers,
            body: body.to_vec(),
        }
    }
}

fn split_head(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let crlf = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    let lf = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let (end, body) = match (crlf, lf) {
        (Some(a), Some(b)) => std::cmp::min_by_key(a, b, |x| x.0),
        (a, b) => a.or(b)?,
    };
    Some((&data[..end], &data[body..]))
}

fn parse_fields(head: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// Sends one request to `127.0.0.1:port` and reads the whole response.
pub fn request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("send head");
    // The server may answer (and close) before reading a body it refuses: read the answer anyway.
    let _ = s.write_all(body);
    read_response(s)
}

/// Sends a POST whose body goes out with `Transfer-Encoding: chunked`, in chunks of `chunk`
/// bytes, and reads the whole response.
pub fn post_chunked(port: u16, target: &str, body: &[u8], chunk: usize) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).expect("send head");
    for piece in body.chunks(chunk) {
        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
        framed.extend_from_slice(piece);
        framed.extend_from_slice(b"\r\n");
        s.write_all(&framed).expect("send chunk");
    }
    s.write_all(b"0\r\n\r\n").expect("send last chunk");
    read_response(s)
}

fn read_response(s: TcpStream) -> Response {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut head = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("header line");
        if l == "\r\n" || l == "\n" || l.is_empty() {
            break;
        }
        head.extend_from_slice(l.as_bytes());
    }
    let headers = parse_fields(&head);
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(&mut r)
    } else if let Some(len) = find("content-length") {
        let mut body = vec![0u8; len.parse().expect("content-length")];
        r.read_exact(&mut body).expect("body");
        body
    } else {
        let mut body = Vec::new();
        r.read_to_end(&mut body).expect("body to EOF");
        body
    };
    Response {
        status,
        headers,
        body,
    }
}

fn read_chunked(r: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size).expect("chunk size");
        let hex = size.trim().split(';').next().unwrap_or("");
        let n = usize::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("chunk size {size:?}"));
        if n == 0 {
            let mut trailer = String::new();
            while r.read_line(&mut trailer).expect("trailer") > 2 {
                trailer.clear();
            }
            return body;
        }
        let start = body.len();
        body.resize(start + n, 0);
        r.read_exact(&mut body[start..]).expect("chunk");
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).expect("chunk end");
    }
}
