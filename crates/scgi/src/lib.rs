//! The SCGI front end of gatehouse: a sans-io request parser and a tokio driver per connection.
//!
//! ```text
//!  front server (nginx scgi_pass, Apache mod_proxy_scgi, lighttpd mod_scgi)
//!     │  "<len>:" CONTENT_LENGTH NUL n NUL SCGI NUL 1 NUL ... "," body
//!     ▼
//!  netstring ──► head (rules of section 3) ──► Env ─┐
//!     (nom, sans-io: codec::HeadDecoder)            ├─► Request ──► Application (spawned task)
//!  body bytes ──► codec::BodyDecoder ──► BodySender ┘                    │
//!     (socket not read while the body queue is full)                     ▼
//!  socket ◄── "Status: 200 OK" headers "" body, then close ◄── QueueChannel (byte budget)
//! ```
//!
//! SCGI (Neil Schemenauer's specification, 2008-06-23) carries one request per connection: a
//! netstring of NUL-terminated name/value pairs (`CONTENT_LENGTH` first, `SCGI` = `1`, no
//! duplicate names), then exactly `CONTENT_LENGTH` body bytes; the server answers and closes.
//! The answer is a CGI response (RFC 3875 section 6), which every front server expects.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo(app: std::sync::Arc<dyn gatehouse_channel_request::Application>) -> std::io::Result<()> {
//! use gatehouse_channel_request::{CancellationToken, Peer};
//! use gatehouse_scgi::{serve_connection, Config, Server};
//!
//! let server = Server::new(app, Config::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
//! let shutdown = CancellationToken::new();
//! loop {
//!     server.ready().await; // stop accepting while max_conns connections are served
//!     let (stream, addr) = listener.accept().await?;
//!     tokio::spawn(serve_connection(server.clone(), stream, Peer::Tcp(addr), shutdown.clone()));
//! }
//! # }
//! ```
//!
//! # Errors and answers
//!
//! A request that cannot be read (see [`PeerError`]), a head over
//! [`Config::max_header_bytes`] and a head not complete within [`Config::header_timeout`] are
//! answered `Status: 400 Bad Request` and closed, with one `warn` log line naming the peer and
//! the offending bytes (escaped). A connection over [`Config::max_conns`] gets `503`. A peer
//! whose input ends before the body is complete gets one such line, and the app's body stream
//! fails with `BodyError::Short`: an app that reads its body sees the error and the request is
//! answered `400`; one that does not is answered as it answers (the same rule as behind FastCGI
//! and as a CGI program). A peer that half-closes (`shutdown(SHUT_WR)`) after its request still gets
//! the whole response; a peer that resets, or closes while we write, has its app cancelled.
//!
//! SCGI has no way to mark a response as incomplete but the connection itself: when an app fails
//! after its first body bytes went out, a TCP connection is reset (nginx then fails the request
//! instead of passing a truncated body as complete); other transports are just closed.
//!
//! # Flow control, half-close and cancellation
//!
//! - The socket is not read while the app's body queue ([`Config::body_queue_chunks`] chunks
//!   of at most [`READ_CHUNK`] bytes) is full; the app's writes wait while
//!   [`Config::response_budget`] bytes are queued for the socket.
//! - The response is held back (not written) while body bytes remain: nginx stops sending the
//!   request body once it has the response header (with request buffering it even closes the
//!   body's temp file), so an app answering before it read its whole body would wait for the
//!   rest forever. The held head and body go out, in order, on the first of: `CONTENT_LENGTH`
//!   bytes read, the app ends or aborts, the held bytes reach [`Config::response_budget`], or
//!   no body byte is read for [`RESPONSE_HOLD_TIMEOUT`] (the app stopped reading its body). A
//!   request without a body (`CONTENT_LENGTH: 0`) is never held.
//! - While a response write waits for the peer, the socket is not read. A front server reads
//!   the response while it sends the body (nginx does); a client that sends its whole body
//!   before reading anything, to an app that streams a large answer while the body is still
//!   coming, stalls until [`Config::idle_timeout`].
//! - The end of input after a complete body is a half-close: the response still goes out. A
//!   front server that gives up closes its socket, which we see as that same end of input, so
//!   its app is cancelled when the next write fails, not before.
//! - `shutdown` closes connections still waiting for their head (after giving one that has
//!   not sent it `SHUTDOWN_FIRST_REQUEST_GRACE` to do so); running requests finish.
//!   Dropping the connection's future cancels its app (its task is aborted).
//!
//! # Wiring (for the binary)
//!
//! One [`Server`] per `--scgi ADDR` listener (or one shared by all of them, which shares
//! [`Config::max_conns`]); a task per accepted connection running [`serve_connection`] with
//! [`Peer::Tcp`](gatehouse_channel_request::Peer) or `Peer::Unix`, the daemon's shutdown token,
//! and a `TaskTracker` to drain them. Check the flags with [`Config::validate`]. Suggested
//! flags: `--scgi ADDR` (repeatable), `--max-scgi-header-bytes`, `--max-scgi-conns`,
//! `--scgi-header-timeout`, `--scgi-idle-timeout`, `--scgi-join-duplicate-headers`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod codec;
mod driver;
mod error;
mod head;
mod netstring;
mod reader;
mod response;
mod server;

#[cfg(fuzzing)]
pub mod fuzzing;

pub use codec::{BodyDecoder, BodyFrame, HeadDecoder};
pub use driver::serve_connection;
pub use error::{Error, Excerpt, LimitError, PeerError, EXCERPT_LEN};
pub use head::{parse_head, Duplicates, RequestHead, SCGI, SCGI_VERSION};
pub use netstring::encode_head;
pub use response::{error_response, Action, ResponseWriter, COALESCE_MAX};
pub use server::{
    Config, Server, DEFAULT_BODY_QUEUE_CHUNKS, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LINGER_TIMEOUT, DEFAULT_MAX_CONNS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_RESPONSE_BUDGET,
    LINGER_MAX_BYTES, MIN_HEADER_BYTES, READ_CHUNK, RESPONSE_HOLD_TIMEOUT,
};
