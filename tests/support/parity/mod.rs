//! Support for tests/parity.rs: the same requests to `echo` through every front end, directly
//! and through nginx, checked against one oracle.
//!
//! ```text
//!   Case ──► Rig::send(route) ──┬─ fcgi client ───────────────► --fastcgi ─┐
//!    │                          ├─ scgi client ───────────────► --scgi    ─┤
//!    │                          ├─ http client ───────────────► --http    ─┤
//!    │                          ├─ run the binary as CGI ─────► (env, stdin)┤─► dispatcher ─► echo
//!    │                          └─ http client ─► nginx ─┬─ fastcgi_pass ──┤
//!    │                                                   ├─ scgi_pass ─────┤
//!    │                                                   └─ proxy_pass ────┘
//!    └──► Case::expected(route) ══ compared field by field ══ echo's JSON ◄──┘
//! ```
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each parity test uses part of the support code"
)]

pub mod case;
pub mod check;
pub mod rig;
pub mod route;
pub mod server;
pub mod wire;

pub use case::Case;
pub use check::Matrix;
pub use rig::Rig;
pub use route::Route;

/// Where the CGI route's stand-in web server has the program (`SCRIPT_NAME`).
pub const CGI_SCRIPT_NAME: &str = "/cgi-bin/gatehouse";
