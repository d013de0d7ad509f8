//! Python WSGI apps (PEP 3333) in an embedded CPython, served as a channel-request
//! [`Application`](gatehouse_channel_request::Application).
//!
//! ```text
//!  front end ── serve_request ──► WsgiApp::call (async, tokio)
//!                                   │ 1. Job { Request, reply } ──► idle thread (LIFO), else bounded
//!                                   │                                     │  queue ──► 503 when full
//!                                   │                     pool of N std threads (Python::attach)
//!                                   │                       environ + start_response + app(...)
//!                                   │                       wsgi.input ◄── RequestBody::blocking_chunk
//!                                   │                                      (GIL released while waiting)
//!                                   │ 2. outbox: Head / Body ◄────────────── iterate, write(), file_wrapper
//!                                   │    (bounded; one wake-up per flush; full: wait without the GIL)
//!                                   ▼
//!                      Response::send_head / write (backpressure) / finish
//!                                   │ 3. outbox: Ok / app error (traceback) ◄── close() always called
//!                                   ▼
//!                      serve_request: 500 before the head, abort after it, one log line
//! ```
//!
//! - [`config`]: [`Config`] (threads, queue, pythonpath, venv) and [`WsgiSpec`]
//!   (`MODULE[:CALLABLE]`, `path/file.py[:CALLABLE]`).
//! - `interpreter`: starting CPython once per process, with the executable (or virtualenv) the
//!   crate was built for, and [`interpreter_info`]. The only module with `unsafe` (also the two
//!   CPython constructors the environ needs that pyo3 lacks).
//! - `loader`: importing the app at start-up; errors carry the Python traceback.
//! - `pool`: the bounded thread pool and its queue.
//! - `outbox`: one request's head, body chunks and outcome, from its pool thread to the async
//!   side, with as few wake-ups as the PEP's "no delay" allows.
//! - `app`: [`WsgiApp`], the async side: hands the request over, pumps the outputs.
//! - `stats`: the process-wide counters ([`stats()`], [`WsgiStats`]) for metrics.
//! - `watchdog`: `--request-timeout` and `--slow-log-timeout`: tracebacks, the exception that
//!   frees a thread, replacing a stuck one ([`on_stuck_thread`]).
//! - `worker`: one request on a pool thread: call the app, iterate, `close()` always.
//! - `environ`, `input`, `errors`, `start_response`, `sink`, `file_wrapper`: the PEP 3333 objects.
//!
//! # Embedding
//! Building needs the Python headers and library of the interpreter pyo3 finds (`python3` on the
//! `PATH`, or `PYO3_PYTHON`). The binary must load that same libpython: this crate's build script
//! exports its directory as `DEP_GATEHOUSE_PYTHON_LIBDIR` and the root build script turns it into
//! an rpath (see the README of this crate). At run time [`WsgiApp::load`] checks that the library
//! actually loaded is the one from the build.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod app;
pub mod config;
mod environ;
mod error;
mod errors;
mod file_wrapper;
mod input;
#[allow(unsafe_code)] // reason: CPython's PyConfig initialisation API has no safe pyo3 wrapper.
mod interpreter;
mod loader;
mod outbox;
mod pool;
mod sink;
mod start_response;
mod stats;
mod watchdog;
mod worker;

pub use app::WsgiApp;
pub use config::{Config, WsgiSpec};
pub use error::Error;
pub use file_wrapper::{FILE_WRAPPER_MAX_BLOCK, FILE_WRAPPER_MIN_BLOCK};
pub use interpreter::{built_for, interpreter_info, BuildInfo};
pub use stats::{stats, WsgiStats};
pub use watchdog::on_stuck_thread;
