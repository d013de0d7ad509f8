//! The front end's limits and timeouts, each default a documented constant.

use std::sync::Arc;
use std::time::Duration;

pub use gatehouse_channel_request::body_rate::MinRate;
use gatehouse_channel_request::ResponseSpool;

/// Default for [`Config::max_header_bytes`]: 64 KiB for the request line and all header lines
/// together (nginx allows 4 × 8 KiB by default; gatehouse's FastCGI front end allows 64 KiB of
/// PARAMS).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// Default for [`Config::max_headers`]: 100 header lines (hyper's own default).
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// Default for [`Config::header_read_timeout`]: 30 s from the first byte of a request head to its
/// blank line.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default for [`Config::idle_timeout`]: 60 s without progress from the client.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default for [`Config::body_min_rate`]: Apache `mod_reqtimeout`'s `body=20,MinRate=500`, 20 s
/// plus a second per 500 bytes.
pub const DEFAULT_BODY_MIN_RATE: MinRate = MinRate {
    grace: Duration::from_secs(20),
    rate: 500,
};

/// Default for [`Config::linger_timeout`]: 5 s of draining after we close our side.
pub const DEFAULT_LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// Default for [`Config::max_conns`]: 1024 open HTTP connections per [`Server`](crate::Server).
pub const DEFAULT_MAX_CONNS: usize = 1024;

/// How long the response is held back while the request body is still arriving (the core's
/// constant; see the crate docs: a proxy such as nginx stops sending the body once it has the
/// response head).
pub use gatehouse_channel_request::hold::RESPONSE_HOLD_TIMEOUT;

/// Default for [`Config::response_budget`]: the core's per-request budget (256 KiB).
pub const DEFAULT_RESPONSE_BUDGET: usize =
    gatehouse_channel_request::queue::DEFAULT_RESPONSE_BUDGET;

/// Default for [`Config::body_queue_chunks`]: the core's default queue depth (4 chunks).
pub const DEFAULT_BODY_QUEUE_CHUNKS: usize =
    gatehouse_channel_request::body::DEFAULT_BODY_QUEUE_CHUNKS;

/// The most a connection's read buffer may grow to (hyper's `max_buf_size`), unless
/// [`Config::max_header_bytes`] is larger. This is also what bounds pipelined requests read ahead
/// of the one being answered.
pub const READ_BUFFER_MAX: usize = 256 * 1024;

/// Limits and timeouts of the HTTP/1.1 front end.
///
/// There is no `max_pipelined`: hyper answers pipelined requests strictly one at a time, in
/// order, and only reads ahead as far as its read buffer ([`READ_BUFFER_MAX`]) allows, so the
/// number of pipelined requests held at once is bounded by bytes, not by a count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Longest request head (request line + header lines), in bytes. Longer heads get
    /// `431 Request Header Fields Too Large` and the connection is closed.
    pub max_header_bytes: usize,
    /// Most header lines in one request. More get `431`. At least 1.
    pub max_headers: usize,
    /// Once the first byte of a request head has arrived, the whole head must arrive within this
    /// time, or the connection is closed without an answer (slowloris). Trailers are not covered.
    pub header_read_timeout: Duration,
    /// The longest the connection waits on the client without progress: before a new request
    /// starts (a keep-alive connection with nothing to do is closed), for the next piece of a
    /// request body, and for the client to accept response bytes. Time spent waiting on the app
    /// does not count.
    pub idle_timeout: Duration,
    /// How fast a request body must come: `grace` plus a second per `rate` bytes, counting only
    /// time spent waiting on the client (see `gatehouse_channel_request::body_rate`); a slower
    /// body is cut and its connection closed. `None`: only `idle_timeout` applies.
    pub body_min_rate: Option<MinRate>,
    /// Lingering close (Twisted's `lingeringClose`, nginx's `lingering_close`): after our last
    /// response we shut our write side and read and discard what the client still sends for at
    /// most this long, so that a client still uploading sees the response rather than a reset.
    pub linger_timeout: Duration,
    /// Most connections served at once by one [`Server`](crate::Server); one more gets
    /// `503 Service Unavailable` and is closed. At least 1.
    pub max_conns: usize,
    /// Per-request budget of response bytes queued between the app and the socket; a client
    /// reading slower than the app writes makes the app's `write` wait.
    pub response_budget: usize,
    /// Depth, in chunks, of a request body's queue to the app; a full queue stops reading the
    /// socket.
    pub body_queue_chunks: usize,
    /// Where answer bytes that the client has not taken yet spill (nginx's proxy buffering):
    /// with a spool, a slow client no longer makes the app's `write` wait; the app ends and
    /// frees its slot while the rest goes out from memory and a temp file. `None`: no spilling.
    pub response_spool: Option<Arc<ResponseSpool>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_min_rate: Some(DEFAULT_BODY_MIN_RATE),
            linger_timeout: DEFAULT_LINGER_TIMEOUT,
            max_conns: DEFAULT_MAX_CONNS,
            response_budget: DEFAULT_RESPONSE_BUDGET,
            body_queue_chunks: DEFAULT_BODY_QUEUE_CHUNKS,
            response_spool: None,
        }
    }
}

impl Config {
    /// The same config with values that make no sense (zero counts) raised to their minimum.
    pub(crate) fn sanitised(mut self) -> Self {
        self.max_headers = self.max_headers.max(1);
        self.max_conns = self.max_conns.max(1);
        self.response_budget = self.response_budget.max(1);
        self.body_queue_chunks = self.body_queue_chunks.max(1);
        self.max_header_bytes = self.max_header_bytes.max(64);
        self
    }

    /// hyper's `max_buf_size`: at least its minimum (8192) and big enough for a whole head.
    pub(crate) fn read_buffer_max(&self) -> usize {
        READ_BUFFER_MAX.max(self.max_header_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitised_raises_zeros() {
        let c = Config {
            max_headers: 0,
            max_conns: 0,
            response_budget: 0,
            body_queue_chunks: 0,
            max_header_bytes: 0,
            ..Config::default()
        }
        .sanitised();
        assert_eq!(
            (
                c.max_headers,
                c.max_conns,
                c.response_budget,
                c.body_queue_chunks
            ),
            (1, 1, 1, 1)
        );
        assert!(c.read_buffer_max() >= 8192);
        let big = Config {
            max_header_bytes: 1 << 20,
            ..Config::default()
        };
        assert_eq!(big.read_buffer_max(), 1 << 20);
    }
}
