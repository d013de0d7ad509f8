//! gatehouse: a gateway daemon that web servers hand requests to, and the library that lets a
//! Rust program be its own gateway app.
//!
//! ```text
//!  nginx / Apache / lighttpd / spawn-fcgi
//!        │ FastCGI (TCP, unix socket, or inherited fd 0)
//!        ▼
//!  listeners ──► accept loops ──► front end (gatehouse_fastcgi) ──► Request
//!  (cli, listen)   (serve)                                             │
//!                                            Dispatcher (mount "/") ◄──┘
//!                                                   │
//!                         your Application, or a built-in app (hello, echo, env)
//! ```
//!
//! # Serving your own handler
//!
//! ```no_run
//! use gatehouse::{AppError, Application, BoxFuture, Request, Response};
//!
//! struct Hi;
//!
//! impl Application for Hi {
//!     fn call<'a>(&'a self, _req: Request, resp: &'a mut Response)
//!         -> BoxFuture<'a, Result<(), AppError>> {
//!         Box::pin(async move {
//!             resp.send_full(200, "text/plain", "hi\n").await?;
//!             Ok(())
//!         })
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     gatehouse::serve(Hi)
//! }
//! ```
//!
//! The program then takes the same options as the `gatehouse` binary (`--fastcgi ADDR`, limits,
//! `--log-level`, ...), serves on an inherited fd 0 when started by spawn-fcgi, and drains on
//! SIGTERM. See `examples/native_handler.rs`.
#![deny(missing_docs)]

pub mod addr;
pub mod cli;
mod daemon;
mod error;
mod inherit;
mod listen;
mod serve;
mod signal;

use std::process::ExitCode;
use std::sync::Arc;

pub use error::Error;
pub use gatehouse_channel_request as channel_request;
pub use gatehouse_channel_request::{
    AppError, Application, BoxFuture, Env, Peer, Protocol, Request, RequestBody, RequestInfo,
    Response, ResponseHead,
};
pub use gatehouse_dispatch::{builtin, Dispatcher};

use crate::cli::{AppSpec, Cli};

/// Serves `app` with the command line of the running program, as the `gatehouse` binary serves
/// its APP: parses the arguments (the same options, no APP), listens, serves until SIGTERM or
/// SIGINT, drains, and returns the exit status (0 after a clean shutdown, 2 for a usage error,
/// 1 when it cannot start).
pub fn serve(app: impl Application) -> ExitCode {
    match Cli::try_from_args_embedded(std::env::args_os()) {
        Ok(cli) => exit_code(run(&cli, Arc::new(app))),
        Err(code) => ExitCode::from(code),
    }
}

/// Serves `app` with options already parsed: sets up logging (unless the program installed its
/// own `tracing` subscriber), listens, serves until a stop signal, drains.
pub fn run(cli: &Cli, app: Arc<dyn Application>) -> Result<(), Error> {
    init_logging(cli.run.log_level.as_deref());
    daemon::run(cli, app)
}

/// The app an APP argument names.
pub fn resolve_app(spec: &AppSpec) -> Result<Arc<dyn Application>, Error> {
    match spec {
        AppSpec::Builtin(name) => {
            builtin::by_name(name).ok_or_else(|| Error::Usage(format!("unknown app '{name}'")))
        }
    }
}

/// The exit status for a daemon's result, printing the error (one line on stderr) if any.
pub fn exit_code(result: Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Logs to stderr: the `--log-level` filter, else `RUST_LOG`, else `info`. Colours only on a
/// terminal.
fn init_logging(level: Option<&str>) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;

    let filter = match level {
        Some(level) => EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // Fails only when the program already installed a subscriber: then that one logs.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
