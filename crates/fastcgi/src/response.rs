//! The output side: [`OutQueue`], the bytes waiting for the socket, and the framing of app
//! outputs as `FCGI_STDOUT` and `FCGI_STDERR` records (section 5.3) and `FCGI_END_REQUEST`
//! (section 5.5).
//!
//! ```text
//!  Head, small Body ──copy──► tail: BytesMut  [hdr|Status: 200..|hdr|small body...]
//!  large Body ──────no copy─► segments: [hdr] [Bytes from the app (holds its Delivery)] ...
//!                                   └──────────── write_vectored ────────────┘
//! ```
//!
//! Small outputs of a request are copied into one growing `FCGI_STDOUT` record while it is
//! still unwritten (coalescing: a head and a short body leave in one record). Large bodies are
//! never copied: each 65535-byte piece is an `IoSlice` over the app's own `Bytes`, and the
//! [`Delivery`] stays in the queue until its last byte is written, which is what returns the
//! request's response budget (backpressure).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use gatehouse_channel_request::cgi_head::cgi_head_len;
use gatehouse_channel_request::{write_cgi_head, Delivery, ResponseHead};

use crate::record::{
    put_header, EndRequestBody, Payload, ProtocolStatus, Record, RecordType, FCGI_HEADER_LEN,
    FCGI_MAX_CONTENT_LEN,
};

/// Body chunks up to this size are copied into the coalescing buffer; larger ones are written
/// from the app's buffer.
pub const SMALL_WRITE: usize = 8 * 1024;

/// At most this many slices go into one vectored write.
pub const MAX_IOVECS: usize = 64;

/// The coalescing buffer's first size: a small response (head, body, the empty `FCGI_STDOUT`
/// and `FCGI_END_REQUEST`) fits in it without growing.
const TAIL_FIRST: usize = 512;

/// `appStatus` of a request that completed.
pub const APP_STATUS_OK: u32 = 0;
/// `appStatus` of a request that failed: aborted, cancelled, or refused with an error page
/// (like a CGI program's non-zero exit status).
pub const APP_STATUS_FAILED: u32 = 1;

/// Bytes waiting to be written to the socket, in order.
#[derive(Debug, Default)]
pub struct OutQueue {
    segments: VecDeque<Segment>,
    tail: BytesMut,
    len: usize,
    /// The last record in `tail`, if it is an `FCGI_STDOUT` record that may still grow.
    open_stdout: Option<OpenRecord>,
}

#[derive(Debug)]
struct Segment {
    bytes: Bytes,
    /// Keeps the app's response budget taken until the bytes are written.
    _hold: Option<Delivery>,
}

#[derive(Debug, Clone, Copy)]
struct OpenRecord {
    request_id: u16,
    /// Offset of the record's header in `tail`.
    at: usize,
    len: usize,
}

