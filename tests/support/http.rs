//! A minimal HTTP/1.1 client for talking to nginx, lighttpd and gatehouse's own HTTP front end:
//! one request per connection (`Connection: close`), or several on one kept-alive [`Conn`]; and
//! the parser for CGI-style responses (FastCGI STDOUT, cgi-fcgi's output, a CGI program's
//! stdout).

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

/// Sends one request to `127.0.0.1:port` from the loopback address `source` (another address
/// of 127/8, so the server sees a client address of its own) and reads the whole response
/// (no body for `HEAD`).
pub fn request_from(
    source: std::net::Ipv4Addr,
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.bind(&std::net::SocketAddr::from((source, 0)).into())
        .unwrap_or_else(|e| panic!("bind {source}: {e}"));
    sock.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap_or_else(|e| panic!("connect 127.0.0.1:{port}: {e}"));
    let mut s: TcpStream = sock.into();
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
    let _ = s.write_all(body);
    read_response_from(&mut BufReader::new(s), method == "HEAD")
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
    read_response_from(&mut BufReader::new(s), false)
}

/// A kept-alive client connection: requests go out one after another (or pipelined with
/// [`Conn::send_raw`]) and responses are read in order.
pub struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    /// Connects to `addr` (`127.0.0.1:PORT`).
    pub fn connect(addr: &str) -> Self {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        Self {
            r: BufReader::new(s),
        }
    }

    /// Sends one HTTP/1.1 request (keep-alive: no `Connection` header unless given) and reads
    /// its response.
    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut req = request_head(method, target, headers, body.len()).into_bytes();
        req.extend_from_slice(body);
        self.send_raw(&req);
        self.read(method == "HEAD")
    }

    /// Writes `bytes` as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).expect("send");
    }

    /// Reads the next response (`head`: it answers a HEAD request, so it has no body).
    pub fn read(&mut self, head: bool) -> Response {
        read_response_from(&mut self.r, head)
    }

    /// Whether the server closed the connection (reads end of input; any byte fails the test).
    pub fn closed_by_peer(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => {
                assert!(
                    rest.is_empty(),
                    "unexpected bytes: {:?}",
                    String::from_utf8_lossy(&rest)
                );
                true
            }
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// A request head with `Host: localhost` and, when there is a body (or the method usually has
/// one), its `Content-Length`.
fn request_head(method: &str, target: &str, headers: &[(&str, &str)], body_len: usize) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if body_len > 0 || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Reads one response from `r`: status line, headers, and the body by its framing (chunked,
/// `Content-Length`, or up to the end of input); `head` means no body whatever the headers say.
fn read_response_from(r: &mut impl BufRead, head_only: bool) -> Response {
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
    let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(r)
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

/// A chunked body (RFC 9112 section 7.1) from `r`, trailers skipped.
pub fn read_chunked(r: &mut impl BufRead) -> Vec<u8> {
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
