//! What the sans-io [`Connection`](crate::conn::Connection) asks its driver to do: start an
//! app, feed or end a request body, cancel a request, forget an ended one, close.

use bytes::Bytes;
use gatehouse_channel_request::{BodyError, Env, RequestInfo};

use crate::server::RequestSlot;

/// What the driver must do.
#[derive(Debug)]
pub enum Event {
    /// Start the app on a request whose `FCGI_PARAMS` are complete.
    Dispatch(Dispatch),
    /// Body bytes for the request `tag` (never empty).
    Stdin {
        /// The request.
        tag: u64,
        /// The bytes.
        data: Bytes,
    },
    /// The body of `tag` ended: completely (`None`) or with an error the app must see.
    StdinEnd {
        /// The request.
        tag: u64,
        /// Why the body is incomplete, if it is.
        error: Option<BodyError>,
    },
    /// Cancel the app of `tag` (drop its task): aborted by the peer, or the connection is lost.
    Cancel {
        /// The request.
        tag: u64,
    },
    /// The request `tag` ended (its `FCGI_END_REQUEST` is queued): forget it.
    Ended {
        /// The request.
        tag: u64,
    },
    /// Write what is queued and close. With `linger`, shut the write side first and drain the
    /// peer's input for a bounded time, so the peer reads our last bytes instead of a reset.
    Close {
        /// Whether to linger: the peer may still be sending (a request ended before its
        /// input did, or the connection failed on bad input). `false` when the peer sent every
        /// request whole, the connection was idle, or the transport is already gone.
        linger: bool,
    },
}

/// A request ready for its app.
#[derive(Debug)]
pub struct Dispatch {
    /// Transport facts; `info.id` is the request's tag.
    pub info: RequestInfo,
    /// The meta-variables as the peer sent them, with `FCGI_ROLE` (and without
    /// `CONTENT_LENGTH` for an Authorizer).
    pub env: Env,
    /// `CONTENT_LENGTH` (`None` when absent or empty: the body ends at the empty `FCGI_STDIN`);
    /// `Some(0)` for an Authorizer, whose body ends at once (an [`Event::StdinEnd`] follows).
    pub content_length: Option<u64>,
    /// The server request slot; keep it until the app's task ends.
    pub slot: RequestSlot,
}
