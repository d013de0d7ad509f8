//! The SCGI client side: the request is the header netstring (`CONTENT_LENGTH` first, then
//! `SCGI` = `1`, then the CGI variables, encoded by `gatehouse_scgi::encode_head`) followed by
//! the body; the response is a CGI response that ends when the server closes the connection.

use bytes::{Bytes, BytesMut};
use gatehouse_scgi::encode_head;

use crate::args::Plan;
use crate::cgi::CgiReader;
use crate::outcome::{judge, Done, Failure};
use crate::request::cgi_params;

/// The request bytes: the head netstring, then the body (shared, not copied, when large).
pub fn encode_request(plan: &Plan) -> Vec<Bytes> {
    let mut vars = cgi_params(plan);
    vars.retain(|(name, _)| name != b"CONTENT_LENGTH");
    let length = plan.body.len().to_string().into_bytes();
    let mut pairs: Vec<(&[u8], &[u8])> = vec![(b"CONTENT_LENGTH", &length), (b"SCGI", b"1")];
    pairs.extend(vars.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
    let mut head = BytesMut::with_capacity(1024);
    encode_head(pairs, &mut head);
    if plan.body.len() <= 64 * 1024 {
        head.extend_from_slice(&plan.body);
        return vec![head.freeze()];
    }
    vec![head.freeze(), plan.body.clone()]
}

/// Reads one SCGI response: everything up to the server's close.
#[derive(Debug)]
pub struct ScgiReader {
    cgi: CgiReader,
}

impl ScgiReader {
    /// A reader checking bodies against `expect` when given.
    pub fn new(expect: Option<Bytes>) -> Self {
        Self {
            cgi: CgiReader::new(expect),
        }
    }

    /// The request was sent: a new response starts.
    pub fn start(&mut self) {
        self.cgi.reset();
    }

    /// Takes all of `buf`; at `eof` the response is complete.
    pub fn poll(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Option<Done>, Failure> {
        self.cgi.feed(buf)?;
        buf.clear();
        if !eof {
            return Ok(None);
        }
        Ok(Some(Done {
            id: 0,
            result: self.cgi.finish().and_then(judge),
            reusable: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::ErrorKind;
    use crate::request::tests::plan;

    #[test]
    fn request_is_what_the_server_parses() {
        let p = plan(&["--scgi=127.0.0.1:4000", "--body-size=27", "--path=/deep?x"]);
        let bytes = encode_request(&p).concat();
        let (head, used) = gatehouse_scgi::parse_head(&bytes, 1 << 16)
            .unwrap()
            .unwrap();
        assert_eq!(head.content_length, 27);
        assert_eq!(bytes.len() - used, 27);
        assert_eq!(&bytes[used..], &p.body[..]);
        let script = head.env.get("SCRIPT_NAME").map(|v| v.to_vec());
        assert_eq!(script, Some(b"/deep".to_vec()));
    }

    #[test]
    fn response_ends_at_close() {
        let mut r = ScgiReader::new(Some(Bytes::from("ok")));
        r.start();
        let mut buf = BytesMut::from(&b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\no"[..]);
        assert_eq!(r.poll(&mut buf, false), Ok(None));
        buf.extend_from_slice(b"k");
        let done = r.poll(&mut buf, true).unwrap().unwrap();
        assert_eq!(done.result.unwrap().body_len, 2);
        r.start();
        let mut buf = BytesMut::from(&b"Status: 500 Oops\r\n\r\n"[..]);
        let done = r.poll(&mut buf, true).unwrap().unwrap();
        assert_eq!(done.result.unwrap_err().kind, ErrorKind::Status);
        r.start();
        let done = r.poll(&mut BytesMut::new(), true).unwrap().unwrap();
        assert_eq!(done.result.unwrap_err().kind, ErrorKind::Protocol);
    }
}
