//! A raw FastCGI 1.0 client for the end-to-end tests, written from the specification and kept
//! independent of `gatehouse_fastcgi` on purpose: a test that shared the daemon's codec would
//! miss the bugs it shares.
//!
//! Record layout (spec section 3.3): version, type, request id (2 bytes), content length
//! (2 bytes), padding length, reserved, content, padding.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::TIMEOUT;

/// `FCGI_VERSION_1`.
pub const VERSION_1: u8 = 1;
/// `FCGI_BEGIN_REQUEST`.
pub const BEGIN_REQUEST: u8 = 1;
/// `FCGI_ABORT_REQUEST`.
pub const ABORT_REQUEST: u8 = 2;
/// `FCGI_END_REQUEST`.
pub const END_REQUEST: u8 = 3;
/// `FCGI_PARAMS`.
pub const PARAMS: u8 = 4;
/// `FCGI_STDIN`.
pub const STDIN: u8 = 5;
/// `FCGI_STDOUT`.
pub const STDOUT: u8 = 6;
/// `FCGI_STDERR`.
pub const STDERR: u8 = 7;
/// `FCGI_GET_VALUES`.
pub const GET_VALUES: u8 = 9;
/// `FCGI_GET_VALUES_RESULT`.
pub const GET_VALUES_RESULT: u8 = 10;
/// `FCGI_UNKNOWN_TYPE`.
pub const UNKNOWN_TYPE: u8 = 11;
/// `FCGI_RESPONDER`.
pub const RESPONDER: u16 = 1;
/// `FCGI_AUTHORIZER` (section 6.3).
pub const AUTHORIZER: u16 = 2;
/// `FCGI_FILTER` (section 6.4).
pub const FILTER: u16 = 3;
/// `FCGI_KEEP_CONN`.
pub const KEEP_CONN: u8 = 1;
/// `FCGI_REQUEST_COMPLETE`.
pub const REQUEST_COMPLETE: u8 = 0;
/// `FCGI_UNKNOWN_ROLE`.
pub const UNKNOWN_ROLE: u8 = 3;

/// One record: type, request id, content (padding stripped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub ty: u8,
    pub id: u16,
    pub content: Vec<u8>,
}

/// Encodes one record, padded to a multiple of 8 bytes as the spec recommends.
pub fn record(ty: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("content fits one record");
    let padding = (8 - content.len() % 8) % 8;
    let mut out = vec![VERSION_1, ty];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[padding as u8, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0u8, padding));
    out
}

/// Encodes a stream (PARAMS or STDIN) as records of at most 65535 bytes, then the empty record
/// that ends it.
pub fn stream(ty: u8, id: u16, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(65535) {
        out.extend(record(ty, id, chunk));
    }
    out.extend(record(ty, id, b""));
    out
}

/// `FCGI_BeginRequestBody`: role, flags, 5 reserved bytes.
pub fn begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
    let mut body = role.to_be_bytes().to_vec();
    body.extend_from_slice(&[flags, 0, 0, 0, 0, 0]);
    record(BEGIN_REQUEST, id, &body)
}

