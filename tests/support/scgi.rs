//! A raw SCGI client: one request per connection, the response read to the end of input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use super::http::Response;
use super::TIMEOUT;

/// The SCGI request bytes (SCGI section 3): a netstring of NUL-terminated names and values,
/// `CONTENT_LENGTH` first and `SCGI` = `1` second, then the body.
pub fn request_bytes(headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    let len = body.len().to_string();
    let fixed = [("CONTENT_LENGTH", len.as_str()), ("SCGI", "1")];
    for (name, value) in fixed.iter().chain(headers) {
        block.extend_from_slice(name.as_bytes());
        block.push(0);
        block.extend_from_slice(value.as_bytes());
        block.push(0);
    }
    let mut out = format!("{}:", block.len()).into_bytes();
    out.extend_from_slice(&block);
    out.push(b',');
    out.extend_from_slice(body);
    out
}

/// Sends one request to `addr` (`127.0.0.1:PORT` or `unix:/path`) and parses the CGI response
/// that comes back before the server closes.
pub fn call(addr: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let request = request_bytes(headers, body);
    let mut answer = Vec::new();
    if let Some(path) = addr.strip_prefix("unix:") {
        let mut s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        s.write_all(&request).expect("send");
        s.read_to_end(&mut answer).expect("read the response");
    } else {
        let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        s.write_all(&request).expect("send");
        s.read_to_end(&mut answer).expect("read the response");
    }
    Response::parse_cgi(&answer)
}
