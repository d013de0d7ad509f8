//! The hyper service: one HTTP request in, one spawned app task, one response out.
//!
//! ```text
//!  hyper Request ─► env::request_env ─► Request{env, body} ─► spawn(serve_request ∥ Pump)
//!                                                                   │ QueueChannel
//!  hyper Response ◄── convert_head ◄── first Delivery(Head) ◄───────┘
//! ```
//!
//! Each request has its own delivery queue: hyper asks for one response at a time, so there is
//! nothing to demultiplex. Its tag is the request id, unique in the process.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gatehouse_channel_request::head::{reason_phrase, trim_ows};
use gatehouse_channel_request::{
    body_channel, delivery_queue, serve_request, BodyError, BodySender, Delivery, DeliveryReceiver,
    Hold, Offer, Output, Protocol, QueueChannel, Request, RequestBody, RequestInfo, Response,
    ResponseHead,
};
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, TRANSFER_ENCODING,
};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use tokio::sync::watch;

use crate::body::{AppTask, InFlight, RequestCtx, ResponseBody};
use crate::config::RESPONSE_HOLD_TIMEOUT;
use crate::conn::ConnShared;
use crate::driver::sleep_until;
use crate::env::request_env;
use crate::error::Error;
use gatehouse_channel_request::body_rate::BodyClock;

/// The service hyper calls for every request of one connection.
#[derive(Clone)]
pub(crate) struct Service {
    pub(crate) shared: Arc<ConnShared>,
}

type Answer = Result<http::Response<ResponseBody>, Error>;

impl hyper::service::Service<http::Request<Incoming>> for Service {
    type Response = http::Response<ResponseBody>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        if self.shared.is_closing() {
            // A response on this connection broke its Content-Length: serve nothing more, even
            // requests pipelined behind it (hyper then closes the connection).
            return Box::pin(std::future::ready(Err(Error::ResponseAborted)));
        }
        let in_flight = InFlight::start(self.shared.clone());
        Box::pin(answer(self.shared.clone(), req, in_flight))
    }
}

async fn answer(
    shared: Arc<ConnShared>,
    req: http::Request<Incoming>,
    in_flight: InFlight,
) -> Answer {
    let info = RequestInfo::new(Protocol::Http, shared.peer.clone());
    let (parts, incoming) = req.into_parts();
    if parts.method == Method::CONNECT {
        // Not a proxy: a 2xx would turn the connection into a tunnel nobody serves.
        tracing::debug!(peer = %info.peer, request_id = info.id, "CONNECT answered with 501");
        shared.set_unread(!incoming.is_end_stream());
        return Ok(fixed(501, true));
    }
    if let Some(coding) = unimplemented_coding(&parts.headers) {
        let error = Error::UnknownTransferCoding(coding);
        tracing::warn!(peer = %info.peer, request_id = info.id, %error, "request answered with 501");
        shared.set_unread(!incoming.is_end_stream());
        return Ok(fixed(501, true));
    }
    let content_length = announced_length(&parts.headers, &incoming);
    let env = match request_env(&parts, content_length, &shared.peer, shared.local) {
        Ok(env) => env,
        Err(error) => {
            tracing::warn!(peer = %info.peer, request_id = info.id, %error, "request rejected with 400");
            shared.set_unread(!incoming.is_end_stream());
            return Ok(fixed(400, true));
        }
    };
    let config = shared.server.config();
    let (body, pump, watch) = if incoming.is_end_stream() {
        (RequestBody::empty(), None, None)
    } else {
        let (sender, body) = body_channel(config.body_queue_chunks, content_length);
        shared.set_unread(true);
        let (progress, watch) = watch::channel(BodyState::default());
        let pump = Pump {
            incoming,
            sender,
            shared: shared.clone(),
            info: info.clone(),
            progress: BodyProgress(progress),
        };
        let expect_continue = parts
            .headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        (
            body,
            Some(pump),
            Some(BodyWatch {
                watch,
                expect_continue,
            }),
        )
    };
    let budget = config.response_budget;
    let (tx, rx) = delivery_queue();
    let token = shared.gone.child_token();
    let mut chan = QueueChannel::new(info.id, tx, config.response_budget, token.clone());
    if let Some(spool) = &config.response_spool {
        chan = chan.with_spool(spool.clone());
    }
    let request = Request {
        env,
        body,
        info: info.clone(),
    };
    let app = shared.server.app.clone();
    let task = tokio::spawn(async move {
        let serve = serve_request(&*app, request, Response::new(chan));
        match pump {
            Some(pump) => drop(tokio::join!(serve, pump.run())),
            None => serve.await,
        }
    });
    let ctx = RequestCtx {
        shared,
        info,
        in_flight: Some(in_flight),
        task: AppTask::new(task.abort_handle(), token),
    };
    respond(rx, ctx, parts.method == Method::HEAD, watch, budget).await
}

