//! The FastCGI client side: requests pre-encoded once per request id with the record and
//! name-value encoders of `gatehouse_fastcgi` (FastCGI 1.0 sections 3.3, 3.4, 5.1-5.3), and a
//! response reader that walks records in place (no copy, no allocation per record), feeds
//! `FCGI_STDOUT` to a [`CgiReader`] per request id and completes a request at its
//! `FCGI_END_REQUEST` (section 5.5).

use bytes::{Buf, Bytes, BytesMut};
use gatehouse_fastcgi::nv;
use gatehouse_fastcgi::record::{
    put_header, BeginRequestBody, Payload, Record, RecordHeader, RecordType, FCGI_HEADER_LEN,
    FCGI_KEEP_CONN, FCGI_MAX_CONTENT_LEN, FCGI_VERSION_1,
};
use gatehouse_fastcgi::{ProtocolStatus, Role};

use crate::args::Plan;
use crate::cgi::CgiReader;
use crate::outcome::{judge, Done, ErrorKind, Failure};
use crate::request::cgi_params;

/// Bodies up to this size are copied into the request's single buffer; longer ones are sent
/// as shared slices between 8-byte record headers (one copy of the body for every request id).
const INLINE_BODY: usize = 64 * 1024;

/// The wire bytes of one request with request id `id`, as segments to write in order:
/// `FCGI_BEGIN_REQUEST` (role `FCGI_RESPONDER`, `FCGI_KEEP_CONN` as planned), the `FCGI_PARAMS`
/// stream and its empty end record, the `FCGI_STDIN` stream and its empty end record.
pub fn encode_request(plan: &Plan, id: u16) -> Vec<Bytes> {
    let mut head = BytesMut::with_capacity(1024);
    let begin = BeginRequestBody {
        role: Role::Responder,
        flags: if plan.keep_conn { FCGI_KEEP_CONN } else { 0 },
    };
    Record::new(id, Payload::BeginRequest(begin)).encode(&mut head);
    let mut params = BytesMut::new();
    for (name, value) in cgi_params(plan) {
        nv::put_pair(&mut params, &name, &value);
    }
    let params = params.freeze();
    for chunk in params.chunks(FCGI_MAX_CONTENT_LEN) {
        Record::new(id, Payload::Params(params.slice_ref(chunk))).encode(&mut head);
    }
    Record::new(id, Payload::Params(Bytes::new())).encode(&mut head);
    let body = &plan.body;
    if body.len() <= INLINE_BODY {
        for chunk in body.chunks(FCGI_MAX_CONTENT_LEN) {
            Record::new(id, Payload::Stdin(body.slice_ref(chunk))).encode(&mut head);
        }
        Record::new(id, Payload::Stdin(Bytes::new())).encode(&mut head);
        return vec![head.freeze()];
    }
    let mut segments = vec![head.freeze()];
    for chunk in body.chunks(FCGI_MAX_CONTENT_LEN) {
        let mut header = BytesMut::with_capacity(FCGI_HEADER_LEN);
        put_header(&mut header, RecordType::Stdin, id, chunk.len() as u16);
        segments.push(header.freeze());
        segments.push(body.slice_ref(chunk));
    }
    let mut end = BytesMut::with_capacity(FCGI_HEADER_LEN);
    put_header(&mut end, RecordType::Stdin, id, 0);
    segments.push(end.freeze());
    segments
}

/// Reads the responses of up to `K` multiplexed requests (ids `1..=K`) from one connection.
#[derive(Debug)]
pub struct FcgiReader {
    slots: Vec<Slot>,
}

#[derive(Debug)]
struct Slot {
    active: bool,
    cgi: CgiReader,
}

impl FcgiReader {
    /// A reader for ids `1..=multiplex`.
    pub fn new(multiplex: usize, expect: Option<Bytes>) -> Self {
        let slots = (0..multiplex)
            .map(|_| Slot {
                active: false,
                cgi: CgiReader::new(expect.clone()),
            })
            .collect();
        Self { slots }
    }

    /// Request `id` was sent: its records are expected now.
    pub fn start(&mut self, id: u16) {
        if let Some(slot) = self.slots.get_mut(usize::from(id).wrapping_sub(1)) {
            slot.active = true;
            slot.cgi.reset();
        }
    }

