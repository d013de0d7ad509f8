//! Watching requests go by: what the access log, the metrics and the status page learn about each
//! request, whatever front end carried it and whatever app answered it.
//!
//! [`serve_request`](crate::serve_request) is the one place every request passes through. When
//! observers are [`install`]ed, it builds a [`RequestRecord`] from the request head before the app
//! runs, tells every observer that the request [started](Observer::started), and when the
//! request is over — answered, aborted, or cancelled because the client went away (its future
//! dropped) — tells them how it [ended](Observer::ended) with an [`Outcome`]. With none
//! installed (the default), `serve_request` does nothing more than before.
//!
//! Observers run on the I/O threads, inside the request's task: they must not block (hand slow
//! work, like writing a file, to a thread of their own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};

use crate::app::{Peer, RequestInfo};
use crate::env::{
    Env, PATH_INFO, REMOTE_ADDR, REQUEST_METHOD, REQUEST_URI, SCRIPT_NAME, SERVER_PROTOCOL,
};

/// What is known of a request when it starts: its transport facts and the parts of its head that
/// logs show. Values are the front end's bytes as they came (not validated, not escaped: a log
/// writer escapes what it writes).
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Protocol, transport peer and request id.
    pub info: RequestInfo,
    /// When the request reached the app side (monotonic).
    pub started: Instant,
    /// The same instant on the wall clock.
    pub started_at: SystemTime,
    /// `REQUEST_METHOD`.
    pub method: Bytes,
    /// The request target: `REQUEST_URI` when the front end gave one, else `SCRIPT_NAME` +
    /// `PATH_INFO` (+ `?QUERY_STRING`).
    pub uri: Bytes,
    /// `SERVER_PROTOCOL` (`HTTP/1.1`), empty when absent.
    pub server_protocol: Bytes,
    /// The client's address: `REMOTE_ADDR` from the front server, else the transport peer.
    pub remote_addr: Bytes,
    /// `REMOTE_USER`, when the front server authenticated the client.
    pub remote_user: Option<Bytes>,
    /// The `Referer` header.
    pub referer: Option<Bytes>,
    /// The `User-Agent` header.
    pub user_agent: Option<Bytes>,
    /// `Host` header or `SERVER_NAME`.
    pub host: Option<Bytes>,
}

impl RequestRecord {
    /// The record of a request about to be served.
    pub fn new(env: &Env, info: &RequestInfo) -> Self {
        let uri = match env.get(REQUEST_URI) {
            Some(uri) if !uri.is_empty() => uri.clone(),
            _ => {
                let query = env.query();
                let mut uri = BytesMut::new();
                uri.extend_from_slice(env.get_or_empty(SCRIPT_NAME));
                uri.extend_from_slice(env.get_or_empty(PATH_INFO));
                if !query.is_empty() {
                    uri.extend_from_slice(b"?");
                    uri.extend_from_slice(query);
                }
                uri.freeze()
            }
        };
        let remote_addr = match env.get(REMOTE_ADDR) {
            Some(addr) if !addr.is_empty() => addr.clone(),
            _ => match &info.peer {
                Peer::Tcp(addr) => Bytes::from(addr.ip().to_string()),
                other => Bytes::from(other.to_string()),
            },
        };
        Self {
            info: info.clone(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            method: env.get(REQUEST_METHOD).cloned().unwrap_or_default(),
            uri,
            server_protocol: env.get(SERVER_PROTOCOL).cloned().unwrap_or_default(),
            remote_addr,
            remote_user: env.get("REMOTE_USER").filter(|v| !v.is_empty()).cloned(),
            referer: env.get("HTTP_REFERER").cloned(),
            user_agent: env.get("HTTP_USER_AGENT").cloned(),
            host: env
                .get("HTTP_HOST")
                .or_else(|| env.get("SERVER_NAME"))
                .cloned(),
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The response was complete.
    Finished,
    /// The response was aborted: the client learnt it is incomplete (an app error after the
    /// head, a response the front end could not deliver whole).
    Aborted,
    /// The request was cancelled before its response was complete: the client went away (or
    /// the front server aborted it: FastCGI `FCGI_ABORT_REQUEST`), or the daemon stopped it.
    Cancelled,
}

/// What the observers learn when a request is over.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The status sent, `0` when no head was sent (see [`Outcome::log_status`]).
    pub status: u16,
    /// Body bytes the app wrote and the front end accepted (none for `HEAD`).
    pub bytes_sent: u64,
    /// Request body bytes the app read.
    pub request_bytes: u64,
    /// From [`RequestRecord::started`] to the end.
    pub duration: Duration,
    /// How it ended.
    pub end: End,
    /// The mount point of the app that served it (`/` for the root), when the dispatcher routed
    /// it.
    pub app: Option<Arc<str>>,
}

impl Outcome {
    /// The status for a log line: the one sent, or nginx's `499` ("client closed request") for a
    /// request cancelled before any head, or `500` for one aborted before any head.
    pub fn log_status(&self) -> u16 {
        match (self.status, self.end) {
            (0, End::Cancelled) => 499,
            (0, _) => 500,
            (status, _) => status,
        }
    }
}

/// Something that wants to know about every request: the access log, the metrics.
pub trait Observer: Send + Sync + 'static {
    /// A request is about to run. The record lives as long as the request (and as long as the
    /// observer keeps its `Arc`).
    fn started(&self, _record: &Arc<RequestRecord>) {}

    /// The request is over.
    fn ended(&self, record: &Arc<RequestRecord>, outcome: &Outcome);
}

static OBSERVERS: OnceLock<Box<[Arc<dyn Observer>]>> = OnceLock::new();

/// Installs the observers of every request served in this process, once, before serving. An
/// empty list is the same as none. Returns `false` (and changes nothing) when observers were
/// already installed.
pub fn install(observers: Vec<Arc<dyn Observer>>) -> bool {
    OBSERVERS.set(observers.into_boxed_slice()).is_ok()
}

/// The installed observers, `None` when there are none.
pub(crate) fn active() -> Option<&'static [Arc<dyn Observer>]> {
    OBSERVERS.get().map(|o| &**o).filter(|o| !o.is_empty())
}

/// A shared count of body bytes the app read, kept by its [`RequestBody`](crate::RequestBody)
/// when the request is observed.
pub(crate) type Tally = Arc<AtomicU64>;

/// Reads a [`Tally`].
pub(crate) fn tally_value(tally: &Tally) -> u64 {
    tally.load(Ordering::Relaxed)
}
