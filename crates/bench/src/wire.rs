//! The protocol switch: [`Templates`] holds every request pre-encoded once at start (one per
//! FastCGI request id), and [`Reader`] picks the response reader of the planned protocol.

use bytes::{Bytes, BytesMut};

use crate::args::{Plan, Protocol};
use crate::outcome::{Done, ErrorKind, Failure};
use crate::{fastcgi, http, scgi};

/// The request bytes, encoded once, shared by every connection.
#[derive(Debug)]
pub struct Templates {
    per_id: Vec<Vec<Bytes>>,
}

impl Templates {
    /// Encodes the plan's request (FastCGI: once per request id `1..=multiplex`).
    pub fn new(plan: &Plan) -> Self {
        let per_id = match plan.protocol {
            Protocol::Fastcgi => (1..=plan.multiplex as u16)
                .map(|id| fastcgi::encode_request(plan, id))
                .collect(),
            Protocol::Scgi => vec![scgi::encode_request(plan)],
            Protocol::Http => vec![http::encode_request(plan)],
        };
        Self { per_id }
    }

    /// The segments of the request with request id `id` (ignored outside FastCGI).
    pub fn request(&self, id: u16) -> &[Bytes] {
        let index = usize::from(id).saturating_sub(1).min(self.per_id.len() - 1);
        &self.per_id[index]
    }

    /// Bytes of one request on the wire.
    pub fn request_len(&self) -> usize {
        self.request(1).iter().map(Bytes::len).sum()
    }
}

/// A response reader for the planned protocol.
#[derive(Debug)]
pub enum Reader {
    /// FastCGI records, multiplexed.
    Fastcgi(fastcgi::FcgiReader),
    /// SCGI: CGI response until close.
    Scgi(scgi::ScgiReader),
    /// HTTP/1.1.
    Http(http::HttpReader),
}

impl Reader {
    /// A reader for `plan`.
    pub fn new(plan: &Plan) -> Self {
        let expect = plan.expect_body.clone();
        match plan.protocol {
            Protocol::Fastcgi => Self::Fastcgi(fastcgi::FcgiReader::new(plan.multiplex, expect)),
            Protocol::Scgi => Self::Scgi(scgi::ScgiReader::new(expect)),
            Protocol::Http => {
                let head = plan.method.eq_ignore_ascii_case("HEAD");
                Self::Http(http::HttpReader::new(expect, head))
            }
        }
    }

    /// Request `id` was queued for sending.
    pub fn start(&mut self, id: u16) {
        match self {
            Self::Fastcgi(r) => r.start(id),
            Self::Scgi(r) => r.start(),
            Self::Http(r) => r.start(),
        }
    }

    /// The next completed response in `buf`, if any; `eof` when the server closed.
    pub fn poll(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Done>, Failure> {
        match self {
            Self::Fastcgi(r) => {
                let done = r.poll(buf)?;
                if done.is_none() && eof && !buf.is_empty() {
                    let detail = format!("closed inside a record ({} bytes of it)", buf.len());
                    return Err(Failure::new(ErrorKind::Closed, detail));
                }
                Ok(done)
            }
            Self::Scgi(r) => r.poll(buf, eof),
            Self::Http(r) => r.poll(buf, eof),
        }
    }
}