    /// Consumes whole records from `buf` until a request completes (`Ok(Some)`), more bytes
    /// are needed (`Ok(None)`), or the connection broke the protocol (`Err`: close it).
    pub fn poll(&mut self, buf: &mut BytesMut) -> Result<Option<Done>, Failure> {
        loop {
            let Some(header) = RecordHeader::parse(buf) else {
                return Ok(None);
            };
            if header.version != FCGI_VERSION_1 {
                return Err(protocol(format!(
                    "record with version {} ({})",
                    header.version,
                    crate::cgi::excerpt(&buf[..FCGI_HEADER_LEN])
                )));
            }
            let total = header.record_len();
            if buf.len() < total {
                buf.reserve(total - buf.len());
                return Ok(None);
            }
            let content =
                &buf[FCGI_HEADER_LEN..FCGI_HEADER_LEN + usize::from(header.content_length)];
            let done = self.record(&header, content)?;
            buf.advance(total);
            if done.is_some() {
                return Ok(done);
            }
        }
    }

    fn record(&mut self, header: &RecordHeader, content: &[u8]) -> Result<Option<Done>, Failure> {
        let id = header.request_id;
        match header.record_type {
            RecordType::Stdout => {
                let slot = self.active_slot(id, header.record_type)?;
                if let Err(e) = slot.cgi.feed(content) {
                    return Err(protocol(format!("request {id}: {}", e.detail)));
                }
                Ok(None)
            }
            RecordType::Stderr => {
                self.active_slot(id, header.record_type)?;
                Ok(None)
            }
            RecordType::EndRequest => self.end_request(id, content).map(Some),
            other => Err(protocol(format!("unexpected {other} for request {id}"))),
        }
    }

    /// `FCGI_EndRequestBody`: `appStatus` (4 bytes), `protocolStatus`, 3 reserved bytes.
    fn end_request(&mut self, id: u16, content: &[u8]) -> Result<Done, Failure> {
        let slot = self.active_slot(id, RecordType::EndRequest)?;
        slot.active = false;
        let [_, _, _, _, status, ..] = content else {
            return Err(protocol(format!(
                "FCGI_END_REQUEST of {} bytes",
                content.len()
            )));
        };
        let protocol_status = ProtocolStatus::from(*status);
        let result = if protocol_status != ProtocolStatus::RequestComplete {
            Err(Failure::new(
                ErrorKind::Rejected,
                protocol_status.to_string(),
            ))
        } else {
            slot.cgi.finish().and_then(judge)
        };
        Ok(Done {
            id,
            result,
            reusable: true,
        })
    }

    fn active_slot(&mut self, id: u16, what: RecordType) -> Result<&mut Slot, Failure> {
        match self.slots.get_mut(usize::from(id).wrapping_sub(1)) {
            Some(slot) if slot.active => Ok(slot),
            _ => Err(protocol(format!(
                "{what} for request id {id}, not in flight"
            ))),
        }
    }
}

fn protocol(detail: String) -> Failure {
    Failure::new(ErrorKind::Protocol, detail)
}

#[cfg(test)]
mod tests {
    use gatehouse_fastcgi::codec::RecordCodec;
    use gatehouse_fastcgi::record::EndRequestBody;
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::request::tests::plan;

    /// Decodes with the server's own codec, the strictest check of what we encode.
    fn decode_all(bytes: &[u8]) -> Vec<Record> {
        let mut codec = RecordCodec::new();
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(r) = codec.decode(&mut buf).unwrap() {
            out.push(r);
        }
        assert!(buf.is_empty(), "{} bytes left", buf.len());
        out
    }

