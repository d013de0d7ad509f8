//! The dispatcher and the built-in apps.
//!
//! ```text
//!  front end ── Request ──► Dispatcher ──(longest mount prefix)──► Application
//!                             │ sets SCRIPT_NAME = mount point
//!                             │      PATH_INFO   = the rest of the path
//!                             │ drops HTTP_PROXY, HTTP_CONTENT_{LENGTH,TYPE} (contract)
//!                             │ omits the response body for HEAD
//! ```
//!
//! The dispatcher owns the `SCRIPT_NAME` / `PATH_INFO` split: whatever the front server sent
//! (nginx's stock `fastcgi_params` sends `SCRIPT_NAME` = the whole path and no `PATH_INFO`;
//! its `scgi_params` sends neither; fcgiwrap-style configs send both as `$uri`), the app sees its mount point as `SCRIPT_NAME` and the rest
//! of the path as `PATH_INFO`, as PEP 3333 and RFC 3875 intend.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod builtin;
mod contract;
mod dispatcher;
mod path;

pub use dispatcher::Dispatcher;
pub use gatehouse_channel_request::env::percent_decode;
pub use path::{full_path, BadPath};
