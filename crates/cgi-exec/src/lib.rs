//! CGI programs run per request (RFC 3875): what fcgiwrap does for nginx, behind any gatehouse
//! front end, with the safety checks fcgiwrap lacks.
//!
//! ```text
//!  front end ─► Request ─► CgiApp::call
//!                            │ resolve   SCRIPT_FILENAME | DOCUMENT_ROOT+path | path under root
//!                            │           walk segments to the first file: SCRIPT_NAME | PATH_INFO
//!                            │ check     inside the root, regular, executable, not world-writable
//!                            │ slot      --cgi-max semaphore (excess requests wait)
//!                            │ spawn     env_clear().envs(request vars), cwd = script dir,
//!                            │           argv = [script], own process group (posix_spawn path)
//!                            ▼
//!        RequestBody ──► stdin ┐                      ┌─► stderr ─► log lines (tagged), or
//!                              script (process group) ┤    FCGI_STDERR (--cgi-stderr fastcgi)
//!        Response ◄── head ◄── stdout ◄───────────────┘
//!          Status / Location: local redirect ─► run again (GET, no body), client redirect ─► 302
//!        client gone, timeout, future dropped ─► SIGTERM group ─ grace ─ SIGKILL ─ reap
//! ```
//!
//! - [`CgiApp`]: the [`Application`](gatehouse_channel_request::Application); built from
//!   `cgi:PATH` and a [`Config`].
//! - `resolve`: which file a request names, and the `SCRIPT_NAME` / `PATH_INFO` split.
//! - `safety`: the checks a file passes before it is executed.
//! - `childenv`: the script's environment, built from the request (httpoxy-safe).
//! - `pump`: body to stdin and stdout to response at the same time, with backpressure.
//! - `spawn`: finding, checking and spawning one run (std's posix_spawn fast path, `setpriv`).
//! - `guard`: stopping and reaping a script's process group, also when the future is dropped.
//! - `stderr`: the script's stderr as log lines, or forwarded to the front server.
//! - `stats`: the process-wide counters ([`stats()`], [`CgiStats`]) for metrics.
//! - `sys`: the few libc calls std lacks; [`nss`]: user and group look-ups (the only `unsafe`).
//!
//! # Wiring it into a binary
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use gatehouse_cgi_exec::{CgiApp, Config, Group, StderrMode, User};
//!
//! # fn main() -> Result<(), gatehouse_cgi_exec::Error> {
//! let config = Config {
//!     timeout: Some(Duration::from_secs(60)),          // --cgi-timeout 60s (idle time)
//!     request_timeout: Some(Duration::from_secs(300)), // --request-timeout 5m (wall clock)
//!     max_children: 32,                                // --cgi-max 32 (0: no limit)
//!     pass_env: vec!["TZ".into()],                     // --cgi-env TZ (repeatable)
//!     user: Some(User::lookup("www-data")?),           // --cgi-user www-data (name or uid)
//!     group: Some(Group::lookup("www-data")?),         // --cgi-group www-data (name or gid)
//!     allow_symlinks: false,                           // --cgi-allow-symlinks
//!     allow_world_writable: false,                     // --cgi-allow-world-writable
//!     extensions: Some(vec!["cgi".into(), "sh".into()]), // --cgi-extensions cgi,sh
//!     stderr: StderrMode::FastCgi,                     // --cgi-stderr fastcgi
//!     ..Config::default()
//! };
//! // APP `cgi:PATH`: a directory of scripts, or one program for every request.
//! let app = Arc::new(CgiApp::new("/usr/lib/cgi-bin".into(), config)?);
//! # let _ = app; Ok(()) }
//! ```
//!
//! [`CgiApp::new`] fails (print it, exit 2) when the path is unusable, a user or group is
//! unknown, or a user is set without gatehouse running as root. The app spawns processes, so the
//! tokio runtime needs its I/O and signal drivers (`enable_all`). Scripts answer whatever the
//! dispatcher gives them: the request path is `SCRIPT_NAME` + `PATH_INFO` as the dispatcher split
//! it (a split the front server made on purpose, such as an nginx regex location passing
//! `PATH_INFO $1`, is kept); a file root gets that `PATH_INFO`, a directory root walks the path
//! under the root to the first existing file. `DOCUMENT_URI` is read only when the app is driven
//! without the dispatcher and disagrees with `SCRIPT_NAME` + `PATH_INFO`.
#![deny(missing_docs)]
#![deny(unsafe_code)] // allowed in `sys` and `nss` alone
#![warn(clippy::undocumented_unsafe_blocks)]

mod app;
mod childenv;
mod config;
mod error;
mod guard;
pub mod nss;
mod pump;
mod resolve;
mod safety;
mod spawn;
mod stats;
mod stderr;
mod sys;

pub use app::CgiApp;
pub use childenv::PATH_TRANSLATED;
pub use config::{
    Config, Group, StderrMode, User, DEFAULT_KILL_GRACE, DEFAULT_MAX_CHILDREN,
    DEFAULT_MAX_HEAD_BYTES, DEFAULT_PATH, MAX_LOCAL_REDIRECTS, STDERR_LINGER,
};
pub use error::{Error, Refusal};
pub use pump::{READ_CHUNK, REDIRECT_DRAIN_LIMIT};
pub use spawn::SETPRIV_PATHS;
pub use stats::{stats, CgiStats};
pub use stderr::MAX_LINE as MAX_STDERR_LINE;