    fn concat(segments: &[Bytes]) -> Vec<u8> {
        segments.iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn request_records() {
        let p = plan(&[
            "--fastcgi=127.0.0.1:9000",
            "--body-size=100",
            "--path=/echo",
        ]);
        let segments = encode_request(&p, 7);
        assert_eq!(segments.len(), 1);
        let records = decode_all(&concat(&segments));
        assert!(records.iter().all(|r| r.request_id == 7));
        let types: Vec<_> = records.iter().map(|r| r.payload.record_type()).collect();
        use RecordType::*;
        assert_eq!(types, [BeginRequest, Params, Params, Stdin, Stdin]);
        let Payload::BeginRequest(begin) = &records[0].payload else {
            panic!()
        };
        assert_eq!((begin.role, begin.keep_conn()), (Role::Responder, true));
        let Payload::Params(params) = &records[1].payload else {
            panic!()
        };
        let pairs = nv::parse_all(params, 1 << 16).unwrap();
        assert!(pairs.contains(&(Bytes::from("SCRIPT_NAME"), Bytes::from("/echo"))));
        assert!(pairs.contains(&(Bytes::from("CONTENT_LENGTH"), Bytes::from("100"))));
        assert_eq!(records[3].payload.content_len(), 100);
    }

    #[test]
    fn large_body_segments() {
        let p = plan(&[
            "--fastcgi=127.0.0.1:9000",
            "--body-size=200000",
            "--no-keep-conn",
        ]);
        let segments = encode_request(&p, 1);
        assert!(segments.len() > 2);
        let records = decode_all(&concat(&segments));
        let Payload::BeginRequest(begin) = &records[0].payload else {
            panic!()
        };
        assert!(!begin.keep_conn());
        let body: Vec<u8> = records
            .iter()
            .filter_map(|r| match &r.payload {
                Payload::Stdin(b) => Some(b.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(body, p.body);
        assert_eq!(
            records.last().unwrap().payload,
            Payload::Stdin(Bytes::new())
        );
    }

    fn response(id: u16, stdout: &[&[u8]], status: ProtocolStatus) -> Vec<u8> {
        let mut out = BytesMut::new();
        for chunk in stdout {
            Record::new(id, Payload::Stdout(Bytes::copy_from_slice(chunk))).encode(&mut out);
        }
        Record::new(id, Payload::Stderr(Bytes::from("warn"))).encode(&mut out);
        Record::new(id, Payload::Stdout(Bytes::new())).encode(&mut out);
        let end = EndRequestBody {
            app_status: 0,
            protocol_status: status,
        };
        Record::new(id, Payload::EndRequest(end)).encode(&mut out);
        out.to_vec()
    }

    /// Feeds `input` split at `cut` and returns every completion.
    fn read(reader: &mut FcgiReader, input: &[u8], cut: usize) -> Result<Vec<Done>, Failure> {
        let mut buf = BytesMut::new();
        let mut done = Vec::new();
        for part in [&input[..cut], &input[cut..]] {
            buf.extend_from_slice(part);
            while let Some(d) = reader.poll(&mut buf)? {
                done.push(d);
            }
        }
        Ok(done)
    }

    #[test]
    fn interleaved_responses_every_split() {
        let mut input = response(
            2,
            &[b"Status: 201 Created\r\n\r\nb"],
            ProtocolStatus::RequestComplete,
        );
        let first = response(
            1,
            &[b"Content-Type: x\r", b"\n\r\nHello"],
            ProtocolStatus::RequestComplete,
        );
        input.splice(32..32, first); // after request 2's first record (8 + 24 bytes)
        for cut in 0..=input.len() {
            let mut r = FcgiReader::new(2, Some(Bytes::from("Hello")));
            r.start(1);
            r.start(2);
            let done = read(&mut r, &input, cut).unwrap();
            assert_eq!(done.len(), 2, "cut {cut}");
            assert_eq!(done[0].id, 1);
            assert_eq!(done[0].result.as_ref().unwrap().status, 200);
            assert_eq!(done[1].id, 2);
            // Request 2's body is "b", not "Hello".
            assert_eq!(done[1].result.as_ref().unwrap_err().kind, ErrorKind::Body);
        }
    }

    #[test]
    fn overloaded_and_bad_records() {
        let input = response(1, &[], ProtocolStatus::Overloaded);
        let mut r = FcgiReader::new(1, None);
        r.start(1);
        let done = read(&mut r, &input, 0).unwrap();
        let failure = done[0].result.as_ref().unwrap_err();
        assert_eq!(failure.kind, ErrorKind::Rejected);
        assert_eq!(failure.detail, "FCGI_OVERLOADED");
        // The same request again: id 1 is no longer in flight.
        assert_eq!(
            read(&mut r, &input, 3).unwrap_err().kind,
            ErrorKind::Protocol
        );
        let mut r = FcgiReader::new(1, None);
        r.start(1);
        let e = read(&mut r, b"HTTP/1.1 400 Bad Request\r\n\r\n", 5).unwrap_err();
        assert!(e.detail.contains("version 72"), "{e}");
        let e = read(
            &mut r,
            &response(9, &[b"\r\n"], ProtocolStatus::RequestComplete),
            0,
        );
        assert_eq!(e.unwrap_err().kind, ErrorKind::Protocol);
    }
}
