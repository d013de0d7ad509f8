//! The uwsgi front end of gatehouse: a sans-io packet parser and connection core, and a thin
//! tokio driver per connection.
//!
//! ```text
//!  front server (nginx uwsgi_pass, Apache mod_proxy_uwsgi)
//!     │  modifier1=0 datasize:u16le modifier2  (klen:u16le key vlen:u16le val)*  body
//!     ▼
//!  packet (nom) ──► head (CONTENT_LENGTH, UWSGI_* dropped) ──► Env ─┐
//!     (sans-io: codec::HeadDecoder, in conn::Connection)            ├─► Request ──► Application
//!  body bytes ──► codec::BodyDecoder ──► Event::Body ──► BodySender ┘        (spawned task)
//!     (socket not read while the body queue is full)                              │
//!  socket ◄── "HTTP/1.1 200 OK" headers "" body, then close ◄── Hold ◄── QueueChannel
//! ```
//!
//! The uwsgi protocol (uWSGI's documentation, "The uwsgi Protocol") carries one request per
//! connection from nginx's `uwsgi_pass` and Apache's `mod_proxy_uwsgi`: a 4-byte header
//! (`modifier1` 0 for a WSGI/HTTP request, the vars block's size as a little-endian `u16`,
//! `modifier2`), the vars (little-endian 2-byte-length key/value pairs: the CGI variables and
//! `HTTP_*` headers), then `CONTENT_LENGTH` body bytes. The answer is an HTTP/1.1 response as
//! uWSGI writes it (status line, headers, body), ended by closing the connection.
//!
//! # Errors and answers
//!
//! An unknown `modifier1`, a `datasize` over [`Config::max_vars_bytes`] (both refused on the
//! 4-byte header, before the vars are buffered), a malformed vars block (see [`PeerError`]) and
//! a packet not complete within [`Config::header_timeout`] (a `datasize` larger than what
//! arrives) are answered `HTTP/1.1 400 Bad Request` and closed, with one `warn` log line naming
//! the peer and the offending bytes (escaped). A connection over [`Config::max_conns`] gets
//! `503`. A peer that closes inside the packet is logged the same way; one that closes before
//! the body is complete has its app cancelled. When an app fails after its first body bytes
//! went out, a TCP connection is reset (nginx then fails the request instead of passing a
//! truncated body as complete).
//!
//! # uWSGI's magic variables
//!
//! Vars named `UWSGI_*` (`UWSGI_FILE`, `UWSGI_SCRIPT`, `UWSGI_CHDIR`, `UWSGI_APPID`,
//! `UWSGI_SCHEME`, ...) are instructions to uWSGI itself: they are dropped, never acted on and
//! never shown to the app, with one `debug` line naming them (see [`head`](crate::RequestHead)).
//!
//! # Flow control, half-close and cancellation
//!
//! As in the SCGI front end: the socket is not read while the app's body queue
//! ([`Config::body_queue_chunks`] chunks of at most [`READ_CHUNK`] bytes) is full; the app's
//! writes wait while [`Config::response_budget`] bytes are queued. The response is held back
//! while body bytes remain (nginx stops sending the body once it has the response head), until
//! the body is complete, the app ends, the budget is full, or no body byte came for
//! [`RESPONSE_HOLD_TIMEOUT`]. The end of input after a complete body is a half-close: the
//! response still goes out. A dropped connection future, a reset, a failed write or a body cut
//! short cancel the app. `shutdown` closes connections still waiting for their packet (after a
//! short grace); running requests finish.
//!
//! # Wiring (for the binary)
//!
//! One [`Server`] for the `--uwsgi ADDR` listeners; a task per accepted connection running
//! [`serve_connection`] with the peer, the daemon's shutdown token, and a `TaskTracker`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod codec;
mod conn;
mod driver;
mod error;
mod head;
mod packet;
mod response;
mod server;

#[cfg(fuzzing)]
pub mod fuzzing;

pub use codec::{BodyDecoder, BodyFrame, HeadDecoder};
pub use conn::{Close, Connection, Event, Linger};
pub use driver::serve_connection;
pub use error::{Error, Excerpt, LimitError, PeerError, EXCERPT_LEN};
pub use head::{parse_head, RequestHead, MAGIC_PREFIX};
pub use packet::{encode_packet, PacketHeader, HEADER_LEN, MAX_DATASIZE, MODIFIER1_WSGI};
pub use response::{error_response, write_http_head, Action, ResponseWriter, COALESCE_MAX};
pub use server::{
    Config, Server, DEFAULT_BODY_QUEUE_CHUNKS, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LINGER_TIMEOUT, DEFAULT_MAX_CONNS, DEFAULT_MAX_VARS_BYTES, DEFAULT_RESPONSE_BUDGET,
    LINGER_MAX_BYTES, MIN_VARS_BYTES, READ_CHUNK, RESPONSE_HOLD_TIMEOUT,
};