/// `CONTENT_LENGTH`: the length hyper framed the body with, when the client framed it with
/// `Content-Length` (with `Transfer-Encoding` the length is unknown, RFC 9112 section 6.3).
fn announced_length(headers: &http::HeaderMap, incoming: &Incoming) -> Option<u64> {
    if !headers.contains_key(CONTENT_LENGTH) || headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    incoming.size_hint().exact()
}

/// Waits for the app's head (held while the request body still arrives, see [`hold`]) and
/// turns it into hyper's response.
async fn respond(
    mut rx: DeliveryReceiver,
    mut ctx: RequestCtx,
    is_head: bool,
    body: Option<BodyWatch>,
    budget: usize,
) -> Answer {
    let first = loop {
        let Some(delivery) = rx.recv().await else {
            break None;
        };
        match delivery.output {
            Output::Head(_) => break Some(delivery),
            // Not forwarded: see the crate docs on 1xx responses.
            Output::Informational(_) | Output::Stderr(_) => {}
            // The app was cancelled before its head (serve_request answers every other case).
            Output::Body(_) | Output::Finish | Output::Abort => break None,
        }
    };
    let Some(first) = first else {
        ctx.task.disarm();
        return Err(Error::ResponseAborted);
    };
    let mut early = match body {
        Some(body) => hold(first, &mut rx, body, budget, &ctx.info).await,
        None => VecDeque::from([first]),
    };
    let Some(Output::Head(head)) = early.pop_front().map(|d| d.output) else {
        ctx.task.disarm(); // Unreachable: the hold gives back the head first.
        return Err(Error::ResponseAborted);
    };
    match convert_head(&head) {
        Ok((parts, announced)) => {
            let status = head.status();
            let enforce = announced.is_some() && !is_head && status != 204 && status != 304;
            Ok(http::Response::from_parts(
                parts,
                ResponseBody::stream(rx, early, announced, enforce, ctx),
            ))
        }
        Err(error) => {
            tracing::error!(peer = %ctx.info.peer, request_id = ctx.info.id, %error, "answering 500 instead");
            ctx.task.release();
            Ok(fixed(500, false))
        }
    }
}

/// How far the request body got, for the response hold: the pump updates it.
#[derive(Debug, Clone, Copy, Default)]
struct BodyState {
    /// The body is being read (the app asked for it: `100 Continue` went out if expected).
    soliciting: bool,
    /// The body ended, failed, or will not be read any more.
    complete: bool,
}

/// The pump's side of [`BodyState`]; dropping it (the pump is done) marks the body complete.
struct BodyProgress(watch::Sender<BodyState>);

impl BodyProgress {
    fn soliciting(&self) {
        self.0.send_modify(|s| s.soliciting = true);
    }

    /// Body bytes were read: wakes the hold, which takes it as progress.
    fn progressed(&self) {
        self.0.send_modify(|_| {});
    }
}

impl Drop for BodyProgress {
    fn drop(&mut self) {
        self.0.send_modify(|s| s.complete = true);
    }
}

/// The hold's side of [`BodyState`].
struct BodyWatch {
    watch: watch::Receiver<BodyState>,
    /// The client sent `Expect: 100-continue`: until the app asks for the body, the client is
    /// waiting for us and an early answer is what it asked for, so nothing is held.
    expect_continue: bool,
}

impl BodyWatch {
    /// Whether body bytes may still be coming that the client (or the proxy in front) would stop
    /// sending once it has our head.
    fn open(&self) -> bool {
        let s = *self.watch.borrow();
        !s.complete && (s.soliciting || !self.expect_continue)
    }
}

