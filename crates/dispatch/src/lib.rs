//! The dispatcher and the built-in apps.
//!
//! ```text
//!  front end ── Request ──► Dispatcher ──(longest mount prefix)──► Application
//!                             │ sets SCRIPT_NAME = mount point, or the front server's
//!                             │                    prefix when that is longer
//!                             │      PATH_INFO   = the rest of the path
//!                             │ drops HTTP_PROXY, HTTP_CONTENT_{LENGTH,TYPE} (contract)
//!                             │ omits the response body for HEAD
//! ```
//!
//! The dispatcher owns the `SCRIPT_NAME` / `PATH_INFO` split: whatever the front server sent
//! (nginx's stock `fastcgi_params` sends `SCRIPT_NAME` = the whole path and no `PATH_INFO`;
//! its `scgi_params` sends neither; fcgiwrap-style configs send both as `$uri`), the app sees
//! its mount point as `SCRIPT_NAME` and the rest of the path as `PATH_INFO`, as PEP 3333 and
//! RFC 3875 intend. A split the front server made on purpose (an nginx regex location passing
//! `PATH_INFO $1`, `fastcgi_split_path_info`, Apache's or lighttpd's `SCRIPT_NAME`) is kept
//! when it is consistent with the path: then `SCRIPT_NAME` is never shorter than the front
//! server's ([`request_path`]).
//!
//! [`Spooled`] wraps an app whose requests must reach it with their whole body read first
//! (CGI scripts by default; see [`spool`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod builtin;
mod contract;
mod dispatcher;
mod path;
pub mod spool;

pub use dispatcher::Dispatcher;
pub use gatehouse_channel_request::env::percent_decode;
pub use path::{full_path, request_path, BadPath, RequestPath};
pub use spool::{SpoolConfig, Spooled};