impl OutQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `dst` with the next slices to write; returns how many were filled.
    pub fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let tail = (!self.tail.is_empty()).then_some(&self.tail[..]);
        let slices = self.segments.iter().map(|s| &s.bytes[..]).chain(tail);
        for (slot, bytes) in dst.iter_mut().zip(slices) {
            *slot = IoSlice::new(bytes);
            n += 1;
        }
        n
    }

    /// Drops `n` written bytes from the front, releasing the budgets they held.
    pub fn advance(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.segments.front_mut() else {
                break;
            };
            if n < front.bytes.len() {
                front.bytes.advance(n);
                return;
            }
            n -= front.bytes.len();
            self.segments.pop_front();
        }
        if n > 0 {
            self.tail.advance(n.min(self.tail.len()));
            self.open_stdout = None;
        }
    }

    /// Makes the coalescing buffer's first allocation one of [`TAIL_FIRST`] bytes rather
    /// than a series of small ones.
    fn start_tail(&mut self) {
        if self.tail.capacity() == 0 {
            self.tail.reserve(TAIL_FIRST);
        }
    }

    /// Appends a whole record (management answers, `FCGI_END_REQUEST`).
    pub(crate) fn put_record(&mut self, record: &Record) {
        self.start_tail();
        self.open_stdout = None;
        let before = self.tail.len();
        record.encode(&mut self.tail);
        self.len += self.tail.len() - before;
    }

    /// Appends `FCGI_STDOUT` content by copying, growing the open record of the same request.
    pub(crate) fn put_stdout_copy(&mut self, request_id: u16, mut data: &[u8]) {
        while !data.is_empty() {
            let open = match self.open_stdout {
                Some(o) if o.request_id == request_id && o.len < FCGI_MAX_CONTENT_LEN => o,
                _ => self.open_record(request_id),
            };
            let take = data.len().min(FCGI_MAX_CONTENT_LEN - open.len);
            self.tail.put_slice(&data[..take]);
            self.grow_open(open, take);
            data = &data[take..];
        }
    }

    fn open_record(&mut self, request_id: u16) -> OpenRecord {
        self.start_tail();
        let at = self.tail.len();
        put_header(&mut self.tail, RecordType::Stdout, request_id, 0);
        self.len += FCGI_HEADER_LEN;
        OpenRecord {
            request_id,
            at,
            len: 0,
        }
    }

    /// Appends `FCGI_STDOUT` records over `body` without copying it; `hold` is released when
    /// the last byte is written.
    pub(crate) fn put_stdout_shared(&mut self, request_id: u16, body: Bytes, hold: Delivery) {
        self.put_shared(RecordType::Stdout, request_id, body, hold);
    }

    /// Appends records of `kind` over `body` without copying it, each at most
    /// [`FCGI_MAX_CONTENT_LEN`] long; `hold` is released when the last byte is written.
    fn put_shared(&mut self, kind: RecordType, request_id: u16, mut body: Bytes, hold: Delivery) {
        let mut hold = Some(hold);
        while !body.is_empty() {
            let piece = body.split_to(body.len().min(FCGI_MAX_CONTENT_LEN));
            self.open_stdout = None;
            put_header(&mut self.tail, kind, request_id, piece.len() as u16);
            self.len += FCGI_HEADER_LEN + piece.len();
            self.segments.push_back(Segment {
                bytes: self.tail.split().freeze(),
                _hold: None,
            });
            let last = body.is_empty();
            self.segments.push_back(Segment {
                bytes: piece,
                _hold: if last { hold.take() } else { None },
            });
        }
    }

    /// Appends an app output body chunk: copied when small, shared when large.
    pub(crate) fn put_body(&mut self, request_id: u16, body: Bytes, delivery: Delivery) {
        if body.len() <= SMALL_WRITE {
            self.put_stdout_copy(request_id, &body);
            drop(delivery);
        } else {
            self.put_stdout_shared(request_id, body, delivery);
        }
    }

    /// Appends the app's diagnostic output as `FCGI_STDERR` records (section 5.3: "FCGI_STDERR
    /// is a stream record for sending arbitrary application-level error data to the Web
    /// server"), each at most [`FCGI_MAX_CONTENT_LEN`] long: copied when small, shared when
    /// large, like a body. It ends the open `FCGI_STDOUT` record (a later body chunk starts a
    /// new one), so the two streams keep the order the app sent them in.
    pub(crate) fn put_stderr(&mut self, request_id: u16, data: Bytes, delivery: Delivery) {
        if data.len() > SMALL_WRITE {
            return self.put_shared(RecordType::Stderr, request_id, data, delivery);
        }
        self.start_tail();
        self.open_stdout = None;
        let before = self.tail.len();
        put_header(
            &mut self.tail,
            RecordType::Stderr,
            request_id,
            data.len() as u16,
        );
        self.tail.put_slice(&data);
        self.len += self.tail.len() - before;
        drop(delivery);
    }

    /// Appends a response head in CGI form (RFC 3875 section 6), written straight into the
    /// open `FCGI_STDOUT` record when it fits.
    pub(crate) fn put_head(&mut self, request_id: u16, head: &ResponseHead) {
        let len = cgi_head_len(head);
        let open = match self.open_stdout {
            Some(o) if o.request_id == request_id && o.len + len <= FCGI_MAX_CONTENT_LEN => o,
            _ if len <= FCGI_MAX_CONTENT_LEN => self.open_record(request_id),
            _ => {
                // A head of more than 64 KiB spans several records.
                let mut scratch = BytesMut::with_capacity(len);
                write_cgi_head(head, &mut scratch);
                return self.put_stdout_copy(request_id, &scratch);
            }
        };
        write_cgi_head(head, &mut self.tail);
        self.grow_open(open, len);
    }

    /// Records `added` more content bytes in the open record `open`, patching its header.
    fn grow_open(&mut self, open: OpenRecord, added: usize) {
        let len = open.len + added;
        let len_bytes = (len as u16).to_be_bytes();
        self.tail[open.at + 4..open.at + 6].copy_from_slice(&len_bytes);
        self.open_stdout = Some(OpenRecord { len, ..open });
        self.len += added;
    }

    /// Ends a request: the empty `FCGI_STDOUT` that closes the stream, the empty
    /// `FCGI_STDERR` that closes the error stream when the app `sent_stderr` (section 5.3:
    /// "a stream ... is terminated by sending a record with contentLength = 0"; the section
    /// 6.2 example sends none when there was no error data), then `FCGI_END_REQUEST`.
    pub(crate) fn put_end(
        &mut self,
        request_id: u16,
        sent_stderr: bool,
        app_status: u32,
        status: ProtocolStatus,
    ) {
        self.put_record(&Record::new(request_id, Payload::Stdout(Bytes::new())));
        if sent_stderr {
            self.put_record(&Record::new(request_id, Payload::Stderr(Bytes::new())));
        }
        self.put_end_request(request_id, app_status, status);
    }

    /// Appends `FCGI_END_REQUEST` alone.
    pub(crate) fn put_end_request(
        &mut self,
        request_id: u16,
        app_status: u32,
        status: ProtocolStatus,
    ) {
        let end = EndRequestBody {
            app_status,
            protocol_status: status,
        };
        self.put_record(&Record::new(request_id, Payload::EndRequest(end)));
    }

    /// Answers a request the app never saw: a short text response with `status` (when given),
    /// then the end of the request with `protocol_status`.
    pub(crate) fn put_refusal(
        &mut self,
        request_id: u16,
        status: Option<u16>,
        protocol_status: ProtocolStatus,
    ) {
        let Some(status) = status else {
            // A bare refusal (FCGI_UNKNOWN_ROLE): no stream was started.
            self.put_end_request(request_id, APP_STATUS_OK, protocol_status);
            return;
        };
        {
            let reason = gatehouse_channel_request::head::reason_phrase(status);
            let body = format!("{reason}\n");
            let head = ResponseHead::new(status)
                .with_header("Content-Type", "text/plain")
                .and_then(|h| h.with_header("Content-Length", body.len().to_string()));
            if let Ok(head) = head {
                self.put_head(request_id, &head);
                self.put_stdout_copy(request_id, body.as_bytes());
            }
        }
        let app_status = match protocol_status {
            ProtocolStatus::RequestComplete => APP_STATUS_FAILED,
            _ => APP_STATUS_OK,
        };
        self.put_end(request_id, false, app_status, protocol_status);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use gatehouse_channel_request::{
        delivery_queue, CancellationToken, Output, QueueChannel, Response,
    };
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::codec::RecordCodec;

    /// Writes everything through `chunks_vectored`/`advance` in writes of at most `step` bytes.
    fn drain(q: &mut OutQueue, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while !q.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let n = q.chunks_vectored(&mut slices);
            let mut budget = step;
            let mut wrote = 0;
            for s in &slices[..n] {
                let take = s.len().min(budget);
                out.extend_from_slice(&s[..take]);
                budget -= take;
                wrote += take;
                if budget == 0 {
                    break;
                }
            }
            q.advance(wrote);
        }
        out
    }

    fn records(bytes: &[u8]) -> Vec<Record> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(r) = RecordCodec::new().decode(&mut buf).unwrap() {
            out.push(r);
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn small_writes_coalesce_into_one_record() {
        let mut q = OutQueue::new();
        q.put_head(1, &ResponseHead::new(200));
        q.put_stdout_copy(1, b"hello ");
        q.put_stdout_copy(1, b"world");
        q.put_end(1, false, APP_STATUS_OK, ProtocolStatus::RequestComplete);
        let recs = records(&drain(&mut q, usize::MAX));
        assert_eq!(recs.len(), 3);
        assert_eq!(
            recs[0].payload,
            Payload::Stdout(Bytes::from("Status: 200 OK\r\n\r\nhello world"))
        );
        assert_eq!(recs[1].payload, Payload::Stdout(Bytes::new()));
        assert!(matches!(recs[2].payload, Payload::EndRequest(e) if e.app_status == 0));
    }

    #[test]
    fn other_requests_and_partial_writes_close_the_open_record() {
        let mut q = OutQueue::new();
        q.put_stdout_copy(1, b"a");
        q.put_stdout_copy(2, b"b");
        q.put_stdout_copy(1, b"c");
        let first = drain(&mut q, 3);
        q.put_stdout_copy(1, b"d");
        let mut all = first;
        all.extend(drain(&mut q, 5));
        let recs = records(&all);
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.request_id, r.payload.clone()))
            .collect();
        let want: Vec<_> = [(1, "a"), (2, "b"), (1, "c"), (1, "d")]
            .iter()
            .map(|&(id, s)| (id, Payload::Stdout(Bytes::from(s))))
            .collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn large_bodies_split_at_65535_without_copy_and_hold_budget() {
        let (tx, mut rx) = delivery_queue();
        let big = Bytes::from(vec![7u8; 150_000]);
        let mut resp = Response::new(QueueChannel::new(9, tx, 200_000, CancellationToken::new()));
        resp.send_head(ResponseHead::new(200)).await.unwrap();
        resp.write(big.clone()).await.unwrap();
        let _head = rx.recv().await.unwrap();
        let delivery = rx.recv().await.unwrap();
        let Output::Body(body) = &delivery.output else {
            panic!()
        };
        let body = body.clone();
        let mut q = OutQueue::new();
        q.put_stdout_copy(1, b"x");
        q.put_body(1, body, delivery);
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = q.chunks_vectored(&mut slices);
        // tail with "x" record + header, then the pieces interleaved with their headers.
        assert_eq!(n, 6);
        assert_eq!(
            slices[1].as_ptr(),
            big.as_ptr(),
            "first piece is the app's buffer"
        );
        // While bytes are queued the budget is held: a second write must wait.
        let mut second = Box::pin(resp.write(Bytes::from(vec![1u8; 100_000])));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(second.as_mut().poll(&mut cx).is_pending());
        let bytes = drain(&mut q, 10_000);
        assert!(second.as_mut().poll(&mut cx).is_ready());
        let recs = records(&bytes);
        let lens: Vec<_> = recs.iter().map(|r| r.payload.content_len()).collect();
        assert_eq!(lens, vec![1, 65535, 65535, 150_000 - 2 * 65535]);
    }

    #[test]
    fn heads_larger_than_a_record_span_records() {
        let mut q = OutQueue::new();
        q.put_stdout_copy(1, b"x"); // an open record of another request's output
        let head = ResponseHead::new(200)
            .with_header("X-Big", "v".repeat(70_000))
            .unwrap();
        q.put_head(2, &head);
        q.put_head(3, &ResponseHead::new(204));
        let recs = records(&drain(&mut q, 1000));
        let mut by_id = std::collections::BTreeMap::<u16, Vec<u8>>::new();
        for r in &recs {
            let Payload::Stdout(b) = &r.payload else {
                panic!()
            };
            assert!(b.len() <= FCGI_MAX_CONTENT_LEN);
            by_id.entry(r.request_id).or_default().extend_from_slice(b);
        }
        let mut want = BytesMut::new();
        write_cgi_head(&head, &mut want);
        assert_eq!(by_id[&2], want.to_vec());
        assert_eq!(by_id[&3], b"Status: 204 No Content\r\n\r\n".to_vec());
        assert_eq!(recs.len(), 4);
    }

    /// The deliveries of `chunks` sent as stderr of request tag 1.
    async fn stderr_deliveries(chunks: &[Bytes]) -> Vec<Delivery> {
        let (tx, mut rx) = delivery_queue();
        let chan = QueueChannel::new(1, tx, 1 << 20, CancellationToken::new()).with_stderr();
        let resp = Response::new(chan);
        let stderr = resp.stderr().unwrap();
        let mut out = Vec::new();
        for c in chunks {
            stderr.send(c.clone()).await.unwrap();
            out.push(rx.recv().await.unwrap());
        }
        out
    }

    fn put_stderr_delivery(q: &mut OutQueue, id: u16, d: Delivery) {
        let Output::Stderr(data) = &d.output else {
            panic!("not stderr: {d:?}")
        };
        let data = data.clone();
        q.put_stderr(id, data, d);
    }

    #[tokio::test]
    async fn stderr_records_interleave_and_close_before_end_request() {
        let mut d = stderr_deliveries(&[Bytes::from("oops\n"), Bytes::from("again")])
            .await
            .into_iter();
        let mut q = OutQueue::new();
        q.put_head(1, &ResponseHead::new(200));
        q.put_stdout_copy(1, b"a");
        put_stderr_delivery(&mut q, 1, d.next().unwrap());
        q.put_stdout_copy(1, b"b");
        put_stderr_delivery(&mut q, 1, d.next().unwrap());
        q.put_end(1, true, APP_STATUS_OK, ProtocolStatus::RequestComplete);
        let bytes = drain(&mut q, 3);
        let got: Vec<_> = records(&bytes)
            .into_iter()
            .map(|r| (r.request_id, r.payload))
            .collect();
        let end = EndRequestBody {
            app_status: APP_STATUS_OK,
            protocol_status: ProtocolStatus::RequestComplete,
        };
        let want = vec![
            (1, Payload::Stdout(Bytes::from("Status: 200 OK\r\n\r\na"))),
            (1, Payload::Stderr(Bytes::from("oops\n"))),
            (1, Payload::Stdout(Bytes::from("b"))),
            (1, Payload::Stderr(Bytes::from("again"))),
            (1, Payload::Stdout(Bytes::new())),
            (1, Payload::Stderr(Bytes::new())),
            (1, Payload::EndRequest(end)),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn no_stderr_no_empty_stderr_record() {
        let mut q = OutQueue::new();
        q.put_end(4, false, APP_STATUS_FAILED, ProtocolStatus::RequestComplete);
        let recs = records(&drain(&mut q, 7));
        let types: Vec<_> = recs.iter().map(|r| r.payload.record_type()).collect();
        assert_eq!(types, [RecordType::Stdout, RecordType::EndRequest]);
    }

    #[tokio::test]
    async fn large_stderr_splits_at_65535_without_copy() {
        let big = Bytes::from(vec![b'e'; 150_000]);
        let d = stderr_deliveries(std::slice::from_ref(&big)).await;
        let mut q = OutQueue::new();
        put_stderr_delivery(&mut q, 3, d.into_iter().next().unwrap());
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = q.chunks_vectored(&mut slices);
        assert_eq!(n, 6, "three headers, three pieces of the app's buffer");
        assert_eq!(slices[1].as_ptr(), big.as_ptr());
        q.put_end(3, true, APP_STATUS_OK, ProtocolStatus::RequestComplete);
        let recs = records(&drain(&mut q, 4096));
        let got: Vec<_> = recs
            .iter()
            .map(|r| (r.payload.record_type(), r.payload.content_len()))
            .collect();
        let want = [
            (RecordType::Stderr, 65535),
            (RecordType::Stderr, 65535),
            (RecordType::Stderr, 150_000 - 2 * 65535),
            (RecordType::Stdout, 0),
            (RecordType::Stderr, 0),
            (RecordType::EndRequest, 8),
        ];
        assert_eq!(got, want);
        let mut all = Vec::new();
        for r in &recs[..3] {
            let Payload::Stderr(b) = &r.payload else {
                panic!()
            };
            all.extend_from_slice(b);
        }
        assert_eq!(all, big);
    }

    #[test]
    fn refusals() {
        let mut q = OutQueue::new();
        q.put_refusal(3, Some(503), ProtocolStatus::Overloaded);
        q.put_refusal(4, None, ProtocolStatus::UnknownRole);
        let recs = records(&drain(&mut q, usize::MAX));
        let Payload::Stdout(head) = &recs[0].payload else {
            panic!()
        };
        assert!(head.starts_with(b"Status: 503 Service Unavailable\r\n"));
        assert!(head.ends_with(b"\r\n\r\nService Unavailable\n"));
        let ends: Vec<_> = recs
            .iter()
            .filter_map(|r| match r.payload {
                Payload::EndRequest(e) => Some((r.request_id, e.protocol_status)),
                _ => None,
            })
            .collect();
        assert_eq!(
            ends,
            vec![
                (3, ProtocolStatus::Overloaded),
                (4, ProtocolStatus::UnknownRole)
            ]
        );
    }
}