/// Holds the response (the `head` delivery, then what follows on `rx`) while the request body
/// is still arriving: a proxy such as nginx `proxy_pass` stops sending the request body once it
/// has a response head, and an app that answered before reading its whole body would wait for
/// the rest forever. Returns the outputs to send, the head first, once the body is complete,
/// the app ended its response, the held bytes reached `budget`, or the body made no progress
/// for [`RESPONSE_HOLD_TIMEOUT`].
async fn hold(
    head: Delivery,
    rx: &mut DeliveryReceiver,
    mut body: BodyWatch,
    budget: usize,
    info: &RequestInfo,
) -> VecDeque<Delivery> {
    let mut hold = Hold::default();
    let mut end = None;
    let now = Instant::now();
    match hold.offer(head, body.open().then_some(now), budget) {
        Offer::Started | Offer::Kept => loop {
            let deadline = hold
                .deadline(RESPONSE_HOLD_TIMEOUT)
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                delivery = rx.recv() => {
                    // None: the app is gone; the body stream reports the abort.
                    let Some(delivery) = delivery else { break };
                    match hold.offer(delivery, body.open().then_some(Instant::now()), budget) {
                        Offer::Started | Offer::Kept => {}
                        Offer::Full => break,
                        Offer::Pass(d)
                            if matches!(d.output, Output::Informational(_) | Output::Stderr(_)) => {}
                        Offer::Pass(d) => {
                            end = Some(d);
                            break;
                        }
                    }
                }
                changed = body.watch.changed() => {
                    if changed.is_err() || !body.open() {
                        break;
                    }
                    hold.input_progress(Instant::now());
                }
                () = sleep_until(deadline) => {
                    tracing::debug!(peer = %info.peer, request_id = info.id, timeout = ?RESPONSE_HOLD_TIMEOUT, "no request body input: the held response goes out");
                    break;
                }
            }
        },
        Offer::Full => {}
        Offer::Pass(head) => return VecDeque::from([head]),
    }
    let mut out = VecDeque::from(hold.release().unwrap_or_default());
    out.extend(end);
    out
}

/// The app's head as hyper's, and its `Content-Length`. `Transfer-Encoding` is dropped: the
/// framing is hyper's (chunked when there is no `Content-Length`).
fn convert_head(head: &ResponseHead) -> Result<(http::response::Parts, Option<u64>), Error> {
    let bad = |why: String| Error::BadResponseHead(why);
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = StatusCode::from_u16(head.status()).map_err(|e| bad(e.to_string()))?;
    if head.reason() != reason_phrase(head.status()).as_bytes() {
        let reason =
            hyper::ext::ReasonPhrase::try_from(head.reason()).map_err(|e| bad(e.to_string()))?;
        parts.extensions.insert(reason);
    }
    let mut announced = None;
    for (name, value) in head.headers() {
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let len = gatehouse_channel_request::env::parse_decimal(trim_ows(value))
                .ok_or_else(|| bad(format!("content-length \"{}\"", value.escape_ascii())))?;
            match announced {
                Some(prev) if prev != len => {
                    return Err(bad("two different content-length values".into()))
                }
                Some(_) => continue,
                None => announced = Some(len),
            }
        }
        let n = HeaderName::from_bytes(name).map_err(|e| bad(e.to_string()))?;
        let v = HeaderValue::from_bytes(value).map_err(|e| bad(e.to_string()))?;
        parts.headers.append(n, v);
    }
    Ok((parts, announced))
}

/// A whole response made here: `status`, its reason as a text/plain body, and `Connection:
/// close` when the connection must not be reused.
/// The first transfer coding other than `chunked` (RFC 9112 section 6.1: a server answers `501`
/// to a coding it does not implement, as nginx does). hyper decodes `chunked` alone: a body sent
/// `gzip, chunked` would reach the app still compressed, with nothing saying so.
fn unimplemented_coding(headers: &http::HeaderMap) -> Option<Vec<u8>> {
    headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(trim_ows)
        .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"chunked"))
        .map(<[u8]>::to_vec)
}

pub(crate) fn fixed(status: u16, close: bool) -> http::Response<ResponseBody> {
    let body = Bytes::from(format!("{}\n", reason_phrase(status)));
    let mut resp = http::Response::new(());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp.map(|()| ResponseBody::fixed(body))
}

/// Moves the request body from hyper to the app's queue, one chunk per free slot: while the
/// queue is full hyper's body is not polled, so hyper stops reading the socket.
///
/// `Expect: 100-continue`: hyper sends `100 Continue` when the body is first polled, so the pump
/// polls only once the app first asks for body bytes ([`BodySender::wanted`]); an app that answers
/// without reading never solicits the body (RFC 9110 section 10.1.1).
struct Pump {
    incoming: Incoming,
    sender: BodySender,
    shared: Arc<ConnShared>,
    info: RequestInfo,
    progress: BodyProgress,
}

