//! The CGI front end of gatehouse: the binary run as a CGI program (RFC 3875), serving exactly
//! one request from its environment and standard input, answering on standard output.
//!
//! ```text
//!  web server (Apache mod_cgi, lighttpd mod_cgi, ...) forks and execs us:
//!     environment ── meta-variables (all of it, as bytes) ──► Env ──┐
//!     stdin ── CONTENT_LENGTH bytes, no more ──► BodySender ────────┼─► Request ──► Application
//!     stdout ◄── "Status: 200 OK" headers "" body ◄── QueueChannel ◄┘      (same task, no spawn)
//!     stderr ◄── one line per failed request (the web server's error log)
//! ```
//!
//! [`run`] builds a current-thread tokio runtime (no worker threads, no listeners), serves the
//! request with [`serve_once`] and returns the exit code. Standard output is written directly
//! (blocking: one request, one writer); standard input goes through tokio's stdin, which starts
//! one helper thread, and only when there is a body to read.
//!
//! # Use from the binary
//!
//! ```no_run
//! # fn app() -> std::sync::Arc<dyn gatehouse_channel_request::Application> { unimplemented!() }
//! if gatehouse_cgi::is_cgi_environment() {
//!     // The app: the command-line APP, else the GATEHOUSE_APP variable, else a default.
//!     std::process::exit(gatehouse_cgi::run(app()));
//! }
//! ```
//!
//! In CGI mode the binary must write nothing to standard output before [`run`] (logs go to
//! stderr), and must ignore command-line arguments that only repeat an ISINDEX query: Apache
//! passes `GET /cgi-bin/gatehouse?hello` as `argv[1] = "hello"` (RFC 3875 section 4.4; see
//! [`isindex_args`]).
//!
//! A web server runs a CGI program without arguments, so the app comes from the environment
//! ([`APP_ENV_VAR`], e.g. Apache `SetEnv GATEHOUSE_APP echo`, lighttpd `setenv.add-environment`)
//! or from a two-line wrapper script installed as the CGI program:
//!
//! ```sh
//! #!/bin/sh
//! exec /usr/local/bin/gatehouse --cgi echo
//! ```
//!
//! # Errors
//!
//! A missing `REQUEST_METHOD` (`500`) and a `CONTENT_LENGTH` that is not a number (`400`) are
//! answered with a CGI error response, and [`run`] writes ONE line about it to standard error,
//! which web servers put in their error log. Standard input ending before `CONTENT_LENGTH` bytes
//! fails the app's body, as behind the other front ends: an app that reads it gets the error
//! (answered `400`), one that does not is answered as it answers; one line either way. Errors of the app itself are
//! logged by the core through `tracing`: the binary should install its stderr subscriber before
//! calling [`run`] (without one, those lines are lost; front-end lines are not).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod env;
mod error;
mod output;
mod stdio;

use std::ffi::OsString;
use std::io::Write;
use std::sync::Arc;

use gatehouse_channel_request::env::REMOTE_ADDR;
use gatehouse_channel_request::Application;

pub use env::{is_cgi_environment, is_cgi_gateway_interface, isindex_args};
pub use error::Error;
pub use stdio::{serve_once, BODY_QUEUE_CHUNKS, READ_CHUNK, RESPONSE_BUDGET};

/// The environment variable naming the app when the binary runs as a CGI program without an
/// `APP` argument (a web server passes none): e.g. `GATEHOUSE_APP=echo`.
pub const APP_ENV_VAR: &str = "GATEHOUSE_APP";

/// Exit code after a complete response (the app's, or our own error answer).
pub const EXIT_ANSWERED: i32 = 0;
/// Exit code when no complete response could be written (standard output failed, or the app's
/// response was cut short).
pub const EXIT_UNANSWERED: i32 = 1;

/// Serves exactly one request from the process environment and standard input, the response
/// to standard output. Builds a current-thread tokio runtime itself (no thread pools, no
/// listeners: start-up must be fast). Returns the exit code: [`EXIT_ANSWERED`] (0) after any
/// response it could write, error answers included, else [`EXIT_UNANSWERED`].
pub fn run(app: Arc<dyn Application>) -> i32 {
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let remote = vars
        .iter()
        .find(|(n, _)| n == REMOTE_ADDR)
        .map(|(_, v)| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log_line(0, &remote, &format!("cannot start the runtime: {e}"));
            return EXIT_UNANSWERED;
        }
    };
    let outcome = runtime.block_on(stdio::serve(
        app,
        vars,
        tokio::io::stdin(),
        output::BlockingStdout::new(),
    ));
    // A read of stdin may still be blocked in tokio's helper thread (the app answered without
    // the whole body): do not wait for it.
    runtime.shutdown_background();
    if let Some(err) = &outcome.error {
        if err.is_client_gone() {
            // Once, at info: the web server's error log (our stderr) shows warnings only.
            tracing::info!(peer = "stdio", remote_addr = remote, request_id = outcome.request_id,
                error = %err, "client gone before the response was complete");
        } else if !err.already_logged() {
            log_line(outcome.request_id, &remote, &err.to_string());
        }
    }
    if outcome.answered {
        EXIT_ANSWERED
    } else {
        EXIT_UNANSWERED
    }
}

/// The one line about a failed request: through `tracing` when the binary installed a
/// subscriber, else straight to standard error.
fn log_line(request_id: u64, remote: &str, error: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::error!(
            peer = "stdio",
            remote_addr = remote,
            request_id,
            error,
            "cgi request failed"
        );
    } else {
        let line = format!(
            "gatehouse: cgi request failed: peer=stdio remote_addr={remote} request_id={request_id}: {error}\n"
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}
