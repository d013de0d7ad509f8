//! The shared core of gatehouse: one request model for every front end, one response channel for
//! every app.
//!
//! ```text
//!  FastCGI ─┐                                          ┌─ WSGI app
//!  SCGI    ─┤  Request { env: Env, body: RequestBody }  ├─ CGI script
//!  CGI     ─┼──────────────► Application::call ─────────┼─ built-in app
//!  HTTP    ─┘  ◄──────────── Response ◄─────────────────┘─ Rust handler
//!               send_head · write (awaits: backpressure) · finish · abort
//!                     │
//!                     ▼ ResponseChannel (one impl per front end, or QueueChannel)
//! ```
//!
//! - [`env`](mod@env): the request head as CGI meta-variables (RFC 3875 section 4.1), stored as bytes.
//! - [`body`]: the request body as a bounded stream: a slow app stops the front end's reads.
//! - [`body_rate`]: a minimum rate for request bodies (a slow client cannot hold a request).
//! - [`channel`]: [`ResponseChannel`], what front ends implement, and [`Response`], what apps use.
//! - [`queue`]: [`QueueChannel`], the channel most front ends use: tagged outputs to a driver
//!   task, with a byte budget per request; and [`StderrSender`], an app's diagnostic output
//!   for front ends that forward it (FastCGI's `FCGI_STDERR`).
//! - [`spill`]: [`ResponseSpool`], answers a slow client has not taken yet spilled to temp
//!   files (nginx's proxy buffering), with a process-wide memory budget.
//! - [`head`] and [`cgi_head`]: response heads, header validation, and the CGI head format
//!   (RFC 3875 section 6).
//! - [`hold`]: [`Hold`], a response held back while its request body still arrives (front ends
//!   whose front server stops sending the body once it has a response head).
//! - [`app`]: [`Application`] and [`serve_request`], which turns errors and panics into answers.
//! - [`observe`]: [`observe::Observer`]s of every request (the access log, the metrics).
//! - [`sendq`]: [`SendQueue`], how much of what was written to a socket its peer has not taken
//!   yet: a slow reader's progress while writes wait.
#![deny(missing_docs)]
#![deny(unsafe_code)] // allowed in `sendq` alone (one ioctl)
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod body;
pub mod body_rate;
pub mod cgi_head;
pub mod channel;
pub mod env;
pub mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod head;
pub mod hold;
pub mod observe;
pub mod queue;
pub mod sendq;
pub mod spill;

pub use app::{serve_request, AppError, Application, Peer, Protocol, Request, RequestInfo};
pub use body::{body_channel, BodyClosed, BodySender, RequestBody};
pub use cgi_head::{parse_cgi_head, write_cgi_head, CgiResponse};
pub use channel::{BoxFuture, Output, Response, ResponseChannel};
pub use env::Env;
pub use error::{BodyError, CgiHeadError, Error, HeaderError};
pub use head::ResponseHead;
pub use hold::{Hold, Offer};
pub use queue::{
    delivery_queue, Delivery, DeliveryReceiver, DeliverySender, QueueChannel, StderrSender,
};
pub use sendq::SendQueue;
pub use spill::ResponseSpool;
pub use tokio_util::sync::CancellationToken;

/// On a graceful shutdown (SIGTERM, a reload, a recycled worker), how long a connection that
/// was accepted but has not yet sent its first request may take to send it. Closing it at once
/// would lose that request: the web server is already sending it, and it does not retry on
/// another connection a request whose fresh connection failed (nginx answers 502). The request
/// is served, then the connection closes; one that sends nothing in time is closed.
pub const SHUTDOWN_FIRST_REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
