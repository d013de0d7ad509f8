//! A raw uwsgi client: one request packet per connection (modifier1 0, the vars, the body), the
//! HTTP/1.1 response read to the end of input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use super::http::Response;
use super::TIMEOUT;

/// The 4-byte packet header: modifier1, datasize (u16 little-endian), modifier2.
pub fn header(modifier1: u8, datasize: u16, modifier2: u8) -> Vec<u8> {
    let [lo, hi] = datasize.to_le_bytes();
    vec![modifier1, lo, hi, modifier2]
}

/// The vars block: every key and value prefixed by its u16 little-endian length.
pub fn vars(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        for part in [k, v] {
            let len = u16::try_from(part.len()).expect("var fits a u16");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

/// A WSGI request packet (`CONTENT_LENGTH` added), then the body.
pub fn request_bytes(pairs: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    let mut all = vec![("CONTENT_LENGTH", len.as_str())];
    all.extend_from_slice(pairs);
    let block = vars(&all);
    let mut out = header(0, u16::try_from(block.len()).expect("vars fit"), 0);
    out.extend_from_slice(&block);
    out.extend_from_slice(body);
    out
}

/// Sends raw bytes to `addr` (`127.0.0.1:PORT` or `unix:/path`), half-closes, and reads until
/// the server closes.
pub fn exchange(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut answer = Vec::new();
    if let Some(path) = addr.strip_prefix("unix:") {
        let mut s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        s.write_all(bytes).expect("send");
        s.read_to_end(&mut answer).expect("read the response");
    } else {
        let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        s.write_all(bytes).expect("send");
        s.read_to_end(&mut answer).expect("read the response");
    }
    answer
}

/// Sends one request and parses the HTTP/1.1 response.
pub fn call(addr: &str, pairs: &[(&str, &str)], body: &[u8]) -> Response {
    parse(&exchange(addr, &request_bytes(pairs, body)))
}

/// Parses `HTTP/1.1 NNN reason`, the headers, the body.
pub fn parse(data: &[u8]) -> Response {
    let text = String::from_utf8_lossy(data);
    let line = text.lines().next().unwrap_or_default();
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {line:?}"));
    let rest = &data[line.len() + 2..];
    let mut resp = Response::parse_cgi(rest);
    resp.status = status;
    resp
}
