//! FastCGI 1.0 front end for gatehouse: a web server (nginx `fastcgi_pass`, Apache
//! `mod_proxy_fcgi`, lighttpd, `cgi-fcgi`) connects, sends requests as FastCGI records, and the
//! app's responses go back as `FCGI_STDOUT` records.
//!
//! ```text
//!  socket ─► RecordCodec ─► Connection (sans-io) ─ Event::Dispatch ─► task: serve_request(app)
//!  (driver)   (codec.rs)     (conn.rs, request.rs)  Event::Stdin ───► BodySender ─► RequestBody
//!     ▲                           │     ▲                                              │
//!     │                           │     └─── Delivery (QueueChannel, per-request tag) ◄┘
//!     └── write_vectored ◄── OutQueue (response.rs) ◄── Hold (core, while the body arrives)
//! ```
//!
//! - [`record`], [`payload`], [`nv`], [`codec`]: the wire format (sections 3.3, 3.4, 4, 5, 8),
//!   no I/O.
//! - [`conn`]: the sans-io connection: request table (multiplexing), management records,
//!   limits, timers. Bytes and `now` in, events and bytes out.
//! - [`serve_connection`] (driver.rs): the thin tokio task that owns the socket. An app alone
//!   on its connection is first polled by that task ("task:" above is then the driver's own),
//!   and gets a task of its own only if it waits.
//!
//! Requests run concurrently, several per connection (`FCGI_MPXS_CONNS` = 1). The
//! `FCGI_RESPONDER` and `FCGI_AUTHORIZER` roles are played; `FCGI_FILTER` gets
//! `FCGI_UNKNOWN_ROLE` (no front server sends it).
//!
//! # What of FastCGI 1.0 is covered
//! - Records (3.3): every type decoded and encoded; padding skipped on input, `contentLength`
//!   up to 65535; fixed-size bodies checked from the header; `version` must be 1.
//! - Name-value pairs (3.4): 1- and 4-byte lengths, pairs split across `FCGI_PARAMS` records.
//! - Request IDs (3.3): active from `FCGI_BEGIN_REQUEST` to our `FCGI_END_REQUEST`; records
//!   for inactive IDs ignored; a second `FCGI_BEGIN_REQUEST` for an active ID is an error.
//! - `FCGI_KEEP_CONN` (5.1): unset, the connection closes once the request (and any other
//!   multiplexed on it) has ended; set, it stays open until the web server closes it.
//! - Management records (4): `FCGI_GET_VALUES` answered (`FCGI_MAX_CONNS`, `FCGI_MAX_REQS`,
//!   `FCGI_MPXS_CONNS`, unknown names omitted); other types get `FCGI_UNKNOWN_TYPE`.
//! - `FCGI_ABORT_REQUEST` (5.4): the app's task is dropped, `FCGI_END_REQUEST` follows with a
//!   non-zero `appStatus`. Closing the connection aborts all its requests.
//! - Responder (6.2): the app starts when `FCGI_PARAMS` ends and reads `FCGI_STDIN` as it
//!   arrives; `CONTENT_LENGTH` is checked against `FCGI_STDIN` (empty = absent); output as
//!   `FCGI_STDOUT` records, the empty `FCGI_STDOUT`, then `FCGI_END_REQUEST`. The app sees
//!   `FCGI_ROLE=RESPONDER`, as libfcgi's apps do.
//! - Authorizer (6.3): the app starts when `FCGI_PARAMS` ends, with `FCGI_ROLE=AUTHORIZER`, an
//!   empty body and no `CONTENT_LENGTH`; `FCGI_STDIN` is not awaited (lighttpd sends its empty
//!   record for a GET, none for a POST), content sent anyway is dropped with one log line. The
//!   answer goes out as a Responder's: the CGI head (its status, `Variable-NAME` headers) and
//!   body on `FCGI_STDOUT`; the web server grants access on a 200 and takes the `Variable-*`
//!   headers, or sends any other answer to the client.
//! - `FCGI_STDERR` (5.3): every request's channel hands out a
//!   [`StderrSender`](gatehouse_channel_request::StderrSender); what an app sends through it
//!   (a CGI script's stderr with `--cgi-stderr fastcgi`) goes out as `FCGI_STDERR` records of
//!   at most 65535 bytes, passing a held response without releasing it, and the stream is
//!   closed by an empty `FCGI_STDERR` before `FCGI_END_REQUEST` when any was sent. Stderr that
//!   arrives after the request ended is dropped.
//! - `FCGI_WEB_SERVER_ADDRS` (3.2), applied to TCP peers.
//!
//! Not covered: the Filter role (answered `FCGI_UNKNOWN_ROLE`, so `FCGI_DATA` is a protocol
//! error).
//!
//! # Backpressure
//! A request's body flows through a bounded queue (`Config::body_queue_chunks`). FastCGI has no
//! per-request flow control: when a request alone on its connection fills its queue, the
//! connection stops reading its socket; when requests are multiplexed, a full queue's chunks
//! wait in that request's backlog and reading goes on for the others, up to 1 MiB of backlog
//! per connection (then reading pauses too: memory stays bounded). Responses are bounded per
//! request by `Config::response_budget`.
//!
//! A response is held back (not written) while its request's body is still arriving, because
//! nginx stops sending the request body once it has the response header (with request
//! buffering it even closes the body's temp file): an app that answers before reading its whole
//! body, as git-http-backend does for a push, would wait for the rest forever. The held head and
//! body go out, in order and coalesced as usual, on the first of: the body is complete (the
//! empty `FCGI_STDIN`, `CONTENT_LENGTH` bytes, or the body failed), the app ends or aborts its
//! response, the held bytes reach `Config::response_budget`, or the request's input makes no
//! progress for [`config::RESPONSE_HOLD_TIMEOUT`] (the app stopped reading its body). Other
//! requests on the connection are not held; a request whose body is complete when its app
//! answers (a GET: nginx sends the empty `FCGI_STDIN` with the head) costs nothing more.
//!
//! # Closing
//! A connection closes once its last request ended (`FCGI_KEEP_CONN` unset), at shutdown when
//! idle, after `Config::idle_timeout` without input, or on a protocol error. When the peer may
//! still be sending (a request was answered, refused or aborted before its `FCGI_STDIN` ended,
//! part of a record is buffered, or the input was bad), the close lingers: our write side is
//! shut, and input is read and dropped until the peer closes, for at most
//! `Config::linger_timeout` ([`config::SHUTDOWN_LINGER_TIMEOUT`] once shutdown is signalled),
//! so the peer reads our last records rather than a reset. Otherwise, as when nginx has sent
//! its whole request before reading, the socket is closed at once. A response held back while
//! its body arrives (see "Backpressure") goes out whole before its `FCGI_END_REQUEST` when the
//! app ends first; the close then lingers as for any request answered before its input ended.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod codec;
pub mod config;
pub mod conn;
mod driver;
pub mod error;
mod event;
mod id_map;
mod management;
pub mod nv;
pub mod payload;
pub mod record;
mod request;
pub mod response;
mod server;

#[cfg(fuzzing)]
pub mod fuzzing;

pub use config::Config;
pub use driver::serve_connection;
pub use error::{Error, LimitError, NvError, ProtocolError, RequestError};
pub use record::{ProtocolStatus, Record, RecordType, Role, FCGI_LISTENSOCK_FILENO};
pub use server::{RequestSlot, Server, Stats};