/// Name-value pairs (spec section 3.4): lengths below 128 in one byte, others in four with the
/// high bit set.
pub fn nv_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = |out: &mut Vec<u8>, n: usize| {
        if n < 128 {
            out.push(n as u8);
        } else {
            let n = u32::try_from(n).expect("fits") | 0x8000_0000;
            out.extend_from_slice(&n.to_be_bytes());
        }
    };
    for (n, v) in pairs {
        len(&mut out, n.len());
        len(&mut out, v.len());
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Decodes name-value pairs.
pub fn parse_nv_pairs(mut data: &[u8]) -> Vec<(String, String)> {
    fn len(data: &mut &[u8]) -> usize {
        if data[0] < 128 {
            let n = data[0] as usize;
            *data = &data[1..];
            n
        } else {
            let n = u32::from_be_bytes([data[0] & 0x7f, data[1], data[2], data[3]]) as usize;
            *data = &data[4..];
            n
        }
    }
    let mut out = Vec::new();
    while !data.is_empty() {
        let n = len(&mut data);
        let v = len(&mut data);
        let name = String::from_utf8_lossy(&data[..n]).into_owned();
        let value = String::from_utf8_lossy(&data[n..n + v]).into_owned();
        data = &data[n + v..];
        out.push((name, value));
    }
    out
}

/// The CGI variables of a simple request.
pub fn params(
    method: &str,
    path: &str,
    query: &str,
    body_len: Option<usize>,
) -> Vec<(String, String)> {
    let mut p = vec![
        ("REQUEST_METHOD".to_owned(), method.to_owned()),
        ("SCRIPT_NAME".to_owned(), path.to_owned()),
        ("QUERY_STRING".to_owned(), query.to_owned()),
        ("REQUEST_URI".to_owned(), format!("{path}?{query}")),
        ("SERVER_PROTOCOL".to_owned(), "HTTP/1.1".to_owned()),
        ("SERVER_NAME".to_owned(), "test.invalid".to_owned()),
        ("SERVER_PORT".to_owned(), "80".to_owned()),
        ("GATEWAY_INTERFACE".to_owned(), "CGI/1.1".to_owned()),
        ("REMOTE_ADDR".to_owned(), "127.0.0.1".to_owned()),
    ];
    if let Some(n) = body_len {
        p.push(("CONTENT_LENGTH".to_owned(), n.to_string()));
    }
    p
}

/// A whole request: BEGIN_REQUEST, PARAMS, STDIN.
pub fn request(id: u16, flags: u8, params: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut out = begin(id, RESPONDER, flags);
    out.extend(stream(PARAMS, id, &nv_pairs(&pairs)));
    out.extend(stream(STDIN, id, body));
    out
}

/// What one request got back.
#[derive(Debug, Default, Clone)]
pub struct Answer {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub app_status: u32,
    pub protocol_status: u8,
    /// Whether the STDOUT stream was closed by an empty record before END_REQUEST.
    pub stdout_closed: bool,
}

impl Answer {
    /// The CGI response in STDOUT split into status, headers and body.
    pub fn cgi(&self) -> super::http::Response {
        super::http::Response::parse_cgi(&self.stdout)
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A FastCGI connection from the web server's side.
pub struct Client {
    stream: Stream,
    partial: HashMap<u16, Answer>,
    finished: HashMap<u16, Answer>,
}

impl Client {
    /// Connects to `127.0.0.1:PORT`-style or `unix:/path` addresses.
    pub fn connect(addr: &str) -> Self {
        Self::try_connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    /// Connects, or returns the error.
    pub fn try_connect(addr: &str) -> std::io::Result<Self> {
        let stream = match addr.strip_prefix("unix:") {
            Some(path) => {
                let s = UnixStream::connect(path)?;
                s.set_read_timeout(Some(TIMEOUT))?;
                Stream::Unix(s)
            }
            None => {
                let s = TcpStream::connect(addr)?;
                s.set_read_timeout(Some(TIMEOUT))?;
                Stream::Tcp(s)
            }
        };
        Ok(Self {
            stream,
            partial: HashMap::new(),
            finished: HashMap::new(),
        })
    }

    /// Our end's address as the daemon logs its peer (`127.0.0.1:PORT`; `unix` for unix sockets).
    pub fn local_addr(&self) -> String {
        match &self.stream {
            Stream::Tcp(s) => s.local_addr().expect("local addr").to_string(),
            Stream::Unix(_) => "unix".to_owned(),
        }
    }

    /// Writes bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).expect("write to the daemon");
    }

    /// Writes bytes, or returns the error (the daemon may have closed the connection).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.stream {
            Stream::Tcp(s) => s.write_all(bytes),
            Stream::Unix(s) => s.write_all(bytes),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        match &mut self.stream {
            Stream::Tcp(s) => s.read_exact(buf),
            Stream::Unix(s) => s.read_exact(buf),
        }
    }

    /// The next record, or `None` when the daemon closed the connection (or reset it).
    pub fn read_record(&mut self) -> Option<Record> {
        let mut head = [0u8; 8];
        match self.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if is_closed(&e) => return None,
            Err(e) => panic!("reading a record header: {e}"),
        }
        assert_eq!(head[0], VERSION_1, "bad version in {head:?}");
        let len = u16::from_be_bytes([head[4], head[5]]) as usize;
        let mut content = vec![0u8; len + head[6] as usize];
        self.read_exact(&mut content).expect("record content");
        content.truncate(len);
        Some(Record {
            ty: head[1],
            id: u16::from_be_bytes([head[2], head[3]]),
            content,
        })
    }

    /// Reads records until END_REQUEST for `id`, keeping other requests' records for later.
    pub fn answer(&mut self, id: u16) -> Answer {
        if let Some(done) = self.finished.remove(&id) {
            return done;
        }
        loop {
            let rec = self
                .read_record()
                .unwrap_or_else(|| panic!("connection closed before END_REQUEST for request {id}"));
            if let Some(done) = self.absorb(rec) {
                if done.0 == id {
                    return done.1;
                }
                self.finished.insert(done.0, done.1);
            }
        }
    }

    /// Reads until every request in `ids` has ended; answers in `ids` order.
    pub fn answers(&mut self, ids: &[u16]) -> Vec<Answer> {
        ids.iter().map(|&id| self.answer(id)).collect()
    }

    /// Files a STDOUT/STDERR/END_REQUEST record under its request; returns a finished answer.
    fn absorb(&mut self, rec: Record) -> Option<(u16, Answer)> {
        let entry = self.partial.entry(rec.id).or_default();
        match rec.ty {
            STDOUT if rec.content.is_empty() => entry.stdout_closed = true,
            STDOUT => {
                assert!(
                    !entry.stdout_closed,
                    "STDOUT after its end for request {}",
                    rec.id
                );
                entry.stdout.extend_from_slice(&rec.content);
            }
            STDERR => entry.stderr.extend_from_slice(&rec.content),
            END_REQUEST => {
                assert_eq!(rec.content.len(), 8, "END_REQUEST body size");
                let c = &rec.content;
                let mut done = self.partial.remove(&rec.id).unwrap_or_default();
                done.app_status = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                done.protocol_status = c[4];
                return Some((rec.id, done));
            }
            other => panic!(
                "unexpected record type {other} for request {}: {rec:?}",
                rec.id
            ),
        }
        None
    }

    /// Whether the daemon closes the connection (EOF or reset) without sending anything more.
    pub fn closed_by_peer(&mut self) -> bool {
        self.read_record().is_none()
    }

    /// Shuts down our writing side.
    pub fn shutdown_write(&mut self) {
        let _ = match &self.stream {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
    )
}

/// One request on a new connection, without FCGI_KEEP_CONN.
pub fn call(addr: &str, params: &[(String, String)], body: &[u8]) -> Answer {
    let mut c = Client::connect(addr);
    c.send(&request(1, 0, params, body));
    let answer = c.answer(1);
    assert!(answer.stdout_closed, "STDOUT not closed before END_REQUEST");
    answer
}

/// How long a read may block before the tests call it a hang.
pub const READ_TIMEOUT: Duration = TIMEOUT;
