//! The HTTP/1.1 front end of gatehouse: clients (or a proxy such as nginx `proxy_pass`) speak
//! HTTP to it, apps see the same [`Request`](gatehouse_channel_request::Request) as behind
//! FastCGI, SCGI or CGI.
//!
//! ```text
//!  socket ─► WatchedIo ─► hyper http1::Connection ──► Service::call ─► env::request_env
//!    ▲       (timeouts)        │    ▲                       │  spawn: serve_request(app) ∥ Pump
//!    │                         │    │                       │           ▲ body_channel ◄─ Incoming
//!    │      driver: select!{ conn, timeouts, close request, shutdown }  │
//!    │                         ▼    │                       ▼           │
//!    └──────── hyper writes ◄─ ResponseBody ◄── QueueChannel deliveries ┘
//! ```
//!
//! hyper is the protocol core here (request parsing, keep-alive, pipelining, chunked coding,
//! `100 Continue`, `HEAD`); this crate maps requests to the CGI request model and back, and adds
//! what hyper leaves to its user: timeouts that tell an idle connection from a slow head, the
//! response `Content-Length` contract, a connection limit and a lingering close.
//!
//! # Behaviour
//!
//! - **Keep-alive and pipelining**: requests on one connection are answered one at a time, in
//!   order (hyper reads ahead at most [`READ_BUFFER_MAX`] bytes of pipelined requests).
//! - **Request bodies** (`Content-Length` or chunked) stream to the app through
//!   [`body_channel`](gatehouse_channel_request::body_channel); a full queue stops reading the
//!   socket. A chunked body has no `CONTENT_LENGTH`. Trailers are dropped.
//! - **Responses** with the app's `Content-Length` are sent with it; without one they are
//!   chunked (HTTP/1.1) or close-delimited (HTTP/1.0). An app that writes more than it announced
//!   has its body cut at the announced length and the connection closed after it; one that
//!   finishes short gets its connection aborted, so the client sees an error rather than a short
//!   body. Both are logged. `Transfer-Encoding` from the app is dropped (framing is ours).
//! - **Early answers are held**: while a request's body is still arriving, the app's head and
//!   body are kept back until the body is in, the app ends its response, the held bytes reach
//!   [`Config::response_budget`], or no body bytes came for [`RESPONSE_HOLD_TIMEOUT`]. A proxy
//!   in front (nginx `proxy_pass`) stops sending the request body once it has a response head,
//!   so an app that answers before it has read its whole body (a CGI script printing its head
//!   first, git-http-backend on a push) would wait forever for the rest. Not with
//!   `Expect: 100-continue` before the app asks for the body: then the client is waiting for
//!   our word and an early answer is exactly what it allows.
//! - **`Expect: 100-continue`** is answered by hyper when the body is first read, which happens
//!   when the app first asks for body bytes (`BodySender::wanted`): an app that answers without
//!   reading never makes the client send its body.
//! - **1xx responses** from apps (`Response::informational`) are not forwarded: hyper's server
//!   has no API to send them, so the channel reports `forwards_informational() == false`.
//! - **Limits** ([`Config`]): head size and header count (`431`), header-read and idle timeouts
//!   (close), open connections (`503`). A client reading a response makes progress as long as
//!   it takes bytes: while our writes wait, the socket's send queue shrinking counts
//!   ([`SendQueue`](gatehouse_channel_request::SendQueue)). **Shutdown**: `serve_connection`'s token closes idle
//!   connections and lets a request in progress finish first.
//! - **Bad input** (unparseable request, missing or invalid `Host`, `%00` or `..` above the root
//!   in the path) gets `400` and one log line naming the peer, with the peer's bytes escaped.
//!
//! # CGI meta-variables
//!
//! The request head becomes the same variables as behind the other front ends (RFC 3875
//! section 4.1): `REQUEST_METHOD`,
//! `SCRIPT_NAME` (empty: the dispatcher sets it from the mount point), `PATH_INFO` (the
//! percent-decoded path, dot segments resolved), `QUERY_STRING` (raw), `REQUEST_URI` (the raw
//! path and query), `SERVER_NAME`/`SERVER_PORT` (from the absolute-form target, else `Host`, else
//! the local address), `SERVER_PROTOCOL`, `SERVER_SOFTWARE`, `GATEWAY_INTERFACE=CGI/1.1`,
//! `REMOTE_ADDR`/`REMOTE_PORT`, `CONTENT_TYPE`, `CONTENT_LENGTH`, no `HTTPS`, and `HTTP_*` for the
//! other headers, repeated ones joined with `", "` (`Cookie` with `"; "`).
//!
//! Two request headers never reach the app:
//!
//! - **`Proxy`** (httpoxy, CVE-2016-5385 and friends): it would become `HTTP_PROXY`, which many
//!   CGI programs and libraries read as their outgoing proxy setting, letting a client redirect
//!   the app's own HTTP requests.
//! - **Any header whose name contains `_`** (nginx's `underscores_in_headers off`): `X_User` and
//!   `X-User` both map to `HTTP_X_USER`, so a client could override a variable that a proxy in
//!   front of us derives from a dash-named header it controls. Names with any other byte than
//!   letters, digits and `-` (`X.Y`, `A%`) go too, as with nginx's `ignore_invalid_headers`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod body;
mod config;
mod conn;
mod driver;
mod env;
mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
mod io;
mod request;
mod watchdog;

use std::sync::Arc;

use gatehouse_channel_request::Application;
use hyper::server::conn::http1;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use config::{
    Config, MinRate, DEFAULT_BODY_MIN_RATE, DEFAULT_BODY_QUEUE_CHUNKS, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_LINGER_TIMEOUT, DEFAULT_MAX_CONNS, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_RESPONSE_BUDGET, READ_BUFFER_MAX, RESPONSE_HOLD_TIMEOUT,
};
pub use driver::serve_connection;
pub use env::{GATEWAY_INTERFACE, SERVER_SOFTWARE};
pub use error::Error;

/// An HTTP front end: the app, the limits, and the count of open connections. Share one per
/// listener set (or per process) and call [`serve_connection`] for each accepted socket.
pub struct Server {
    app: Arc<dyn Application>,
    config: Config,
    builder: http1::Builder,
    conns: Arc<Semaphore>,
}

impl Server {
    /// A front end serving `app` with `config` (zero counts are raised to 1).
    pub fn new(app: Arc<dyn Application>, config: Config) -> Arc<Self> {
        let config = config.sanitised();
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            .half_close(false)
            .max_headers(config.max_headers)
            .max_header_size(config.max_header_bytes)
            .max_buf_size(config.read_buffer_max())
            // Our own timeouts (watchdog.rs) replace hyper's, which cannot tell idle from slow.
            .header_read_timeout(None);
        let conns = Arc::new(Semaphore::new(config.max_conns.min(Semaphore::MAX_PERMITS)));
        Arc::new(Self {
            app,
            config,
            builder,
            conns,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many connections are being served now.
    pub fn open_connections(&self) -> usize {
        self.config
            .max_conns
            .saturating_sub(self.conns.available_permits())
    }

    fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.conns.clone().try_acquire_owned().ok()
    }
}
