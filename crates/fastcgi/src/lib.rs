//! FastCGI 1.0 front end for gatehouse: a web server (nginx `fastcgi_pass`, Apache
//! `mod_proxy_fcgi`, lighttpd, `cgi-fcgi`) connects, sends requests as FastCGI records, and the
//! app's responses go back as `FCGI_STDOUT` records.
//!
//! ```text
//!  socket ─► RecordCodec ─► Connection (sans-io) ─ Event::Dispatch ─► task: serve_request(app)
//!  (driver)   (codec.rs)     (conn.rs, request.rs)  Event::Stdin ───► BodySender ─► RequestBody
//!     ▲                           │     ▲                                              │
//!     │                           │     └─── Delivery (QueueChannel, per-request tag) ◄┘
//!     └── write_vectored ◄── OutQueue (response.rs): STDOUT ≤ 65535, END_REQUEST
//! ```
//!
//! - [`record`], [`payload`], [`nv`], [`codec`]: the wire format (sections 3.3, 3.4, 4, 5, 8),
//!   no I/O.
//! - [`conn`]: the sans-io connection: request table (multiplexing), management records,
//!   limits, timers. Bytes and `now` in, events and bytes out.
//! - [`serve_connection`] (driver.rs): the thin tokio task that owns the socket.
//!
//! Requests run concurrently, several per connection (`FCGI_MPXS_CONNS` = 1). Only the
//! `FCGI_RESPONDER` role is played; `FCGI_AUTHORIZER` and `FCGI_FILTER` get `FCGI_UNKNOWN_ROLE`.
//!
//! # Backpressure
//! A request's body flows through a bounded queue (`Config::body_queue_chunks`). When it is
//! full the connection stops reading its socket: FastCGI has no per-request flow control, so one
//! request whose app does not read its body blocks every request multiplexed on that
//! connection (their responses still flow). Responses are bounded per request by
//! `Config::response_budget`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod codec;
pub mod config;
pub mod conn;
mod driver;
pub mod error;
mod event;
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