impl Pump {
    async fn run(mut self) {
        let idle = self.shared.server.config().idle_timeout;
        let mut clock = self
            .shared
            .server
            .config()
            .body_min_rate
            .map(BodyClock::new);
        if !self.sender.wanted().await {
            // The app dropped its body unread: never solicit it.
            return;
        }
        self.progress.soliciting();
        loop {
            if std::future::poll_fn(|cx| self.sender.poll_reserve(cx))
                .await
                .is_err()
            {
                // The app dropped its body: hyper reads what is buffered, or closes after the
                // response (with a lingering close).
                return;
            }
            let rate_left = clock.as_ref().map(BodyClock::time_left);
            let wait = rate_left.map_or(idle, |left| left.min(idle));
            let started = tokio::time::Instant::now();
            let frame = tokio::time::timeout(wait, self.incoming.frame()).await;
            let waited = started.elapsed();
            let frame = match frame {
                Err(_elapsed) if rate_left.is_some_and(|left| left < idle) => {
                    return self.too_slow(clock.as_ref());
                }
                Err(_elapsed) => return self.stalled(idle),
                Ok(None) => {
                    self.shared.set_unread(false);
                    return self.sender.finish();
                }
                Ok(Some(Err(e))) => return self.broken(&e),
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers are dropped: CGI has no place for them.
            if let Ok(data) = frame.into_data() {
                if let Some(clock) = clock.as_mut() {
                    clock.record(waited, data.len());
                }
                if !data.is_empty() && self.sender.send_item(data).is_err() {
                    return;
                }
                self.progress.progressed();
            } else if let Some(clock) = clock.as_mut() {
                clock.record(waited, 0);
            }
        }
    }

    fn stalled(self, idle: std::time::Duration) {
        let error = Error::IdleTimeout {
            after: idle,
            during: "the request body",
        };
        tracing::warn!(peer = %self.info.peer, request_id = self.info.id, %error, "closing the connection");
        self.shared.kill.cancel();
        self.sender.fail(BodyError::Aborted);
    }

    /// The body came slower than `--http-body-min-rate` allows: like a stall, the connection
    /// closes and the app's body fails.
    fn too_slow(self, clock: Option<&BodyClock>) {
        let (received, limit) = clock.map_or((0, None), |c| (c.received(), Some(c.limit())));
        tracing::warn!(
            peer = %self.info.peer,
            request_id = self.info.id,
            received,
            grace = ?limit.map(|l| l.grace),
            min_rate = limit.map_or(0, |l| l.rate),
            "request body slower than the minimum rate (--http-body-timeout, --http-body-min-rate): closing the connection"
        );
        self.shared.kill.cancel();
        self.sender.fail(BodyError::Aborted);
    }

    fn broken(self, e: &hyper::Error) {
        if e.is_incomplete_message() || e.is_canceled() || e.is_closed() || is_connection_lost(e) {
            tracing::debug!(peer = %self.info.peer, request_id = self.info.id, error = %e, "client went away during the request body");
            return self.sender.fail(BodyError::Aborted);
        }
        let error = Error::BadBody(e.to_string());
        tracing::warn!(peer = %self.info.peer, request_id = self.info.id, %error, "request body rejected");
        self.sender.fail(BodyError::Malformed(e.to_string()));
    }
}

/// Whether a body read failed because the connection did: the client closed it before the
/// announced length (`UnexpectedEof`) or reset it, rather than sending bad framing.
fn is_connection_lost(e: &hyper::Error) -> bool {
    use std::io::ErrorKind;
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
            );
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_conversion() {
        let head = ResponseHead::from_status_line(b"299 Custom Thing")
            .unwrap()
            .with_header("X-A", "1")
            .unwrap()
            .with_header("X-A", "2")
            .unwrap()
            .with_header("Content-Length", " 5 ")
            .unwrap()
            .with_header("Transfer-Encoding", "chunked")
            .unwrap();
        let (parts, announced) = convert_head(&head).unwrap();
        assert_eq!(parts.status.as_u16(), 299);
        assert_eq!(announced, Some(5));
        assert_eq!(parts.headers.get_all("x-a").iter().count(), 2);
        assert!(parts.headers.get("transfer-encoding").is_none());
        let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>().unwrap();
        assert_eq!(reason.as_bytes(), b"Custom Thing");
        let plain = convert_head(&ResponseHead::new(404)).unwrap().0;
        assert!(plain.extensions.get::<hyper::ext::ReasonPhrase>().is_none());
    }

    #[test]
    fn bad_content_lengths() {
        let head = ResponseHead::new(200)
            .with_header("Content-Length", "12x")
            .unwrap();
        assert!(matches!(
            convert_head(&head),
            Err(Error::BadResponseHead(_))
        ));
        let head = ResponseHead::new(200)
            .with_header("Content-Length", "1")
            .unwrap()
            .with_header("Content-Length", "2")
            .unwrap();
        assert!(convert_head(&head).is_err());
        let head = ResponseHead::new(200)
            .with_header("Content-Length", "2")
            .unwrap()
            .with_header("content-length", "2")
            .unwrap();
        let (parts, len) = convert_head(&head).unwrap();
        assert_eq!(
            (parts.headers.get_all("content-length").iter().count(), len),
            (1, Some(2))
        );
    }
}
